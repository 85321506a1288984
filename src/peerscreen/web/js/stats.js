// Connection figures from RTCPeerConnection.getStats(), sampled once a second. No DOM.

/**
 * @typedef {{
 *   width: number, height: number, fps: number, bitrateKbps: number, rttMs: number | null,
 *   lossPercent: number, jitterMs: number | null, codec: string, path: "direct" | "relay" | "unknown",
 * }} LinkStats
 */

export class StatsSampler {
  /** @param {RTCPeerConnection} pc @param {"inbound" | "outbound"} direction */
  constructor(pc, direction) {
    this.pc = pc;
    this.direction = direction;
    /** @type {{bytes: number, at: number} | null} */
    this.previous = null;
  }

  /** @returns {Promise<LinkStats>} */
  async sample() {
    const report = await this.pc.getStats();
    /** @type {any} */
    let video = null;
    /** @type {any} */
    let pair = null;
    /** @type {any} */
    let remoteInbound = null;
    report.forEach((/** @type {any} */ s) => {
      const rtpType = this.direction === "inbound" ? "inbound-rtp" : "outbound-rtp";
      if (s.type === rtpType && s.kind === "video") video = s;
      if (s.type === "remote-inbound-rtp" && s.kind === "video") remoteInbound = s;
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) {
      report.forEach((/** @type {any} */ s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      });
    }
    const now = performance.now();
    const bytes = video ? (this.direction === "inbound" ? video.bytesReceived : video.bytesSent) ?? 0 : 0;
    let bitrateKbps = 0;
    if (this.previous && now > this.previous.at) {
      bitrateKbps = ((bytes - this.previous.bytes) * 8) / (now - this.previous.at);
    }
    this.previous = { bytes, at: now };
    const codec = video?.codecId ? report.get(video.codecId)?.mimeType?.replace("video/", "") ?? "" : "";
    const lost = video?.packetsLost ?? remoteInbound?.packetsLost ?? 0;
    const received = video?.packetsReceived ?? video?.packetsSent ?? 0;
    const local = pair ? report.get(pair.localCandidateId) : null;
    const remote = pair ? report.get(pair.remoteCandidateId) : null;
    /** @type {LinkStats["path"]} */
    let path = "unknown";
    if (local && remote) {
      path = local.candidateType === "relay" || remote.candidateType === "relay" ? "relay" : "direct";
    }
    const rtt = pair?.currentRoundTripTime ?? remoteInbound?.roundTripTime;
    return {
      width: video?.frameWidth ?? 0,
      height: video?.frameHeight ?? 0,
      fps: video?.framesPerSecond ?? 0,
      bitrateKbps: Math.max(0, Math.round(bitrateKbps)),
      rttMs: typeof rtt === "number" ? Math.round(rtt * 1000) : null,
      lossPercent: received + lost > 0 ? Math.round((1000 * lost) / (received + lost)) / 10 : 0,
      jitterMs: typeof video?.jitter === "number" ? Math.round(video.jitter * 1000) : null,
      codec,
      path,
    };
  }
}

/** @param {LinkStats} s @returns {[string, string][]} label/value rows for display */
export function describeStats(s) {
  return [
    ["Resolution", s.width ? `${s.width}x${s.height}` : "-"],
    ["Frame rate", `${Math.round(s.fps)} fps`],
    ["Bitrate", s.bitrateKbps >= 1000 ? `${(s.bitrateKbps / 1000).toFixed(1)} Mbit/s` : `${s.bitrateKbps} kbit/s`],
    ["Round trip", s.rttMs === null ? "-" : `${s.rttMs} ms`],
    ["Packet loss", `${s.lossPercent} %`],
    ["Jitter", s.jitterMs === null ? "-" : `${s.jitterMs} ms`],
    ["Codec", s.codec || "-"],
    ["Path", s.path === "relay" ? "via relay (TURN)" : s.path],
  ];
}
