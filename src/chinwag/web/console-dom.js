// console-dom.js: the few DOM helpers the console's sections share. Everything the server
// sends (an app name, a user id, a webhook URL, an error message) goes into the page as
// textContent: it is data, never markup.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Seconds since the epoch as "YYYY-MM-DD HH:MM UTC" ("—" for none): the platform API
 *  keeps last-seen to the minute, so minutes are what there is to show. */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return `${new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function button(label, onClick, className) {
  const node = element("button", className, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

/** A table row of cells: strings become text cells, nodes (buttons) go in as they are. */
export function row(cells, className) {
  const tr = element("tr", className);
  for (const cell of cells) {
    const td = element("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? "—" : String(cell);
    tr.append(td);
  }
  return tr;
}

/** Wrap an action so a failure shows the server's message in `errorId` (and a success
 *  clears it) instead of becoming an unhandled rejection; returns what the action did. */
export function guarded(errorId, action) {
  return async (...args) => {
    const line = $(errorId);
    line.textContent = "";
    try {
      return await action(...args);
    } catch (error) {
      line.textContent = error.message;
      return undefined;
    }
  };
}

/** Show a secret the server returns only once (a private key, an HMAC or webhook secret)
 *  until the person says they have copied it. */
export function showOnce(title, text) {
  $("shown-once-title").textContent = title;
  $("shown-once-text").textContent = text;
  $("shown-once").hidden = false;
}

export function forgetShownOnce() {
  $("shown-once-text").textContent = "";
  $("shown-once").hidden = true;
}
