// One WebRTC peer connection with "perfect negotiation": either side may renegotiate,
// the polite side yields on glare, and remote ICE candidates wait until the remote
// description is set. No DOM code here.

/**
 * @typedef {{type: "offer" | "answer", sdp: string}} Description
 * @typedef {(type: "offer" | "answer" | "candidate", fields: Record<string, unknown>) => Promise<void>} SendSignal
 */

/** The end-of-candidates marker of docs/protocol.md: a candidate with no text. */
const END_OF_CANDIDATES = { candidate: "", sdpMid: "0", sdpMLineIndex: 0 };

export class PeerLink extends EventTarget {
  /**
   * @param {{polite: boolean, config?: RTCConfiguration, send: SendSignal, editRemote?: (desc: Description) => Description}} options
   * ``editRemote`` rewrites each description from the other side before it is applied.
   * Events: "track" (detail: RTCTrackEvent), "state" (detail: RTCPeerConnectionState),
   * "error" (detail: Error), "no-candidates" (gathering ended with no candidate at all;
   * detail: the ICE servers' error texts, such as a refused TURN credential).
   */
  constructor(options) {
    super();
    this.polite = options.polite;
    this.sendSignal = options.send;
    this.editRemote = options.editRemote ?? ((/** @type {Description} */ desc) => desc);
    this.pc = new RTCPeerConnection(options.config ?? {});
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** @type {RTCIceCandidateInit[]} */
    this.pendingCandidates = [];
    this.closed = false;
    this.localCandidates = 0;
    /** @type {string[]} */
    this.iceErrors = [];

    this.pc.onnegotiationneeded = () => void this.negotiate();
    this.pc.onicecandidate = ({ candidate }) => {
      if (!candidate) {
        // Gathering finished: say so, so that a peer that is not a browser (aiortc)
        // can give up on a failed path without waiting out its own timers.
        void this.signal("candidate", { candidate: END_OF_CANDIDATES });
        return;
      }
      if (!candidate.candidate) return; // Chromium's own empty marker: sent above
      this.localCandidates += 1;
      void this.signal("candidate", { candidate: candidate.toJSON() });
    };
    this.pc.onicecandidateerror = (event) => {
      const error = /** @type {RTCPeerConnectionIceErrorEvent} */ (event);
      this.iceErrors.push(`${error.url ?? "ICE server"}: ${error.errorCode} ${error.errorText}`);
    };
    this.pc.onicegatheringstatechange = () => {
      if (this.pc.iceGatheringState === "complete" && this.localCandidates === 0) {
        this.dispatchEvent(new CustomEvent("no-candidates", { detail: this.iceErrors }));
      }
    };
    this.pc.ontrack = (event) => this.dispatchEvent(new CustomEvent("track", { detail: event }));
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      this.dispatchEvent(new CustomEvent("state", { detail: state }));
      // A network change can break the path; a fresh ICE round may find another.
      if (state === "failed" && !this.polite) this.pc.restartIce();
    };
  }

  /** @param {"offer" | "answer" | "candidate"} type @param {Record<string, unknown>} fields */
  async signal(type, fields) {
    try {
      await this.sendSignal(type, fields);
    } catch (error) {
      this.fail(error);
    }
  }

  async negotiate() {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const desc = this.pc.localDescription;
      if (desc) await this.signal("offer", { desc: { type: desc.type, sdp: desc.sdp } });
    } catch (error) {
      this.fail(error);
    } finally {
      this.makingOffer = false;
    }
  }

  /**
   * Apply a signaling message from the other side.
   * @param {{type: string, desc?: Description, candidate?: RTCIceCandidateInit}} message
   */
  async handle(message) {
    if (this.closed) return;
    try {
      if (message.desc) {
        const desc = message.desc;
        const collision =
          desc.type === "offer" && (this.makingOffer || this.pc.signalingState !== "stable");
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        await this.pc.setRemoteDescription(this.editRemote(desc));
        await this.flushCandidates();
        if (desc.type === "offer") {
          await this.pc.setLocalDescription();
          const answer = this.pc.localDescription;
          if (answer) await this.signal("answer", { desc: { type: answer.type, sdp: answer.sdp } });
        }
      } else if (message.candidate) {
        if (!this.pc.remoteDescription) {
          this.pendingCandidates.push(message.candidate); // too early: keep it for later
          return;
        }
        await this.addCandidate(message.candidate);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  async flushCandidates() {
    const waiting = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const candidate of waiting) await this.addCandidate(candidate);
  }

  /** @param {RTCIceCandidateInit} candidate */
  async addCandidate(candidate) {
    try {
      // An empty candidate is the other side's end-of-candidates.
      await this.pc.addIceCandidate(candidate.candidate ? candidate : undefined);
    } catch (error) {
      if (!this.ignoreOffer) throw error; // candidates of an offer we ignored may fail
    }
  }

  /** @param {unknown} error */
  fail(error) {
    const err = error instanceof Error ? error : new Error(String(error));
    this.dispatchEvent(new CustomEvent("error", { detail: err }));
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
