"""Runs: create, list, read, cancel."""

import uuid

import psycopg
from flask import Blueprint, g, request

from common import messages, queries, state
from common.bearer import require_auth
from common.db import get_db
from common.errors import ApiError, invalid_field
from common.notify import publish
from common.validation import json_body, number_field, query_number, string_field
from orchestrator import journal, metrics

bp = Blueprint("runs", __name__, url_prefix="/runs")

DEFAULT_STEPS = 3
DEFAULT_PAGE = 20


def serialize(run):
    """A run as the API shows it."""
    return {
        "id": str(run["id"]),
        "prompt": run["prompt"],
        "steps": run["steps"],
        "status": run["status"],
        "error": run["error"],
        "createdAt": run["created_at"].isoformat(),
        "startedAt": run["started_at"] and run["started_at"].isoformat(),
        "updatedAt": run["updated_at"].isoformat(),
        "threadId": run["thread_id"] and str(run["thread_id"]),
    }


def parse_run_id(text):
    """A run (or thread) id from a URL or a body, or None when it is not a UUID (it cannot exist)."""
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None


def own_run(run_id):
    """The caller's run with this id, or 404 (another user's run is indistinguishable from none)."""
    parsed = parse_run_id(run_id)
    run = parsed and queries.get_run(get_db(), run_id=parsed, user_id=g.user_id)
    if not run:
        raise ApiError(404, "run_not_found", "No such run.")
    return run


def page_of(list_query, cursor_query, serializer):
    """A page of the caller's rows (`?limit=` 1-100, `?before=` a previous page's cursor) and the next cursor."""
    limit = query_number("limit", DEFAULT_PAGE, 1, 100)
    before = request.args.get("before")
    if before is not None:
        before = parse_run_id(before)
        if not before or not cursor_query(get_db(), id=before, user_id=g.user_id):
            raise invalid_field("before", "is not a cursor from this list")
    rows = list_query(get_db(), user_id=g.user_id, before=before, limit=limit + 1)
    items = [serializer(row) for row in rows[:limit]]
    return items, items[-1]["id"] if len(rows) > limit else None


@bp.post("")
@require_auth
def create_run():
    """Queue a run: 201 with the run, `queued`; a worker with room claims it and executes it.

    With `threadId` the run continues that conversation (see `queue_run`).
    """
    body = json_body()
    prompt = string_field(body, "prompt", 1, 4000)
    steps = number_field(body, "steps", DEFAULT_STEPS, 1, 50)
    thread_id = body.get("threadId")
    if thread_id is not None and not (thread_id := parse_run_id(thread_id)):
        raise ApiError(404, "thread_not_found", "No such thread.")
    run = queue_run(get_db(), prompt, steps, thread_id)
    metrics.current().count_run("queued")
    return serialize(run), 201


def queue_run(conn, prompt, steps, thread_id):
    """Insert the caller's run `queued` (in its thread, if any) and wake the dispatchers; return it.

    404 if the thread is not the caller's; 409 `thread_busy` while another of its runs is active.
    """
    try:
        with conn.transaction():
            # Locks the thread: concurrent runs for it are decided one after the other.
            if thread_id and not queries.touch_thread(conn, thread_id=thread_id, user_id=g.user_id, prompt=prompt):
                raise ApiError(404, "thread_not_found", "No such thread.")
            run = queries.insert_run(conn, user_id=g.user_id, prompt=prompt, steps=steps, thread_id=thread_id)
            publish(conn, messages.run_status(g.user_id, str(run["id"]), "queued"))  # wakes the dispatchers
    except psycopg.errors.UniqueViolation:  # runs_one_active_per_thread_idx: the thread has an active run
        active = queries.get_thread(conn, thread_id=thread_id, user_id=g.user_id)
        active_id = active and active["active_run_id"] and str(active["active_run_id"])
        message = "The thread has a run in progress; wait for it to end, or cancel it."
        raise ApiError(409, "thread_busy", message, details={"activeRunId": active_id}) from None
    return run


@bp.get("")
@require_auth
def list_runs():
    """The caller's runs, newest first: `?limit=` (1-100) and `?before=<cursor>` from a previous `next`."""
    runs, cursor = page_of(queries.list_runs, queries.find_run_of_user, serialize)
    return {"runs": runs, "next": cursor}


@bp.get("/<run_id>")
@require_auth
def get_run(run_id):
    """One of the caller's runs."""
    return serialize(own_run(run_id))


@bp.post("/<run_id>/cancel")
@require_auth
def cancel_run(run_id):
    """Ask a run to stop: 202; it ends with a `cancelled` event at its next step. 409 if already over.

    The request is stored first, so the run stops even if the notification never reaches its worker
    (that worker sees it when it next writes or renews its lease); a queued or waiting run, which no
    worker executes, is cancelled at once.
    """
    run = own_run(run_id)
    conn = get_db()
    with conn.transaction():
        if not queries.request_cancel(conn, run_id=run["id"], user_id=g.user_id):
            raise ApiError(409, "run_finished", f"The run has already ended ({run['status']}).")
        idle = queries.lock_idle_run(conn, run_id=run["id"])
        if idle:
            cancelled = [("cancelled", {"status": "cancelled"})]
            journal.append(conn, state.config(), idle, cancelled, metrics.current().count_run)
        else:
            publish(conn, messages.cancel_run(str(run["id"])))
    return {"id": str(run["id"]), "status": run["status"], "cancelRequested": True}, 202
