// The signalling WebSocket (docs/protocol.md): hello/welcome, resume after a drop, and strictly ordered
// handling of incoming messages.
//
// Messages are handled one at a time, in arrival order, by chaining on one promise: an `async` onmessage
// would let a `candidate` reach addIceCandidate before the `offer` before it finished setRemoteDescription.

const PROTOCOL_VERSIONS = [1];

// Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes"). 1000 is not among them:
// the server closes with 1000 only after our `leave`, and it answers a close we start with 1000 as well.
// 4405: a moderator denied entry from the lobby (the page offers to knock again; it never does so by itself).
export const TERMINAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4405, 4409, 4429]);

const DEVICE_KEY = "roundtable.device";

/** A random id for this browser, kept in localStorage: the `unverified` lobby trusts a device that entered before. */
export function deviceId() {
  try {
    let id = localStorage.getItem(DEVICE_KEY);
    if (!id || id.length > 64) {
      id = crypto.randomUUID();
      localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  } catch {
    return null; // storage disabled: the lobby treats every visit as a new device
  }
}

// The server cannot take us now (its database is away): keep the resume token and retry with backoff, from a
// longer first delay so that a room full of clients does not hammer a server that is coming back.
export const UNAVAILABLE_CLOSE_CODE = 4503;
const UNAVAILABLE_FIRST_MS = 2000;

// The server drained (a restart, a deploy, a node handing its rooms on): our place is kept as a resume grant, so
// come back at once, with a little jitter so that a full room does not arrive in one instant (docs/protocol.md).
export const RESTART_CLOSE_CODE = 1012;
const RESTART_JITTER_MS = 250;

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;

export class Signaling {
  /**
   * @param {object} options
   * @param {string} options.token the join token
   * @param {(msg: object) => (void|Promise<void>)} options.onMessage every server message, in order
   * @param {(info: {attempt: number}) => void} options.onReconnecting the socket dropped; retrying
   * @param {(info: {code: number, reason: string}) => void} options.onEnded closed for good
   */
  constructor({ token, onMessage, onReconnecting, onEnded, url }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onReconnecting = onReconnecting || (() => {});
    this.onEnded = onEnded || (() => {});
    this.url = url || `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    this.resumeToken = null;
    this.ws = null;
    this.queue = Promise.resolve();
    this.attempt = 0;
    this.timer = null;
    this.ended = false;
    this.leaving = false;
    this.welcomed = false;
    this.requestSeq = 0;
  }

  connect() {
    if (this.ended) return;
    clearTimeout(this.timer);
    this.welcomed = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", protocol: PROTOCOL_VERSIONS, token: this.token, request_id: "hello" };
      if (this.resumeToken) hello.resume = this.resumeToken;
      const device = deviceId();
      if (device) hello.device = device;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return; // a stale socket
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("signalling: not JSON", event.data);
        return;
      }
      if (msg.type === "welcome") {
        this.resumeToken = msg.resume;
        this.attempt = 0;
        this.welcomed = true;
      } else if (msg.type === "lobby") {
        this.attempt = 0; // waiting is not failing: a later drop starts its backoff afresh
      }
      this.queue = this.queue
        .then(() => this.onMessage(msg))
        .catch((err) => console.error("signalling: handling", msg.type, "failed", err));
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.queue = this.queue.then(() => this._closed(event.code, event.reason));
    };
  }

  _closed(code, reason) {
    if (this.ended) return;
    if (this.leaving || TERMINAL_CLOSE_CODES.has(code)) {
      this.ended = true;
      this.onEnded({ code: this.leaving && !TERMINAL_CLOSE_CODES.has(code) ? 1000 : code, reason });
      return;
    }
    if (code === RESTART_CLOSE_CODE) {
      // Not a failure: the backoff starts afresh if the server is not up again yet.
      this.attempt = 0;
      this.onReconnecting({ attempt: 1, code, unavailable: false });
      this.timer = setTimeout(() => this.connect(), Math.random() * RESTART_JITTER_MS);
      return;
    }
    // A drop (1006 missed pongs or a lost network, 1001 shutdown, 1011, 1013 too slow, 4503 unavailable):
    // take our place back with the resume token, with exponential backoff and jitter.
    this.attempt += 1;
    const unavailable = code === UNAVAILABLE_CLOSE_CODE;
    this.onReconnecting({ attempt: this.attempt, code, unavailable });
    const first = unavailable ? UNAVAILABLE_FIRST_MS : BACKOFF_FIRST_MS;
    const delay = Math.min(BACKOFF_MAX_MS, first * 2 ** (this.attempt - 1));
    this.timer = setTimeout(() => this.connect(), delay * (0.75 + Math.random() * 0.5));
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcomed;
  }

  /** Send a client message; returns false when the socket is not open (the caller may retry later). */
  send(msg, { withRequestId = false } = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const out = withRequestId ? { ...msg, request_id: ++this.requestSeq } : msg;
    this.ws.send(JSON.stringify(out));
    return out.request_id ?? true;
  }

  /** Leave on purpose: the server answers `bye` and closes with 1000. */
  leave() {
    this.leaving = true;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "leave" }));
      // The server closes; make sure we end even if it does not answer.
      const ws = this.ws;
      setTimeout(() => ws.readyState !== WebSocket.CLOSED && ws.close(1000), 2000);
    } else {
      this.ended = true;
      if (this.ws) this.ws.close(1000);
      this.onEnded({ code: 1000, reason: "left" });
    }
  }

  /** Test hook: drop the socket as a network failure would (no `leave`). */
  dropForTest() {
    if (this.ws) this.ws.close(4000, "test drop");
  }
}
