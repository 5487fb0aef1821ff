// The connections of an sfu room (docs/protocol.md, "SFU rooms"): the server relays to Janus, which the browser
// never speaks to directly.
//
// - Publishing: one send-only RTCPeerConnection per source. "camera" carries the camera and the microphone,
//   "screen" the screen share; each becomes one feed. We offer (`publish`), the server answers (`published`).
// - Subscribing: ONE receive-only RTCPeerConnection for every feed we watch. The SFU offers (`subscription`), we
//   answer (`subscription_answer`); a new `subscribe` replaces the whole set and brings a new offer for the same
//   connection. Which track is which feed comes from the offer's `streams` (by transceiver mid). We take the audio
//   of every feed but video only of those whose tiles are on screen (`videoFor`, from stage.js's visibility), each
//   in the simulcast layer (`quality`) its tile's size needs; the camera is published with three layers. Of the
//   interpretation feeds (an interpreter's voice, audio only, into a language channel) we take only the channel
//   we listen to (`audioFor`, see interpretation.js).
//
// Everything runs on one promise chain of its own, in call order: a `subscription` offer must not meet a
// half-built connection, and waiting for ICE gathering here must not hold up chat and presence.

import { MAX_HIGH_VIDEOS, MAX_OTHER_VIDEOS } from "./stage.js";

const GATHER_WAIT_MS = 1500; // candidates travel in the SDP; don't wait longer than this for them

/** Resolve once the connection gathered its candidates, or after `ms` (whatever it has is in the SDP then). */
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// The camera's simulcast layers (Janus VideoRoom substreams 2, 1, 0): full, half and quarter size. Chromium sends
// fewer for a small camera picture.
const SIMULCAST_LAYERS = [
  { rid: "h", scaleResolutionDownBy: 1 },
  { rid: "m", scaleResolutionDownBy: 2 },
  { rid: "l", scaleResolutionDownBy: 4 },
];

function simulcastSupported() {
  const caps = typeof RTCRtpSender !== "undefined" && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
  return Boolean(caps && caps.codecs.some((c) => /vp8/i.test(c.mimeType)));
}

function closePc(pc) {
  pc.onicecandidate = pc.onconnectionstatechange = pc.ontrack = null;
  pc.close();
}

export class SfuSession {
  /**
   * @param {object} options
   * @param {(msg: object, opts?: object) => (number|boolean)} options.send a client message; with
   *   `{withRequestId: true}` it returns the request id (false when the socket is down)
   * @param {() => string|null} options.selfId our peer id (our own feeds are not subscribed to)
   * @param {(source: string) => MediaStreamTrack[]} options.tracksFor what to send for a source
   * @param {(feed: object, stream: MediaStream|null) => void} options.onFeedMedia a feed's media (null: gone)
   * @param {() => void} options.onChange feeds, connection states or publishing changed (re-render)
   * @param {(code: string, what: string) => void} options.onRefused the server refused a request of ours: `what`
   *   is the source of a publish, or "subscribe"
   * @param {(feed: object) => (string|null)} [options.videoFor] the simulcast layer ("low", "medium", "high") to
   *   receive of a feed's video, or null for none (its tile is not on screen); by default every video, "high"
   * @param {(feed: object) => boolean} [options.audioFor] whether to receive a feed's audio; by default every
   *   feed's
   */
  constructor({ send, selfId, tracksFor, onFeedMedia, onChange, onRefused, videoFor = () => "high", audioFor = () => true }) {
    Object.assign(this, { send, selfId, tracksFor, onFeedMedia, onChange, onRefused, videoFor, audioFor });
    this.uncapped = false; // the benchmark's "subscribe to everything": no client-side cap (the server still caps)
    this.iceServers = [];
    this.queue = Promise.resolve();
    this.active = false; // in an sfu room with the SFU up
    this.feeds = new Map(); // feed id -> FeedInfo (every feed of the room, ours included)
    this.publishers = new Map(); // source -> {pc, requestId, feedId, pending: [], outbox: []}
    this.sub = null; // {pc, requestId (in flight), sentKey, streams: Map mid -> stream info, pending: []}
    this.media = new Map(); // feed id -> MediaStream of what we receive of it
    this.refused = new Set(); // sources the server refused to let us publish here
    this.publishRequests = new Map(); // request id -> source, of publishes whose answer has not come yet
  }

