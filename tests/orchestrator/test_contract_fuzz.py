"""schemathesis against the Orchestrator under gunicorn: every answer is in the document, none is a 500,
every error is the JSON error shape. The run stream is fuzzed only where it answers at once (unknown
runs, bad resume points); links create runs and threads and then read, cancel, answer and delete them."""

import pytest
import schemathesis

from tests.support.accounts import sign_up
from tests.support.contract import CHECKS, document_path, fuzz_settings, start_fuzzed_service
from tests.support.services import service_env

schema = schemathesis.openapi.from_path(document_path("orchestrator"))


@pytest.fixture(scope="module")
def orchestrator(module_database_url, tmp_path_factory):
    """The Orchestrator under gunicorn for the whole module: fast steps; streams end within 2 s."""
    env = service_env(module_database_url, RUN_STEP_DELAY_MS=5, RUN_LEASE_SECONDS=2, SSE_MAX_STREAM_SECONDS=2)
    service = start_fuzzed_service("orchestrator", env, tmp_path_factory.mktemp("orchestrator-fuzz"))
    yield service, env
    service.stop()


@schema.parametrize()
@fuzz_settings(max_examples=15)
def test_orchestrator_conforms_to_its_document(case, orchestrator):
    service, env = orchestrator
    headers = sign_up(env)["headers"]
    case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS, timeout=10)


def test_orchestrator_workflows_conform(orchestrator):
    """create run → get / cancel / answer; create thread → get / run in it / delete."""
    service, env = orchestrator

    class Workflow(schema.exclude(path="/runs/{run_id}/events").as_state_machine()):
        def setup(self):
            self.headers = sign_up(env)["headers"]

        def get_call_kwargs(self, case):
            return {"base_url": service.url, "headers": self.headers, "timeout": 10}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Workflow.run(settings=fuzz_settings(max_examples=10))
