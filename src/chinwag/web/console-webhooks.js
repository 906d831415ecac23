// console-webhooks.js: the chosen app's webhook endpoints: list, add (with event types; the
// signing secret is shown once), disable or enable, and an endpoint's deliveries with their
// status, which can be replayed (sent again with the same webhook-id, so a receiver that
// already has it can tell).

import { $, button, element, guarded, row, showOnce, when } from "./console-dom.js";

// The event types an endpoint can ask for (the server's WebhookEventType). The server
// checks them; a name it does not know comes back as its own error message.
const EVENT_TYPES = [
  "message.created", "message.deleted", "receipt", "conversation.created",
  "conversation.participants_changed", "conversation.updated", "conversation.deleted",
  "user.suspended", "session.ended",
];

let ctx = null;
let shown = null; // the endpoint whose deliveries are shown

export function setUp(context) {
  ctx = context;
  $("webhook-types").append(...EVENT_TYPES.map((type) => {
    const box = element("input");
    box.type = "checkbox";
    box.value = type;
    box.checked = type === "message.created";
    const label = element("label");
    label.append(box, ` ${type}`);
    return label;
  }));
  $("new-webhook").addEventListener("submit", onCreate);
}

export const load = guarded("webhooks-error", async () => {
  if (shown && shown.app_id !== ctx.appId) hideDeliveries();
  const { webhooks } = await ctx.platform.webhooks(ctx.appId);
  $("webhooks").replaceChildren(...webhooks.map(webhookRow));
});

function webhookRow(hook) {
  const toggle = button(hook.enabled ? "Disable" : "Enable", () => act(() =>
    ctx.platform.setWebhookEnabled(ctx.appId, hook.id, !hook.enabled)));
  const deliveries = button("Deliveries", () => showDeliveries(hook));
  const state = hook.enabled ? "enabled"
    : `disabled${hook.disabled_reason ? `: ${hook.disabled_reason}` : ""}`;
  const buttons = element("span", "row-actions");
  buttons.append(toggle, deliveries);
  const tr = row([hook.url, hook.event_types.join(", "), state, buttons]);
  tr.dataset.id = hook.id;
  return tr;
}

const act = guarded("webhooks-error", async (change) => {
  await change();
  await load();
});

const onCreate = guarded("webhooks-error", async (event) => {
  event.preventDefault();
  const types = [...$("webhook-types").querySelectorAll("input:checked")].map((b) => b.value);
  const url = $("webhook-url").value.trim();
  const made = await ctx.platform.createWebhook(ctx.appId, url, types,
    $("webhook-description").value.trim());
  $("webhook-url").value = "";
  $("webhook-description").value = "";
  await load();
  showOnce(`Signing secret of ${made.url}`, made.secret);
});

// ---- deliveries -----------------------------------------------------------------------------

function hideDeliveries() {
  shown = null;
  $("deliveries-pane").hidden = true;
  $("deliveries").replaceChildren();
}

const showDeliveries = guarded("webhooks-error", async (hook) => {
  shown = hook;
  $("deliveries-title").replaceChildren(element("span", "", `Deliveries to ${hook.url} `),
    button("Refresh", () => showDeliveries(hook)));
  const { deliveries } = await ctx.platform.deliveries(hook.app_id, hook.id);
  $("deliveries").replaceChildren(...deliveries.map((d) => deliveryRow(hook, d)));
  if (!deliveries.length) $("deliveries").append(row(["none yet"], "empty"));
  $("deliveries-pane").hidden = false;
});

function deliveryRow(hook, delivery) {
  const answer = delivery.last_status !== null ? `HTTP ${delivery.last_status}`
    : delivery.last_error;
  const replay = button("Replay", () => replayOne(hook, delivery));
  const tr = row([delivery.event_type, delivery.status, delivery.attempts, answer,
    when(delivery.created_at), replay], `delivery ${delivery.status}`);
  tr.dataset.id = delivery.id;
  return tr;
}

const replayOne = guarded("webhooks-error", async (hook, delivery) => {
  await ctx.platform.replay(hook.app_id, hook.id, delivery.id);
  await showDeliveries(hook);
});
