// The page: signing in and out, starting runs, watching one run, and the history of runs.

import { requestJson, Session } from "./session.js";
import { follow } from "./sse.js";
import { el, setStatus, Timeline } from "./timeline.js";

const settings = document.body.dataset;
const orchestrator = settings.orchestratorUrl;
const session = new Session(settings.apiUrl);
// A stream that stays silent for two heartbeats is taken as dead and reconnected.
const idleMs = (2 * Number(settings.heartbeatSeconds) + 5) * 1000;
// Events named after the status the run enters with them.
const STATUS_EVENTS = new Set(["running", "completed", "failed", "cancelled"]);
const USER_ID_RE = /^[A-Za-z0-9._@-]{3,64}$/;
const LABELS = { userId: "User ID", password: "Password", prompt: "The prompt", steps: "Steps" };
const $ = (id) => document.getElementById(id);

let registering = false;
let current = null; // the run on screen: {id, controller}
let nextCursor = null;
let notifications = null; // the AbortController of the API's /events stream

// --- Signing in, registering, signing out ---------------------------------------------------------

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

function explain(error) {
  if (error.code === "user_exists") return "That user ID is taken. Choose another, or sign in.";
  if (error.code === "invalid_credentials") return "Wrong user ID or password.";
  if (error.status === 429) return `Too many attempts. Try again ${inTime(error.retryAfter)}.`;
  if (error.field) return `${LABELS[error.field] ?? error.field} ${error.message.replace(`${error.field}: `, "")}.`;
  return error.message;
}

// Show `message` in the alert `id`, and mark the input it is about (if any) as invalid.
function showError(id, message, field = null) {
  $(id).textContent = message;
  for (const input of $(id).closest("form, aside").querySelectorAll("input, textarea")) {
    if (input.name === field) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  if (field) $(id).closest("form").elements[field]?.focus();
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
      await showSignedIn();
    } catch (error) {
      showError("auth-error", explain(error), error.field);
    }
  });
}

function showSignedOut(notice = "") {
  stopFollowing();
  notifications?.abort();
  nextCursor = null;
  $("history").replaceChildren(); // nothing of the last user stays in the page
  $("timeline").replaceChildren();
  $("run").hidden = true;
  $("signed-in").hidden = $("account").hidden = $("booting").hidden = true;
  $("signed-out").hidden = false;
  $("auth-notice").textContent = notice;
  $("password").value = "";
  $("user-id").focus();
}

async function showSignedIn() {
  $("signed-out").hidden = $("booting").hidden = true;
  $("signed-in").hidden = $("account").hidden = false;
  $("current-user").textContent = session.userId;
  $("auth-form").reset();
  $("auth-notice").textContent = "";
  await loadHistory(false);
  watchStatuses();
  const linked = /^#run-([0-9a-f-]{36})$/.exec(location.hash);
  if (linked) openRun(linked[1]);
  else $("prompt").focus();
}

// --- Runs ---------------------------------------------------------------------------------------

function orchestratorJson(path, options = {}) {
  return session.authorized((token) => requestJson(`${orchestrator}${path}`, { ...options, token }));
}

async function loadHistory(more) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && nextCursor) query.set("before", nextCursor);
  try {
    const page = await orchestratorJson(`/runs?${query}`);
    if (!more) $("history").replaceChildren();
    $("history").append(...page.runs.map(historyItem));
    nextCursor = page.next;
    $("more-runs").hidden = !page.next;
    $("history-empty").hidden = $("history").children.length > 0;
    $("history-error").textContent = "";
  } catch (error) {
    if (error.code !== "session_ended") $("history-error").textContent = `Couldn't load your runs: ${error.message}`;
  }
}

// Keep the history's statuses current: the API streams every status change of the user's runs
// (from any tab or device). That stream is live only, so a reconnect reloads the list.
function watchStatuses() {
  notifications?.abort();
  const controller = (notifications = new AbortController());
  let connected = false;
  const onEvent = (event) => {
    if (event.type === "ready") {
      if (connected) loadHistory(false);
      connected = true;
    } else if (event.type === "run") {
      const { runId, status } = JSON.parse(event.data);
      const badge = document.querySelector(`.history-item[data-run-id="${runId}"] .status`);
      if (badge) setStatus(badge, status);
      else loadHistory(false); // a run started elsewhere
    }
  };
  const ignore = () => {};
  // It ends only with the session (the "ended" event shows the sign-in form) or with the page.
  follow(`${settings.apiUrl}/events`, session, { signal: controller.signal, idleMs, onEvent, onState: ignore })
    .catch(ignore);
}

function historyItem(run) {
  const status = el("span", { class: "status" });
  setStatus(status, run.status);
  const when = new Date(run.createdAt).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const button = el(
    "button",
    { type: "button", class: "history-item", "data-run-id": run.id },
    el("span", { class: "history-prompt" }, run.prompt),
    el("span", { class: "history-meta" }, status, el("time", { datetime: run.createdAt }, when)),
  );
  if (run.id === current?.id) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => openRun(run));
  return el("li", {}, button);
}

