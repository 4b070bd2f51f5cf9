// The services the page talks to: the signed-in session, the Orchestrator's JSON API and its
// run streams. One instance of each per page.

import { requestJson, Session } from "./session.js";
import { follow } from "./sse.js";

const settings = document.body.dataset;

export const apiUrl = settings.apiUrl;
export const session = new Session(apiUrl);
// A stream that stays silent for two heartbeats is taken as dead and reconnected.
export const idleMs = (2 * Number(settings.heartbeatSeconds) + 5) * 1000;

export function orchestratorJson(path, options = {}) {
  const url = `${settings.orchestratorUrl}${path}`;
  return session.authorized((token) => requestJson(url, { ...options, token }));
}

// Follow one run's events (replayed, then live) until it is over or `signal` aborts.
export function followRun(runId, { signal, onEvent, onState = () => {} }) {
  const url = `${settings.orchestratorUrl}/runs/${encodeURIComponent(runId)}/events`;
  return follow(url, session, { signal, idleMs, onEvent, onState });
}
