// chinwag.js: a small browser SDK for chinwag, in plain JavaScript (an ES module, no build).
//
//   sign in:  nonce -> identity token (from a provider function) -> session
//   REST:     client.get/post/delete with the session's bearer token
//   live:     one WebSocket, /v1/websocket?after=CURSOR&session_token=TOKEN (a browser cannot
//             set headers on a WebSocket), resumed from the last cursor after every drop,
//             reconnected with jittered exponential back-off; positions are dense per user, so
//             an event whose cursor is not cursor+1 is a gap, and a gap means "resume again".
//   outbox:   messages carry client-chosen ids, so a send retried after a drop is never a
//             duplicate; sends made while offline wait and go when the socket is back.
//   receipts: how far others have read each conversation, from the receipt events seen,
//             saved with the cursor (the REST API tells a user only their own read position).
//
// Events (client.addEventListener): "event" {cursor, event}, "typing" {conversation_id,
// user_id, state}, "status" {online}, "outbox" {pending}, "signed-out" {reason}.

const STORAGE_KEY = "chinwag.session";
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 15000;
const PING_EVERY_MS = 15000;
const PING_TIMEOUT_MS = 10000;
// Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes").
const SIGNED_OUT_CODES = new Map([[4001, "authentication_required"], [4003, "revoked"],
  [4004, "expired"]]);

export class ChinwagError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.id = error.id || "unknown";
    this.data = error.data || {};
  }
}

/** fetch() for chinwag's JSON API: the parsed answer (null for 204), or a ChinwagError
 *  carrying the server's {"error": {"id", "message", "data"}}. A body, if given, is sent
 *  as JSON. Used by the page, the console (platform.js) and the Client below. */
