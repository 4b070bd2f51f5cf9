"""schemathesis against the Preview Manager under gunicorn, relaying to a real API: its own endpoints
and the relay answer as documented, never a 500, every error in the JSON error shape (the API's too)."""

import pytest
import schemathesis

from tests.support.accounts import sign_up
from tests.support.contract import CHECKS, document_path, fuzz_settings, start_fuzzed_service
from tests.support.services import service_env

schema = schemathesis.openapi.from_path(document_path("preview"))


@pytest.fixture(scope="module")
def preview(module_database_url, tmp_path_factory):
    """The API and the Preview Manager in front of it, under gunicorn; streams end within 2 s."""
    logs = tmp_path_factory.mktemp("preview-fuzz")
    env = service_env(module_database_url, SSE_MAX_STREAM_SECONDS=2)
    api = start_fuzzed_service("api", env, logs)
    proxy = start_fuzzed_service("preview", {**env, "API_URL": api.url}, logs)
    yield proxy, env
    proxy.stop()
    api.stop()


@schema.parametrize()
@fuzz_settings(max_examples=12)
def test_preview_conforms_to_its_document(case, preview):
    service, env = preview
    headers = sign_up(env)["headers"]
    case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS, timeout=10)
