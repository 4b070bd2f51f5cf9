// The run history in the left column: the user's runs, newest first, each with its status kept
// current by the API's /events stream (every change of the user's runs, from any tab or device).

import { addTurn } from "./conversation.js";
import { $, el, setStatus, shortDate } from "./dom.js";
import { apiUrl, idleMs, orchestratorJson, session } from "./services.js";
import { follow } from "./sse.js";
import { loadThreads, threadRunStatus } from "./threads.js";

let nextCursor = null;
let notifications = null; // the AbortController of the API's /events stream
const handlers = { openRun: () => {}, openThread: () => {}, shownRunId: () => null };

// `openRun(run)` or `openThread(threadId)` when a run is chosen; `shownRunId()`: the run on screen.
export function onRunChosen({ openRun, openThread, shownRunId }) {
  Object.assign(handlers, { openRun, openThread, shownRunId });
}

// Forget the list and stop watching (signed out: nothing of the last user stays in the page).
export function clearHistory() {
  notifications?.abort();
  nextCursor = null;
  $("history").replaceChildren();
}

export async function loadHistory(more) {
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

// A run just started here: at the top (unless its notification listed it already).
export function listRun(run) {
  const listed = document.querySelector(`.history-item[data-run-id="${run.id}"]`); // by its notification
  if (!listed) $("history").prepend(historyItem(run));
  $("history-empty").hidden = true;
}

export function markRunStatus(runId, status) {
  const listed = document.querySelector(`.history-item[data-run-id="${runId}"] .status`);
  if (listed) setStatus(listed, status);
}

// Mark run `runId` as the one on screen (none: `null`).
export function markShownRun(runId) {
  for (const item of document.querySelectorAll(".history-item")) {
    item.toggleAttribute("aria-current", item.dataset.runId === runId);
  }
}

// Keep the statuses current: the API streams every status change of the user's runs (from any tab
// or device). That stream is live only, so a reconnect reloads the lists.
export function watchStatuses() {
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
  if (run.id === handlers.shownRunId()) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => (run.threadId ? handlers.openThread(run.threadId) : handlers.openRun(run)));
  return el("li", {}, button);
}
