"""Threads: conversations, each an ordered list of one user's runs. Create, list, read, delete."""

from flask import Blueprint, g

from common import queries
from common.bearer import require_auth
from common.db import get_db
from common.errors import ApiError
from common.validation import json_body, string_field
from orchestrator.runs import page_of, parse_run_id, serialize

bp = Blueprint("threads", __name__, url_prefix="/threads")


def serialize_thread(thread):
    """A thread as the API shows it."""
    return {
        "id": str(thread["id"]),
        "title": thread["title"],
        "createdAt": thread["created_at"].isoformat(),
        "updatedAt": thread["updated_at"].isoformat(),
        "activeRunId": thread["active_run_id"] and str(thread["active_run_id"]),
    }


def own_thread(thread_id):
    """The caller's thread with this id, or 404 (another user's thread is indistinguishable from none)."""
    parsed = parse_run_id(thread_id)
    thread = parsed and queries.get_thread(get_db(), thread_id=parsed, user_id=g.user_id)
    if not thread:
        raise ApiError(404, "thread_not_found", "No such thread.")
    return thread


@bp.post("")
@require_auth
def create_thread():
    """Start a conversation: 201 with the thread (its title, when none is given, is its first prompt's start)."""
    body = json_body()
    title = string_field(body, "title", 1, 200) if body.get("title") is not None else None
    thread = queries.insert_thread(get_db(), user_id=g.user_id, title=title)
    return serialize_thread(thread), 201


@bp.get("")
@require_auth
def list_threads():
    """The caller's threads, newest activity first: `?limit=` (1-100) and `?before=<cursor>`."""
    threads, cursor = page_of(queries.list_threads, queries.find_thread_of_user, serialize_thread)
    return {"threads": threads, "next": cursor}


@bp.get("/<thread_id>")
@require_auth
def get_thread(thread_id):
    """One of the caller's threads, with its runs in order."""
    thread = own_thread(thread_id)
    runs = queries.list_runs_of_thread(get_db(), thread_id=thread["id"], user_id=g.user_id)
    return {**serialize_thread(thread), "runs": [serialize(r) for r in runs]}


@bp.delete("/<thread_id>")
@require_auth
def delete_thread(thread_id):
    """Delete a thread with its runs and their events: 204. A run still executing stops at its next write."""
    thread = own_thread(thread_id)
    queries.delete_thread(get_db(), thread_id=thread["id"], user_id=g.user_id)
    return "", 204
