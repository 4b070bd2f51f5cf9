"""common.health: /health answers while the process lives; /ready answers 503 naming each dependency
that fails (the API against a database that goes away: tests/common/test_db.py)."""

import pytest

from common.config import load_config
from common.service import create_service_app


def failing_check():
    raise ConnectionRefusedError("the model server is down")


def service(checks):
    """A service skeleton whose readiness depends on `checks`."""
    return create_service_app(__name__, load_config({}), readiness_checks=checks).test_client()


def test_ready_is_200_when_every_dependency_answers():
    client = service({"database": lambda: True, "model": lambda: True})
    response = client.get("/ready")
    assert (response.status_code, response.get_json()) == (200, {"ok": True})


@pytest.mark.parametrize("broken", [lambda: False, failing_check], ids=["says_no", "raises"])
def test_ready_is_503_naming_only_the_failing_dependency(broken):
    client = service({"database": lambda: True, "model": broken})
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"ok": False, "failing": {"model": "unavailable"}}
    assert "refused" not in response.get_data(as_text=True)  # what failed, not how


def test_health_is_200_whatever_the_dependencies_say():
    client = service({"database": lambda: False})
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
