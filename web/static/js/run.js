// The run view: one run of its own (not a thread's) on screen, its events followed live to the
// end, its status, and cancelling it.

import { approvalCard } from "./approvals.js";
import { $, ACTIVE, explain, setStatus, showError, STATUS_AFTER } from "./dom.js";
import { listRun, markRunStatus, markShownRun } from "./history.js";
import { followRun, orchestratorJson } from "./services.js";
import { Timeline } from "./timeline.js";

let current = null; // the run on screen: {id, controller}
const handlers = { showView: () => {}, openThread: () => {} };

// `showView("run")` puts this view in the main column; `openThread(threadId)` shows a thread's run.
export function onRunView({ showView, openThread }) {
  Object.assign(handlers, { showView, openThread });
}

export const shownRunId = () => current?.id;

export async function startRun(prompt, steps) {
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
export async function openRun(runOrId) {
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
  if (run.threadId) return handlers.openThread(run.threadId);
  if (current?.controller !== controller) return;
  handlers.showView("run");
  history.replaceState(null, "", `#run-${run.id}`);
  markShownRun(run.id);
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

export function stopFollowing() {
  current?.controller.abort();
  current = null;
  $("run-connection").textContent = "";
}

export async function cancelRun() {
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

function showRunStatus(status) {
  setStatus($("run-status"), status);
  const active = ACTIVE.has(status);
  const cancel = $("cancel-run");
  cancel.hidden = !active;
  if (!active) {
    cancel.disabled = false;
    cancel.textContent = "Cancel run";
  }
  markRunStatus(current.id, status);
}
