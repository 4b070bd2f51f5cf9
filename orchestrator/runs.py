"""Runs: create, list, read, cancel."""

import uuid

import psycopg
from flask import Blueprint, current_app, g, request

from common import messages, queries
from common.bearer import require_auth
from common.db import get_db
from common.errors import ApiError, invalid_field
from common.http import json_body, string_field
from common.notify import publish
from orchestrator import journal

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
    run = parsed and queries.one(get_db(), "get_run", run_id=parsed, user_id=g.user_id)
    if not run:
        raise ApiError(404, "run_not_found", "No such run.")
    return run


def whole_number(value, name, low, high):
    """`value` if it is a whole number (not a bool) in [low, high], else 400 naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid_field(name, f"must be a whole number from {low} to {high}")
    return value


def query_number(name, default, low, high):
    """The query argument `name` as a whole number in [low, high] (`default` when absent), else 400."""
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() is true of '²', which int() refuses (a 500), and of '١'.
    return whole_number(int(raw) if raw.isascii() and raw.isdigit() else None, name, low, high)


def page_of(list_query, cursor_query, serializer):
    """A page of the caller's rows (`?limit=` 1-100, `?before=` a previous page's cursor) and the next cursor."""
    limit = query_number("limit", DEFAULT_PAGE, 1, 100)
    before = request.args.get("before")
    if before is not None:
        before = parse_run_id(before)
        if not before or not queries.one(get_db(), cursor_query, id=before, user_id=g.user_id):
            raise invalid_field("before", "is not a cursor from this list")
    rows = queries.rows(get_db(), list_query, user_id=g.user_id, before=before, limit=limit + 1)
    items = [serializer(row) for row in rows[:limit]]
    return items, items[-1]["id"] if len(rows) > limit else None


@bp.post("")
@require_auth
def create_run():
    """Queue a run: 201 with the run, `queued`; a worker with room claims it and executes it.

    With `threadId` the run continues that conversation: 404 if the thread is not the caller's,
    409 `thread_busy` while another of its runs is active (the database's unique index decides).
    """
    body = json_body()
    prompt = string_field(body, "prompt", 1, 4000)
    steps = whole_number(body.get("steps", DEFAULT_STEPS), "steps", 1, 50)
    thread_id = body.get("threadId")
    if thread_id is not None and not (thread_id := parse_run_id(thread_id)):
        raise ApiError(404, "thread_not_found", "No such thread.")
    conn = get_db()
    try:
        with conn.transaction():
            # Locks the thread: concurrent runs for it are decided one after the other.
            if thread_id and not queries.one(
                conn, "touch_thread", thread_id=thread_id, user_id=g.user_id, prompt=prompt
            ):
                raise ApiError(404, "thread_not_found", "No such thread.")
            run = queries.one(conn, "insert_run", user_id=g.user_id, prompt=prompt, steps=steps, thread_id=thread_id)
            publish(conn, messages.run_status(g.user_id, str(run["id"]), "queued"))  # wakes the dispatchers
    except psycopg.errors.UniqueViolation:  # runs_one_active_per_thread_idx: the thread has an active run
        active = queries.one(conn, "get_thread", thread_id=thread_id, user_id=g.user_id)
        active_id = active and active["active_run_id"] and str(active["active_run_id"])
        message = "The thread has a run in progress; wait for it to end, or cancel it."
        raise ApiError(409, "thread_busy", message, details={"activeRunId": active_id}) from None
    current_app.extensions["executor"].count("queued")
    return serialize(run), 201


@bp.get("")
@require_auth
def list_runs():
    """The caller's runs, newest first: `?limit=` (1-100) and `?before=<cursor>` from a previous `next`."""
    runs, cursor = page_of("list_runs", "run_exists_for_user", serialize)
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
        if not queries.one(conn, "request_cancel", run_id=run["id"], user_id=g.user_id):
            raise ApiError(409, "run_finished", f"The run has already ended ({run['status']}).")
        idle = queries.one(conn, "lock_idle_run", run_id=run["id"])
        if idle:
            config, count = current_app.extensions["config"], current_app.extensions["executor"].count
            journal.append(conn, config, idle, [("cancelled", {"status": "cancelled"})], count)
        else:
            publish(conn, messages.cancel_run(str(run["id"])))
    return {"id": str(run["id"]), "status": run["status"], "cancelRequested": True}, 202
