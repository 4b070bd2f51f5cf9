"""Start-up never undoes what the user did: what was put into the sign-in form while the page was
still checking for a stored session is there when the check ends, and signing up with it works.

The start-up is slowed on purpose: a stored refresh token (a stale one) makes the page ask the API
for a new pair, and that request is held until the test has filled the form. The form is still
hidden then ("Loading…"), so it is filled the way a password manager's autofill does: values set
and `input`/`change` fired on each field.
"""

import uuid

from playwright.sync_api import expect

# Save a refresh token through the page's own store, as an earlier visit would have left it.
STORE_STALE_TOKEN = 'import("/static/js/store.js").then((store) => store.saveRefreshToken("stale-token"))'
AUTOFILL = """([userId, password]) => {
  for (const [id, value] of [["user-id", userId], ["password", password]]) {
    const input = document.getElementById(id);
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
}"""


def test_what_was_filled_in_during_a_slow_start_up_survives_and_signs_up(page, web_stack):
    stack = web_stack()
    page.goto(stack.web.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.evaluate(STORE_STALE_TOKEN)

    held = []
    # The start-up check's request waits until the test lets it go.
    page.route("**/auth/refresh", lambda route: held.append(route))
    page.reload()
    page.wait_for_function("document.getElementById('booting').hidden === false")
    while not held:
        page.wait_for_timeout(20)
    user_id, password = f"user-{uuid.uuid4().hex[:8]}", "correct horse battery"
    page.evaluate(AUTOFILL, [user_id, password])
    held[0].continue_()  # the API refuses the stale token: the page ends on the sign-in form
    page.unroute("**/auth/refresh")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#auth-notice")).to_have_text("Your session has ended. Sign in again.")
    expect(page.get_by_label("User ID")).to_have_value(user_id)
    expect(page.get_by_label("Password")).to_have_value(password)
    page.get_by_role("button", name="Create an account").click()
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#current-user")).to_have_text(user_id)


def test_typing_right_after_the_form_appears_keeps_focus_and_text(page, web_stack):
    """The form is visible as soon as the page knows there is no stored session; typing then is
    never interrupted (no late clear, no focus moved away from the field being typed in)."""
    stack = web_stack()
    page.goto(stack.web.url)
    password = page.get_by_label("Password")
    password.click()
    password.press_sequentially("correct horse battery")
    page.wait_for_timeout(200)
    expect(password).to_be_focused()
    expect(password).to_have_value("correct horse battery")
