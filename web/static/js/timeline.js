// Rendering a run: its events become DOM nodes built with textContent only (never HTML from
// strings), appended in order, so a growing run never moves what is already on screen.

const STATUS_TEXT = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

// `el("p", {class: "x"}, "text", child)`: an element with attributes and children.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function setStatus(node, status) {
  node.textContent = STATUS_TEXT[status] ?? status;
  node.dataset.status = status;
}

// One run's events as an ordered list: the plan, a card per step, the final answer, the outcome.
export class Timeline {
  constructor(list) {
    this.list = list;
    this.steps = new Map();
    this.plan = [];
    list.replaceChildren();
  }

  add(seq, type, data) {
    const render = this[`on_${type}`] ?? this.on_other;
    render.call(this, seq, data, type);
  }

  on_running(seq) {
    this.#item(seq, "running", "Started");
  }

  on_plan(seq, data) {
    this.plan = data.steps;
    const steps = el("ol", { class: "plan" }, ...data.steps.map((step) => el("li", {}, step)));
    this.#item(seq, "plan", "Plan", steps);
  }

  on_tool_call(seq, data) {
    const input = JSON.stringify(data.input, null, 2);
    this.#step(data.step).body.append(
      el("div", { class: "tool tool-call", "data-seq": seq, "data-type": "tool_call" },
        el("span", { class: "tool-label" }, `Calling ${data.tool}`), el("pre", {}, input)),
    );
  }

  on_tool_result(seq, data) {
    this.#step(data.step).body.append(
      el("div", { class: "tool tool-result", "data-seq": seq, "data-type": "tool_result" },
        el("span", { class: "tool-label" }, `${data.tool} answered`), el("pre", {}, data.output)),
    );
  }

  // Message text grows chunk by chunk inside one paragraph per step.
  on_message(seq, data) {
    const step = this.#step(data.step);
    step.message ??= step.body.appendChild(el("p", { class: "message" }));
    step.message.append(el("span", { "data-seq": seq, "data-type": "message" }, data.delta));
  }

  on_final(seq, data) {
    this.#item(seq, "final", "Answer", el("p", {}, data.text));
  }

  on_completed(seq) {
    this.#item(seq, "completed", "Completed");
  }

  on_cancelled(seq) {
    this.#item(seq, "cancelled", "Cancelled before it finished");
  }

  on_failed(seq, data) {
    const reason = data.reason === "executor_lost" ? "the process running it stopped" : data.reason;
    this.#item(seq, "failed", "Failed", el("p", {}, reason ? `Reason: ${reason}.` : null));
  }

  // An event this page does not know yet: shown plainly rather than dropped.
  on_other(seq, data, type) {
    this.#item(seq, "other", type, el("pre", {}, JSON.stringify(data, null, 2)));
  }

  #item(seq, type, title, ...content) {
    return this.list.appendChild(
      el("li", { class: `event event-${type}`, "data-seq": seq, "data-type": type }, el("h3", {}, title), ...content),
    );
  }

  #step(number) {
    if (!this.steps.has(number)) {
      const body = el("div", { class: "step-body" });
      const goal = this.plan[number - 1];
      const title = el("h3", {}, `Step ${number}`, goal ? el("span", { class: "goal" }, goal) : null);
      const item = el("li", { class: "event event-step", "data-step": number }, title, body);
      this.list.append(item);
      this.steps.set(number, { body, message: null });
    }
    return this.steps.get(number);
  }
}
