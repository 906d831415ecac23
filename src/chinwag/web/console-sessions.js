// console-sessions.js: look a user up by id, list their live sessions (device label,
// opened, last seen, address) and end one or all of them. With "wipe" the ended devices
// are told to delete their local data too (the stolen-phone case); either way the tokens
// stop working at once and the devices' sockets close.

import { $, button, element, guarded, row, when } from "./console-dom.js";

let ctx = null;
let userId = null; // the user whose sessions are shown

export function setUp(context) {
  ctx = context;
  $("lookup-user").addEventListener("submit", onLookUp);
  $("end-all").addEventListener("click", () => end({ user_id: userId }));
}

/** Another app was chosen: its users are another app's, so forget the one shown. */
export function reset() {
  userId = null;
  $("user").hidden = true;
  $("sessions").replaceChildren();
  $("ended").textContent = "";
  $("users-error").textContent = "";
}

const onLookUp = guarded("users-error", async (event) => {
  event.preventDefault();
  const wanted = $("user-lookup").value.trim();
  if (!wanted) throw new Error("Type a user id.");
  reset();
  const user = await ctx.platform.user(ctx.appId, wanted);
  userId = user.user_id;
  const name = user.display_name ? `${user.display_name} (${user.user_id})` : user.user_id;
  const flags = [user.agent ? "agent" : "", user.anonymous ? "anonymous" : "",
    user.suspended_at ? `suspended ${when(user.suspended_at)}` : ""].filter(Boolean);
  $("user-summary").replaceChildren(element("strong", "", name),
    element("span", "hint", flags.length ? ` — ${flags.join(", ")}` : ""));
  $("user").hidden = false;
  await load();
});

const load = guarded("users-error", async () => {
  const { sessions } = await ctx.platform.sessions(ctx.appId, userId);
  $("sessions").replaceChildren(...sessions.map(sessionRow));
  if (!sessions.length) $("sessions").append(row(["no live sessions"], "empty"));
  $("end-all").disabled = !sessions.length;
});

function sessionRow(session) {
  const endOne = button("End", () => end({ session_id: session.session_id }));
  const tr = row([session.device_label || "(no label)", when(session.created_at),
    when(session.last_seen_at), session.address, endOne]);
  tr.dataset.sessionId = session.session_id;
  return tr;
}

const end = guarded("users-error", async (selector) => {
  const wipe = $("wipe").checked;
  const answer = await ctx.platform.endSessions(ctx.appId, selector, wipe);
  const count = answer.ended_session_ids.length;
  $("ended").textContent = `Ended ${count} session${count === 1 ? "" : "s"}`
    + (answer.wipe ? ", with wipe." : ".");
  await load();
});
