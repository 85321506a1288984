// The page: landing, host and viewer screens. All DOM code lives here; the protocol and
// WebRTC logic is in signaling.js, peer.js, host.js and viewer.js.

import { attachChat } from "./chat.js";
import { HostSession, forgetSavedRoom, savedRoom } from "./host.js";
import { SignalingError, api } from "./signaling.js";
import { StatsSampler, describeStats } from "./stats.js";
import { ViewerSession } from "./viewer.js";

/**
 * @typedef {{offerTimeout: number, iceServers: RTCIceServer[], relayAvailable: boolean, relayOnly: boolean}} ClientConfig
 */

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
}

/** @param {"landing" | "host" | "viewer"} view */
function show(view) {
  document.body.dataset.view = view;
  for (const name of ["landing", "host", "viewer"]) $(name).hidden = name !== view;
}

/** @param {string} state @param {string} message */
function setStatus(state, message) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = message;
}

/** @returns {Promise<ClientConfig>} */
async function fetchConfig() {
  try {
    return await api("/api/config");
  } catch {
    return { offerTimeout: 60, iceServers: [], relayAvailable: false, relayOnly: false };
  }
}

/** Fetched once, at once; whoever needs it awaits the same promise. */
const configPromise = fetchConfig();

const params = new URLSearchParams(location.search);
const forceLongPoll = params.get("transport") === "long-poll";
const forceRelay = params.get("relay") === "1";

function canShare() {
  return Boolean(navigator.mediaDevices && "getDisplayMedia" in navigator.mediaDevices);
}

function canWatch() {
  return typeof RTCPeerConnection !== "undefined";
}

function setUpLanding() {
  const start = /** @type {HTMLButtonElement} */ ($("start-sharing"));
  if (!canShare()) {
    start.disabled = true;
    const hint = $("share-unsupported");
    hint.hidden = false;
    hint.textContent = canWatch()
      ? "This browser cannot share its screen (most phones cannot). You can still watch: join a room."
      : "This browser does not support WebRTC, so it can neither share nor watch.";
  }
  start.addEventListener("click", async () => startSharing(await configPromise));
  const saved = savedRoom();
  if (saved) {
    $("resume-card").hidden = false;
    $("resume-code").textContent = saved.roomId;
    $("resume-sharing").addEventListener("click", async () => startSharing(await configPromise, saved));
    $("end-saved-room").addEventListener("click", async () => {
      forgetSavedRoom();
      $("resume-card").hidden = true;
      await api(`/api/rooms/${saved.roomId}`, { method: "DELETE", token: saved.hostToken }).catch(() => undefined);
      setStatus("ended", "Room ended.");
    });
  }
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = /** @type {HTMLInputElement} */ ($("join-code")).value.trim();
    if (!code) return;
    // Same page, new address: the link is shareable and no reload delays the join.
    history.pushState(null, "", `/r/${encodeURIComponent(code)}${location.search}`);
    watch(code);
  });
}

/**
 * @param {ClientConfig} config
 * @param {import("./host.js").RoomInfo & {lastSeq: number} | null} [resume]
 */
