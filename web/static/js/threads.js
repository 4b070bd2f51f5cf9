// The thread list in the left column: the user's conversations, newest activity first, each with
// the status of its latest run; a new thread; deleting one after an inline confirmation.

import { $, el, setStatus, shortDate } from "./dom.js";
import { orchestratorJson } from "./services.js";

let nextCursor = null;
const handlers = { open: () => {}, deleted: () => {} };

// `open(threadId)` when a thread is chosen; `deleted(threadId)` once one is gone.
export function onThreadChosen(open, deleted) {
  Object.assign(handlers, { open, deleted });
}

export function clearThreads() {
  nextCursor = null;
  $("threads").replaceChildren();
}

export async function loadThreads(more = false) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && nextCursor) query.set("before", nextCursor);
  try {
    const page = await orchestratorJson(`/threads?${query}`);
    const known = new Map([...$("threads").children].map((entry) => [entry.dataset.threadId, entry]));
    const entries = page.threads.map(threadEntry);
    for (const entry of entries) keepStatus(known.get(entry.dataset.threadId), entry);
    if (!more) $("threads").replaceChildren();
    $("threads").append(...entries);
    nextCursor = page.next;
    $("more-threads").hidden = !page.next;
    $("threads-empty").hidden = $("threads").children.length > 0;
    $("threads-error").textContent = "";
    markOpen(currentMark);
    for (const thread of page.threads) showLatestRun(thread.id);
  } catch (error) {
    if (error.code !== "session_ended") $("threads-error").textContent = `Couldn't load your threads: ${error.message}`;
  }
}

export async function createThread() {
  const thread = await orchestratorJson("/threads", { method: "POST", body: {} });
  $("threads").prepend(threadEntry(thread));
  $("threads-empty").hidden = true;
  return thread;
}

let currentMark = null;
// Mark the open thread (or none) in the list.
export function markOpen(threadId) {
  currentMark = threadId;
  for (const item of document.querySelectorAll(".thread-item")) {
    item.toggleAttribute("aria-current", item.dataset.threadId === threadId);
  }
}

const entryOf = (threadId) => document.querySelector(`.thread-entry[data-thread-id="${threadId}"]`);

// A thread's latest run changed status (or was found): its badge says so.
export function showThreadStatus(threadId, runId, status) {
  const entry = entryOf(threadId);
  if (entry) showThreadStatusOf(entry, runId, status);
}

// Whether `runId` is the latest run of a listed thread; if so its badge is updated.
export function threadRunStatus(runId, status) {
  const entry = document.querySelector(`.thread-entry[data-latest-run-id="${runId}"]`);
  if (entry) setStatus(entry.querySelector(".status"), status);
  return Boolean(entry);
}

// A fresh entry keeps the status its predecessor showed until the thread's own is read.
function keepStatus(before, after) {
  if (!before?.dataset.latestRunId) return;
  const badge = before.querySelector(".status");
  showThreadStatusOf(after, before.dataset.latestRunId, badge.dataset.status);
}

function showThreadStatusOf(entry, runId, status) {
  entry.dataset.latestRunId = runId;
  setStatus(entry.querySelector(".status"), status);
}

// The list holds no run status, so each thread's is read from the thread itself.
async function showLatestRun(threadId) {
  try {
    const thread = await orchestratorJson(`/threads/${encodeURIComponent(threadId)}`);
    const latest = thread.runs.at(-1);
    const entry = entryOf(threadId);
    // A status already shown for that run came live (from a stream), so it is the newer one.
    if (latest && entry && entry.dataset.latestRunId !== latest.id) showThreadStatusOf(entry, latest.id, latest.status);
  } catch {
    // Deleted meanwhile, or offline: the entry simply shows no status.
  }
}

function threadEntry(thread) {
  const title = thread.title ?? "New thread";
  const open = el(
    "button",
    { type: "button", class: "history-item thread-item", "data-thread-id": thread.id },
    el("span", { class: "history-prompt" }, title),
    el("span", { class: "history-meta" }, el("span", { class: "status", "data-status": "none" }, "No runs yet"),
      el("time", { datetime: thread.updatedAt }, shortDate(thread.updatedAt))),
  );
  open.addEventListener("click", () => handlers.open(thread.id));
  const remove = el("button", { type: "button", class: "quiet danger thread-delete", "aria-label": `Delete thread: ${title}` }, "Delete");
  const entry = el("li", { class: "thread-entry", "data-thread-id": thread.id }, open, remove);
  remove.addEventListener("click", () => askToDelete(entry, thread));
  return entry;
}

// Deleting takes a second, explicit press; "Keep" (or Escape) puts the entry back as it was.
function askToDelete(entry, thread) {
  const name = entry.querySelector(".history-prompt").textContent;
  const keep = el("button", { type: "button", class: "quiet" }, "Keep");
  const confirmDelete = el("button", { type: "button", class: "quiet danger" }, "Delete for good");
  const error = el("p", { class: "error", role: "alert" });
  const saved = [...entry.children];
  const confirmBox = el(
    "div",
    { class: "confirm", role: "group", "aria-label": `Delete thread: ${name}` },
    el("p", {}, `Delete “${name}” and all its runs?`),
    el("div", { class: "confirm-actions" }, confirmDelete, keep),
    error,
  );
  const restore = () => {
    entry.replaceChildren(...saved);
    entry.querySelector(".thread-delete").focus();
  };
  keep.addEventListener("click", restore);
  confirmBox.addEventListener("keydown", (event) => {
    if (event.key === "Escape") restore();
  });
  confirmDelete.addEventListener("click", async () => {
    confirmDelete.disabled = keep.disabled = true;
    try {
      await orchestratorJson(`/threads/${encodeURIComponent(thread.id)}`, { method: "DELETE" });
    } catch (failure) {
      if (failure.status !== 404) {
        confirmDelete.disabled = keep.disabled = false;
        if (failure.code !== "session_ended") error.textContent = `Couldn't delete it: ${failure.message}`;
        return;
      }
    }
    const next = entry.nextElementSibling ?? entry.previousElementSibling;
    entry.remove();
    $("threads-empty").hidden = $("threads").children.length > 0;
    (next?.querySelector(".thread-item") ?? $("new-thread")).focus();
    handlers.deleted(thread.id);
  });
  entry.replaceChildren(confirmBox);
  keep.focus();
}