  setIceServers(servers) {
    this.iceServers = servers || [];
  }

  /** Run `job` after everything queued before it; errors are logged, never break the chain. */
  run(job) {
    this.queue = this.queue.then(job).catch((err) => console.error("sfu:", err));
    return this.queue;
  }

  // The room ------------------------------------------------------------------------------------

  /** A new picture of an sfu room (welcome, moved, room_media_changed, sfu_restored): fresh connections. */
  enter(feeds, available) {
    return this.run(() => {
      this._closeAll();
      this.refused.clear();
      this.feeds = new Map((feeds || []).map((f) => [f.feed_id, f]));
      this.active = available;
      this.onChange();
    });
  }

  /**
   * A resumed session in the same sfu room: the server kept our handles, and the media never went through the
   * socket, so the connections stay. Take the room's feeds from the welcome and redo what was under way when the
   * socket dropped (its replies may be lost).
   */
  resume(feeds) {
    return this.run(async () => {
      const fresh = new Map((feeds || []).map((f) => [f.feed_id, f]));
      for (const id of [...this.feeds.keys()]) if (!fresh.has(id)) this._dropFeed(id);
      this.feeds = fresh;
      for (const [source, pub] of [...this.publishers]) {
        if (!pub.feedId) await this._publish(source);
      }
      if (this.sub) {
        this.sub.requestId = null;
        this.sub.sentKey = null;
      }
      this._mapStreams();
      this.onChange();
      this._syncSubscription();
    });
  }

  /** Leaving sfu media (a mesh room, the SFU died, the end): close every connection. */
  leave() {
    return this.run(() => {
      this._closeAll();
      this.active = false;
      this.feeds.clear();
      this.onChange();
    });
  }

  /** The SFU went away: every feed and subscription is gone. */
  unavailable() {
    return this.leave();
  }

  feedAdded(feed) {
    return this.run(() => {
      // A second publish of a source replaces that peer's feed of the source.
      for (const [id, old] of this.feeds) {
        if (id !== feed.feed_id && old.peer_id === feed.peer_id && old.source === feed.source) this._dropFeed(id);
      }
      this.feeds.set(feed.feed_id, feed);
      this._forgetSent();
      this.onChange();
      this._syncSubscription();
    });
  }

  feedRemoved(feedId, reason) {
    return this.run(async () => {
      this._dropFeed(feedId);
      this._forgetSent();
      for (const [source, pub] of [...this.publishers]) {
        // A republish replaces the feed; an interpreter's new direction moves it to another channel (the same
        // feed id comes back at once): the connection goes on in both cases.
        if (pub.feedId !== feedId || reason === "republished" || reason === "language_changed") continue;
        // The server ended one of our feeds: its connection is useless now. Janus lost it: publish anew;
        // anything else (the floor taken back, removed) is for good.
        this._closePublisher(source, { unpublish: false });
        if (reason === "connection_lost") await this._publish(source);
      }
      this.onChange();
      this._syncSubscription();
    });
  }

  peerLeft(peerId) {
    return this.run(() => {
      for (const [id, feed] of this.feeds) if (feed.peer_id === peerId) this._dropFeed(id);
      this.onChange();
      this._syncSubscription();
    });
  }

  /**
   * Ask again at the next look even if our list reads the same: feed ids are stable (peer:source), so a feed
   * that went and came back while a `subscribe` was on its way looks unchanged, yet the SFU dropped it.
   */
  _forgetSent() {
    if (this.sub) this.sub.sentKey = null;
  }

  _dropFeed(feedId) {
    const feed = this.feeds.get(feedId);
    this.feeds.delete(feedId);
    if (feed && this.media.has(feedId)) {
      this.media.delete(feedId);
      this.onFeedMedia(feed, null);
    }
  }