async function startSharing(config, resume = null) {
  setStatus("connecting", "Choose what to share...");
  /** @type {MediaStream} */
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  } catch (error) {
    const denied = error instanceof DOMException && error.name === "NotAllowedError";
    setStatus("failed", denied ? "Screen sharing was not allowed. Click Start sharing to try again." : `Could not capture the screen: ${String(error)}`);
    return;
  }
  const session = new HostSession({ stream, forceLongPoll, forceRelay: forceRelay || config.relayOnly });
  session.addEventListener("viewers", (event) => renderViewers(/** @type {CustomEvent} */ (event).detail));
  session.addEventListener("signaling", (event) => {
    const state = /** @type {CustomEvent} */ (event).detail;
    if (state === "open") setStatus("connected", "Sharing. Send the link to your viewers.");
    if (state === "reconnecting") setStatus("reconnecting", "Lost the server; reconnecting...");
  });
  session.addEventListener("ended", () => {
    setStatus("ended", "Sharing stopped.");
    /** @type {HTMLButtonElement} */ ($("stop-sharing")).disabled = true;
  });
  let room;
  try {
    room = await createOrResume(session, resume);
  } catch (error) {
    for (const track of stream.getTracks()) track.stop();
    if (resume) {
      forgetSavedRoom();
      $("resume-card").hidden = true;
    }
    const what = resume ? "resume the room" : "create a room";
    setStatus("failed", `Could not ${what}: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  show("host");
  $("no-relay-hint").hidden = config.relayAvailable;
  setUpHostControls(session);
  $("room-code").textContent = room.roomId;
  const link = /** @type {HTMLInputElement} */ ($("room-link"));
  link.value = room.url;
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(room.url);
      setStatus("connected", "Link copied.");
    } catch {
      link.select();
    }
  });
  /** @type {HTMLImageElement} */ ($("room-qr")).src = `/api/rooms/${room.roomId}/qr.svg`;
  for (const radio of document.querySelectorAll('input[name="quality"]')) {
    radio.addEventListener("change", (event) => {
      const value = /** @type {HTMLInputElement} */ (event.target).value;
      void session.setQuality(value === "motion" ? "motion" : "detail");
      setStatus("connected", value === "motion" ? "Optimized for motion." : "Optimized for text and detail.");
    });
  }
  $("switch-source").addEventListener("click", async () => {
    try {
      const next = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
      await session.replaceStream(next);
      setStatus("connected", "Now sharing the new source.");
    } catch {
      setStatus("connected", "Still sharing the same source.");
    }
  });
  $("stop-sharing").addEventListener("click", () => void session.stop());
  // Leaving the page does not end the room at once: a reload can resume it (see the
  // start page); otherwise the server ends it when the grace period runs out.
}

const AUTH_KEY = "peerscreen.authSecret";

/**
 * Start the session; when the server asks for its AUTH_SECRET, ask the user once per tab.
 * @param {HostSession} session
 * @param {import("./host.js").RoomInfo & {lastSeq: number} | null} resume
 */
async function createOrResume(session, resume) {
  for (;;) {
    try {
      return await session.start(resume, { authSecret: sessionStorage.getItem(AUTH_KEY) ?? undefined });
    } catch (error) {
      if (!(error instanceof SignalingError && error.code === "unauthorized") || resume) throw error;
      sessionStorage.removeItem(AUTH_KEY);
      const secret = await askForSecret();
      sessionStorage.setItem(AUTH_KEY, secret);
    }
  }
}

/** @returns {Promise<string>} */
function askForSecret() {
  const form = /** @type {HTMLFormElement} */ ($("auth-card"));
  const input = /** @type {HTMLInputElement} */ ($("auth-secret"));
  form.hidden = false;
  setStatus("failed", "This server needs its access secret to start sharing.");
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        form.hidden = true;
        setStatus("connecting", "Creating the room...");
        resolve(input.value);
      },
      { once: true },
    );
  });
}

/**
 * The host's controls: passcode, lock, chat, removing viewers.
 * @param {HostSession} session
 */
function setUpHostControls(session) {
  const report = (/** @type {string} */ message) => setStatus("failed", message);
  if (session.client) attachChat(session.client, "host", report);
  const passcode = /** @type {HTMLInputElement} */ ($("host-passcode"));
  $("host-passcode-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!passcode.value) return;
    try {
      await session.setAccess({ passcode: passcode.value });
      setStatus("connected", "Passcode set: new viewers must enter it.");
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
    }
  });
  $("clear-passcode").addEventListener("click", async () => {
    await session.setAccess({ passcode: null }).catch(() => undefined);
    passcode.value = "";
    setStatus("connected", "Passcode removed: anyone with the link can join.");
  });
  const lock = $("lock-room");
  lock.addEventListener("click", async () => {
    const locked = lock.getAttribute("aria-pressed") !== "true";
    try {
      const info = await session.setAccess({ locked });
      lock.setAttribute("aria-pressed", String(info.locked));
      lock.textContent = info.locked ? "Unlock room" : "Lock room";
      setStatus("connected", info.locked ? "Room locked: no new viewers." : "Room open to new viewers.");
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
    }
  });
  // Each viewer's figures and the total upload, once a second.
  /** @type {Map<RTCPeerConnection, StatsSampler>} */
  const samplers = new Map();
  const statsTimer = setInterval(async () => {
    let total = 0;
    for (const entry of session.viewers.values()) {
      let sampler = samplers.get(entry.link.pc);
      if (!sampler) samplers.set(entry.link.pc, (sampler = new StatsSampler(entry.link.pc, "outbound")));
      const stats = await sampler.sample();
      total += stats.bitrateKbps;
      const cell = document.querySelector(`#viewer-list li[data-viewer-id="${entry.id}"] .link-stats`);
      if (cell) {
        cell.textContent = `${stats.width}x${stats.height}, ${Math.round(stats.fps)} fps, ${stats.bitrateKbps} kbit/s, ${stats.rttMs ?? "-"} ms, ${stats.path}`;
      }
    }
    $("upload-total").textContent = session.viewers.size ? `uploading ${total} kbit/s in all` : "";
  }, 1000);
  session.addEventListener("ended", () => clearInterval(statsTimer));
  $("viewer-list").addEventListener("click", (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest("button[data-remove]");
    if (button instanceof HTMLElement && button.dataset.remove) {
      void session.removeViewerFromRoom(button.dataset.remove).catch((error) => report(String(error)));
    }
  });
}