export async function fetchJson(url, { method = "GET", headers = {}, body, credentials } = {}) {
  const init = { method, headers: { ...headers }, credentials: credentials || "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ChinwagError(response.status, answer);
  return answer;
}

function postJson(url, body, init = {}) {
  return fetchJson(url, { method: "POST", body, ...init });
}

/** An identity-token provider backed by chinwag's sample provider (staging apps only). */
export function sampleProvider(baseUrl, appId, userId, displayName) {
  return async (nonce) => {
    const body = { app_id: appId, user_id: userId, nonce };
    if (displayName) body.display_name = displayName;
    const answer = await postJson(`${baseUrl}/v1/dev/identity_tokens`, body);
    return answer.identity_token;
  };
}

/** An identity-token provider backed by the app's own identity service: it receives
 *  {"app_id", "nonce"} with the app's own cookies, and answers {"identity_token"}
 *  (the contract is in docs/web-client.md). */
export function identityServiceProvider(serviceUrl, appId) {
  return async (nonce) => {
    const answer = await postJson(serviceUrl, { app_id: appId, nonce }, { credentials: "include" });
    if (!answer || typeof answer.identity_token !== "string") {
      throw new ChinwagError(502, { error: { id: "bad_identity_service",
        message: "The identity service did not answer {\"identity_token\": …}." } });
    }
    return answer.identity_token;
  };
}

/** nonce -> identity token -> session; returns a Client for it. `deviceLabel` names this
 *  device in the app's session list (the platform API, the developer console), so whoever
 *  ends "the session on my work laptop" can tell which one it is. */
export async function signIn(baseUrl, appId, provider, { deviceLabel } = {}) {
  const { nonce } = await postJson(`${baseUrl}/v1/nonces`, { app_id: appId });
  const identityToken = await provider(nonce);
  const body = { app_id: appId, identity_token: identityToken };
  if (deviceLabel) body.device_label = deviceLabel.slice(0, 128);
  const session = await postJson(`${baseUrl}/v1/sessions`, body);
  const state = { baseUrl, appId, token: session.session_token, sessionId: session.session_id,
    user: session.user, cursor: null };
  return new Client(state);
}

/** Full-jitter exponential back-off: a random delay up to base * 2^attempt, capped. */
export function backoffDelay(attempt, random = Math.random) {
  return random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

export class Client extends EventTarget {
  constructor(state) {
    super();
    // Keyed by conversation id, which the API lets a client choose: no prototype, so an id
    // like "__proto__" is a key like any other.
    state.othersRead = Object.assign(Object.create(null), state.othersRead);
    this.state = state;
    this.socket = null;
    this.online = false;
    this.attempt = 0;
    this.nextRequest = 1;
    this.waiting = new Map(); // request_id -> {resolve, reject}
    this.outbox = []; // {conversationId, id, parts} in the order they were sent
    this.flushing = false;
    this.stopped = false;
    this.timers = new Set();
    this.save();
    this.onBrowserOnline = () => this.reconnectNow();
    this.onBrowserOffline = () => this.drop("browser offline");
    window.addEventListener("online", this.onBrowserOnline);
    window.addEventListener("offline", this.onBrowserOffline);
  }

  // The session lives in sessionStorage, not localStorage or a cookie: it is scoped to this
  // tab (each tab is its own device, with its own cursor), it is gone when the tab closes
  // (nothing left on disk for the next person at a shared computer), and it is never sent
  // automatically with requests the way a cookie is (no CSRF). Script on the page can still
  // read it, which is why the page allows no inline or third-party script (its CSP).
  static restore() {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? new Client(JSON.parse(raw)) : null;
  }

  save() {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
  }

  get user() {
    return this.state.user;
  }

  /** The furthest position anyone else has read in a conversation (0 if unknown), from the
   *  receipt events this tab has seen. It is saved with the cursor, so a reload, which
   *  resumes after that cursor, keeps it; a new tab starts live and knows none. */
  othersRead(conversationId) {
    return this.state.othersRead[conversationId] || 0;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- REST -------------------------------------------------------------------------

  async request(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${this.state.token}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.state.baseUrl + path, init);
    const answer = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.status === 401) this.end("authentication_required");
    if (!response.ok) throw new ChinwagError(response.status, answer);
    return answer;
  }

  conversations() {
    return this.request("GET", "/v1/conversations?limit=100");
  }

  createConversation(userIds) {
    return this.request("POST", "/v1/conversations", { participants: userIds, distinct: true });
  }

  messages(conversationId, limit = 50) {
    const id = encodeURIComponent(conversationId);
    return this.request("GET", `/v1/conversations/${id}/messages?limit=${limit}`);
  }

  markRead(conversationId, position) {
    const id = encodeURIComponent(conversationId);
    return this.request("POST", `/v1/conversations/${id}/receipts`, { type: "read", position });
  }

  /** Queue a text message and try to send it; returns its id at once. */
  send(conversationId, text) {
    const item = { conversationId, id: crypto.randomUUID(),
      parts: [{ mime_type: "text/plain", body: text }] };
    this.outbox.push(item);
    this.emit("outbox", { pending: [...this.outbox] });
    this.flush();
    return item.id;
  }

  /** Send what waits in the outbox, oldest first; stop at the first network failure (the
   *  next connection retries it; the same id makes the retry safe). */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.outbox.length && !this.stopped) {
        const item = this.outbox[0];
        const id = encodeURIComponent(item.conversationId);
        try {
          await this.request("POST", `/v1/conversations/${id}/messages`,
            { id: item.id, parts: item.parts });
        } catch (error) {
          if (!(error instanceof ChinwagError)) return; // offline: keep it for later
          item.failed = error.message; // refused by the server: retrying cannot help
        }
        this.outbox.shift();
        this.emit("outbox", { pending: [...this.outbox], failed: item.failed ? item : null });
      }
    } finally {
      this.flushing = false;
    }
  }

  // ---- WebSocket ------------------------------------------------------------------------

  connect() {
    if (this.stopped || this.socket) return;
    const base = this.state.baseUrl.replace(/^http/, "ws");
    const query = new URLSearchParams({ session_token: this.state.token });
    if (this.state.cursor !== null) query.set("after", String(this.state.cursor));
    const socket = new WebSocket(`${base}/v1/websocket?${query}`);
    this.socket = socket;
    socket.onmessage = (message) => this.onFrame(socket, message.data);
    socket.onclose = (close) => this.onClose(socket, close.code);
  }

  onFrame(socket, data) {
    if (socket !== this.socket) return;
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (frame.type === "hello" && this.state.cursor === null) {
      this.state.cursor = frame.head; // live only: history comes from REST
      this.save();
    } else if (frame.type === "event") {
      this.onEvent(frame);
    } else if (frame.type === "caught_up") {
      this.attempt = 0;
      this.setOnline(true);
      this.startPings(socket);
      this.flush();
    } else if (frame.type === "signal" && frame.signal === "typing") {
      this.emit("typing", frame.data);
    } else if (frame.type === "response") {
      this.onResponse(frame);
    }
  }

  onEvent(frame) {
    const cursor = this.state.cursor;
    if (frame.cursor <= cursor) return; // already seen (a replay overlapping live)
    if (frame.cursor !== cursor + 1) { // a gap: resume from what we have
      this.drop(`gap after ${cursor}: got ${frame.cursor}`);
      return;
    }
    this.state.cursor = frame.cursor;
    this.noteReceipt(frame.event);
    this.save();
    this.emit("event", { cursor: frame.cursor, event: frame.event });
    if (frame.event.type === "session.revoked"
        && frame.event.data.session_id === this.state.sessionId) this.end("revoked");
  }

  noteReceipt({ type, data }) {
    if (type !== "receipt" || data.user_id === this.state.user.user_id) return;
    const marks = this.state.othersRead;
    marks[data.conversation_id] = Math.max(marks[data.conversation_id] || 0, data.read_position);
  }

  onResponse(frame) {
    const waiter = this.waiting.get(frame.request_id);
    if (!waiter) return;
    this.waiting.delete(frame.request_id);
    if (frame.ok) waiter.resolve(frame.data);
    else waiter.reject(new ChinwagError(0, { error: frame.error }));
  }

  onClose(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.setOnline(false);
    this.failRequests();
    if (SIGNED_OUT_CODES.has(code)) {
      this.end(SIGNED_OUT_CODES.get(code));
    } else if (code === 4400 && this.state.cursor !== null) {
      this.state.cursor = null; // a cursor from another stream: start live again
      this.schedule(0);
    } else {
      this.schedule(backoffDelay(this.attempt++));
    }
  }

  /** Close the current socket (if any) and resume after back-off. */
  drop(why) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.close(1000, String(why).slice(0, 100));
    this.setOnline(false);
    this.failRequests();
    if (navigator.onLine) this.schedule(backoffDelay(this.attempt++));
  }

  reconnectNow() {
    this.attempt = 0;
    this.clearTimers();
    if (!this.socket) this.connect();
  }

  schedule(delayMs) {
    this.clearTimers();
    if (this.stopped) return;
    const timer = setTimeout(() => { this.timers.delete(timer); this.connect(); }, delayMs);
    this.timers.add(timer);
  }

  clearTimers() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  startPings(socket) {
    const tick = async () => {
      if (socket !== this.socket) return;
      const answered = this.call("ping", {});
      const late = new Promise((_, reject) => setTimeout(reject, PING_TIMEOUT_MS));
      try { await Promise.race([answered, late]); } catch { this.drop("ping timeout"); return; }
      setTimeout(tick, PING_EVERY_MS);
    };
    setTimeout(tick, PING_EVERY_MS);
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    this.emit("status", { online });
  }

  /** A request frame over the socket; rejects if the socket is not open. */
  call(method, data) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("not connected"));
    }
    const requestId = String(this.nextRequest++);
    return new Promise((resolve, reject) => {
      this.waiting.set(requestId, { resolve, reject });
      socket.send(JSON.stringify({ type: "request", request_id: requestId, method, data }));
    });
  }

  failRequests() {
    for (const waiter of this.waiting.values()) waiter.reject(new Error("disconnected"));
    this.waiting.clear();
  }

  /** Typing is ephemeral: when offline it is simply not sent. */
  typing(conversationId, state) {
    this.call("typing.update", { conversation_id: conversationId, state }).catch(() => {});
  }

  // ---- ending ---------------------------------------------------------------------------

  async signOut() {
    try { await this.request("DELETE", "/v1/sessions/current"); } catch { /* ended anyway */ }
    this.end("logout");
  }

  end(reason) {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.setOnline(false);
    window.removeEventListener("online", this.onBrowserOnline);
    window.removeEventListener("offline", this.onBrowserOffline);
    sessionStorage.removeItem(STORAGE_KEY);
    this.emit("signed-out", { reason });
  }
}