  /** Feeds of other people, in a stable order. */
  remoteFeeds() {
    const self = this.selfId();
    return [...this.feeds.values()].filter((f) => f.peer_id !== self).sort((a, b) => (a.feed_id < b.feed_id ? -1 : 1));
  }

  /** The stream we receive of a feed (null until its tracks are mapped). */
  streamOf(feedId) {
    return this.media.get(feedId) || null;
  }

  /** Subscriber connection state, for the tiles ("new" when we subscribe to nothing). */
  get receiveState() {
    return this.sub ? this.sub.pc.connectionState : "new";
  }

  // Publishing ----------------------------------------------------------------------------------

  isPublishing(source) {
    return this.publishers.has(source);
  }

  /**
   * What we should publish now (`{camera: bool, screen: bool}`): publish what is wanted and not yet published,
   * unpublish what is no longer wanted. A source the server refused is not asked for again until `allowAgain`
   * (the floor granted) or a new room.
   */
  want(wanted) {
    return this.run(async () => {
      if (!this.active) return;
      for (const [source, on] of Object.entries(wanted)) {
        if (on && !this.publishers.has(source) && !this.refused.has(source)) await this._publish(source);
        else if (!on && this.publishers.has(source)) this._closePublisher(source);
      }
      this.onChange();
    });
  }

  allowAgain() {
    this.refused.clear();
  }

  /** Publish `source` with what `tracksFor(source)` gives (again: a new connection replaces the feed). */
  publish(source) {
    return this.run(() => this._publish(source));
  }

  async _publish(source) {
    if (!this.active) return;
    const tracks = this.tracksFor(source).filter(Boolean);
    this._closePublisher(source, { unpublish: false }); // the server replaces the old feed with the new one
    if (!tracks.length) return;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const name = `publish:${source}`;
    const pub = { pc, requestId: null, feedId: null, pending: [], outbox: [], offerSent: false };
    this.publishers.set(source, pub);
    const stream = new MediaStream(tracks);
    for (const track of tracks) {
      const init = { direction: "sendonly", streams: [stream] };
      if (source === "camera" && track.kind === "video" && simulcastSupported()) init.sendEncodings = SIMULCAST_LAYERS.map((l) => ({ ...l }));
      try {
        pc.addTransceiver(track, init);
      } catch (err) {
        console.warn("sfu: no simulcast here", err);
        pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      }
    }
    pc.onicecandidate = ({ candidate }) => {
      // Those gathered before the offer left are in its SDP; later ones wait for the answer (the server has a
      // handle to give them to from then on).
      if (!candidate || !pub.offerSent || this.publishers.get(source) !== pub) return;
      const msg = { type: "candidate", to: "sfu", pc: name, candidate: candidate.toJSON() };
      if (pub.feedId) this.send(msg);
      else pub.outbox.push(msg);
    };
    pc.onconnectionstatechange = () => {
      if (this.publishers.get(source) !== pub) return;
      if (pc.connectionState === "failed") this.publish(source); // a fresh connection; the feed is replaced
      this.onChange();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_WAIT_MS);
    if (this.publishers.get(source) !== pub) return;
    pub.offerSent = true;
    const requestId = this.send({ type: "publish", source, sdp: pc.localDescription.sdp }, { withRequestId: true });
    if (requestId === false) {
      this._closePublisher(source, { unpublish: false });
      return;
    }
    pub.requestId = requestId;
    this.publishRequests.set(requestId, source);
    this.onChange();
  }

  published(msg) {
    return this.run(async () => {
      const source = this.publishRequests.get(msg.request_id);
      this.publishRequests.delete(msg.request_id);
      const found = [...this.publishers.entries()].find(([, p]) => p.requestId === msg.request_id);
      if (!found) {
        // Stopped while it was on its way (screen share ended): take the feed down again, unless a newer
        // publish of the source is under way (the server replaces the feed with that one).
        if (source && !this.publishers.has(source)) this.send({ type: "unpublish", feed_id: msg.feed_id }, { withRequestId: true });
        return;
      }
      const [, pub] = found;
      pub.feedId = msg.feed_id;
      await pub.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      for (const c of pub.pending.splice(0)) await this._addCandidate(pub.pc, c);
      for (const out of pub.outbox.splice(0)) this.send(out);
      this.onChange();
    });
  }