/** @param {{id: string, name: string, state: string}[]} viewers */
function renderViewers(viewers) {
  $("viewer-count").textContent = String(viewers.length);
  const list = $("viewer-list");
  list.replaceChildren(
    ...viewers.map((viewer) => {
      const item = document.createElement("li");
      item.dataset.viewerId = viewer.id;
      item.dataset.state = viewer.state;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = viewer.name;
      name.title = viewer.id;
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = viewer.state;
      const figures = document.createElement("span");
      figures.className = "link-stats";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.dataset.remove = viewer.id;
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${viewer.name} (${viewer.id})`);
      item.append(name, figures, state, remove);
      return item;
    }),
  );
}

/** @param {string} roomId */
function watch(roomId) {
  show("viewer");
  const video = /** @type {HTMLVideoElement} */ ($("remote-video"));
  const unmute = /** @type {HTMLButtonElement} */ ($("unmute"));
  const nextStep = $("next-step");
  if (!canWatch()) {
    setStatus("failed", "This browser does not support WebRTC. Open the link in a current browser.");
    return;
  }
  const session = new ViewerSession({
    roomId,
    settings: configPromise.then((config) => ({
      offerTimeoutMs: config.offerTimeout * 1000,
      forceRelay: forceRelay || config.relayOnly,
    })),
    forceLongPoll,
  });
  session.addEventListener("status", (event) => {
    const { state, message } = /** @type {CustomEvent} */ (event).detail;
    setStatus(state, message);
    document.body.dataset.viewerState = state;
    const over = state === "failed" || state === "ended";
    $("viewer-message").hidden = !over;
    $("viewer-stage").hidden = over; // the stream is over too: no black box
    $("viewer-controls").hidden = over;
    $("viewer-message-title").textContent = message;
    nextStep.textContent = nextStepFor(message);
  });
  $("retry").addEventListener("click", () => location.reload());
  const overlay = $("stats-overlay");
  const statsButton = $("toggle-stats");
  /** @type {ReturnType<typeof setInterval> | null} */
  let statsTimer = null;
  const toggleStats = () => {
    const on = overlay.hidden;
    overlay.hidden = !on;
    statsButton.setAttribute("aria-pressed", String(on));
    if (statsTimer !== null) clearInterval(statsTimer);
    statsTimer = null;
    const pc = session.link?.pc;
    if (!on || !pc) return;
    const sampler = new StatsSampler(pc, "inbound");
    const refresh = async () => {
      const rows = describeStats(await sampler.sample());
      overlay.replaceChildren(
        ...rows.flatMap(([label, value]) => {
          const dt = document.createElement("dt");
          dt.textContent = label;
          const dd = document.createElement("dd");
          dd.textContent = value;
          dd.dataset.stat = label.toLowerCase().replace(/ /g, "-");
          return [dt, dd];
        }),
      );
    };
    void refresh();
    statsTimer = setInterval(() => void refresh(), 1000);
  };
  statsButton.addEventListener("click", toggleStats);
  addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.key === "s" && !event.ctrlKey && !event.metaKey && target.tagName !== "INPUT") toggleStats();
  });
  let reported = false;
  video.requestVideoFrameCallback?.(async () => {
    // Tell the server how long setup took and which path media took (for /metrics).
    const pc = session.link?.pc;
    if (reported || !pc || !session.client) return;
    reported = true;
    const { path } = await new StatsSampler(pc, "inbound").sample();
    await api(`/api/rooms/${session.roomId}/report`, {
      method: "POST",
      token: session.client.token,
      body: { setupMs: performance.now() - session.joinedAt, path: path === "relay" ? "relay" : "direct" },
    }).catch(() => undefined);
  });
  session.addEventListener("stream", (event) => {
    video.srcObject = /** @type {CustomEvent} */ (event).detail;
    unmute.hidden = false;
    void video.play().catch(() => undefined);
  });
  unmute.addEventListener("click", () => {
    video.muted = !video.muted;
    unmute.textContent = video.muted ? "Unmute" : "Mute";
  });
  $("fullscreen").addEventListener("click", () => void video.requestFullscreen?.());
  $("pip").addEventListener("click", () => void video.requestPictureInPicture?.().catch(() => undefined));
  $("leave").addEventListener("click", () => void session.leave());
  session.addEventListener("joined", (event) => {
    attachChat(/** @type {CustomEvent} */ (event).detail, session.viewerId, (message) =>
      setStatus("failed", message),
    );
  });
  session.addEventListener("passcode", (event) => {
    const form = /** @type {HTMLFormElement} */ ($("passcode-card"));
    form.hidden = false;
    $("viewer-stage").hidden = true;
    $("viewer-controls").hidden = true;
    const message = /** @type {CustomEvent} */ (event).detail;
    $("passcode-prompt").textContent = message;
    setStatus("checking", message);
    /** @type {HTMLInputElement} */ ($("viewer-passcode")).focus();
  });
  $("passcode-card").addEventListener("submit", (event) => {
    event.preventDefault();
    $("passcode-card").hidden = true;
    $("viewer-stage").hidden = false;
    $("viewer-controls").hidden = false;
    void session.start(/** @type {HTMLInputElement} */ ($("viewer-passcode")).value);
  });
  addEventListener("pagehide", () => void session.leave());
  void session.start();
}

/** What the viewer can do about a message, in plain words. @param {string} message */
function nextStepFor(message) {
  if (message.startsWith("Room not found")) return "Check the code for typos, or ask the host for a new link.";
  if (message.startsWith("Room is full")) return "Try again when someone leaves, or ask the host for a bigger room.";
  if (message.startsWith("No offer")) return "The host's page may be closed or stuck. Ask the host to check it, then try again.";
  if (message.startsWith("Host ended")) return "Ask the host for a new link if they share again.";
  if (message.startsWith("You left")) return "Use Try again to rejoin.";
  if (message.startsWith("The host removed")) return "Ask the host if you should be here.";
  if (message.startsWith("The host has locked")) return "Ask the host to unlock the room, then try again.";
  if (message.startsWith("Too many")) return "Wait for the time it says, then try again.";
  return "Check your network connection, then try again.";
}

function main() {
  const match = location.pathname.match(/^\/r\/([^/]+)$/);
  if (match) {
    watch(decodeURIComponent(match[1]));
  } else {
    show("landing");
    setUpLanding();
  }
  addEventListener("popstate", () => location.reload());
}

main();
