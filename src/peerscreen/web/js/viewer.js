// The viewer's side of a room: check it, join it, answer the host's offer, play.
// No DOM code here.

import { PeerLink } from "./peer.js";
import { SignalingClient, SignalingError, api, rtcConfig } from "./signaling.js";

/**
 * @typedef {"checking" | "connecting" | "connected" | "paused" | "reconnecting" | "failed" | "ended"} ViewerState
 * @typedef {{state: ViewerState, message: string}} ViewerStatus
 * @typedef {{offerTimeoutMs: number, forceRelay: boolean}} ViewerSettings
 */

export class ViewerSession extends EventTarget {
  /**
   * @param {{roomId: string, settings: Promise<ViewerSettings>, forceLongPoll?: boolean}} options
   * ``settings`` may still be loading: joining does not wait for it.
   * Events: "status" (detail: ViewerStatus), "stream" (detail: MediaStream).
   */
  constructor(options) {
    super();
    this.roomId = options.roomId;
    this.settings = options.settings;
    this.forceLongPoll = options.forceLongPoll ?? false;
    /** @type {ViewerStatus} */
    this.status = { state: "checking", message: "Checking the room..." };
    /** @type {SignalingClient | null} */
    this.client = null;
    /** @type {PeerLink | null} the connection the picture comes from now */
    this.link = null;
    /** @type {PeerLink | null} the connection from the host's browser (mesh) */
    this.meshLink = null;
    /** @type {PeerLink | null} the connection from the media server (broadcast) */
    this.sfuLink = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.offerTimer = null;
    this.viewerId = "";
    this.closed = false;
    /** @type {RTCConfiguration & {relayAvailable?: boolean}} */
    this.rtc = {};
    this.everConnected = false;
    this.paused = false;
    this.joinedAt = 0;
  }

  /** @param {ViewerState} state @param {string} message */
  setStatus(state, message) {
    if (this.status.state === "ended" || this.closed) return;
    this.status = { state, message };
    this.dispatchEvent(new CustomEvent("status", { detail: this.status }));
  }

  /** @param {string} [passcode] */
  async start(passcode) {
    this.setStatus("checking", "Checking the room...");
    let joined;
    /** @type {ViewerSettings} */
    let settings;
    try {
      // Joining checks the room too: an unknown, full or ended room fails right here.
      [joined, settings] = await Promise.all([
        api(`/api/rooms/${encodeURIComponent(this.roomId)}/viewers`, {
          method: "POST",
          body: { passcode: passcode || undefined, name: localStorage.getItem("peerscreen.name") || undefined },
        }),
        this.settings,
      ]);
    } catch (error) {
      if (error instanceof SignalingError && error.code === "room_ended") {
        this.setStatus("ended", "Host ended sharing.");
      } else if (
        error instanceof SignalingError &&
        (error.code === "passcode_required" || error.code === "passcode_wrong")
      ) {
        // Not final: the page asks for the passcode and calls start() again.
        this.status = { state: "checking", message: error.message };
        this.dispatchEvent(new CustomEvent("passcode", { detail: error.message }));
      } else {
        this.setStatus("failed", describeJoinError(error));
      }
      return;
    }
    if (this.closed) {
      // Left while the join call was under way: leave the room it joined too, rather
      // than watch unseen (and count in the host's list) until the server times it out.
      await api(`/api/rooms/${encodeURIComponent(joined.roomId)}/viewers/${encodeURIComponent(joined.viewerId)}`, {
        method: "DELETE",
        token: joined.viewerToken,
      }).catch(() => undefined);
      return;
    }
    this.roomId = joined.roomId;
    this.viewerId = joined.viewerId;
    this.setStatus("connecting", "Waiting for the host...");

    const client = new SignalingClient({
      roomId: joined.roomId,
      token: joined.viewerToken,
      forceLongPoll: this.forceLongPoll,
    });
    this.client = client;
    this.dispatchEvent(new CustomEvent("joined", { detail: client }));
    // Joining answered with this viewer's ICE servers: connect without another round trip.
    this.rtc = rtcConfig(joined.ice, settings.forceRelay);
    this.joinedAt = performance.now();
    this.meshLink = this.link = this.newLink();
    client.addEventListener("message", (event) => {
      const message = /** @type {CustomEvent} */ (event).detail;
      if (message.type === "offer") this.clearOfferTimer();
      if (message.from === "sfu" && (message.type === "offer" || message.type === "candidate")) {
        this.fromMediaServer(message);
        return;
      }
      if (message.type === "offer") {
        if (!this.meshLink || isFromAnotherPeer(this.meshLink.pc, message.desc)) {
          // The host reloaded its page (or serves this viewer itself again): its new
          // connection replaces the old one.
          this.meshLink?.close();
          this.meshLink = this.newLink();
          if (!this.sfuLink) this.link = this.meshLink;
        }
      }
      if (message.type === "offer" || message.type === "candidate") void this.meshLink?.handle(message);
      if (message.type === "broadcast") this.onBroadcast(message.state);
      if (message.type === "host-paused") {
        this.paused = true;
        this.setStatus("paused", "The host paused sharing.");
      } else if (message.type === "host-resumed") {
        this.paused = false;
        if (this.link?.pc.connectionState === "connected") this.setStatus("connected", "Connected.");
      } else if (message.type === "host-away") {
        // The host's page closed or lost the server: the picture is frozen from now on.
        this.setStatus("reconnecting", "The host's page went away. Waiting for it to come back...");
      } else if (message.type === "host-back" && this.status.state === "reconnecting") {
        if (this.link?.pc.connectionState === "connected") this.setStatus("connected", "Connected.");
        else this.setStatus("connecting", "The host is back; reconnecting...");
      }
    });
    client.addEventListener("closed", (event) => {
      const info = /** @type {CustomEvent} */ (event).detail;
      if (info.code === 4410) this.setStatus("ended", "Host ended sharing.");
      else if (info.code === 4403) this.setStatus("ended", "The host removed you from the room.");
      else if (info.code !== 1000) this.setStatus("failed", info.reason || "Lost the connection to the server.");
      this.close();
    });
    this.offerTimer = setTimeout(() => {
      this.setStatus("failed", "No offer received from host. The host may have stopped sharing; try again later.");
      this.close();
    }, settings.offerTimeoutMs);
    client.start();
  }

