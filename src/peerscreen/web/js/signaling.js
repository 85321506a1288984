// Signaling client: the room's message protocol (docs/protocol.md) over a WebSocket,
// falling back to HTTP long-poll when the socket cannot open. No DOM code here.

/**
 * @typedef {{type: string, seq?: number, [field: string]: any}} ServerMessage
 * @typedef {"connecting" | "open" | "reconnecting" | "closed"} SignalingState
 * @typedef {{code: number, reason: string}} CloseInfo
 */

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSE_CODES = new Set([1000, 4400, 4401, 4403, 4404, 4409, 4410]);
const ACK_EVERY = 20;
const LONG_POLL_WAIT_S = 25;

/** An error the server reported, with its code (see docs/protocol.md, Errors). */
export class SignalingError extends Error {
  /** @param {string} code @param {string} message @param {number} [status] */
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/**
 * Call the JSON API; throws SignalingError with the server's code and message.
 * @param {string} path
 * @param {{method?: string, token?: string, body?: unknown, signal?: AbortSignal}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error ?? {};
    throw new SignalingError(
      error.code ?? "http_error",
      error.message ?? `Request failed (${response.status})`,
      response.status,
    );
  }
  return data;
}

/**
 * The ICE servers for a participant, with its own short-lived TURN credentials.
 * @param {string} roomId @param {string} token
 * @param {boolean} forceRelay  connect only through TURN (the ?relay=1 setting)
 * @returns {Promise<RTCConfiguration & {relayAvailable: boolean}>}
 */
export async function fetchRtcConfig(roomId, token, forceRelay) {
  return rtcConfig(await api(`/api/rooms/${roomId}/ice-servers`, { token }), forceRelay);
}

/**
 * @typedef {{iceServers: RTCIceServer[], iceTransportPolicy: RTCIceTransportPolicy, relayAvailable: boolean}} IceAnswer
 */

/**
 * The peer connection settings from an ice-servers answer (which joining a room and
 * creating one also carry, as ``ice``).
 * @param {IceAnswer} data
 * @param {boolean} forceRelay
 * @returns {RTCConfiguration & {relayAvailable: boolean}}
 */
export function rtcConfig(data, forceRelay) {
  return {
    iceServers: data.iceServers,
    iceTransportPolicy: forceRelay ? "relay" : data.iceTransportPolicy,
    relayAvailable: data.relayAvailable,
  };
}

/**
 * One participant's connection to its room.
 * Events: "message" (detail: ServerMessage), "state" (detail: SignalingState),
 * "closed" (detail: CloseInfo), "transport" (detail: "websocket" | "long-poll").
 */
export class SignalingClient extends EventTarget {
  /** @param {{roomId: string, token: string, forceLongPoll?: boolean, resume?: number}} options */
  constructor(options) {
    super();
    this.roomId = options.roomId;
    this.token = options.token;
    this.forceLongPoll = options.forceLongPoll ?? false;
    /** @type {SignalingState} */
    this.state = "connecting";
    /** @type {"websocket" | "long-poll"} */
    this.transport = "websocket";
    this.lastSeq = options.resume ?? 0; // a reloaded page picks up where it left off
    this.ackedSeq = this.lastSeq;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.everOpened = false;
    this.retryDelayMs = 500;
    this.nextId = 1;
    /** @type {Map<string, {resolve: () => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    /** @type {AbortController | null} */
    this.pollAbort = null;
  }

  /** True once the client has finished for good. */
  isClosed() {
    return this.state === "closed";
  }

  start() {
    if (this.forceLongPoll || typeof WebSocket === "undefined") {
      this.useLongPoll();
    } else {
      this.openSocket();
    }
  }

  /** @param {SignalingState} state */
  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  /** @param {ServerMessage} message */
  deliver(message) {
    if (typeof message.seq === "number") {
      if (message.seq <= this.lastSeq) return; // already seen before a reconnect
      this.lastSeq = message.seq;
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
    if (message.type === "room-ended") this.finish({ code: 4410, reason: "The host ended this room." });
  }

  // --- WebSocket ---------------------------------------------------------------------

  openSocket() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The hello rides in the handshake (docs/protocol.md): the welcome follows the
    // upgrade at once instead of a round trip later.
    const socket = new WebSocket(`${scheme}//${location.host}/api/rooms/${this.roomId}/ws`, [
      "peerscreen",
      `auth.${this.token}`,
      `resume.${this.lastSeq}`,
    ]);
    this.socket = socket;
    socket.onmessage = (event) => this.onSocketMessage(JSON.parse(String(event.data)));
    socket.onclose = (event) => this.onSocketClose(event.code, event.reason);
  }

