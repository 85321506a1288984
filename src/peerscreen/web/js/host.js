// The host's side of a room: one peer connection per viewer, all fed by one capture.
// No DOM code here.

import { PeerLink } from "./peer.js";
import { withStartBitrate } from "./sdp.js";
import { SignalingClient, api, fetchRtcConfig, rtcConfig } from "./signaling.js";

/**
 * @typedef {{id: string, name: string, state: RTCPeerConnectionState | "joining" | "broadcast", link: PeerLink | null}} ViewerEntry
 *   ``link`` is the viewer's own connection (mesh); null once it receives from the media server.
 * @typedef {{roomId: string, hostToken: string, url: string, expiresAt: number, ice?: import("./signaling.js").IceAnswer}} RoomInfo
 *   ``ice`` comes with a new room only; a saved one fetches fresh credentials.
 * @typedef {"detail" | "motion"} Quality
 */

const SAVED_ROOM_KEY = "peerscreen.hostRoom";

/**
 * The room this tab was hosting before a reload, if it may still be open.
 * @returns {(RoomInfo & {lastSeq: number}) | null}
 */
export function savedRoom() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SAVED_ROOM_KEY) ?? "null");
    return saved && typeof saved.roomId === "string" ? saved : null;
  } catch {
    return null;
  }
}

export function forgetSavedRoom() {
  sessionStorage.removeItem(SAVED_ROOM_KEY);
}

/**
 * Encoder settings per quality, from the figures in benchmarks/README.md (glass-to-glass:
 * frame rate, degradation preference and resolution per preset). Text needs every pixel
 * and few frames: 15 fps is the one rate that kept small text sharp at 300 kbit/s (SSIM
 * 0.995) with a median under 65 ms. Motion needs frames and can give up resolution:
 * maintain-framerate kept p95 lower than balanced at 1% loss.
 * @type {Record<Quality, {maxFramerate: number, degradationPreference: RTCDegradationPreference}>}
 */
const QUALITY = {
  detail: { maxFramerate: 15, degradationPreference: "maintain-resolution" },
  motion: { maxFramerate: 30, degradationPreference: "maintain-framerate" },
};

/**
 * The codec offered first, whatever the browser's own order (Safari's puts H.264 first).
 * VP8 in both presets: in benchmarks/README.md (glass-to-glass) it alone kept every run
 * within 50 ms at the median and 70 ms at p95 with no frame showing a stale region, and
 * kept small text at SSIM 0.995 at 300 kbit/s. A viewer that cannot decode it answers
 * with a codec it can.
 */
const PREFERRED_CODEC = "video/VP8";

/**
 * Offer ``mimeType`` first on the connection's video transceivers (the rest follow in the
 * browser's order). Applies to the next offer.
 * @param {RTCPeerConnection} pc @param {string} mimeType
 */
function preferCodec(pc, mimeType) {
  if (!("setCodecPreferences" in RTCRtpTransceiver.prototype)) return;
  const codecs = RTCRtpSender.getCapabilities?.("video")?.codecs ?? [];
  const wanted = mimeType.toLowerCase();
  const first = codecs.filter((codec) => codec.mimeType.toLowerCase() === wanted);
  if (!first.length) return; // this browser cannot send it: its own order stands
  const ordered = [...first, ...codecs.filter((codec) => !first.includes(codec))];
  for (const transceiver of pc.getTransceivers()) {
    if (transceiver.sender.track?.kind !== "video" || transceiver.currentDirection === "stopped") continue;
    try {
      transceiver.setCodecPreferences(ordered);
    } catch {
      // A browser that refuses the list keeps its own order: every viewer still decodes.
    }
  }
}

/**
 * Where a new connection's bandwidth estimate starts (kbit/s), instead of Chromium's 300:
 * the first frames go out at full size and sharp (benchmarks/README.md, first frame).
 */
const START_BITRATE_KBPS = 2000;

/** @param {import("./peer.js").Description} desc */
const startFast = (desc) => ({ type: desc.type, sdp: withStartBitrate(desc.sdp, START_BITRATE_KBPS) });

