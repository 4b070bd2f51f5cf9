"""The OpenAPI documents: valid OpenAPI 3.1, describing exactly the routes each service serves, served
at /openapi.json."""

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from common.lifecycle import shutdown
from tests.support.contract import SERVICES, documented_operations, load_document, routed_operations
from tests.support.services import service_env


@pytest.fixture
def service_app(request, database_url):
    """Build the service named by the test's parameter in-process (the API and Orchestrator on a fresh database)."""
    import importlib

    name = request.param
    env = service_env(database_url, API_URL="http://127.0.0.1:9", RUN_STEP_DELAY_MS=20)
    app = importlib.import_module(name).create_app(env)
    yield name, app
    shutdown(app)


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_valid_openapi_3_1(service):
    document = load_document(service)
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises OpenAPIValidationError with the first problem


def test_the_validator_refuses_a_broken_document():
    """The check above can fail: a response without its required description is refused."""
    document = load_document("api")
    del document["paths"]["/me"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(document)


@pytest.mark.parametrize("service_app", SERVICES, indirect=True)
def test_every_route_is_documented_and_every_operation_routed(service_app):
    name, app = service_app
    routed, documented = routed_operations(app), documented_operations(load_document(name))
    assert routed - documented == set(), f"{name}: routes the document does not describe"
    assert documented - routed == set(), f"{name}: operations the document describes but no route serves"


@pytest.mark.parametrize("service_app", SERVICES, indirect=True)
def test_serves_its_document_without_authentication(service_app):
    name, app = service_app
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == load_document(name)


@pytest.mark.parametrize("service_app", ["api"], indirect=True)
def test_an_undocumented_route_is_caught(service_app):
    """The comparison can fail: a route added without its document shows up."""
    _, app = service_app
    app.add_url_rule("/secret/<item_id>", "secret", lambda item_id: "", methods=["PUT"])
    assert routed_operations(app) - documented_operations(load_document("api")) == {("PUT", "/secret/{item_id}")}
