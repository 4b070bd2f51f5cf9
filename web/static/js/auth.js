// The sign-in form: signing in, or creating an account and then signing in, with the checks the
// API would make done first.

import { $, explain, showError, whileBusy } from "./dom.js";
import { session } from "./services.js";

const USER_ID_RE = /^[A-Za-z0-9._@-]{3,64}$/;

let registering = false;
const handlers = { signedIn: async () => {} };

// Wire the form; `signedIn()` once the session has its user.
export function initAuthForm(signedIn) {
  handlers.signedIn = signedIn;
  $("auth-form").addEventListener("submit", submitCredentials);
  $("auth-switch").addEventListener("click", () => setMode(!registering));
  setMode(false);
}

// The page signed out: only the form, with `notice` (why the last session ended) above it.
export function showAuthForm(notice) {
  $("signed-in").hidden = $("account").hidden = $("booting").hidden = true;
  $("signed-out").hidden = false;
  $("auth-notice").textContent = notice;
  // Never undo what the user did: whatever is in the form (typed or autofilled while the page was
  // starting) was put there by the person in front of it — the form is reset at every sign-in, so
  // nothing of a previous user is left — and the focus stays in the field they are typing in.
  if (!$("auth-form").contains(document.activeElement)) $("user-id").focus();
}

// The page signed in: the form hidden and emptied.
export function hideAuthForm() {
  $("signed-out").hidden = $("booting").hidden = true;
  $("signed-in").hidden = $("account").hidden = false;
  $("auth-form").reset();
  $("auth-notice").textContent = "";
}

function setMode(register) {
  registering = register;
  $("auth-title").textContent = register ? "Create an account" : "Sign in";
  $("auth-submit").textContent = register ? "Create account" : "Sign in";
  $("password").autocomplete = register ? "new-password" : "current-password";
  $("switch-text").textContent = register ? "Already have an account?" : "New here?";
  $("auth-switch").textContent = register ? "Sign in instead" : "Create an account";
  showError("auth-error", "");
}

function credentialProblem(userId, password) {
  if (!USER_ID_RE.test(userId)) return { field: "userId", message: "User ID must be 3–64 letters, digits or . _ @ -" };
  if (registering && (password.length < 8 || password.length > 1024)) {
    return { field: "password", message: "Password must be at least 8 characters (and at most 1024)." };
  }
  if (!password) return { field: "password", message: "Enter your password." };
  return null;
}

async function submitCredentials(event) {
  event.preventDefault();
  const userId = $("user-id").value.trim();
  const password = $("password").value;
  const problem = credentialProblem(userId, password);
  if (problem) return showError("auth-error", problem.message, problem.field);
  await whileBusy($("auth-submit"), async () => {
    try {
      if (registering) {
        await session.register(userId, password);
        setMode(false); // the account exists now: a retry should sign in, not register again
      }
      await session.signIn(userId, password);
      await handlers.signedIn();
    } catch (error) {
      showError("auth-error", explain(error), error.field);
    }
  });
}
