// The chat panel (DOM). Messages are always rendered as text, never as HTML.

/**
 * @typedef {{id: string, from: string, name: string, text: string, at: number}} ChatMessage
 * @typedef {import("./signaling.js").SignalingClient} SignalingClient
 */

const NAME_KEY = "peerscreen.name";

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
}

/**
 * @typedef {{client: SignalingClient, selfId: string, report: (message: string) => void}} ChatPeer
 * @type {ChatPeer | null}
 */
let active = null;
/** @type {Set<string>} */
const shown = new Set();

/** @param {ChatMessage} message */
function show(message) {
  if (shown.has(message.id)) return; // history and live delivery overlap at join time
  shown.add(message.id);
  const log = $("chat-log");
  const item = document.createElement("li");
  item.className = message.from === active?.selfId ? "mine" : "";
  item.dataset.from = message.from;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.name;
  if (message.from === "host") {
    // Marked by who sent it, not by the name: no viewer can pass for the host.
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "host";
    who.append(" ", badge);
  }
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text; // text, never markup
  const when = document.createElement("time");
  when.dateTime = new Date(message.at * 1000).toISOString();
  when.textContent = new Date(message.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  item.append(who, text, when);
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

let formReady = false;

/** The form's handlers, installed once: they send through whichever client is active. */
function setUpForm() {
  const form = /** @type {HTMLFormElement} */ ($("chat-form"));
  const nameInput = /** @type {HTMLInputElement} */ ($("chat-name"));
  const textInput = /** @type {HTMLInputElement} */ ($("chat-text"));
  nameInput.addEventListener("change", () => localStorage.setItem(NAME_KEY, nameInput.value.trim()));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const peer = active;
    const text = textInput.value.trim();
    if (!text || !peer) return;
    // A blank name is sent blank: the server gives the default ("Host", "Viewer 7k2m").
    const name = nameInput.value.trim();
    localStorage.setItem(NAME_KEY, name);
    textInput.disabled = true;
    try {
      await peer.client.sendChat(text, name);
      textInput.value = "";
    } catch (error) {
      peer.report(error instanceof Error ? error.message : String(error));
    } finally {
      if (active === peer) {
        textInput.disabled = false;
        textInput.focus();
      }
    }
  });
}

/**
 * Show the chat panel and connect it to a participant's signaling client (a new room
 * starts with an empty log).
 * @param {SignalingClient} client
 * @param {string} selfId  this participant's id, to mark its own messages
 * @param {(message: string) => void} report  shows an error to the user
 */
export function attachChat(client, selfId, report) {
  if (!formReady) {
    setUpForm();
    formReady = true;
  }
  /** @type {ChatPeer} */
  const peer = { client, selfId, report };
  active = peer;
  shown.clear();
  $("chat-log").replaceChildren();
  $("chat").hidden = false;
  setChatEnabled(true);
  /** @type {HTMLInputElement} */ ($("chat-name")).value = localStorage.getItem(NAME_KEY) ?? "";
  client.addEventListener("message", (event) => {
    const message = /** @type {CustomEvent} */ (event).detail;
    if (message.type === "chat" && active === peer) show(message);
  });
  void client
    .chatHistory()
    .then((messages) => {
      if (active === peer) messages.forEach(show);
    })
    .catch(() => undefined);
}

/**
 * Enable the chat, or disable it with a reason shown in its place (after leaving, a
 * removal or the room's end nothing can be sent).
 * @param {boolean} enabled
 * @param {string} [reason]
 */
export function setChatEnabled(enabled, reason = "") {
  for (const id of ["chat-name", "chat-text"]) {
    /** @type {HTMLInputElement} */ ($(id)).disabled = !enabled;
  }
  /** @type {HTMLButtonElement} */ ($("chat-form").querySelector("button")).disabled = !enabled;
  const note = $("chat-closed");
  note.hidden = enabled;
  note.textContent = reason;
  if (!enabled) active = null;
}

/** Hide the chat panel (a new room starts without it). */
export function hideChat() {
  setChatEnabled(false);
  $("chat").hidden = true;
}
