// The page: landing, host and viewer screens. All DOM code lives here; the protocol and
// WebRTC logic is in signaling.js, peer.js, host.js and viewer.js.

import { attachChat, hideChat, setChatEnabled } from "./chat.js";
import { HostSession, forgetSavedRoom, savedRoom } from "./host.js";
import { roomCodeFrom } from "./roomcode.js";
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
  start.addEventListener("click", async () => {
    // One click, one room: a second click while the first is starting does nothing.
    if (start.disabled) return;
    start.disabled = true;
    try {
      await startSharing(await configPromise);
    } finally {
      start.disabled = !canShare();
    }
  });
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
    const typed = /** @type {HTMLInputElement} */ ($("join-code")).value.trim();
    if (!typed) return;
    const code = roomCodeFrom(typed);
    if (!code) {
      setStatus("failed", "That is not a room code. Room codes look like k7dm-x9paq-3hrt; you can also paste the whole link.");
      return;
    }
    // Same page, new address: the link is shareable and no reload delays the join.
    history.pushState(null, "", `/r/${code}${location.search}`);
    watch(code);
  });
}

/**
 * The room this page hosts, if any. The host controls are wired once and act on it.
 * @type {{session: HostSession | null, config: ClientConfig | null, startedAt: number, watched: Set<string>}}
 */
const hosting = { session: null, config: null, startedAt: 0, watched: new Set() };