  /**
   * A peer connection to the host (or, ``toMediaServer``, to the room's media server),
   * reporting its stream and state as this session's once it is the one shown.
   */
  newLink(toMediaServer = false) {
    const client = this.client;
    if (!client) throw new Error("not joined");
    const link = new PeerLink({
      polite: true,
      config: this.rtc,
      send: (type, fields) => client.send(type, toMediaServer ? { ...fields, to: "sfu" } : fields),
    });
    link.addEventListener("track", (event) => {
      if (link === this.sfuLink && this.link !== link) return; // shown once it renders
      const trackEvent = /** @type {RTCTrackEvent} */ (/** @type {CustomEvent} */ (event).detail);
      // A live screen is watched as it happens: play frames as soon as they decode
      // rather than buffering for smoothness (where the browser supports the hint).
      if ("jitterBufferTarget" in trackEvent.receiver) {
        /** @type {any} */ (trackEvent.receiver).jitterBufferTarget = 0;
      }
      const stream = trackEvent.streams[0] ?? new MediaStream([trackEvent.track]);
      this.dispatchEvent(new CustomEvent("stream", { detail: stream }));
    });
    link.addEventListener("no-candidates", (event) => {
      if (link !== this.link) return;
      const errors = /** @type {CustomEvent} */ (event).detail;
      const relayOnly = this.rtc.iceTransportPolicy === "relay";
      const detail = errors.length ? ` (${errors[0]})` : "";
      this.setStatus(
        "failed",
        relayOnly
          ? `Could not reach the host through the relay (TURN) server: it gave no relay address${detail}. Ask the server's admin to check the TURN setup.`
          : `This browser found no network path at all${detail}. Check your network connection.`,
      );
    });
    link.addEventListener("state", (event) => {
      if (link !== this.link) return; // a replaced connection's last words
      const state = /** @type {CustomEvent} */ (event).detail;
      if (state === "connected") {
        this.everConnected = true;
        if (this.paused) this.setStatus("paused", "The host paused sharing.");
        else this.setStatus("connected", "Connected.");
      } else if (state === "disconnected") {
        this.setStatus("reconnecting", "Connection interrupted; reconnecting...");
      } else if (state === "failed" && this.everConnected) {
        this.setStatus("reconnecting", "Lost the host. Waiting for it to come back...");
      } else if (state === "failed") {
        this.setStatus("failed", iceFailure(this.rtc));
      }
    });
    return link;
  }

