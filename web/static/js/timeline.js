// Rendering a run: its events become DOM nodes built with textContent only (never HTML from
// strings), appended in order, so a growing run never moves what is already on screen.

import { el, pretty } from "./dom.js";

// A failed run's `reason`, in words a user can act on.
const FAILURE_TEXT = {
  executor_lost: "the process running it stopped",
  shutdown: "the server shut down while it ran",
  input_timeout: "nobody answered its request for approval in time (RUN_INPUT_TIMEOUT)",
  model_auth: "the model server refused the credentials (AGENT_API_KEY)",
  model_unavailable: "the model server could not be reached",
  model_timeout: "the model stopped answering",
  model_error: "the model's answer could not be used",
  max_turns: "the model kept calling tools past AGENT_MAX_TURNS",
  agent_error: "the agent stopped with an error",
};

const number = new Intl.NumberFormat();

// One run's events as an ordered list: the plan, the answer as it streams, a card per tool call
// (its result fills in when it comes), token usage, the final answer and the outcome.
export class Timeline {
  // `askUser(request)`, when given, returns the card that answers an `input_required` request.
  constructor(list, { askUser = null } = {}) {
    this.list = list;
    this.askUser = askUser;
    this.requests = new Map(); // input_required id → its item
    this.answered = null; // the call whose answer the run is about to resume with
    this.calls = new Map(); // tool-call id → its card
    this.text = null; // the paragraph message deltas are appended to; a tool call starts a new one
    this.usage = { inputTokens: 0, outputTokens: 0, calls: 0 };
    this.outcome = null;
    list.replaceChildren();
  }

  add(seq, type, data) {
    const render = this[`on_${type}`] ?? this.on_other;
    render.call(this, seq, data, type);
  }

  // Started; or, after an answer, resumed: shown in the tool call's card, where the run goes on.
  on_running(seq) {
    if (this.answered) this.#step(seq, "running", this.answered, el("span", { class: "tool-label" }, "Resumed"));
    else this.#item(seq, "running", "Started");
    this.answered = null;
  }

  on_plan(seq, data) {
    const steps = el("ol", { class: "plan" }, ...data.steps.map((step) => el("li", {}, String(step))));
    this.#item(seq, "plan", "Plan", steps);
  }

  // Message text grows chunk by chunk inside one paragraph, until a tool call comes between.
  on_message(seq, data) {
    if (!this.text) {
      this.text = el("p", { class: "message" });
      this.list.append(el("li", { class: "event event-message" }, this.text));
    }
    this.text.append(el("span", { "data-seq": seq, "data-type": "message" }, data.delta));
  }

  on_tool_call(seq, data) {
    this.text = null;
    const result = el("div", { class: "tool-result", "aria-live": "polite" }, el("span", { class: "tool-label" }, "Running…"));
    const card = el(
      "li",
      { class: "event event-tool", "data-call-id": data.id },
      el("div", { class: "tool tool-call", "data-seq": seq, "data-type": "tool_call" },
        el("span", { class: "tool-label" }, `Tool call · ${data.tool}`), el("pre", {}, pretty(data.input))),
      result,
    );
    this.calls.set(data.id, result);
    this.list.append(card);
  }

  on_tool_result(seq, data) {
    this.text = null;
    const failed = "error" in data;
    const body = el("div", { class: `tool ${failed ? "tool-error" : "tool-output"}`, "data-seq": seq, "data-type": "tool_result" },
      el("span", { class: "tool-label" }, failed ? `${data.tool} failed` : `${data.tool} answered`),
      el("pre", {}, failed ? String(data.error) : pretty(data.output)));
    const slot = this.calls.get(data.id);
    if (slot) slot.replaceChildren(body);
    else this.list.append(el("li", { class: "event event-tool" }, body)); // a result without its call
  }

  // The run waits for a person: inside the tool call's card (so the card reads call, request,
  // answer, result, in order), the approval card asks.
  on_input_required(seq, data) {
    this.text = null;
    const request = this.#step(seq, "input_required", data.id, el("span", { class: "tool-label" }, `Approval requested · ${data.tool}`));
    this.calls.get(data.id)?.replaceChildren(el("span", { class: "tool-label" }, "Waiting for your answer…"));
    if (this.askUser) request.append(this.askUser(data));
    this.requests.set(data.id, request);
  }

  // Answered (here or in another tab): the card goes, the answer stays in the record.
  on_input(seq, data) {
    this.requests.get(data.id)?.querySelector(".approval")?.remove();
    const comment = data.comment ? el("p", { class: "answer-comment" }, data.comment) : null;
    const answer = this.#step(seq, "input", data.id, el("span", { class: "answer" }, data.approve ? "You approved" : "You refused"), comment);
    answer.dataset.approved = String(data.approve);
    this.calls.get(data.id)?.replaceChildren(el("span", { class: "tool-label" }, data.approve ? "Running…" : "Refused"));
    this.answered = data.id;
  }

  // A step of tool call `callId` shown in its card, just above the result; alone if the call is unknown.
  #step(seq, type, callId, ...content) {
    const node = el("div", { class: `tool-step step-${type}`, "data-seq": seq, "data-type": type }, ...content);
    const slot = this.calls.get(callId);
    if (slot) slot.before(node);
    else this.list.append(el("li", { class: "event event-tool" }, node));
    return node;
  }

  on_usage(seq, data) {
    this.usage.inputTokens += data.inputTokens ?? 0;
    this.usage.outputTokens += data.outputTokens ?? 0;
    this.usage.calls += 1;
    const line = `Model call ${this.usage.calls}: ${number.format(data.inputTokens ?? 0)} tokens in, ${number.format(data.outputTokens ?? 0)} out`;
    this.#item(seq, "usage", null, el("p", { class: "usage" }, line));
  }

  on_final(seq, data) {
    this.text = null;
    this.#item(seq, "final", "Answer", el("p", {}, data.text));
  }

  on_completed(seq) {
    this.outcome = this.#item(seq, "completed", "Completed");
  }

  on_cancelled(seq) {
    this.outcome = this.#item(seq, "cancelled", "Cancelled before it finished");
  }

  on_failed(seq, data) {
    const reason = FAILURE_TEXT[data.reason] ?? data.reason;
    const why = reason ? el("p", { class: "failure" }, `Reason: ${reason}.`) : null;
    const detail = data.message ? el("p", { class: "failure-detail" }, data.message) : null;
    this.outcome = this.#item(seq, "failed", "Failed", why, detail);
  }

  // Once the run is over: how long it took and the tokens it spent, under its outcome.
  summarize(run) {
    if (!this.outcome || this.outcome.querySelector(".summary")) return;
    const parts = [];
    if (run.startedAt) parts.push(`took ${seconds(new Date(run.updatedAt) - new Date(run.startedAt))}`);
    if (this.usage.calls) {
      parts.push(`${number.format(this.usage.inputTokens)} tokens in, ${number.format(this.usage.outputTokens)} out`);
    }
    if (parts.length) this.outcome.append(el("p", { class: "summary" }, `${parts.join(" · ")}.`.replace(/^./, (c) => c.toUpperCase())));
  }

  // An event this page does not know yet: shown plainly rather than dropped.
  on_other(seq, data, type) {
    this.#item(seq, "other", type, el("pre", {}, JSON.stringify(data, null, 2)));
  }

  #item(seq, type, title, ...content) {
    return this.list.appendChild(
      el("li", { class: `event event-${type}`, "data-seq": seq, "data-type": type }, title ? el("h3", {}, title) : null, ...content),
    );
  }
}

function seconds(ms) {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
