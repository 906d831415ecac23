// console-keys.js: the chosen app's identity-token keys: list, generate (the private key
// or secret is shown once), disable or enable, delete. Disabling is how a key is retired
// without downtime: add the new one, move the backend to it, then disable the old.

import { $, button, guarded, row, showOnce, when } from "./console-dom.js";

let ctx = null;

export function setUp(context) {
  ctx = context;
  $("generate-key").addEventListener("submit", onGenerate);
}

export const load = guarded("keys-error", async () => {
  const { keys } = await ctx.platform.keys(ctx.appId);
  $("keys").replaceChildren(...keys.map(keyRow));
});

function keyRow(key) {
  const toggle = key.enabled
    ? button("Disable", () => act(() => ctx.platform.setKeyEnabled(ctx.appId, key.kid, false)))
    : button("Enable", () => act(() => ctx.platform.setKeyEnabled(ctx.appId, key.kid, true)));
  const remove = button("Delete", () => act(() => ctx.platform.deleteKey(ctx.appId, key.kid)),
    "danger");
  const state = (key.enabled ? "enabled" : "disabled") + (key.development ? ", development" : "");
  const tr = row([key.kid, key.alg, state, when(key.created_at), actions(toggle, remove)]);
  tr.dataset.kid = key.kid;
  return tr;
}

function actions(...buttons) {
  const span = document.createElement("span");
  span.className = "row-actions";
  span.append(...buttons);
  return span;
}

const act = guarded("keys-error", async (change) => {
  await change();
  await load();
});

const onGenerate = guarded("keys-error", async (event) => {
  event.preventDefault();
  const kind = $("key-kind").value;
  const made = await ctx.platform.generateKey(ctx.appId, kind);
  await load();
  if (made.secret) showOnce(`Key ${made.kid} (HS256 secret)`, made.secret);
  else if (made.private_key_pem) showOnce(`Key ${made.kid} (private key)`, made.private_key_pem);
});
