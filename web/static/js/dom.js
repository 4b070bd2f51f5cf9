// Building the page from data: elements made with textContent only (never HTML from strings), the
// words for a run's status and for an error, and the alerts and busy buttons of the forms.

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

// Show `message` in the alert `id`, and mark the input it is about (if any) as invalid.
export function showError(id, message, field = null) {
  $(id).textContent = message;
  for (const input of $(id).closest("form, aside").querySelectorAll("input, textarea")) {
    if (input.name === field) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  if (field) $(id).closest("form").elements[field]?.focus();
}

// Run `work` with `button` disabled and marked busy, so a second click cannot start it twice.
export async function whileBusy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const LABELS = { userId: "User ID", password: "Password", prompt: "The prompt", steps: "Steps" };

// The words for an error of the API, for the person who caused it.
export function explain(error) {
  if (error.code === "user_exists") return "That user ID is taken. Choose another, or sign in.";
  if (error.code === "invalid_credentials") return "Wrong user ID or password.";
  if (error.status === 429) return `Too many attempts. Try again ${inTime(error.retryAfter)}.`;
  if (error.field) return `${LABELS[error.field] ?? error.field} ${error.message.replace(`${error.field}: `, "")}.`;
  return error.message;
}

function inTime(seconds) {
  if (!seconds) return "later";
  return seconds < 90 ? `in ${seconds} seconds` : `in ${Math.ceil(seconds / 60)} minutes`;
}
