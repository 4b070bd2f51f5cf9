// The prompt box: it starts a run on its own, or continues the open thread. While the thread's
// latest run is still going, sending waits (the Orchestrator allows one active run per thread).

import { $, ACTIVE } from "./dom.js";

const BUSY_HINT = {
  waiting: "The agent is waiting for your answer to its request above. Send your next message after that.",
  queued: "The agent is about to answer. You can send your next message when it is done.",
  running: "The agent is answering. You can send your next message when it is done.",
};

let threadMode = false;

// false: a run of its own, above its result. true: the thread's next message, below the conversation
// (moved in the document, not only on screen, so the keyboard meets it where the eye does).
export function composerMode(thread) {
  threadMode = thread;
  const form = $("new-run");
  if (thread) $("main-column").append(form);
  else $("main-column").prepend(form);
  $("prompt-label").textContent = thread ? "Your message" : "What should the agent work on?";
  $("start-run").textContent = thread ? "Send" : "Start run";
  composerBusy(null);
}

// The open thread's latest status (null: none); an active one holds the composer back and says why.
export function composerBusy(status) {
  const thread = threadMode;
  const busy = thread && ACTIVE.has(status);
  $("start-run").disabled = busy;
  $("prompt-hint").textContent = busy
    ? BUSY_HINT[status]
    : thread ? "Ctrl+Enter sends. The agent sees the whole conversation." : "Ctrl+Enter starts the run.";
}

export const composerBlocked = () => $("start-run").disabled;