  /** @param {ServerMessage} message */
  onSocketMessage(message) {
    switch (message.type) {
      case "welcome":
        this.everOpened = true;
        this.retryDelayMs = 500;
        this.setState("open");
        this.dispatchEvent(new CustomEvent("transport", { detail: "websocket" }));
        return;
      case "ping":
        this.socket?.send('{"type":"pong"}');
        // Acks ride on the heartbeat: a timer per trickle of mail would double the
        // messages a quiet room sends the server.
        this.sendAck();
        return;
      case "pong":
        return;
      case "accepted":
        this.settle(message.id, null);
        return;
      case "error":
        if (message.id != null) {
          this.settle(message.id, new SignalingError(message.code, message.message));
        } else {
          this.dispatchEvent(new CustomEvent("message", { detail: message }));
        }
        return;
      default:
        this.deliver(message);
        this.scheduleAck();
    }
  }

  scheduleAck() {
    if (this.lastSeq - this.ackedSeq >= ACK_EVERY) this.sendAck();
  }

  sendAck() {
    if (this.socket?.readyState === WebSocket.OPEN && this.lastSeq > this.ackedSeq) {
      this.socket.send(JSON.stringify({ type: "ack", seq: this.lastSeq }));
      this.ackedSeq = this.lastSeq;
    }
  }

  /** @param {number} code @param {string} reason */
  onSocketClose(code, reason) {
    this.socket = null;
    for (const [id, waiter] of this.pending) {
      waiter.reject(new SignalingError("disconnected", "Connection to the server was lost."));
      this.pending.delete(id);
    }
    if (this.state === "closed") return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this.finish({ code, reason });
      return;
    }
    if (!this.everOpened) {
      // The socket never opened: a proxy or firewall blocks WebSockets. Poll instead.
      this.useLongPoll();
      return;
    }
    this.setState("reconnecting");
    setTimeout(() => this.state !== "closed" && this.openSocket(), this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 10_000);
  }

  /** @param {string | number} id @param {Error | null} error */
  settle(id, error) {
    const waiter = this.pending.get(String(id));
    if (!waiter) return;
    this.pending.delete(String(id));
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  // --- long-poll ---------------------------------------------------------------------

  useLongPoll() {
    this.transport = "long-poll";
    this.dispatchEvent(new CustomEvent("transport", { detail: "long-poll" }));
    void this.pollLoop();
  }

  async pollLoop() {
    while (!this.isClosed()) {
      this.pollAbort = new AbortController();
      try {
        const data = await api(
          `/api/rooms/${this.roomId}/messages?after=${this.lastSeq}&wait=${LONG_POLL_WAIT_S}`,
          { token: this.token, signal: this.pollAbort.signal },
        );
        this.retryDelayMs = 500;
        this.setState("open");
        for (const message of data.messages) this.deliver(message);
      } catch (error) {
        if (this.isClosed()) return;
        if (error instanceof SignalingError && error.status && error.status < 500) {
          const code = error.status === 410 ? 4410 : 4000 + error.status;
          this.finish({ code, reason: error.message });
          return;
        }
        this.setState("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs));
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 10_000);
      }
    }
  }

  // --- sending -----------------------------------------------------------------------

  /**
   * Send a chat message to everyone in the room (this participant too).
   * @param {string} text @param {string} name
   * @returns {Promise<void>}
   */
  sendChat(text, name) {
    if (this.transport === "long-poll" || this.socket?.readyState !== WebSocket.OPEN) {
      return api(`/api/rooms/${this.roomId}/chat`, {
        method: "POST",
        token: this.token,
        body: { text, name },
      }).then(() => undefined);
    }
    return this.request({ type: "chat", text, name });
  }

  /** @returns {Promise<any[]>} the room's kept chat messages, oldest first */
  async chatHistory() {
    const data = await api(`/api/rooms/${this.roomId}/chat`, { token: this.token });
    return data.messages;
  }

  /**
   * Send over the socket and wait for the server's "accepted" (or its error).
   * @param {Record<string, unknown>} message
   * @returns {Promise<void>}
   */
  request(message) {
    if (this.transport === "long-poll") {
      return api(`/api/rooms/${this.roomId}/messages`, {
        method: "POST",
        token: this.token,
        body: message,
      }).then(() => undefined);
    }
    const id = `m${this.nextId++}`;
    const socket = this.socket;
    if (!socket) return Promise.reject(new SignalingError("disconnected", "Not connected."));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  /**
   * Send an offer, answer or candidate; resolves once the server has stored it.
   * @param {"offer" | "answer" | "candidate"} type
   * @param {Record<string, unknown>} fields  to, desc or candidate
   * @returns {Promise<void>}
   */
  send(type, fields) {
    if (this.transport === "long-poll" || this.socket?.readyState !== WebSocket.OPEN) {
      return api(`/api/rooms/${this.roomId}/messages`, {
        method: "POST",
        token: this.token,
        body: { type, ...fields },
      }).then(() => undefined);
    }
    return this.request({ type, ...fields });
  }

  /** Leave the room (a viewer) or end it (the host), then close. */
  async leave() {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send('{"type":"leave"}');
    }
    this.finish({ code: 1000, reason: "Left the room" });
  }

  /** @param {CloseInfo} info */
  finish(info) {
    if (this.state === "closed") return;
    this.setState("closed");
    this.pollAbort?.abort();
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.dispatchEvent(new CustomEvent("closed", { detail: info }));
  }
}