export class HostSession extends EventTarget {
  /**
   * @param {{stream: MediaStream, forceLongPoll?: boolean, forceRelay?: boolean}} options
   * Events: "viewers" (detail: ViewerEntry[]), "ended" (detail: {reason: string}),
   * "signaling" (detail: string, the signaling state).
   */
  constructor(options) {
    super();
    this.stream = options.stream;
    /** @type {RTCConfiguration} */
    this.config = {};
    this.forceLongPoll = options.forceLongPoll ?? false;
    this.forceRelay = options.forceRelay ?? false;
    /** @type {Map<string, ViewerEntry>} */
    this.viewers = new Map();
    /** @type {RoomInfo | null} */
    this.room = null;
    /** @type {SignalingClient | null} */
    this.client = null;
    this.ended = false;
    this.paused = false;
    /** @type {Quality} */
    this.quality = "detail";
    /** @type {"mesh" | "broadcast"} how viewers receive: from this page, or the media server */
    this.path = "mesh";
    /** @type {PeerLink | null} the one upload to the media server, in a broadcast room */
    this.publisher = null;
    /** @type {RTCPeerConnectionState | "none"} */
    this.publisherState = "none";
    this.applyContentHint();
  }

  /** Every connection this page sends on: each mesh viewer's, and the media server's. */
  links() {
    const links = [...this.viewers.values()].flatMap((entry) => (entry.link ? [entry.link] : []));
    return this.publisher ? [...links, this.publisher] : links;
  }

  applyContentHint() {
    for (const track of this.stream.getVideoTracks()) track.contentHint = this.quality;
  }

  /**
   * Switch between sharp text and smooth motion, on every viewer's connection, without
   * renegotiating.
   * @param {Quality} quality
   */
  async setQuality(quality) {
    this.quality = quality;
    this.applyContentHint();
    await Promise.all(this.links().map((link) => this.applyQuality(link)));
  }

  /** @param {PeerLink} link */
  async applyQuality(link) {
    const settings = QUALITY[this.quality];
    for (const sender of link.pc.getSenders()) {
      if (sender.track?.kind !== "video") continue;
      const parameters = sender.getParameters();
      if (!parameters.encodings?.length) continue; // not negotiated yet: applied on connect
      for (const encoding of parameters.encodings) {
        encoding.maxFramerate = settings.maxFramerate;
        encoding.scaleResolutionDownBy = 1;
      }
      // Chromium reads the preference from the parameters; the DOM typings lack it.
      /** @type {any} */ (parameters).degradationPreference = settings.degradationPreference;
      await sender.setParameters(parameters).catch((error) => link.fail(error));
    }
  }

  /**
   * Create the room (or take back a saved one after a reload) and start answering viewers.
   * @param {(RoomInfo & {lastSeq: number}) | null} [resume]
   * @param {{authSecret?: string, passcode?: string}} [options]
   * @returns {Promise<RoomInfo>}
   */
  async start(resume = null, options = {}) {
    const room =
      resume ??
      /** @type {RoomInfo} */ (
        await api("/api/rooms", {
          method: "POST",
          token: options.authSecret,
          body: options.passcode ? { passcode: options.passcode } : undefined,
        })
      );
    this.room = room;
    // A new room's answer carries the ICE servers; a resumed one's credentials may be stale.
    this.config = room.ice
      ? rtcConfig(room.ice, this.forceRelay)
      : await fetchRtcConfig(room.roomId, room.hostToken, this.forceRelay);
    const client = new SignalingClient({
      roomId: room.roomId,
      token: room.hostToken,
      forceLongPoll: this.forceLongPoll,
      resume: resume?.lastSeq ?? 0,
    });
    this.client = client;
    client.addEventListener("message", (event) => {
      this.onMessage(/** @type {CustomEvent} */ (event).detail);
      this.save();
    });
    client.addEventListener("state", (event) => {
      this.dispatchEvent(new CustomEvent("signaling", { detail: /** @type {CustomEvent} */ (event).detail }));
    });
    client.addEventListener("closed", () => this.finish("signaling closed"));
    for (const track of this.stream.getTracks()) {
      // The browser's own "Stop sharing" button ends the track: end the room with it.
      track.addEventListener("ended", () => void this.stop());
    }
    client.start();
    this.save();
    if (resume) {
      // Viewers still here from before the reload get a fresh connection each, or, in
      // a broadcast room, one new upload to the media server serves them all.
      const info = await api(`/api/rooms/${room.roomId}`, { token: room.hostToken });
      if (info.path === "broadcast") this.publish();
      for (const viewer of info.viewers ?? []) this.addViewer(viewer.viewerId);
    }
    return room;
  }