  /** Stop publishing `source` (tell the server unless it already ended the feed). */
  unpublish(source) {
    return this.run(() => this._closePublisher(source));
  }

  /** Close every publishing connection: the server already removed our feeds (floor taken back). */
  stopPublishing() {
    return this.run(() => {
      for (const source of [...this.publishers.keys()]) this._closePublisher(source, { unpublish: false });
      this.onChange();
    });
  }

  _closePublisher(source, { unpublish = true } = {}) {
    const pub = this.publishers.get(source);
    if (!pub) return;
    this.publishers.delete(source);
    if (unpublish && pub.feedId) this.send({ type: "unpublish", feed_id: pub.feedId }, { withRequestId: true });
    closePc(pub.pc);
  }

  /**
   * A device change: swap the track on the camera connection (and a microphone on the interpretation one) with
   * no renegotiation, or publish anew.
   */
  replaceTrack(kind, track) {
    return this.run(async () => {
      for (const source of kind === "audio" ? ["camera", "interpretation"] : ["camera"]) {
        const pub = this.publishers.get(source);
        if (!pub) continue;
        const sender = pub.pc.getSenders().find((s) => s.track && s.track.kind === kind);
        if (sender) await sender.replaceTrack(track);
        else await this._publish(source); // nothing of this kind was sent yet
      }
    });
  }

  // Subscribing ---------------------------------------------------------------------------------

  /** Ask for the feeds we should watch, if that set changed; one `subscribe` in flight at a time. */
  resubscribe() {
    return this.run(() => this._syncSubscription());
  }

  /** Ask again even if our set reads the same: what the server lets us receive changed (a `listen` took effect). */
  refresh() {
    return this.run(() => {
      this._forgetSent();
      this._syncSubscription();
    });
  }

  /**
   * The audio of every feed (`audioFor` says which interpretation channel), and video only of the feeds whose
   * tiles are on screen, each in the layer its tile needs (`videoFor`). A feed with nothing to receive is left out.
   */
  _wanted() {
    const wanted = [];
    const feeds = this.remoteFeeds();
    const layer = new Map(feeds.map((f) => [f.feed_id, f.video ? this.videoFor(f) : null]));
    // Within the server's cap: one high layer (a screen first, then the first asked for), the rest at most medium;
    // fifteen of those (screens first), then sound only.
    const ranked = [...feeds].filter((f) => layer.get(f.feed_id)).sort((a, b) => (b.source === "screen") - (a.source === "screen"));
    let high = 0;
    let other = 0;
    for (const f of this.uncapped ? [] : ranked) {
      if (layer.get(f.feed_id) === "high" && high < MAX_HIGH_VIDEOS) high += 1;
      else if (other < MAX_OTHER_VIDEOS) {
        other += 1;
        if (layer.get(f.feed_id) === "high") layer.set(f.feed_id, "medium");
      } else layer.set(f.feed_id, null);
    }
    for (const f of feeds) {
      const quality = layer.get(f.feed_id);
      const audio = Boolean(f.audio) && this.audioFor(f);
      if (!audio && !quality) continue;
      const item = { feed_id: f.feed_id, audio, video: Boolean(quality) };
      if (quality) item.quality = quality;
      wanted.push(item);
    }
    return wanted;
  }

  _syncSubscription() {
    if (!this.active) return;
    if (this.sub && this.sub.requestId !== null) return; // its answer comes first; we look again then
    const wanted = this._wanted();
    const key = JSON.stringify(wanted);
    if (!this.sub && !wanted.length) return;
    if (this.sub && this.sub.sentKey === key) return;
    if (!this.sub) this.sub = this._newSubscriber();
    const requestId = this.send({ type: "subscribe", feeds: wanted }, { withRequestId: true });
    if (requestId === false) return;
    this.sub.requestId = requestId;
    this.sub.sentKey = key;
  }

