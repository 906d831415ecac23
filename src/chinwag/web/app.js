// app.js: the web client page. Every piece of text that came from the server or another
// user goes into the page through textContent, never innerHTML: a message body, a user id or
// a conversation title is data, and data is never markup.

import { Client, identityServiceProvider, sampleProvider, signIn } from "./chinwag.js";

const $ = (id) => document.getElementById(id);
const TYPING_REPEAT_MS = 1500;

const view = {
  client: null,
  conversations: new Map(), // id -> conversation as GET /v1/conversations shows it
  current: null, // the open conversation's id
  typists: new Map(), // conversation id -> Set(user id)
  lastTyping: 0,
};

/** Run an update the page can live without (a list refresh, a receipt) and report a failure
 *  in the console instead of as an unhandled rejection; the next event or resume redoes it. */
function quietly(promise) {
  promise.catch((error) => console.warn("chinwag:", error.message));
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function titleOf(conversation) {
  const title = conversation.metadata && conversation.metadata.title;
  if (typeof title === "string" && title) return title;
  const others = conversation.participants.filter((p) => p !== view.client.user.user_id);
  return others.join(", ") || "(just you)";
}

function textOf(message) {
  if (message.deleted) return "(deleted)";
  return message.parts.filter((p) => p.mime_type.startsWith("text/")).map((p) => p.body)
    .join("\n");
}

// ---- sign-in and sign-out -------------------------------------------------------------

/** What this tab is called in the app's session list: a web browser, and on what system
 *  (no more: the label is for telling one's own devices apart, not for tracking). */
function browserLabel() {
  return `Web browser on ${navigator.platform || "an unknown system"}`;
}

async function onSignIn() {
  $("sign-in-error").textContent = "";
  const appId = $("app-id").value.trim();
  const userId = $("user-id").value.trim();
  const useService = document.querySelector("input[name=provider]:checked").value === "service";
  const base = window.location.origin;
  const provider = useService
    ? identityServiceProvider($("identity-url").value.trim(), appId)
    : sampleProvider(base, appId, userId, $("display-name").value.trim());
  try {
    start(await signIn(base, appId, provider, { deviceLabel: browserLabel() }));
  } catch (error) {
    $("sign-in-error").textContent = `Sign-in failed: ${error.message}`;
  }
}

function start(client) {
  view.client = client;
  client.addEventListener("event", (e) => onEvent(e.detail.event));
  client.addEventListener("typing", (e) => onTyping(e.detail));
  client.addEventListener("status", (e) => showStatus(e.detail.online));
  client.addEventListener("outbox", (e) => onOutbox(e.detail));
  client.addEventListener("signed-out", (e) => onSignedOut(e.detail.reason));
  const user = client.user;
  $("whoami").textContent = user.display_name ? `${user.display_name} (${user.user_id})`
    : user.user_id;
  $("sign-in").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  client.connect();
  quietly(loadConversations());
}

function onSignedOut(reason) {
  view.client = null;
  view.current = null;
  view.conversations.clear();
  $("conversations").replaceChildren();
  $("messages").replaceChildren();
  $("conversation-title").textContent = "";
  $("whoami").textContent = "";
  $("chat").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  showStatus(false);
  if (reason !== "logout") $("sign-in-error").textContent = `Signed out (${reason}).`;
}

function showStatus(online) {
  const status = $("status");
  status.textContent = online ? "online" : "offline";
  status.dataset.state = online ? "online" : "offline";
  status.className = `status ${status.dataset.state}`;
}

// ---- the conversation list -------------------------------------------------------------

async function loadConversations() {
  const page = await view.client.conversations();
  view.conversations = new Map(page.conversations.map((c) => [c.id, c]));
  renderList();
}

function renderList() {
  const items = [...view.conversations.values()].filter((c) => !c.left);
  items.sort((a, b) => (b.last_message ? b.last_message.sent_at : b.created_at)
    - (a.last_message ? a.last_message.sent_at : a.created_at));
  $("conversations").replaceChildren(...items.map((c) => {
    const item = element("li", c.id === view.current ? "selected" : "");
    item.dataset.id = c.id;
    const button = element("button", "open", titleOf(c));
    button.type = "button";
    button.addEventListener("click", () => quietly(openConversation(c.id)));
    const unread = element("span", "unread", String(c.unread_count));
    unread.hidden = c.unread_count === 0;
    item.append(button, unread);
    return item;
  }));
}

/** A refusal is shown beside the form, not as the input's custom validity: a custom
 *  validity message makes the browser block every later submit until it is cleared, so one
 *  refused chat would have stopped the form for good. */
async function onNewConversation(event) {
  event.preventDefault();
  $("new-conversation-error").textContent = "";
  const ids = $("new-participants").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (!ids.length) return;
  let conversation;
  try {
    conversation = await view.client.createConversation(ids);
  } catch (error) {
    $("new-conversation-error").textContent = error.message;
    return;
  }
  $("new-participants").value = "";
  view.conversations.set(conversation.id, conversation);
  await openConversation(conversation.id);
}

// ---- the message pane ------------------------------------------------------------------

async function openConversation(id) {
  view.current = id;
  const conversation = view.conversations.get(id);
  $("conversation-title").textContent = conversation ? titleOf(conversation) : "";
  $("messages").replaceChildren();
  renderTyping();
  const page = await view.client.messages(id);
  if (view.current !== id) return;
  for (const message of page.messages) showMessage(message);
  for (const item of view.client.outbox) if (item.conversationId === id) showPending(item);
  renderList();
  await markRead(id);
}

function messageNode(id) {
  return $("messages").querySelector(`li[data-id="${CSS.escape(id)}"]`);
}

function showMessage(message) {
  const mine = message.sender_id === view.client.user.user_id;
  const node = element("li", mine ? "message mine" : "message theirs");
  node.dataset.id = message.id;
  node.dataset.position = String(message.position);
  if (message.sender_id) node.dataset.sender = message.sender_id;
  node.append(element("span", "sender", message.sender_id || ""),
    element("span", "body", textOf(message)), element("span", "receipt", mine ? "sent" : ""));
  const old = messageNode(message.id);
  if (old) { old.replaceWith(node); } else { insertInOrder(node, message.position); }
  showReceipts(message.conversation_id);
}

function insertInOrder(node, position) {
  const list = $("messages");
  const later = [...list.children].find((li) => li.dataset.position === undefined
    || Number(li.dataset.position) > position);
  list.insertBefore(node, later || null);
}

function showPending(item) {
  if (messageNode(item.id)) return;
  const node = element("li", "message mine pending");
  node.dataset.id = item.id;
  node.append(element("span", "sender", view.client.user.user_id),
    element("span", "body", item.parts[0].body), element("span", "receipt", "sending…"));
  $("messages").append(node);
}

function onOutbox({ failed }) {
  if (!failed) return;
  const node = messageNode(failed.id);
  if (node) {
    node.classList.add("failed");
    node.querySelector(".receipt").textContent = `not sent: ${failed.failed}`;
  }
}

/** "read" once anyone else has read that far: by the receipts seen (kept across a reload
 *  by the SDK) or by a later message of theirs, since sending marks everything up to it read
 *  for the sender (the server's rule), which a new tab can see without any receipt. A
 *  message with no sender (the app's own) says nothing about who has read what. */
function showReceipts(conversationId) {
  if (conversationId !== view.current) return;
  const replies = [...$("messages").querySelectorAll("li.theirs[data-sender]")]
    .map((li) => Number(li.dataset.position));
  const furthest = Math.max(view.client.othersRead(conversationId), ...replies);
  for (const node of $("messages").querySelectorAll("li.mine:not(.pending)")) {
    const read = Number(node.dataset.position) <= furthest;
    node.querySelector(".receipt").textContent = read ? "read" : "sent";
    node.classList.toggle("read", read);
  }
}

async function markRead(id) {
  const conversation = view.conversations.get(id);
  const nodes = $("messages").querySelectorAll("li[data-position]");
  if (!nodes.length || document.visibilityState !== "visible") return;
  const position = Number(nodes[nodes.length - 1].dataset.position);
  if (conversation && conversation.read_position >= position) return;
  const marks = await view.client.markRead(id, position);
  if (conversation) Object.assign(conversation, marks);
  renderList();
}

function onSend(event) {
  event.preventDefault();
  const text = $("compose-text").value;
  if (!text.trim() || !view.current) return;
  const id = view.client.send(view.current, text);
  showPending({ id, parts: [{ body: text }] });
  $("compose-text").value = "";
  view.client.typing(view.current, "finished");
  view.lastTyping = 0;
}

function onCompose() {
  const now = Date.now();
  if (!view.current || now - view.lastTyping < TYPING_REPEAT_MS) return;
  view.lastTyping = now;
  view.client.typing(view.current, $("compose-text").value ? "started" : "finished");
}

// ---- live events -----------------------------------------------------------------------

function onEvent(event) {
  const data = event.data;
  if (event.type === "message.created") onMessage(data.message);
  else if (event.type === "receipt") onReceipt(data);
  else if (event.type === "message.deleted" && data.conversation_id === view.current) {
    quietly(openConversation(view.current));
  } else if (event.type.startsWith("conversation.")) quietly(loadConversations());
}

function onMessage(message) {
  const conversation = view.conversations.get(message.conversation_id);
  if (!conversation) { quietly(loadConversations()); return; }
  const mine = message.sender_id === view.client.user.user_id;
  conversation.last_message = message;
  conversation.last_position = message.position;
  if (message.conversation_id === view.current) {
    showMessage(message);
    if (!mine) quietly(markRead(view.current));
  } else if (!mine) {
    conversation.unread_count += 1;
  }
  renderList();
}

function onReceipt(data) {
  if (data.user_id === view.client.user.user_id) {
    const conversation = view.conversations.get(data.conversation_id);
    if (conversation && data.read_position >= conversation.last_position) {
      conversation.unread_count = 0;
      conversation.read_position = data.read_position;
      renderList();
    }
    return;
  }
  showReceipts(data.conversation_id); // the SDK has recorded it (othersRead)
}

function onTyping({ conversation_id: id, user_id: user, state }) {
  if (!view.typists.has(id)) view.typists.set(id, new Set());
  const typists = view.typists.get(id);
  if (state === "started") typists.add(user); else typists.delete(user);
  renderTyping();
}

function renderTyping() {
  const typists = [...(view.typists.get(view.current) || [])];
  $("typing").textContent = typists.length ? `${typists.join(", ")} typing…` : "";
}

// ---- wiring ----------------------------------------------------------------------------

function init() {
  $("sign-in-button").addEventListener("click", onSignIn);
  $("sign-out").addEventListener("click", () => view.client && view.client.signOut());
  $("new-conversation").addEventListener("submit", (e) => quietly(onNewConversation(e)));
  $("compose").addEventListener("submit", onSend);
  $("compose-text").addEventListener("input", onCompose);
  document.addEventListener("visibilitychange",
    () => view.current && quietly(markRead(view.current)));
  const params = new URLSearchParams(window.location.search);
  if (params.get("app")) $("app-id").value = params.get("app");
  const restored = Client.restore();
  if (restored) start(restored);
}

init();
