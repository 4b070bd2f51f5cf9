// The open thread, as turns: each run is the user's prompt, then its events (timeline.js), replayed
// one run after another and the newest followed live. At most one stream per tab is open for it.

import { approvalCard } from "./approvals.js";
import { $, ACTIVE, el, setStatus, STATUS_AFTER } from "./dom.js";
import { followRun, orchestratorJson } from "./services.js";
import { Timeline } from "./timeline.js";

let current = null; // {id, controller, turns: Map(run id → turn), queue, pumping, latest}
const listeners = { status: () => {} };

// `onStatus(threadId, runId, status)`: the latest run of the open thread changed status.
export function onTurnStatus(callback) {
  listeners.status = callback;
}

export const openThreadId = () => current?.id ?? null;
export const latestStatus = () => current?.latest?.status ?? null;

// Show thread `threadId` with every run it has; resolves with the thread (or rejects: not found).
export async function openConversation(threadId) {
  closeConversation();
  const state = (current = { id: threadId, controller: new AbortController(), turns: new Map(), queue: [] });
  $("turns").replaceChildren();
  $("thread-title").textContent = "";
  const thread = await orchestratorJson(`/threads/${encodeURIComponent(threadId)}`);
  if (current !== state) return thread;
  showTitle(thread.title);
  $("thread-empty").hidden = thread.runs.length > 0;
  showLatest(null);
  for (const run of thread.runs) addTurn(run);
  return thread;
}

export function closeConversation() {
  current?.controller.abort();
  current = null;
  $("turns").replaceChildren();
  $("thread-connection").textContent = "";
}

export function showTitle(title) {
  $("thread-title").textContent = title ?? "New thread";
}

// A run of the open thread, new to this tab (sent here, or elsewhere and announced): a new turn.
export function addTurn(run) {
  const state = current;
  if (!state || run.threadId !== state.id || state.turns.has(run.id)) return;
  const list = el("ol", { class: "timeline", "aria-label": "The agent's answer" });
  const item = el(
    "li",
    { class: "turn", "data-run-id": run.id },
    el("div", { class: "turn-prompt" }, el("span", { class: "turn-who" }, "You"), el("p", {}, run.prompt)),
    list,
  );
  const turn = { run, item, status: run.status, timeline: new Timeline(list, { askUser: (request) => approvalCard(run.id, request) }) };
  state.turns.set(run.id, turn);
  state.latest = turn;
  $("turns").append(item);
  $("thread-empty").hidden = true;
  showLatest(turn);
  state.queue.push(turn);
  if (!state.pumping) pump(state);
}

// Replay the turns in order, one stream at a time; the last one stays open while it is active.
async function pump(state) {
  state.pumping = true;
  while (state.queue.length && current === state) await followTurn(state, state.queue.shift());
  state.pumping = false;
  if (current === state) $("thread-connection").textContent = "";
}

async function followTurn(state, turn) {
  const onScreen = () => current === state;
  try {
    await followRun(turn.run.id, {
      signal: state.controller.signal,
      onState: (connection) => {
        if (!onScreen() || !ACTIVE.has(turn.status)) return;
        $("thread-connection").textContent = connection === "live" ? "Live" : "Reconnecting…";
      },
      onEvent: (event) => {
        if (!onScreen()) return;
        turn.timeline.add(Number(event.id), event.type, JSON.parse(event.data));
        if (STATUS_AFTER[event.type]) setTurnStatus(state, turn, STATUS_AFTER[event.type]);
      },
    });
    if (onScreen()) turn.timeline.summarize(await orchestratorJson(`/runs/${encodeURIComponent(turn.run.id)}`));
  } catch (error) {
    if (onScreen() && error.code !== "session_ended") {
      turn.item.append(el("p", { class: "error", role: "alert" }, `Stream stopped: ${error.message}`));
    }
  }
}

function setTurnStatus(state, turn, status) {
  turn.status = status;
  if (state.latest === turn) showLatest(turn);
}

// The header shows the newest turn's status, and the cancel button while it can act.
function showLatest(turn) {
  const badge = $("thread-status");
  badge.hidden = !turn;
  if (turn) setStatus(badge, turn.status);
  const cancel = $("cancel-turn");
  const active = Boolean(turn) && ACTIVE.has(turn.status);
  cancel.hidden = !active;
  if (!active) {
    cancel.disabled = false;
    cancel.textContent = "Cancel run";
  }
  if (turn) listeners.status(current.id, turn.run.id, turn.status);
}

export async function cancelLatest() {
  const turn = current?.latest;
  if (!turn) return;
  const button = $("cancel-turn");
  button.disabled = true;
  button.textContent = "Cancelling…";
  try {
    await orchestratorJson(`/runs/${encodeURIComponent(turn.run.id)}/cancel`, { method: "POST" });
  } catch (error) {
    // 409: it ended meanwhile, and its stream says how. Anything else: say so and allow a retry.
    if (error.status !== 409 && error.code !== "session_ended" && current?.latest === turn) {
      button.disabled = false;
      button.textContent = "Cancel run";
      $("thread-connection").textContent = `Couldn't cancel: ${error.message}`;
    }
  }
}
