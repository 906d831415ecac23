// platform.js: the platform API (/v1/platform/...) from the browser, for the developer
// console. One method per route (docs/platform-api/); every call carries the API key as
// "Authorization: Bearer cwk_…" and fails with chinwag.js's ChinwagError, so the console
// shows the server's own {"error": {"message"}}.

import { fetchJson } from "./chinwag.js";

const enc = encodeURIComponent;

export class Platform {
  /** onUnauthorized(error) runs on any 401: the key was revoked (or never was one). */
  constructor(baseUrl, apiKey, onUnauthorized = () => {}) {
    this.baseUrl = baseUrl;
    this.apiKey = apiKey;
    this.onUnauthorized = onUnauthorized;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.apiKey}` };
    try {
      return await fetchJson(`${this.baseUrl}/v1/platform${path}`, { method, headers, body });
    } catch (error) {
      if (error.status === 401) this.onUnauthorized(error);
      throw error;
    }
  }

  // ---- apps -------------------------------------------------------------------------------

  apps() { return this.call("GET", "/apps"); }

  createApp(name) { return this.call("POST", "/apps", { name, environment: "staging" }); }

  app(appId) { return this.call("GET", `/apps/${enc(appId)}`); }

  // ---- identity-token keys ----------------------------------------------------------------

  keys(appId) { return this.call("GET", `/apps/${enc(appId)}/keys`); }

  /** kind "key_pair" (ES256) or "hmac_secret"; the answer holds the private key or secret,
   *  this once. */
  generateKey(appId, kind) {
    return this.call("POST", `/apps/${enc(appId)}/keys/generate`, { kind });
  }

  setKeyEnabled(appId, kid, enabled) {
    const action = enabled ? "enable" : "disable";
    return this.call("POST", `/apps/${enc(appId)}/keys/${enc(kid)}/${action}`);
  }

  deleteKey(appId, kid) { return this.call("DELETE", `/apps/${enc(appId)}/keys/${enc(kid)}`); }

  // ---- users and sessions -----------------------------------------------------------------

  /** A user id may hold "/": the route takes the rest of the path, so each segment is
   *  encoded on its own and the slashes stay. */
  user(appId, userId) {
    const path = userId.split("/").map(enc).join("/");
    return this.call("GET", `/apps/${enc(appId)}/users/${path}`);
  }

  sessions(appId, userId) {
    return this.call("GET", `/apps/${enc(appId)}/sessions?user_id=${enc(userId)}`);
  }

  /** selector: {session_id} or {user_id}; wipe: the devices also delete their local data. */
  endSessions(appId, selector, wipe) {
    return this.call("POST", `/apps/${enc(appId)}/sessions/end`, { ...selector, wipe });
  }

  // ---- webhooks ---------------------------------------------------------------------------

  webhooks(appId) { return this.call("GET", `/apps/${enc(appId)}/webhooks`); }

  createWebhook(appId, url, eventTypes, description) {
    const body = { url, event_types: eventTypes, description };
    return this.call("POST", `/apps/${enc(appId)}/webhooks`, body);
  }

  setWebhookEnabled(appId, endpointId, enabled) {
    return this.call("PATCH", `/apps/${enc(appId)}/webhooks/${enc(endpointId)}`, { enabled });
  }

  deliveries(appId, endpointId) {
    return this.call("GET", `/apps/${enc(appId)}/webhooks/${enc(endpointId)}/deliveries`);
  }

  replay(appId, endpointId, deliveryId) {
    const path = `/apps/${enc(appId)}/webhooks/${enc(endpointId)}/deliveries/${enc(deliveryId)}`;
    return this.call("POST", `${path}/replay`);
  }
}
