// What the main column shows — "start" (the prompt alone), "run" (run.js) or "thread" (a
// conversation) — and the prompt, which starts a run of its own or continues the open thread.

import { composerBlocked, composerBusy, composerMode } from "./composer.js";
import { addTurn, closeConversation, latestStatus, openConversation, openThreadId, showTitle } from "./conversation.js";
import { $, explain, showError, whileBusy } from "./dom.js";
import { listRun, markShownRun } from "./history.js";
import { startRun, stopFollowing } from "./run.js";
import { orchestratorJson } from "./services.js";
import { createThread, loadThreads, markOpen } from "./threads.js";

export function showView(view) {
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

export function showStart() {
  showView("start");
  history.replaceState(null, "", location.pathname);
  markShownRun(null);
  $("prompt").focus();
}

export async function openThread(threadId, { focus = true } = {}) {
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

export async function startThread() {
  await whileBusy($("new-thread"), async () => {
    try {
      const thread = await createThread();
      await openThread(thread.id);
    } catch (error) {
      if (error.code !== "session_ended") $("threads-error").textContent = `Couldn't start a thread: ${error.message}`;
    }
  });
}

export async function submitPrompt(event) {
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