  /** Remember the room for this tab, so a reload can take it back. */
  save() {
    if (!this.room || this.ended) return;
    const { ice: _credentials, ...room } = this.room; // short-lived: fetched again on resume
    const saved = { ...room, lastSeq: this.client?.lastSeq ?? 0 };
    sessionStorage.setItem(SAVED_ROOM_KEY, JSON.stringify(saved));
  }

  /** @param {{type: string, from?: string, viewerId?: string, [k: string]: any}} message */
  onMessage(message) {
    switch (message.type) {
      case "viewer-joined":
        if (message.viewerId) this.addViewer(message.viewerId, message.name);
        break;
      case "chat": {
        const entry = message.from ? this.viewers.get(message.from) : undefined;
        if (entry && message.name && entry.name !== message.name) {
          entry.name = message.name; // names are editable: the latest one counts
          this.emitViewers();
        }
        break;
      }
      case "viewer-left":
        if (message.viewerId) this.removeViewer(message.viewerId);
        break;
      case "answer":
      case "candidate": {
        if (message.from === "sfu") {
          void this.publisher?.handle(message);
          break;
        }
        const entry = message.from ? this.viewers.get(message.from) : undefined;
        if (entry?.link) void entry.link.handle(message);
        break;
      }
      case "broadcast":
        if (message.state === "publish") this.publish();
        else if (message.state === "mesh") this.backToMesh();
        break;
      case "viewer-switched": {
        // Its stream from the media server renders: their own connection can go.
        const entry = message.viewerId ? this.viewers.get(message.viewerId) : undefined;
        if (entry?.link) {
          entry.link.close();
          entry.link = null;
          entry.state = "broadcast";
          this.emitViewers();
        }
        break;
      }
      case "room-ended":
        this.finish(message.reason ?? "ended");
        break;
    }
  }

  /** @param {string} viewerId @param {string} [name] */
  addViewer(viewerId, name) {
    if (this.viewers.has(viewerId) || !this.client) return;
    /** @type {ViewerEntry} */
    const entry = { id: viewerId, name: name || `Viewer ${viewerId.slice(1, 5)}`, state: "joining", link: null };
    this.viewers.set(viewerId, entry);
    // In a broadcast room a new viewer receives from the media server alone.
    if (this.path === "broadcast") entry.state = "broadcast";
    else this.connectViewer(entry);
    this.emitViewers();
  }

  /**
   * A connection that sends this page's stream to ``to`` (a viewer, or "sfu"), set up
   * for the current quality before its first frame.
   * @param {SignalingClient} client @param {string} to
   * @param {(state: RTCPeerConnectionState) => void} onState  while the link is current
   * @param {(link: PeerLink) => boolean} isCurrent  whether ``link`` is still the one in use
   */
  sendingLink(client, to, onState, isCurrent) {
    const link = new PeerLink({
      polite: false,
      config: this.config,
      send: (type, fields) => client.send(type, { ...fields, to }),
      editRemote: startFast,
    });
    link.addEventListener("state", (event) => {
      if (!isCurrent(link)) return;
      const state = /** @type {CustomEvent} */ (event).detail;
      onState(state);
      if (state === "connected") void this.applyQuality(link);
      this.emitViewers();
    });
    // Adding the tracks fires negotiationneeded: the link sends its offer.
    for (const track of this.stream.getTracks()) link.pc.addTrack(track, this.stream);
    preferCodec(link.pc, PREFERRED_CODEC);
    if (this.paused) void this.applyTracks(link);
    // Set the encoder up before the first frame: changing it later restarts it.
    void this.applyQuality(link);
    return link;
  }

  /**
   * A connection of the viewer's own, straight from this page (mesh).
   * @param {ViewerEntry} entry
   */
  connectViewer(entry) {
    if (!this.client) return;
    entry.state = "joining";
    entry.link = this.sendingLink(
      this.client,
      entry.id,
      (state) => (entry.state = state),
      (link) => entry.link === link,
    );
  }

