"""/me under real gunicorn: X-User-Id in any odd spelling never reaches the API as an identity.

Pins gunicorn's handling (gunicorn.conf.py `header_map = "drop"`): a header whose name holds an
underscore would land in the same WSGI variable as X-User-Id (HTTP_X_USER_ID), so gunicorn drops
it; a name with a space before the colon is refused with 400; repeated values are joined, and a
joined value is never the token's subject.
"""

from tests.support.identity_headers import SPOOFS, lines_for, send

# What the API answers to each spelling, sent straight to it.
EXPECTED = {
    "underscores": 200,  # dropped: /me sees no X-User-Id at all
    "underscores_naming_me": 200,
    "one_underscore": 200,
    "one_underscore_naming_me": 200,
    "lower_case_twice": 403,  # joined to "admin,admin"
    "me_then_admin": 403,
    "space_before_colon": 400,  # refused by gunicorn (RFC 9112: no whitespace before the colon)
    "space_before_colon_naming_me": 400,
    "trailing_spaces_in_value": 403,  # the value is trimmed: "admin"
}


def test_odd_spellings_of_x_user_id_never_become_an_identity_at_the_api(api_server, sign_up):
    user = sign_up()
    for label, lines in SPOOFS:
        status, body = send(api_server.port, "/me", user["token"], lines_for(lines, user["userId"]))
        assert status == EXPECTED[label], (label, status, body)
        if status == 200:
            assert body["userId"] == user["userId"] and body["forwardedUserId"] is None, (label, body)
        elif status == 403:
            assert body["error"]["code"] == "identity_mismatch", (label, body)


def test_the_right_spelling_with_the_subject_is_reported_as_forwarded(api_server, sign_up):
    user = sign_up()
    status, body = send(api_server.port, "/me", user["token"], [f"X-User-Id: {user['userId']}"])
    assert (status, body["forwardedUserId"]) == (200, user["userId"])