  /**
   * The room's path changed: ``live`` means the host's stream is on the media server
   * (ask it for an offer); ``mesh`` means back to the host's own connection.
   * @param {string} state
   */
  onBroadcast(state) {
    if (state === "live") {
      this.client?.request({ type: "subscribe" }).catch((error) => {
        console.warn("could not subscribe to the broadcast", error);
      });
    } else if (state === "mesh") {
      this.sfuLink?.close();
      this.sfuLink = null;
      if (this.meshLink) this.link = this.meshLink;
      this.setStatus("connecting", "Reconnecting to the host...");
    }
  }

  /**
   * An offer or candidate from the media server. Its stream replaces the host's own
   * connection only once it renders (make-before-break).
   * @param {{type: string, desc?: any, candidate?: any}} message
   */
  fromMediaServer(message) {
    // Each offer answers a subscribe: a new connection (Janus signs every one with the
    // same certificate, so the fingerprint cannot tell).
    if (message.type === "offer") {
      this.sfuLink?.close();
      const link = this.newLink(true);
      this.sfuLink = link;
      void this.switchWhenRendering(link);
    }
    void this.sfuLink?.handle(message);
  }

  /**
   * Wait until the broadcast stream decodes frames, then show it and let the host close
   * the viewer's own connection.
   * @param {PeerLink} link
   */
  async switchWhenRendering(link) {
    const deadline = performance.now() + 20_000;
    while (this.sfuLink === link && !this.closed && performance.now() < deadline) {
      let decoded = 0;
      const report = await link.pc.getStats().catch(() => null);
      report?.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") decoded += s.framesDecoded ?? 0;
      });
      if (decoded > 0) {
        const old = this.link;
        this.link = link;
        const stream = new MediaStream(link.pc.getReceivers().map((r) => r.track));
        this.dispatchEvent(new CustomEvent("stream", { detail: stream }));
        if (old && old !== link) old.close();
        this.meshLink = null;
        if (link.pc.connectionState === "connected") this.setStatus(this.paused ? "paused" : "connected", this.paused ? "The host paused sharing." : "Connected.");
        this.client?.request({ type: "switched" }).catch(() => undefined);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  clearOfferTimer() {
    if (this.offerTimer !== null) clearTimeout(this.offerTimer);
    this.offerTimer = null;
  }

  async leave() {
    this.clearOfferTimer();
    this.setStatus("ended", "You left the room.");
    await this.client?.leave();
    this.close();
  }

  close() {
    this.clearOfferTimer();
    this.closed = true;
    this.link?.close();
    this.meshLink?.close();
    this.sfuLink?.close();
    this.client?.finish({ code: 1000, reason: "closed" });
  }
}

/**
 * Whether an offer comes from a different peer connection than the current one (its
 * DTLS fingerprint differs), as after the host reloads its page.
 * @param {RTCPeerConnection} pc
 * @param {{sdp?: string} | undefined} desc
 */
function isFromAnotherPeer(pc, desc) {
  const current = pc.remoteDescription?.sdp;
  if (!current || !desc?.sdp) return false;
  return fingerprint(current) !== fingerprint(desc.sdp);
}

/** @param {string} sdp */
function fingerprint(sdp) {
  return sdp.match(/^a=fingerprint:.*$/m)?.[0] ?? "";
}

/**
 * Why the first connection attempt failed, in words a viewer can act on.
 * @param {RTCConfiguration & {relayAvailable?: boolean}} rtc
 */
function iceFailure(rtc) {
  if (rtc.iceTransportPolicy === "relay") {
    return "Could not reach the host through the relay (TURN) server: it refused the credentials or cannot be reached. Ask the server's admin to check the TURN setup.";
  }
  if (!rtc.relayAvailable) {
    return "Could not connect to the host directly, and this server has no relay (TURN) configured: one of you is behind a strict NAT or firewall.";
  }
  return "Could not connect to the host, even through the relay: your network may block it. Try another network.";
}

/** @param {unknown} error */
function describeJoinError(error) {
  if (error instanceof SignalingError) {
    if (error.code === "room_not_found") return "Room not found. Check the code, or ask the host for a new link.";
    if (error.code === "invalid_request") return "That is not a room code. Room codes look like k7dm-x9paq-3hrt.";
    if (error.code === "room_full") return "Room is full. Ask the host to let you in later.";
    if (error.code === "room_ended") return "Host ended sharing.";
    return error.message;
  }
  return "Could not reach the server. Check your connection and try again.";
}
