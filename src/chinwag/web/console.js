// console.js: the developer console at /console. A person pastes a platform API key; the
// page lists the apps it reaches and, for the chosen app, its identity-token keys
// (console-keys.js), users and sessions (console-sessions.js) and webhooks
// (console-webhooks.js). It only calls /v1/platform/... (platform.js); the rules are the
// server's, and every refusal is shown with the server's own message.

import { $, button, element, forgetShownOnce, guarded, showOnce, when } from "./console-dom.js";
import * as keys from "./console-keys.js";
import * as sessions from "./console-sessions.js";
import * as webhooks from "./console-webhooks.js";
import { Platform } from "./platform.js";

// The API key lives in sessionStorage, never localStorage, a cookie or the URL. An admin
// key can do anything to every app, so it should outlive this tab as little as possible:
// sessionStorage is scoped to the tab and gone when it closes (nothing left on disk for
// the next person at the computer), survives a reload (no pasting it again), and is never
// sent by the browser on its own the way a cookie is (no CSRF). Script on the page could
// read it, which is why the page runs no inline or third-party script (its CSP).
const KEY_STORAGE = "chinwag.console.key";

/** What every section reads: the API client and the chosen app (null before a choice). */
const ctx = { platform: null, appId: null };

// ---- the key ------------------------------------------------------------------------------

function keyLabel(apiKey) {
  const [prefix, id] = apiKey.split("_");
  return id ? `key ${prefix}_${id}_…` : "key";
}

async function open(apiKey) {
  const platform = new Platform(window.location.origin, apiKey, (e) => close(e.message));
  const listed = await platform.apps(); // proves the key before anything shows
  ctx.platform = platform;
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $("key-label").textContent = keyLabel(apiKey);
  $("key-sign-in").hidden = true;
  $("console").hidden = false;
  $("forget-key").hidden = false;
  showApps(listed.apps);
}

const onKeySignIn = guarded("key-error", async () => {
  const apiKey = $("api-key").value.trim();
  if (!apiKey) throw new Error("Paste an API key first.");
  await open(apiKey);
  $("api-key").value = "";
});

/** Back to the key field; `why` (a 401's message) says what happened, if anything did. */
function close(why) {
  sessionStorage.removeItem(KEY_STORAGE);
  ctx.platform = null;
  ctx.appId = null;
  forgetShownOnce();
  $("apps").replaceChildren();
  $("app").hidden = true;
  $("no-app").hidden = false;
  $("key-label").textContent = "";
  $("console").hidden = true;
  $("forget-key").hidden = true;
  $("key-sign-in").hidden = false;
  $("key-error").textContent = why || "";
}

// ---- apps -------------------------------------------------------------------------------

function showApps(apps) {
  $("apps").replaceChildren(...apps.map((app) => {
    const item = element("li", app.app_id === ctx.appId ? "selected" : "");
    item.dataset.id = app.app_id;
    const pick = button(app.name, () => choose(app.app_id), "open");
    item.append(pick, element("span", `env ${app.environment}`, app.environment));
    return item;
  }));
}

const reloadApps = guarded("apps-error", async () => {
  showApps((await ctx.platform.apps()).apps);
});

const onNewApp = guarded("apps-error", async (event) => {
  event.preventDefault();
  const name = $("new-app-name").value.trim();
  if (!name) throw new Error("Give the app a name.");
  const created = await ctx.platform.createApp(name);
  $("new-app-name").value = "";
  await reloadApps();
  await choose(created.app_id);
  const dev = created.development_key;
  if (dev && dev.private_key_pem) {
    showOnce(`Development key ${dev.kid} (private key)`, dev.private_key_pem);
  }
});

const DETAILS = [
  ["app id", (a) => a.app_id],
  ["environment", (a) => a.environment],
  ["conversation policy", (a) => a.conversation_policy],
  ["session lifetime", (a) => `${a.session_lifetime} s`],
  ["identity token max age", (a) => `${a.max_token_age} s`],
  ["anonymous users", (a) => (a.allow_anonymous ? "allowed" : "refused")],
  ["suspended", (a) => (a.suspended_at ? when(a.suspended_at) : "no")],
  ["created", (a) => when(a.created_at)],
];

const choose = guarded("apps-error", async (appId) => {
  const app = await ctx.platform.app(appId);
  ctx.appId = app.app_id;
  forgetShownOnce();
  for (const item of $("apps").children) {
    item.classList.toggle("selected", item.dataset.id === app.app_id);
  }
  $("app-title").textContent = app.name;
  $("app-details").replaceChildren(...DETAILS.flatMap(([label, value]) =>
    [element("dt", "", label), element("dd", "", value(app))]));
  $("no-app").hidden = true;
  $("app").hidden = false;
  sessions.reset();
  await Promise.all([keys.load(), webhooks.load()]);
});

// ---- start --------------------------------------------------------------------------------

function start() {
  $("key-sign-in-button").addEventListener("click", onKeySignIn);
  $("api-key").addEventListener("keydown", (e) => { if (e.key === "Enter") onKeySignIn(); });
  $("forget-key").addEventListener("click", () => close());
  $("new-app").addEventListener("submit", onNewApp);
  $("shown-once-done").addEventListener("click", forgetShownOnce);
  keys.setUp(ctx);
  sessions.setUp(ctx);
  webhooks.setUp(ctx);
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) guarded("key-error", open)(saved);
}

start();
