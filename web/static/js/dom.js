// Building the page from data: elements made with textContent only (never HTML from strings), and
// the words for a run's status.

const STATUS_TEXT = {
  queued: "Queued",
  running: "Running",
  waiting: "Needs your approval",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

// Statuses in which a run may still change: it can be cancelled, and its thread takes no new run.
export const ACTIVE = new Set(["queued", "running", "waiting"]);

// The status a run enters with each of these events of its stream.
export const STATUS_AFTER = {
  running: "running",
  input_required: "waiting",
  input: "queued",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

export const $ = (id) => document.getElementById(id);

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

export function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function shortDate(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}
