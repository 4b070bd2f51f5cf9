"""common.state: what an app holds is filed once and reached through typed accessors."""

import pytest
from flask import Flask

from common import state
from common.config import Config
from common.service import create_service_app


def test_an_app_s_state_is_filed_once_and_is_the_same_object_from_inside_a_request():
    config = Config(log_level="WARNING")
    app = create_service_app("state_test", config, {"always": lambda: True})
    held = state.of(app)
    assert held is state.of(app) and held.config is config
    assert list(held.readiness_checks) == ["always"]
    with app.test_request_context("/"):
        assert state.of() is held and state.config() is config


def test_two_apps_hold_their_own_state():
    first = create_service_app("state_a", Config(log_level="WARNING", jwt_issuer="a"))
    second = create_service_app("state_b", Config(log_level="WARNING", jwt_issuer="b"))
    assert state.of(first) is not state.of(second)
    with second.app_context():
        assert state.config().jwt_issuer == "b"


def test_what_a_bare_app_has_not_been_given_is_none_not_another_app_s():
    held = state.of(Flask("bare"))
    assert (held.config, held.pool, held.broker, held.metrics) == (None, None, None, None)


def test_reading_outside_an_app_context_fails_loudly():
    with pytest.raises(RuntimeError, match="application context"):
        state.config()