  /**
   * Publish once to the room's media server, which serves every viewer from now on.
   * Viewers keep their own connections until their broadcast stream renders.
   */
  publish() {
    if (!this.client || this.ended) return;
    this.path = "broadcast";
    this.publisher?.close();
    this.publisherState = "new";
    this.publisher = this.sendingLink(
      this.client,
      "sfu",
      (state) => (this.publisherState = state),
      (link) => this.publisher === link,
    );
    this.emitViewers();
  }

  /** The media server is gone and none other answers: each viewer gets its own connection again. */
  backToMesh() {
    this.path = "mesh";
    this.publisher?.close();
    this.publisher = null;
    this.publisherState = "none";
    for (const entry of this.viewers.values()) if (!entry.link) this.connectViewer(entry);
    this.emitViewers();
  }

  /** @param {string} viewerId */
  removeViewer(viewerId) {
    const entry = this.viewers.get(viewerId);
    if (!entry) return;
    entry.link?.close();
    this.viewers.delete(viewerId);
    this.emitViewers();
  }

  emitViewers() {
    this.dispatchEvent(new CustomEvent("viewers", { detail: [...this.viewers.values()] }));
  }

  /**
   * Share something else without reconnecting anyone: swap the tracks in place.
   * @param {MediaStream} stream
   */
  async replaceStream(stream) {
    if (this.ended) {
      // Nothing may stay captured for a room that is over.
      for (const track of stream.getTracks()) track.stop();
      throw new Error("The room has ended.");
    }
    const old = this.stream;
    this.stream = stream;
    // Paused, the senders stay empty; resuming picks the new tracks up.
    for (const link of this.links()) await this.applyTracks(link);
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => void this.stop());
    }
    this.applyContentHint();
    for (const track of old.getTracks()) track.stop();
  }

  /**
   * Pause or resume sharing: the senders stop sending (no renegotiation, the capture goes
   * on for the host's preview) and viewers are told.
   * @param {boolean} paused
   */
  async setPaused(paused) {
    if (this.ended) return;
    this.paused = paused;
    await Promise.all(this.links().map((link) => this.applyTracks(link)));
    await this.setAccess({ paused });
  }

  /**
   * Make the link's senders carry the current stream's tracks, or nothing while paused.
   * @param {PeerLink} link
   */
  async applyTracks(link) {
    for (const transceiver of link.pc.getTransceivers()) {
      // The receiver's track keeps the kind while the sender has none.
      const kind = transceiver.receiver.track.kind;
      const track = this.paused ? null : (this.stream.getTracks().find((t) => t.kind === kind) ?? null);
      await transceiver.sender.replaceTrack(track).catch((error) => link.fail(error));
    }
  }

  /**
   * Lock the room to new viewers or open it, and set or clear the passcode.
   * @param {{locked?: boolean, passcode?: string | null, paused?: boolean}} access
   * @returns {Promise<{locked: boolean, passcodeRequired: boolean, paused: boolean}>}
   */
  async setAccess(access) {
    if (!this.room) throw new Error("no room");
    return api(`/api/rooms/${this.room.roomId}`, {
      method: "PATCH",
      token: this.room.hostToken,
      body: access,
    });
  }

  /** Remove a viewer: its token stops working and its connection closes. @param {string} viewerId */
  async removeViewerFromRoom(viewerId) {
    if (!this.room) return;
    await api(`/api/rooms/${this.room.roomId}/viewers/${viewerId}`, {
      method: "DELETE",
      token: this.room.hostToken,
    });
    this.removeViewer(viewerId);
  }

  /** End the room for everyone. */
  async stop() {
    if (this.ended) return;
    if (this.room) {
      await api(`/api/rooms/${this.room.roomId}`, {
        method: "DELETE",
        token: this.room.hostToken,
      }).catch(() => undefined);
    }
    this.finish("host-ended");
  }

  /** @param {string} reason */
  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    forgetSavedRoom();
    this.client?.finish({ code: 1000, reason });
    for (const link of this.links()) link.close();
    this.publisher = null;
    this.viewers.clear();
    for (const track of this.stream.getTracks()) track.stop();
    this.dispatchEvent(new CustomEvent("ended", { detail: { reason } }));
  }
}
