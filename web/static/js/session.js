// The signed-in session: requests to the services, and the tokens that authorize them.
//
// The access token lives only in this module's memory. The refresh token is stored (store.js) so
// that a reload or a second tab stays signed in (README: "Where the refresh token lives").
// Refresh tokens rotate and a reused one revokes the whole session, so refreshes never overlap:
// one at a time in this tab (a shared promise) and across tabs (a Web Lock), and each reads the
// newest token from storage inside the lock.

import { forgetRefreshToken, readRefreshToken, saveRefreshToken } from "./store.js";

const LOCK_NAME = "oneshot.refresh";
const CHANNEL_NAME = "oneshot.session";
const SIGNED_OUT = "You are logged out.";
// Refresh a little before expiry rather than take a 401: 10 s early, or a quarter of a short lifetime.
const EARLY_REFRESH_MS = 10_000;

export class RequestError extends Error {
  constructor(status, code, message, { retryAfter = 0, field = null } = {}) {
    super(message);
    Object.assign(this, { status, code, retryAfter, field });
  }
}

// The body of a JSON response, or a RequestError with the service's code and message.
export async function requestJson(url, { method = "GET", body, token, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit",
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new RequestError(0, "unreachable", `Can't reach ${new URL(url).origin}. Check the connection and try again.`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  throw errorFrom(response, data);
}

export function errorFrom(response, data) {
  const error = data?.error ?? {};
  return new RequestError(
    response.status,
    error.code ?? `http_${response.status}`,
    error.message ?? `The service answered ${response.status}.`,
    { retryAfter: Number(response.headers.get("Retry-After")) || 0, field: error.field ?? null },
  );
}

export class Session extends EventTarget {
  #accessToken = null;
  #refreshAt = 0;
  #refreshing = null;
  #signingOut = false;

  constructor(apiUrl) {
    super();
    this.apiUrl = apiUrl;
    this.userId = null;
    // The tabs share one session: when it ends in one (logout, revocation), the others follow;
    // when another tab signs in (perhaps as someone else), the stored token is no longer ours.
    this.channel = new BroadcastChannel(CHANNEL_NAME);
    this.channel.onmessage = (event) => {
      if (event.data === "ended") this.end("You were signed out in another tab.", { tell: false });
      if (event.data === "signed-in") this.dispatchEvent(new Event("replaced"));
    };
  }

  async hasStoredSession() {
    return (await readRefreshToken().catch(() => undefined)) !== undefined; // no storage: no session
  }

  async register(userId, password) {
    await requestJson(`${this.apiUrl}/auth/register`, { method: "POST", body: { userId, password } });
  }

  async signIn(userId, password) {
    await this.#accept(await requestJson(`${this.apiUrl}/auth/token`, { method: "POST", body: { userId, password } }));
    this.channel.postMessage("signed-in");
    return this.loadUser();
  }

  // After a reload: trade the stored refresh token for an access token and read who we are.
  async resume() {
    await this.refresh();
    return this.loadUser();
  }

  async loadUser() {
    const me = await this.authorized((token) => requestJson(`${this.apiUrl}/me`, { token }));
    this.userId = me.userId;
    return me;
  }

  // Run `call(accessToken)`; on a 401, refresh once and retry once. A failed refresh ends the session.
  async authorized(call) {
    if (!this.#accessToken || Date.now() >= this.#refreshAt) await this.refresh();
    const token = this.#accessToken;
    try {
      return await call(token);
    } catch (error) {
      if (error.status !== 401) throw error;
    }
    await this.renew(token);
    try {
      return await call(this.#accessToken);
    } catch (error) {
      if (error.status === 401) this.end("Your session has ended. Sign in again.");
      throw error;
    }
  }

  // Refresh, unless the access token changed since `token` was sent (another request refreshed).
  async renew(token) {
    if (this.#accessToken === token) await this.refresh();
  }

  // Rotate the refresh token: one rotation at a time, in this tab and across tabs.
  refresh() {
    this.#refreshing ??= this.#rotate().finally(() => { this.#refreshing = null; });
    return this.#refreshing;
  }

  async #rotate() {
    const rotate = async () => {
      const refreshToken = await readRefreshToken();
      if (!refreshToken) throw this.end("Sign in to continue.");
      try {
        await this.#accept(await requestJson(`${this.apiUrl}/auth/refresh`, { method: "POST", body: { refreshToken } }));
      } catch (error) {
        // Spent, expired, or revoked: the session is over. Anything else (offline) may pass.
        if (error.status === 401) throw this.end("Your session has ended. Sign in again.");
        throw error;
      }
    };
    return navigator.locks ? navigator.locks.request(LOCK_NAME, rotate) : rotate();
  }

  // Keep a new pair; the refresh token is committed before the refresh lock is released.
  async #accept(pair) {
    await saveRefreshToken(pair.refreshToken);
    this.#accessToken = pair.token;
    this.#refreshAt = Date.now() + pair.expiresIn * 1000 - Math.min(EARLY_REFRESH_MS, pair.expiresIn * 250);
  }

  // Log out everywhere (the API revokes every session of the user), then forget the tokens here.
  async signOut() {
    this.#signingOut = true;
    try {
      if (this.#accessToken || (await this.hasStoredSession())) {
        await this.authorized((token) => requestJson(`${this.apiUrl}/auth/logout`, { method: "POST", token }));
      }
    } finally {
      this.end(SIGNED_OUT);
      this.#signingOut = false;
    }
  }

  // Forget every token and tell the page (once) and the other tabs; returns an error a caller may throw.
  end(message, { tell = true } = {}) {
    // A stream may notice the revoked session before the logout call returns: that is the logout too.
    if (this.#signingOut) message = SIGNED_OUT;
    const wasSignedIn = this.#accessToken !== null || this.userId !== null;
    this.#accessToken = null;
    this.#refreshAt = 0;
    this.userId = null;
    forgetRefreshToken().catch(() => {}); // nothing stored, or no storage at all: nothing to forget
    if (tell) this.channel.postMessage("ended");
    if (wasSignedIn) this.dispatchEvent(new CustomEvent("ended", { detail: { message } }));
    return new RequestError(401, "session_ended", message);
  }
}