  _newSubscriber() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const sub = { pc, requestId: null, sentKey: null, streams: new Map(), pending: [], answered: false };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && sub.answered && this.sub === sub) {
        this.send({ type: "candidate", to: "sfu", pc: "subscribe", candidate: candidate.toJSON() });
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.sub !== sub) return;
      if (pc.connectionState === "failed") {
        // Start over: a new connection and the whole set again.
        this._closeSubscriber();
        this._syncSubscription();
      }
      this.onChange();
    };
    pc.ontrack = () => this.sub === sub && this._mapStreams();
    return sub;
  }

  /** `subscription`: the SFU's offer (or null: nothing changed), in reply to `subscribe` or unprompted. */
  subscription(msg) {
    return this.run(async () => {
      if (!this.active) return;
      if (!this.sub) {
        if (!msg.sdp) return;
        this.sub = this._newSubscriber();
      }
      const sub = this.sub;
      if (msg.request_id !== null && msg.request_id !== undefined && msg.request_id === sub.requestId) sub.requestId = null;
      sub.streams = new Map((msg.streams || []).map((s) => [s.mid, s]));
      if (msg.sdp) {
        const { pc } = sub;
        await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        if (!sub.answered) await gathered(pc, GATHER_WAIT_MS); // the first answer takes our candidates along
        if (this.sub !== sub) return;
        sub.answered = true;
        this.send({ type: "subscription_answer", sdp: pc.localDescription.sdp });
        for (const c of sub.pending.splice(0)) await this._addCandidate(pc, c);
      }
      this._mapStreams();
      this.onChange();
      this._syncSubscription(); // the set may have changed while this one was under way
    });
  }

  /** Which received track belongs to which feed: the offer's streams, by transceiver mid. */
  _mapStreams() {
    const sub = this.sub;
    if (!sub) return;
    const byFeed = new Map(); // feed id -> tracks
    for (const transceiver of sub.pc.getTransceivers()) {
      const info = transceiver.mid !== null && sub.streams.get(transceiver.mid);
      if (!info || transceiver.stopped || transceiver.currentDirection === "inactive") continue;
      if (!byFeed.has(info.feed_id)) byFeed.set(info.feed_id, []);
      byFeed.get(info.feed_id).push(transceiver.receiver.track);
    }
    for (const [feedId, stream] of [...this.media]) {
      if (!byFeed.has(feedId)) {
        this.media.delete(feedId);
        const feed = this.feeds.get(feedId);
        if (feed) this.onFeedMedia(feed, null);
      }
    }
    for (const [feedId, tracks] of byFeed) {
      const feed = this.feeds.get(feedId);
      if (!feed) continue;
      const old = this.media.get(feedId);
      const had = old ? old.getTracks() : [];
      if (old && had.length === tracks.length && tracks.every((track) => had.includes(track))) continue;
      // A new stream object when its tracks change (video dropped or added with the tile's visibility): a
      // <video> given the new one starts again with what is there now.
      const stream = new MediaStream(tracks);
      this.media.set(feedId, stream);
      this.onFeedMedia(feed, stream);
    }
  }

  _closeSubscriber() {
    if (!this.sub) return;
    closePc(this.sub.pc);
    this.sub = null;
    for (const [feedId] of [...this.media]) {
      const feed = this.feeds.get(feedId);
      this.media.delete(feedId);
      if (feed) this.onFeedMedia(feed, null);
    }
  }

  // ICE and errors ------------------------------------------------------------------------------

  /** A trickled candidate of the SFU for one of our connections. */
  candidate(pcName, candidate) {
    return this.run(async () => {
      if (pcName === "subscribe") {
        if (!this.sub) return;
        if (this.sub.pc.remoteDescription) await this._addCandidate(this.sub.pc, candidate);
        else this.sub.pending.push(candidate);
        return;
      }
      const pub = this.publishers.get(String(pcName || "").replace(/^publish:/, ""));
      if (!pub) return;
      if (pub.pc.remoteDescription) await this._addCandidate(pub.pc, candidate);
      else pub.pending.push(candidate);
    });
  }

  async _addCandidate(pc, candidate) {
    try {
      await pc.addIceCandidate(candidate);
    } catch (err) {
      console.warn("sfu: candidate refused", err);
    }
  }

  /** An `error` reply: true when it answered one of our requests (the caller then shows nothing itself). */
  error(msg) {
    if (msg.request_id === null || msg.request_id === undefined) return false;
    const source = this.publishRequests.get(msg.request_id);
    if (source) {
      this.publishRequests.delete(msg.request_id);
      this.run(() => {
        const pub = this.publishers.get(source);
        if (pub && pub.requestId === msg.request_id) {
          this._closePublisher(source, { unpublish: false });
          this.refused.add(source);
          this.onRefused(msg.code, source);
        }
        this.onChange();
      });
      return true;
    }
    if (this.sub && this.sub.requestId === msg.request_id) {
      this.run(() => {
        if (!this.sub) return;
        this.sub.requestId = null;
        this.sub.sentKey = null; // ask again when something changes (or after sfu_restored)
        this.onRefused(msg.code, "subscribe");
      });
      return true;
    }
    return false;
  }

  _closeAll() {
    for (const source of [...this.publishers.keys()]) this._closePublisher(source, { unpublish: false });
    this._closeSubscriber();
  }

  // Test and debugging hook ---------------------------------------------------------------------

  /**
   * What we asked the SFU for (the last `subscribe` sent) and what its offer carries: per mid, the feed, the
   * kind and whether that transceiver receives now.
   */
  subscriptionInfo() {
    const sub = this.sub;
    if (!sub) return { wanted: null, streams: [] };
    const active = new Map(sub.pc.getTransceivers().map((t) => [t.mid, !t.stopped && t.currentDirection !== "inactive"]));
    return {
      wanted: sub.sentKey ? JSON.parse(sub.sentKey) : null,
      pending: sub.requestId !== null,
      streams: [...sub.streams.values()].map((s) => ({ ...s, active: Boolean(active.get(s.mid)) })),
    };
  }

  /** Every connection with its role. */
  connections() {
    const out = [];
    for (const [source, pub] of this.publishers) {
      out.push({ role: `publish:${source}`, pc: pub.pc, feedId: pub.feedId });
    }
    if (this.sub) out.push({ role: "subscribe", pc: this.sub.pc, feedId: null });
    return out;
  }

  /** Per remote feed: the subscriber connection's state and the bytes received of the feed, by kind. */
  async stats() {
    const out = [];
    const sub = this.sub;
    const trackToFeed = new Map();
    for (const [feedId, stream] of this.media) for (const track of stream.getTracks()) trackToFeed.set(track.id, feedId);
    const byFeed = new Map();
    for (const feed of this.remoteFeeds()) {
      byFeed.set(feed.feed_id, {
        peerId: feed.peer_id,
        feedId: feed.feed_id,
        source: feed.source,
        connectionState: sub ? sub.pc.connectionState : "new",
        inbound: { audio: 0, video: 0 },
        framesDecoded: 0,
      });
    }
    if (sub) {
      const report = await sub.pc.getStats();
      for (const stat of report.values()) {
        if (stat.type !== "inbound-rtp") continue;
        const info = stat.mid !== undefined ? sub.streams.get(stat.mid) : null;
        const feedId = (info && info.feed_id) || trackToFeed.get(stat.trackIdentifier);
        const item = byFeed.get(feedId);
        if (!item) continue;
        item.inbound[stat.kind] += stat.bytesReceived || 0;
        if (stat.kind === "video") item.framesDecoded += stat.framesDecoded || 0;
      }
    }
    out.push(...byFeed.values());
    return out;
  }
}