async function startRun(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  const steps = Number($("steps").value);
  if (!prompt) return showError("run-error", "Describe what the agent should work on.", "prompt");
  if (!Number.isInteger(steps) || steps < 1 || steps > 50) {
    return showError("run-error", "Steps must be a whole number from 1 to 50.", "steps");
  }
  await whileBusy($("start-run"), async () => {
    try {
      const run = await orchestratorJson("/runs", { method: "POST", body: { prompt, steps } });
      showError("run-error", "");
      $("prompt").value = "";
      const listed = document.querySelector(`.history-item[data-run-id="${run.id}"]`); // by its notification
      if (!listed) $("history").prepend(historyItem(run));
      $("history-empty").hidden = true;
      openRun(run);
    } catch (error) {
      if (error.code !== "session_ended") showError("run-error", explain(error), error.field);
    }
  });
}

// Show a run (an object from the list, or an id from the address) and follow its events to the end.
async function openRun(runOrId) {
  stopFollowing();
  const controller = new AbortController();
  current = { id: runOrId.id ?? runOrId, controller };
  let run = runOrId;
  try {
    if (typeof run === "string") run = await orchestratorJson(`/runs/${encodeURIComponent(run)}`);
  } catch (error) {
    history.replaceState(null, "", location.pathname);
    if (error.code !== "session_ended") showError("run-error", `Couldn't open that run: ${error.message}`);
    return;
  }
  history.replaceState(null, "", `#run-${run.id}`);
  for (const item of document.querySelectorAll(".history-item")) {
    item.toggleAttribute("aria-current", item.dataset.runId === run.id);
  }
  $("run").hidden = false;
  $("run-title").textContent = run.prompt;
  showRunStatus(run.status);
  const timeline = new Timeline($("timeline"));
  const onScreen = () => current?.controller === controller;
  try {
    await follow(`${orchestrator}/runs/${encodeURIComponent(run.id)}/events`, session, {
      signal: controller.signal,
      idleMs,
      onState: (state) => {
        if (onScreen()) $("run-connection").textContent = state === "live" ? "Live" : "Reconnecting…";
      },
      onEvent: (event) => {
        if (!onScreen()) return; // a last piece read just before another run was opened
        timeline.add(Number(event.id), event.type, JSON.parse(event.data));
        if (STATUS_EVENTS.has(event.type)) showRunStatus(event.type);
      },
    });
    if (onScreen()) $("run-connection").textContent = "";
    if (onScreen()) timeline.summarize(await orchestratorJson(`/runs/${encodeURIComponent(run.id)}`));
  } catch (error) {
    if (onScreen() && error.code !== "session_ended") $("run-connection").textContent = `Stream stopped: ${error.message}`;
  }
}

function stopFollowing() {
  current?.controller.abort();
  current = null;
  $("run-connection").textContent = "";
}

function showRunStatus(status) {
  setStatus($("run-status"), status);
  const active = status === "queued" || status === "running";
  const cancel = $("cancel-run");
  cancel.hidden = !active;
  if (!active) {
    cancel.disabled = false;
    cancel.textContent = "Cancel run";
  }
  const listed = document.querySelector(`.history-item[data-run-id="${current.id}"] .status`);
  if (listed) setStatus(listed, status);
}

async function cancelRun() {
  const { id } = current;
  const button = $("cancel-run");
  button.disabled = true;
  button.textContent = "Cancelling…";
  try {
    await orchestratorJson(`/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  } catch (error) {
    // 409: it ended meanwhile, and its stream says how. Anything else: say so and allow a retry.
    if (error.status !== 409 && error.code !== "session_ended" && current?.id === id) {
      button.disabled = false;
      button.textContent = "Cancel run";
      $("run-connection").textContent = `Couldn't cancel: ${error.message}`;
    }
  }
}

// --- Small helpers --------------------------------------------------------------------------------

async function whileBusy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function inTime(seconds) {
  if (!seconds) return "later";
  return seconds < 90 ? `in ${seconds} seconds` : `in ${Math.ceil(seconds / 60)} minutes`;
}

// --- Start --------------------------------------------------------------------------------------

async function boot() {
  $("auth-form").addEventListener("submit", submitCredentials);
  $("auth-switch").addEventListener("click", () => setMode(!registering));
  $("sign-out").addEventListener("click", () => session.signOut().catch(() => {}));
  $("new-run").addEventListener("submit", startRun);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("new-run").requestSubmit();
  });
  $("cancel-run").addEventListener("click", cancelRun);
  $("more-runs").addEventListener("click", () => loadHistory(true));
  session.addEventListener("ended", (event) => showSignedOut(event.detail.message));
  session.addEventListener("replaced", () => location.reload()); // start over with the new session
  setMode(false);
  if (!(await session.hasStoredSession())) return showSignedOut();
  try {
    await session.resume();
    await showSignedIn();
  } catch (error) {
    showSignedOut(error.code === "session_ended" ? error.message : `Couldn't restore your session: ${error.message}`);
  }
}

boot();
