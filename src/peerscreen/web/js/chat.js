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
 * Show the chat panel and connect it to a participant's signaling client.
 * @param {SignalingClient} client
 * @param {string} selfId  this participant's id, to mark its own messages
 * @param {(message: string) => void} report  shows an error to the user
 */
export function attachChat(client, selfId, report) {
  const panel = $("chat");
  const log = $("chat-log");
  const form = /** @type {HTMLFormElement} */ ($("chat-form"));
  const nameInput = /** @type {HTMLInputElement} */ ($("chat-name"));
  const textInput = /** @type {HTMLInputElement} */ ($("chat-text"));
  panel.hidden = false;
  nameInput.value = localStorage.getItem(NAME_KEY) ?? "";
  nameInput.addEventListener("change", () => localStorage.setItem(NAME_KEY, nameInput.value.trim()));

  /** @type {Set<string>} */
  const shown = new Set();
  /** @param {ChatMessage} message */
  const show = (message) => {
    if (shown.has(message.id)) return; // history and live delivery overlap at join time
    shown.add(message.id);
    const item = document.createElement("li");
    item.className = message.from === selfId ? "mine" : "";
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
  };

  client.addEventListener("message", (event) => {
    const message = /** @type {CustomEvent} */ (event).detail;
    if (message.type === "chat") show(message);
  });
  void client.chatHistory().then((messages) => messages.forEach(show)).catch(() => undefined);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (!text) return;
    const name = nameInput.value.trim();
    localStorage.setItem(NAME_KEY, name);
    textInput.disabled = true;
    try {
      await client.sendChat(text, name);
      textInput.value = "";
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
    } finally {
      textInput.disabled = false;
      textInput.focus();
    }
  });
}
