"""POST /runs/<id>/input: a person's answer to a run's request for approval."""

from flask import Blueprint, g

from common import queries, state
from common.bearer import require_auth
from common.db import get_db
from common.errors import ApiError, invalid_field
from common.validation import json_body, string_field
from orchestrator import journal, metrics
from orchestrator.runs import own_run

bp = Blueprint("inputs", __name__)


def parse_answer(body):
    """The answer in a request body: {"id", "approve", "comment"?}, or 400 naming the field."""
    answer = {"id": string_field(body, "id", 1, 200)}
    if not isinstance(body.get("approve"), bool):
        raise invalid_field("approve", "is required and must be true or false")
    answer["approve"] = body["approve"]
    if body.get("comment") is not None:
        answer["comment"] = string_field(body, "comment", 0, 2000)
    return answer


@bp.post("/runs/<run_id>/input")
@require_auth
def answer_input(run_id):
    """Answer the run's pending `input_required`: 202, and the run is queued to go on anywhere."""
    answer = parse_answer(json_body())
    run = own_run(run_id)
    conn = get_db()
    with conn.transaction():
        locked = queries.lock_run_of_user(conn, run_id=run["id"], user_id=g.user_id)
        if locked is None:  # deleted with its thread since `own_run` read it
            raise ApiError(404, "run_not_found", "No such run.")
        request = queries.get_input_request(conn, run_id=run["id"], input_id=answer["id"])
        if request is None:
            raise ApiError(400, "unknown_input", "The run has asked for no input with this id.", field="id")
        if request["answered"]:
            raise ApiError(409, "input_answered", "This request was answered already.")
        if locked["status"] != "waiting":
            raise ApiError(409, "run_not_waiting", f"The run is not waiting for an answer ({locked['status']}).")
        count = metrics.current().count_run
        journal.append(conn, state.config(), locked, [("input", answer)], count)  # queued: any worker resumes it
    return {"id": str(run["id"]), "status": "queued"}, 202
