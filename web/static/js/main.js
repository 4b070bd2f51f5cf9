// The page: signing in and out, the threads and runs in the left column, and the one on screen
// (a conversation, or a run of its own).

import { approvalCard } from "./approvals.js";
import { composerBlocked, composerBusy, composerMode } from "./composer.js";
import {
  addTurn, cancelLatest, closeConversation, latestStatus, onTurnStatus, openConversation, openThreadId, showTitle,
} from "./conversation.js";
import { $, ACTIVE, el, setStatus, shortDate, STATUS_AFTER } from "./dom.js";
import { apiUrl, followRun, idleMs, orchestratorJson, session } from "./services.js";
import { follow } from "./sse.js";
import {
  clearThreads, createThread, loadThreads, markOpen, onThreadChosen, showThreadStatus, threadRunStatus,
} from "./threads.js";
import { Timeline } from "./timeline.js";

const USER_ID_RE = /^[A-Za-z0-9._@-]{3,64}$/;
const LABELS = { userId: "User ID", password: "Password", prompt: "The prompt", steps: "Steps" };
const ID = "([0-9a-f-]{36})";

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
  showView("start");
  notifications?.abort();
  nextCursor = null;
  $("history").replaceChildren(); // nothing of the last user stays in the page
  clearThreads();
  $("timeline").replaceChildren();
  $("signed-in").hidden = $("account").hidden = $("booting").hidden = true;
  $("signed-out").hidden = false;
  $("auth-notice").textContent = notice;
  // Never undo what the user did: whatever is in the form (typed or autofilled while the page was
  // starting) was put there by the person in front of it — the form is reset at every sign-in, so
  // nothing of a previous user is left — and the focus stays in the field they are typing in.
  if (!$("auth-form").contains(document.activeElement)) $("user-id").focus();
}

async function showSignedIn() {
  $("signed-out").hidden = $("booting").hidden = true;
  $("signed-in").hidden = $("account").hidden = false;
  $("current-user").textContent = session.userId;
  $("auth-form").reset();
  $("auth-notice").textContent = "";
  await Promise.all([loadHistory(false), loadThreads(false)]);
  watchStatuses();
  const run = new RegExp(`^#run-${ID}$`).exec(location.hash);
  const thread = new RegExp(`^#thread-${ID}$`).exec(location.hash);
  if (run) openRun(run[1]);
  else if (thread) openThread(thread[1]);
  else showStart();
}

// --- What the main column shows: "start" (the prompt alone), "run" or "thread" -----------------

function showView(view) {
  $("main-column").dataset.view = view;
  $("run").hidden = view !== "run";
  $("thread").hidden = view !== "thread";
  if (view !== "run") stopFollowing();
  if (view !== "thread") {
    closeConversation();
    markOpen(null);
  }
  composerMode(view === "thread");
}

function showStart() {
  showView("start");
  history.replaceState(null, "", location.pathname);
  for (const item of document.querySelectorAll(".history-item[aria-current]")) item.removeAttribute("aria-current");
  $("prompt").focus();
}

// --- Threads -----------------------------------------------------------------------------------

async function openThread(threadId, { focus = true } = {}) {
  showView("thread");
  markOpen(threadId);
  history.replaceState(null, "", `#thread-${threadId}`);
  try {
    const thread = await openConversation(threadId);
    composerBusy(latestStatus());
    if (focus && openThreadId() === threadId && !document.querySelector("#turns .approval")) $("prompt").focus();
    return thread;
  } catch (error) {
    if (error.code === "session_ended") return null;
    showStart();
    showError("run-error", error.code === "thread_not_found" ? "That thread no longer exists." : `Couldn't open that thread: ${error.message}`);
    return null;
  }
}

async function startThread() {
  await whileBusy($("new-thread"), async () => {
    try {
      const thread = await createThread();
      await openThread(thread.id);
    } catch (error) {
      if (error.code !== "session_ended") $("threads-error").textContent = `Couldn't start a thread: ${error.message}`;
    }
  });
}

function threadProblem(error) {
  if (error.code === "thread_busy") {
    return "This thread is still busy with its previous message (perhaps sent from another tab). Wait for it to finish, or cancel it.";
  }
  if (error.code === "thread_not_found") return "This thread no longer exists (it was deleted, perhaps in another tab).";
  return explain(error);
}

// The next message of the open thread.
async function sendToThread(threadId, prompt, steps) {
  try {
    const run = await orchestratorJson("/runs", { method: "POST", body: { prompt, steps, threadId } });
    $("prompt").value = "";
    showError("run-error", "");
    addTurn(run);
    listRun(run);
    await loadThreads(false); // its activity moved it to the top, and its first prompt named it
    const named = document.querySelector(`.thread-entry[data-thread-id="${threadId}"] .history-prompt`);
    if (named && openThreadId() === threadId) showTitle(named.textContent);
  } catch (error) {
    if (error.code === "session_ended") return;
    showError("run-error", threadProblem(error), error.field);
    if (error.code === "thread_busy" && openThreadId() === threadId) openThread(threadId, { focus: false });
  }
}

// --- Runs ---------------------------------------------------------------------------------------

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

