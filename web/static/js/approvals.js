// The approval card: a run is waiting for a person to allow a tool call. It shows the tool and its
// input, takes an optional comment, and sends Approve or Refuse. The card goes once the run's
// stream says the request was answered (by this tab or any other); a 409 means another tab was first.

import { el, pretty } from "./dom.js";
import { orchestratorJson } from "./services.js";

const MAX_COMMENT = 2000;
let cards = 0; // for unique ids within the page

// The card for `request` ({id, tool, input}) of run `runId`.
export function approvalCard(runId, request) {
  const n = ++cards;
  const heading = el("h3", { id: `approval-${n}-title` }, `Approve ${request.tool}?`);
  const comment = el("textarea", {
    id: `approval-${n}-comment`, name: "comment", rows: "2", maxlength: String(MAX_COMMENT),
    "aria-describedby": `approval-${n}-hint`,
  });
  const approve = el("button", { type: "button", class: "primary" }, "Approve");
  const refuse = el("button", { type: "button", class: "danger" }, "Refuse");
  const error = el("p", { class: "error", role: "alert" });
  const card = el(
    "section",
    { class: "approval", role: "group", tabindex: "-1", "aria-labelledby": heading.id, "data-input-id": request.id },
    heading,
    el("p", { class: "muted" }, `The agent wants to run ${request.tool} with this input. Nothing happens until you answer.`),
    el("pre", { class: "approval-input" }, pretty(request.input)),
    el("label", { for: comment.id }, "Comment (optional)"),
    comment,
    el("p", { id: `approval-${n}-hint`, class: "hint" }, "The agent reads it either way, e.g. why you refuse."),
    el("div", { class: "approval-actions" }, approve, refuse),
    error,
  );

  async function answer(approved) {
    const buttons = [approve, refuse];
    for (const button of buttons) button.disabled = true;
    (approved ? approve : refuse).textContent = approved ? "Approving…" : "Refusing…";
    error.textContent = "";
    const body = { id: request.id, approve: approved };
    if (comment.value.trim()) body.comment = comment.value.trim();
    try {
      await orchestratorJson(`/runs/${encodeURIComponent(runId)}/input`, { method: "POST", body });
      // The stream's `input` event removes the card.
    } catch (failure) {
      // Answered in another tab, or the run stopped waiting (cancelled): nothing left to decide.
      if (failure.status === 409) return card.remove();
      if (failure.code === "session_ended") return;
      error.textContent = `Couldn't send your answer: ${failure.message}`;
      approve.textContent = "Approve";
      refuse.textContent = "Refuse";
      for (const button of buttons) button.disabled = false;
    }
  }
  approve.addEventListener("click", () => answer(true));
  refuse.addEventListener("click", () => answer(false));
  // Bring it to the user's attention once it is on screen and still open (a replay of an answered
  // request adds and removes it at once, without taking the focus).
  requestAnimationFrame(() => {
    if (card.isConnected) {
      card.scrollIntoView({ block: "nearest" });
      card.focus();
    }
  });
  return card;
}
