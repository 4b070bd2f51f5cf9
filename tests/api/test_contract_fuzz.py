"""schemathesis against the API under gunicorn: every answer is in the document, none is a 500, every
error is the JSON error shape. `GET /events` (an endless SSE stream) is in the document, not fuzzed."""

import pytest
import schemathesis

from tests.support.accounts import sign_up
from tests.support.contract import CHECKS, document_path, fuzz_settings, start_fuzzed_service
from tests.support.services import service_env

schema = schemathesis.openapi.from_path(document_path("api"))
fuzzed = schema.exclude(path="/events")


@pytest.fixture(scope="module")
def api(module_database_url, tmp_path_factory):
    """The API under gunicorn for the whole module, with its settings."""
    env = service_env(module_database_url, LOGIN_MAX_FAILURES=1000, LOGIN_MAX_FAILURES_PER_ADDRESS=1000)
    service = start_fuzzed_service("api", env, tmp_path_factory.mktemp("api-fuzz"))
    yield service, env
    service.stop()


@fuzzed.parametrize()
@fuzz_settings(max_examples=20)
def test_api_conforms_to_its_document(case, api):
    service, env = api
    headers = sign_up(env)["headers"]  # a user of its own per example: logout revokes only that one
    case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS, timeout=10)


def test_api_workflows_conform(api):
    """register → sign in → me / refresh / logout, following the document's links."""
    service, env = api

    class Workflow(fuzzed.as_state_machine()):
        def setup(self):
            self.headers = sign_up(env)["headers"]

        def get_call_kwargs(self, case):
            # A link's own Authorization (a token just issued) wins over the scenario's user.
            return {"base_url": service.url, "headers": {**self.headers, **(case.headers or {})}, "timeout": 10}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Workflow.run(settings=fuzz_settings(max_examples=10))