// Keep the statuses current: the API streams every status change of the user's runs (from any tab
// or device). That stream is live only, so a reconnect reloads the lists.
function watchStatuses() {
  notifications?.abort();
  const controller = (notifications = new AbortController());
  let connected = false;
  const onEvent = (event) => {
    if (event.type === "ready") {
      if (connected) reloadLists();
      connected = true;
    } else if (event.type === "run") {
      const { runId, status } = JSON.parse(event.data);
      runStatusChanged(runId, status);
    }
  };
  const ignore = () => {};
  // It ends only with the session (the "ended" event shows the sign-in form) or with the page.
  follow(`${apiUrl}/events`, session, { signal: controller.signal, idleMs, onEvent, onState: ignore })
    .catch(ignore);
}

function reloadLists() {
  loadHistory(false);
  loadThreads(false);
}

async function runStatusChanged(runId, status) {
  const badge = document.querySelector(`.history-item[data-run-id="${runId}"] .status`);
  if (badge) setStatus(badge, status);
  if (threadRunStatus(runId, status) || badge) return;
  // A run started elsewhere: list it, and show it as a turn if it continues the open thread.
  loadHistory(false);
  try {
    const run = await orchestratorJson(`/runs/${encodeURIComponent(runId)}`);
    if (run.threadId) loadThreads(false);
    addTurn(run);
  } catch {
    // Gone already (its thread was deleted): nothing to show.
  }
}

function historyItem(run) {
  const status = el("span", { class: "status" });
  setStatus(status, run.status);
  const button = el(
    "button",
    { type: "button", class: "history-item", "data-run-id": run.id },
    el("span", { class: "history-prompt" }, run.prompt),
    el("span", { class: "history-meta" }, status, el("time", { datetime: run.createdAt }, shortDate(run.createdAt))),
  );
  if (run.id === current?.id) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => (run.threadId ? openThread(run.threadId) : openRun(run)));
  return el("li", {}, button);
}

function listRun(run) {
  const listed = document.querySelector(`.history-item[data-run-id="${run.id}"]`); // by its notification
  if (!listed) $("history").prepend(historyItem(run));
  $("history-empty").hidden = true;
}

async function submitPrompt(event) {
  event.preventDefault();
  if (composerBlocked()) return; // Ctrl+Enter while the thread is busy: the hint says why
  const prompt = $("prompt").value.trim();
  const steps = Number($("steps").value);
  if (!prompt) return showError("run-error", "Describe what the agent should work on.", "prompt");
  if (!Number.isInteger(steps) || steps < 1 || steps > 50) {
    return showError("run-error", "Steps must be a whole number from 1 to 50.", "steps");
  }
  const threadId = openThreadId();
  await whileBusy($("start-run"), () => (threadId ? sendToThread(threadId, prompt, steps) : startRun(prompt, steps)));
  composerBusy(latestStatus());
}

async function startRun(prompt, steps) {
  try {
    const run = await orchestratorJson("/runs", { method: "POST", body: { prompt, steps } });
    showError("run-error", "");
    $("prompt").value = "";
    listRun(run);
    openRun(run);
  } catch (error) {
    if (error.code !== "session_ended") showError("run-error", explain(error), error.field);
  }
}

// Show a run (an object from the list, or an id from the address) and follow its events to the end.
// A run of a thread is shown in its conversation.
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
  if (run.threadId) return openThread(run.threadId);
  if (current?.controller !== controller) return;
  showView("run");
  history.replaceState(null, "", `#run-${run.id}`);
  for (const item of document.querySelectorAll(".history-item")) {
    item.toggleAttribute("aria-current", item.dataset.runId === run.id);
  }
  $("run-title").textContent = run.prompt;
  showRunStatus(run.status);
  const timeline = new Timeline($("timeline"), { askUser: (request) => approvalCard(run.id, request) });
  const onScreen = () => current?.controller === controller;
  try {
    await followRun(run.id, {
      signal: controller.signal,
      onState: (state) => {
        if (onScreen()) $("run-connection").textContent = state === "live" ? "Live" : "Reconnecting…";
      },
      onEvent: (event) => {
        if (!onScreen()) return; // a last piece read just before another run was opened
        timeline.add(Number(event.id), event.type, JSON.parse(event.data));
        if (STATUS_AFTER[event.type]) showRunStatus(STATUS_AFTER[event.type]);
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
  const active = ACTIVE.has(status);
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
  $("new-run").addEventListener("submit", submitPrompt);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("new-run").requestSubmit();
  });
  $("cancel-run").addEventListener("click", cancelRun);
  $("cancel-turn").addEventListener("click", cancelLatest);
  $("more-runs").addEventListener("click", () => loadHistory(true));
  $("more-threads").addEventListener("click", () => loadThreads(true));
  $("new-thread").addEventListener("click", startThread);
  $("new-single-run").addEventListener("click", showStart);
  onThreadChosen(openThread, (threadId) => {
    if (openThreadId() === threadId) showStart();
    loadHistory(false); // its runs went with it
  });
  onTurnStatus((threadId, runId, status) => {
    showThreadStatus(threadId, runId, status);
    const listed = document.querySelector(`.history-item[data-run-id="${runId}"] .status`);
    if (listed) setStatus(listed, status);
    if (openThreadId() === threadId) composerBusy(status);
  });
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
