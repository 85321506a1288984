// The connectivity check page: what the browser can do, which ICE candidates it gathers
// with this server's STUN/TURN servers, and a verdict in plain words.

import { api } from "./signaling.js";

const GATHER_TIMEOUT_MS = 10_000;

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
}

/**
 * @param {string} listId @param {string} key
 * @param {boolean | null} ok  null: not tested
 * @param {string} text
 */
function addRow(listId, key, ok, text) {
  const item = document.createElement("li");
  item.dataset.check = key;
  item.dataset.ok = ok === null ? "untested" : String(ok);
  item.textContent = `${ok === null ? "Not tested" : ok ? "Yes" : "No"}: ${text}`;
  $(listId).append(item);
}

/**
 * Gather candidates with the given servers; the kinds found and the servers' errors.
 * @param {RTCConfiguration} config
 * @returns {Promise<{types: Set<string>, errors: string[]}>}
 */
async function gather(config) {
  const pc = new RTCPeerConnection(config);
  /** @type {Set<string>} */
  const types = new Set();
  /** @type {string[]} */
  const errors = [];
  pc.createDataChannel("check");
  const done = new Promise((resolve) => {
    pc.onicecandidate = ({ candidate }) => {
      if (candidate === null) resolve(null);
      else if (candidate.type) types.add(candidate.type);
    };
    pc.onicecandidateerror = (event) => {
      const error = /** @type {RTCPeerConnectionIceErrorEvent} */ (event);
      errors.push(`${error.url}: ${error.errorCode} ${error.errorText}`);
    };
    setTimeout(() => resolve(null), GATHER_TIMEOUT_MS);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  return { types, errors };
}

/**
 * @param {string} verdict @param {string} title @param {string} text
 */
function conclude(verdict, title, text) {
  const box = $("verdict");
  box.dataset.verdict = verdict;
  $("verdict-title").textContent = title;
  $("verdict-text").textContent = text;
  const status = $("status");
  const failed = verdict === "relay-broken" || verdict === "no-webrtc";
  // Green only for what was shown to work; a missing or untested relay is no success.
  const good = verdict === "direct-ok" || verdict === "relay-ok";
  status.dataset.state = failed ? "failed" : good ? "connected" : "warning";
  box.dataset.tone = status.dataset.state;
  status.textContent = title;
}

async function main() {
  const hasWebRTC = typeof RTCPeerConnection !== "undefined";
  const canShare = Boolean(navigator.mediaDevices && "getDisplayMedia" in navigator.mediaDevices);
  const canHear = Boolean(navigator.mediaDevices && "getUserMedia" in navigator.mediaDevices);
  addRow("capabilities", "webrtc", hasWebRTC, "WebRTC (needed to watch and to share)");
  addRow("capabilities", "screen", canShare, "Screen capture (needed to share)");
  addRow("capabilities", "audio", canHear, "Audio capture");
  if (!hasWebRTC) {
    conclude("no-webrtc", "This browser cannot use peerscreen", "Open the link in a current Chrome, Edge, Firefox or Safari.");
    return;
  }
  const ice = await api("/api/check/ice-servers");
  const { types, errors } = await gather({ iceServers: ice.iceServers });
  addRow("candidates", "host", types.has("host"), "Local addresses");
  // TURN servers answer STUN too: with neither configured, nothing was asked.
  const stunAsked = (ice.iceServers ?? []).length > 0;
  addRow(
    "candidates",
    "srflx",
    stunAsked ? types.has("srflx") : null,
    stunAsked
      ? "Public address seen by STUN (direct connections across NAT)"
      : "Public address seen by STUN (no STUN server is configured here)",
  );
  addRow(
    "candidates",
    "relay",
    ice.relayAvailable && ice.relayCheckable ? types.has("relay") : null,
    ice.relayAvailable ? "Relay address from TURN" : "Relay address from TURN (no relay is configured here)",
  );
  if (!ice.relayAvailable) {
    conclude(
      "no-relay",
      "No relay is configured",
      "Viewers behind strict NAT or firewalls will not connect: ask the server's admin to set up TURN (coturn).",
    );
  } else if (!ice.relayCheckable) {
    conclude(
      "relay-unchecked",
      "A relay is configured, but this page cannot test it",
      "The relay uses fixed credentials, which are never handed to this page. Viewers get them when they join a room.",
    );
  } else if (!types.has("relay")) {
    conclude(
      "relay-broken",
      "The relay (TURN) server did not give a relay address",
      `Viewers behind strict NAT will not connect. ${errors[0] ?? "The relay did not answer: it may be down or blocked."}`,
    );
  } else if (types.has("srflx")) {
    conclude("direct-ok", "Direct connections will work on your network", "And the relay is there for viewers who need it.");
  } else {
    conclude(
      "relay-ok",
      "The relay works",
      "peerscreen will use the relay where a direct connection cannot be made (for example when UDP is blocked).",
    );
  }
}

void main();
