// The sign-in page: JSON posts to this service. Signing in asks for the cookie
// ({"cookie": true}), so the access token lands in an HttpOnly cookie that this script
// never sees; chinwag's web client then gets identity tokens with it from /chat_token.
// Paths are relative so the service works under a path prefix too.
const $ = (id) => document.getElementById(id);

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = answer.status === 204 ? {} : await answer.json();
  if (!answer.ok) throw new Error(data.error ? data.error.message : `HTTP ${answer.status}`);
  return data;
}

function show(text, signedIn) {
  $("status").textContent = text;  // never innerHTML: names come from users
  $("sign-out-button").hidden = !signedIn;
}

async function signIn() {
  const user = await post("signin", {
    username: $("username").value,
    password: $("password").value,
    cookie: true,
  });
  $("password").value = "";
  show(`Signed in as ${user.display_name || user.user_id} (${user.user_id}).`, true);
}

async function signUp() {
  const body = { username: $("username").value, password: $("password").value };
  if ($("display-name").value) body.display_name = $("display-name").value;
  await post("signup", body);
  await signIn();
}

function guarded(action) {
  return (event) => {
    if (event) event.preventDefault();
    action().catch((error) => show(error.message, false));
  };
}

$("sign-in").addEventListener("submit", guarded(signIn));
$("sign-up-button").addEventListener("click", guarded(signUp));
$("sign-out-button").addEventListener("click", guarded(async () => {
  await post("signout", {});
  show("Signed out.", false);
}));
