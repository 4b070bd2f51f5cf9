// Server-Sent Events over fetch, so the access token travels in a header and never in a URL
// (EventSource cannot send headers). `follow` keeps a stream going until the server says it is over.

import { errorFrom } from "./session.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const MAX_BACKOFF_MS = 30_000;

// The event-stream format (WHATWG HTML, "Server-sent events"), fed text as it arrives.
export class SseParser {
  #buffer = "";
  #skipLf = false;
  #data = [];
  #type = "";

  constructor(onEvent) {
    this.onEvent = onEvent;
    this.lastEventId = "";
    this.retry = null;
  }

  feed(text) {
    if (!text) return;
    // A "\r\n" split between two pieces: its "\r" already ended the line, so skip the "\n".
    if (this.#skipLf && text[0] === "\n") text = text.slice(1);
    this.#skipLf = text.endsWith("\r");
    const lines = (this.#buffer + text).split(/\r\n|\r|\n/);
    this.#buffer = lines.pop(); // an unfinished line
    for (const line of lines) this.#line(line);
  }

  #line(line) {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return; // a comment: the heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  #dispatch() {
    const [type, data] = [this.#type || "message", this.#data];
    this.#type = "";
    this.#data = [];
    if (data.length > 0) this.onEvent({ id: this.lastEventId, type, data: data.join("\n") });
  }
}

// Follow a stream until it is over: replayed and live events go to `onEvent`; a dropped or closed
// connection reconnects with Last-Event-ID, so nothing is missed or repeated; an expired access
// token is refreshed first. Resolves when the stream is over; rejects on a 4xx or an ended session.
export async function follow(url, session, { onEvent, onState, signal, idleMs }) {
  let lastEventId = "";
  let retryMs = 3000;
  let failures = 0;
  const handlers = {
    onOpen: () => { failures = 0; onState("live"); },
    onEvent: (event) => { lastEventId = event.id; onEvent(event); },
  };
  while (!signal.aborted) {
    let outcome;
    try {
      outcome = await session.authorized((token) => readOnce(url, token, lastEventId, signal, handlers, idleMs));
    } catch (error) {
      const retriable = error.status === 429 || error.status >= 500;
      if (signal.aborted || !retriable) throw error;
      outcome = { wait: error.retryAfter * 1000 }; // busy, or restarting: come back later
    }
    if (outcome.retry) retryMs = outcome.retry;
    if (outcome.done) return;
    if (outcome.close === "session_revoked") throw session.end("Your session has ended. Sign in again.");
    if (outcome.close === "token_expired") {
      await session.renew(outcome.token);
      continue;
    }
    onState("reconnecting");
    failures += 1;
    // The server's own close (shutdown, max_lifetime) waits its retry hint; a broken connection backs off.
    const backoff = outcome.close ? retryMs : Math.min(retryMs * 2 ** (failures - 1), MAX_BACKOFF_MS);
    await sleep((outcome.wait || backoff) * (0.75 + Math.random() / 2), signal);
  }
}

// One connection: resolves with how it ended — {done} (the run is over, or 204: nothing more will
// come), {close: reason} (the server ended it), or {} (the connection broke or went silent).
async function readOnce(url, token, lastEventId, signal, handlers, idleMs) {
  const attempt = new AbortController();
  const abort = () => attempt.abort();
  signal.addEventListener("abort", abort);
  let watchdog;
  const rearm = () => { clearTimeout(watchdog); watchdog = setTimeout(abort, idleMs); }; // no heartbeat: dead
  const outcome = { token };
  try {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token}` };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    rearm();
    const response = await fetch(url, { headers, signal: attempt.signal, cache: "no-store", credentials: "omit" });
    if (response.status === 204) return { done: true };
    if (!response.ok) throw errorFrom(response, await response.json().catch(() => null));
    handlers.onOpen();
    const parser = new SseParser((event) => {
      if (event.type === "close") {
        outcome.close = JSON.parse(event.data).reason;
        return;
      }
      handlers.onEvent(event);
      if (TERMINAL.has(event.type)) outcome.done = true;
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rearm();
      parser.feed(value);
    }
    outcome.retry = parser.retry;
    return outcome;
  } catch (error) {
    if (error.status || signal.aborted) throw error; // an HTTP error status, or the page moved on
    return outcome; // a network error or the watchdog: reconnect
  } finally {
    clearTimeout(watchdog);
    signal.removeEventListener("abort", abort);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