/** The live host session, or null once it has ended (nothing may act on a dead room). */
function liveSession() {
  const session = hosting.session;
  return session && !session.ended ? session : null;
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
  session.addEventListener("viewers", (event) => {
    const viewers = /** @type {CustomEvent} */ (event).detail;
    for (const viewer of viewers) if (viewer.state === "connected") hosting.watched.add(viewer.id);
    if (hosting.session === session) renderViewers(viewers);
  });
  session.addEventListener("signaling", (event) => {
    const state = /** @type {CustomEvent} */ (event).detail;
    if (session.ended) return;
    if (state === "open") setStatus("connected", "Sharing. Send the link to your viewers.");
    if (state === "reconnecting") setStatus("reconnecting", "Lost the server; reconnecting...");
  });
  session.addEventListener("ended", (event) => {
    if (hosting.session === session) showHostEnded(/** @type {CustomEvent} */ (event).detail.reason);
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
  hosting.session = session;
  hosting.config = config;
  hosting.startedAt = Date.now();
  hosting.watched = new Set();
  show("host");
  $("host-ended").hidden = true;
  $("host-live").hidden = false;
  if (!hostControlsReady) {
    setUpHostControls();
    hostControlsReady = true;
  }
  resetHostControls();
  $("no-relay-hint").hidden = config.relayAvailable;
  if (session.client) attachChat(session.client, "host", (message) => setStatus("failed", message));
  $("room-code").textContent = room.roomId;
  /** @type {HTMLInputElement} */ ($("room-link")).value = room.url;
  $("local-only-hint").hidden = !isLoopbackUrl(room.url);
  /** @type {HTMLImageElement} */ ($("room-qr")).src = `/api/rooms/${room.roomId}/qr.svg`;
  renderViewers([]);
  $("upload-total").textContent = "";
  showPreview(stream);
  showPaused(false);
  // Leaving the page does not end the room at once: a reload can resume it (see the
  // start page); otherwise the server ends it when the grace period runs out.
}

/** The host's own muted preview of what it shares. @param {MediaStream} stream */
function showPreview(stream) {
  const preview = /** @type {HTMLVideoElement} */ ($("preview"));
  preview.srcObject = stream;
  void preview.play().catch(() => undefined);
}

/** @param {boolean} paused */
function showPaused(paused) {
  const pause = $("pause-sharing");
  pause.textContent = paused ? "Resume sharing" : "Pause";
  pause.setAttribute("aria-pressed", String(paused));
  $("preview-paused").hidden = !paused;
}

/** Does the link lead to this machine only? @param {string} url */
function isLoopbackUrl(url) {
  const host = new URL(url).hostname;
  return host === "localhost" || host.startsWith("127.") || host === "[::1]";
}

/** @param {string} reason  why the room ended (host-ended, host-left, signaling closed) */
function showHostEnded(reason) {
  $("host-live").hidden = true;
  /** @type {HTMLVideoElement} */ ($("preview")).srcObject = null;
  document.title = "Stopped sharing · peerscreen";
  hideChat();
  const seconds = Math.max(1, Math.round((Date.now() - hosting.startedAt) / 1000));
  const watched = hosting.watched.size;
  const who = watched === 0 ? "nobody watched" : watched === 1 ? "1 person watched" : `${watched} people watched`;
  $("host-ended-summary").textContent = `You shared for ${describeDuration(seconds)}; ${who}. The room is closed and its link no longer works.`;
  $("host-ended").hidden = false;
  // Stopping is the host's own choice: said plainly, not as an error.
  if (reason === "host-ended") setStatus("idle", "Sharing stopped.");
  else setStatus("ended", "The room has ended.");
  /** @type {HTMLButtonElement} */ ($("share-again")).focus();
}

/** @param {number} seconds */
function describeDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

let hostControlsReady = false;

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

/** The host page's controls as a new room starts: unlocked, no passcode, best detail. */
function resetHostControls() {
  const lock = $("lock-room");
  lock.setAttribute("aria-pressed", "false");
  lock.textContent = "Lock room";
  /** @type {HTMLInputElement} */ ($("host-passcode")).value = "";
  const detail = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="quality"][value="detail"]'));
  if (detail) detail.checked = true;
}

/**
 * The host's controls, wired once; each acts on the live session, if there is one.
 */
function setUpHostControls() {
  const report = (/** @type {string} */ message) => setStatus("failed", message);
  const link = /** @type {HTMLInputElement} */ ($("room-link"));
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link.value);
      setStatus("connected", "Link copied.");
    } catch {
      link.select();
    }
  });
  for (const radio of document.querySelectorAll('input[name="quality"]')) {
    radio.addEventListener("change", (event) => {
      const session = liveSession();
      if (!session) return;
      const value = /** @type {HTMLInputElement} */ (event.target).value;
      void session.setQuality(value === "motion" ? "motion" : "detail");
      setStatus("connected", value === "motion" ? "Optimized for motion." : "Optimized for text and detail.");
    });
  }
  $("switch-source").addEventListener("click", async () => {
    // Never capture anything for a room that is over: that would be a live capture
    // nobody asked for.
    if (!liveSession()) return;
    /** @type {MediaStream} */
    let next;
    try {
      next = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    } catch {
      setStatus("connected", "Still sharing the same source.");
      return;
    }
    const session = liveSession();
    if (!session) {
      for (const track of next.getTracks()) track.stop();
      return;
    }
    await session.replaceStream(next);
    showPreview(session.stream);
    setStatus("connected", "Now sharing the new source.");
  });
  $("stop-sharing").addEventListener("click", () => void liveSession()?.stop());
  const pause = $("pause-sharing");
  pause.addEventListener("click", async () => {
    const session = liveSession();
    if (!session) return;
    const paused = !session.paused;
    try {
      await session.setPaused(paused);
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
      return;
    }
    showPaused(paused);
    setStatus("connected", paused ? "Paused: viewers see that you paused." : "Sharing again.");
  });
  $("share-again").addEventListener("click", async () => {
    const button = /** @type {HTMLButtonElement} */ ($("share-again"));
    if (button.disabled) return;
    button.disabled = true;
    try {
      await startSharing(hosting.config ?? (await configPromise));
    } finally {
      button.disabled = false;
    }
  });
  const passcode = /** @type {HTMLInputElement} */ ($("host-passcode"));
  $("host-passcode-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const session = liveSession();
    if (!passcode.value || !session) return;
    try {
      await session.setAccess({ passcode: passcode.value });
      setStatus("connected", "Passcode set: new viewers must enter it.");
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
    }
  });
  $("clear-passcode").addEventListener("click", async () => {
    const session = liveSession();
    if (!session) return;
    await session.setAccess({ passcode: null }).catch(() => undefined);
    passcode.value = "";
    setStatus("connected", "Passcode removed: anyone with the link can join.");
  });
  const lock = $("lock-room");
  lock.addEventListener("click", async () => {
    const session = liveSession();
    if (!session) return;
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
  // Each viewer's figures and the total upload, once a second, while a room is live.
  /** @type {WeakMap<RTCPeerConnection, StatsSampler>} */
  const samplers = new WeakMap();
  setInterval(async () => {
    const session = liveSession();
    if (!session) return;
    let total = 0;
    /** @param {RTCPeerConnection} pc */
    const sampleOf = async (pc) => {
      let sampler = samplers.get(pc);
      if (!sampler) samplers.set(pc, (sampler = new StatsSampler(pc, "outbound")));
      const stats = await sampler.sample();
      total += stats.bitrateKbps;
      return `${stats.codec || "-"}, ${stats.width}x${stats.height}, ${Math.round(stats.fps)} fps, ${stats.bitrateKbps} kbit/s, ${stats.rttMs ?? "-"} ms, ${stats.path}`;
    };
    for (const entry of session.viewers.values()) {
      const cell = document.querySelector(`#viewer-list li[data-viewer-id="${entry.id}"] .link-stats`);
      const text = entry.link ? await sampleOf(entry.link.pc) : "from the media server";
      if (cell) cell.textContent = text;
    }
    const upload = session.publisher ? await sampleOf(session.publisher.pc) : "";
    if (liveSession() === session) {
      $("room-path").textContent =
        session.path === "broadcast"
          ? `Broadcast: one upload to the media server (${session.publisherState}${upload ? `, ${upload}` : ""}) serves every viewer.`
          : "Direct: each viewer receives from this browser.";
      $("upload-total").textContent = session.viewers.size ? `uploading ${total} kbit/s in all` : "";
    }
  }, 1000);
  $("viewer-list").addEventListener("click", (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest("button[data-remove]");
    const session = liveSession();
    if (session && button instanceof HTMLElement && button.dataset.remove) {
      void session.removeViewerFromRoom(button.dataset.remove).catch((error) => report(String(error)));
    }
  });
}

/** @param {{id: string, name: string, state: string}[]} viewers */
function renderViewers(viewers) {
  $("viewer-count").textContent = String(viewers.length);
  $("no-viewers").hidden = viewers.length > 0;
  const watching = viewers.length === 1 ? "1 viewer" : `${viewers.length} viewers`;
  document.title = `Sharing · ${watching} · peerscreen`;
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
    document.body.dataset.viewerState = state;
    const over = state === "failed" || state === "ended";
    document.title = over ? "Not watching · peerscreen" : state === "connected" ? "Watching · peerscreen" : "Connecting · peerscreen";
    if (over) $("audience").hidden = true;
    // Said once: the card tells what happened, the status bar only the state.
    setStatus(state, over ? (state === "ended" ? "Not watching" : "Not connected") : message);
    $("viewer-message").hidden = !over;
    $("viewer-stage").hidden = over; // the stream is over too: no black box
    $("viewer-controls").hidden = over;
    $("viewer-message-title").textContent = message;
    const next = nextStepFor(message);
    nextStep.textContent = next.hint;
    $("check-connection").hidden = !next.connection;
    if (over) setChatEnabled(false, "The chat closed with the room for you.");
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
  watchForStalls(video);
  let reported = false;
  video.requestVideoFrameCallback?.(async () => {
    // Tell the server how long setup took and which path media took (for /metrics).
    const pc = session.link?.pc;
    if (reported || !pc || !session.client) return;
    reported = true;
    const { path } = await new StatsSampler(pc, "inbound").sample();
    // Left (or ended) meanwhile: the token no longer works, and nothing is to be said.
    if (session.closed || session.status.state === "ended") return;
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
    const client = /** @type {CustomEvent} */ (event).detail;
    attachChat(client, session.viewerId, (message) => setStatus("failed", message));
    client.addEventListener("message", (/** @type {Event} */ message) => {
      const detail = /** @type {CustomEvent} */ (message).detail;
      if (detail.type !== "audience") return;
      const audience = $("audience");
      audience.textContent = detail.viewers === 1 ? "Only you are watching." : `${detail.viewers} people are watching.`;
      audience.hidden = false;
    });
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

const STALL_MS = 2000;

/**
 * Say so on the video when no new frame has come for a while although the session is
 * live: a frozen picture must not pass for a still screen.
 * @param {HTMLVideoElement} video
 */
function watchForStalls(video) {
  const note = $("stalled");
  let lastFrame = 0;
  const onFrame = () => {
    lastFrame = performance.now();
    note.hidden = true;
    video.requestVideoFrameCallback(onFrame);
  };
  if (!("requestVideoFrameCallback" in video)) return;
  video.requestVideoFrameCallback(onFrame);
  setInterval(() => {
    const state = document.body.dataset.viewerState;
    if (state === "paused") {
      note.textContent = "The host paused sharing. The picture comes back when they resume.";
      note.hidden = false;
      return;
    }
    const live = state === "connected" || state === "reconnecting" || state === "connecting";
    const still = performance.now() - lastFrame;
    if (!lastFrame || !live || still < STALL_MS) {
      note.hidden = true;
      return;
    }
    const seconds = Math.floor(still / 1000);
    note.textContent =
      state === "connected"
        ? `No new picture for ${seconds} s: the host may have paused, or its connection is struggling.`
        : `No new picture for ${seconds} s: the host is not connected.`;
    note.hidden = false;
  }, 500);
}

/**
 * What the viewer can do about a message, in plain words, and whether it may be the
 * connection's fault (only then is the connectivity check offered).
 * @param {string} message
 * @returns {{hint: string, connection: boolean}}
 */
function nextStepFor(message) {
  /** @type {[string, string][]} */
  const known = [
    ["Room not found", "Check the code for typos, or ask the host for a new link."],
    ["That is not a room code", "Room codes look like k7dm-x9paq-3hrt; you can also paste the whole link."],
    ["Room is full", "Try again when someone leaves, or ask the host for a bigger room."],
    ["No offer", "The host's page may be closed or stuck. Ask the host to check it, then try again."],
    ["Host ended", "Ask the host for a new link if they share again."],
    ["This room no longer exists", "Ask the host for a new link."],
    ["You left", "Use Try again to rejoin."],
    ["The host removed", "Ask the host if you should be here."],
    ["The host has locked", "Ask the host to unlock the room, then try again."],
    ["Too many", "Wait for the time it says, then try again."],
  ];
  for (const [start, hint] of known) if (message.startsWith(start)) return { hint, connection: false };
  return { hint: "Check your network connection, then try again.", connection: true };
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
