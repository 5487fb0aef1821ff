// One RTCPeerConnection per peer in a mesh room, negotiated with "perfect negotiation"
// (https://www.w3.org/TR/webrtc/#perfect-negotiation-example) over the signalling socket.
//
// Who offers: the newcomer (after welcome or moved) calls `connect(peer)` for every peer, which adds the local
// tracks and lets `negotiationneeded` send the offer. Peers already in the room wait: their connection is
// created when the newcomer's offer arrives. `polite` comes from the peer's roster entry (the server
// computes it from the receiver's side); collisions after that are settled by it.

export class PeerMesh {
  /**
   * @param {object} options
   * @param {(msg: object) => void} options.send a client message to the signalling socket
   * @param {() => MediaStream|null} options.localStream the tracks to send
   * @param {(peerId: string, stream: MediaStream) => void} options.onStream remote media for a peer
   * @param {(peerId: string, state: string) => void} options.onState connection state of a peer
   */
  constructor({ send, localStream, onStream, onState }) {
    this.send = send;
    this.localStream = localStream;
    this.onStream = onStream;
    this.onState = onState || (() => {});
    this.iceServers = [];
    this.peers = new Map(); // peer id -> {pc, polite, makingOffer, ignoreOffer, stream}
  }

  setIceServers(servers) {
    this.iceServers = (servers || []).map((s) => {
      const out = { urls: s.urls };
      if (s.username) out.username = s.username;
      if (s.credential) out.credential = s.credential;
      return out;
    });
  }

  has(peerId) {
    return this.peers.has(peerId);
  }

  _create(peerId, polite, { sendOnly = false } = {}) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const entry = { pc, polite, makingOffer: false, ignoreOffer: false, stream: new MediaStream() };
    this.peers.set(peerId, entry);

    const local = this.localStream();
    if (sendOnly) {
      // The recorder only receives.
      for (const track of local ? local.getTracks() : []) pc.addTransceiver(track, { direction: "sendonly", streams: [local] });
    } else {
      if (local) {
        for (const track of local.getTracks()) pc.addTrack(track, local);
      }
      // Receive even when we have nothing to send (no camera, no microphone, or one of them missing).
      const sending = new Set(local ? local.getTracks().map((t) => t.kind) : []);
      for (const kind of ["audio", "video"]) {
        if (!sending.has(kind)) pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }

    pc.onnegotiationneeded = async () => {
      if (this.peers.get(peerId) !== entry) return;
      try {
        entry.makingOffer = true;
        await pc.setLocalDescription();
        this.send({ type: "offer", to: peerId, sdp: pc.localDescription.sdp });
      } catch (err) {
        console.warn("offer to", peerId, "failed", err);
      } finally {
        entry.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && this.peers.get(peerId) === entry) {
        this.send({ type: "candidate", to: peerId, candidate: candidate.toJSON() });
      }
    };
    pc.ontrack = ({ track }) => {
      if (this.peers.get(peerId) !== entry) return;
      for (const old of entry.stream.getTracks()) {
        if (old.kind === track.kind) entry.stream.removeTrack(old);
      }
      entry.stream.addTrack(track);
      this.onStream(peerId, entry.stream);
    };
    pc.onconnectionstatechange = () => {
      if (this.peers.get(peerId) !== entry) return;
      this.onState(peerId, pc.connectionState);
      if (pc.connectionState === "failed") pc.restartIce();
    };
    return entry;
  }

  /** As the newcomer (or to the recorder, `sendOnly`): open a connection to `peerId` and offer (through negotiationneeded). */
  connect(peerId, polite, options = {}) {
    this.close(peerId);
    this._create(peerId, polite, options);
    this.onState(peerId, "new");
  }

  async handleOffer(from, sdp, polite) {
    let entry = this.peers.get(from);
    if (!entry) {
      entry = this._create(from, polite);
      this.onState(from, "new");
    }
    const { pc } = entry;
    const collision = entry.makingOffer || pc.signalingState !== "stable";
    entry.ignoreOffer = !entry.polite && collision;
    if (entry.ignoreOffer) return;
    // The polite side rolls its own offer back implicitly.
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription();
    if (this.peers.get(from) === entry) this.send({ type: "answer", to: from, sdp: pc.localDescription.sdp });
  }

  async handleAnswer(from, sdp) {
    const entry = this.peers.get(from);
    if (!entry || entry.pc.signalingState !== "have-local-offer") return;
    await entry.pc.setRemoteDescription({ type: "answer", sdp });
  }

  async handleCandidate(from, candidate) {
    const entry = this.peers.get(from);
    if (!entry) return;
    try {
      await entry.pc.addIceCandidate(candidate);
    } catch (err) {
      if (!entry.ignoreOffer) console.warn("candidate from", from, "refused", err);
    }
  }

  close(peerId) {
    const entry = this.peers.get(peerId);
    if (!entry) return;
    this.peers.delete(peerId);
    entry.pc.onnegotiationneeded = entry.pc.onicecandidate = entry.pc.ontrack = entry.pc.onconnectionstatechange = null;
    entry.pc.close();
    this.onState(peerId, "closed");
  }

  closeAll() {
    for (const peerId of [...this.peers.keys()]) this.close(peerId);
  }

  /** Swap the track we send of `kind` on every connection (device change, screen share); no renegotiation. */
  async replaceTrack(kind, track) {
    const jobs = [];
    for (const { pc } of this.peers.values()) {
      const sender = pc.getSenders().find((s) => s.track && s.track.kind === kind);
      if (sender) {
        jobs.push(sender.replaceTrack(track));
      } else if (track) {
        // Nothing of this kind was sent yet (joined without a camera): start sending; this renegotiates.
        const transceiver = pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === kind);
        if (transceiver) {
          transceiver.direction = "sendrecv";
          jobs.push(transceiver.sender.replaceTrack(track));
        }
      }
    }
    await Promise.allSettled(jobs);
  }

  /** Per peer: connection state and inbound bytes by kind (the test hook reads this). */
  async stats() {
    const out = [];
    for (const [peerId, { pc }] of this.peers) {
      const item = {
        peerId,
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
        inbound: { audio: 0, video: 0 },
        outbound: { audio: 0, video: 0 },
        framesDecoded: 0,
        selectedPair: null,
      };
      const report = await pc.getStats();
      for (const stat of report.values()) {
        if (stat.type === "inbound-rtp") {
          item.inbound[stat.kind] += stat.bytesReceived || 0;
          if (stat.kind === "video") item.framesDecoded += stat.framesDecoded || 0;
        } else if (stat.type === "outbound-rtp") {
          item.outbound[stat.kind] += stat.bytesSent || 0;
        } else if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
          const local = report.get(stat.localCandidateId);
          const remote = report.get(stat.remoteCandidateId);
          item.selectedPair = {
            local: local && `${local.address}:${local.port}`,
            remote: remote && `${remote.address}:${remote.port}`,
          };
        }
      }
      out.push(item);
    }
    return out;
  }
}
