// The local camera, microphone and screen share.
//
// One MediaStream (`stream`) holds what we send: at most one audio and one video track. Muting disables
// a track (the peer connections keep their senders, so unmuting is instant and needs no renegotiation);
// a device change or a screen share swaps the track on every sender with replaceTrack.

const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24, max: 30 } };

export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.audioEnabled = true;
    this.videoEnabled = true;
    this.audioDeviceId = "";
    this.videoDeviceId = "";
    this.cameraTrack = null;
    this.screenTrack = null;
    this.error = null;
  }

  get audioTrack() {
    return this.stream.getAudioTracks()[0] || null;
  }

  get videoTrack() {
    return this.stream.getVideoTracks()[0] || null;
  }

  get hasAudio() {
    return this.audioTrack !== null;
  }

  get hasVideo() {
    return this.cameraTrack !== null;
  }

  get sharingScreen() {
    return this.screenTrack !== null;
  }

  /** Open camera and microphone (the chosen devices, else the defaults). Failure leaves what worked. */
  async start() {
    this.error = null;
    const audio = this.audioDeviceId ? { deviceId: { exact: this.audioDeviceId } } : true;
    const video = this.videoDeviceId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: this.videoDeviceId } } : VIDEO_CONSTRAINTS;
    let got = null;
    try {
      got = await navigator.mediaDevices.getUserMedia({ audio, video });
    } catch (err) {
      this.error = err;
      // Try each on its own: a missing camera should not cost the microphone.
      for (const constraints of [{ audio }, { video }]) {
        try {
          const one = await navigator.mediaDevices.getUserMedia(constraints);
          got = got || new MediaStream();
          for (const track of one.getTracks()) got.addTrack(track);
        } catch (inner) {
          this.error = inner;
        }
      }
    }
    this.stopTracks();
    if (got) {
      for (const track of got.getTracks()) this.stream.addTrack(track);
      this.cameraTrack = got.getVideoTracks()[0] || null;
      const a = this.audioTrack;
      if (a) this.audioDeviceId = a.getSettings().deviceId || this.audioDeviceId;
      if (this.cameraTrack) this.videoDeviceId = this.cameraTrack.getSettings().deviceId || this.videoDeviceId;
    }
    this.setAudioEnabled(this.audioEnabled);
    this.setVideoEnabled(this.videoEnabled);
    return this.stream;
  }

  stopTracks() {
    for (const track of this.stream.getTracks()) {
      track.stop();
      this.stream.removeTrack(track);
    }
    this.cameraTrack = null;
  }

  async devices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { audio: [], video: [] };
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: all.filter((d) => d.kind === "audioinput"),
      video: all.filter((d) => d.kind === "videoinput"),
    };
  }

  setAudioEnabled(on) {
    this.audioEnabled = on;
    if (this.audioTrack) this.audioTrack.enabled = on;
  }

  setVideoEnabled(on) {
    this.videoEnabled = on;
    if (this.cameraTrack) this.cameraTrack.enabled = on;
  }

  /** Switch to another microphone or camera; returns the new track (to replace on the senders). */
  async switchDevice(kind, deviceId) {
    const constraints =
      kind === "audio"
        ? { audio: { deviceId: { exact: deviceId } } }
        : { video: { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } };
    const got = await navigator.mediaDevices.getUserMedia(constraints);
    const track = got.getTracks()[0];
    if (kind === "audio") {
      const old = this.audioTrack;
      if (old) {
        this.stream.removeTrack(old);
        old.stop();
      }
      this.audioDeviceId = deviceId;
      track.enabled = this.audioEnabled;
      this.stream.addTrack(track);
    } else {
      const old = this.cameraTrack;
      this.videoDeviceId = deviceId;
      track.enabled = this.videoEnabled;
      this.cameraTrack = track;
      if (!this.screenTrack) {
        if (old) this.stream.removeTrack(old);
        this.stream.addTrack(track);
      }
      if (old) old.stop();
    }
    return track;
  }

  /** Start sharing the screen: it replaces the camera in `stream`; returns the screen track. */
  async startScreen(onEnded) {
    const display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = display.getVideoTracks()[0];
    track.contentHint = "detail";
    track.addEventListener("ended", () => onEnded && onEnded());
    if (this.cameraTrack) this.stream.removeTrack(this.cameraTrack);
    this.screenTrack = track;
    this.stream.addTrack(track);
    return track;
  }

  /** Stop sharing; returns the camera track to send again (or null). */
  stopScreen() {
    const track = this.screenTrack;
    if (!track) return this.cameraTrack;
    this.screenTrack = null;
    this.stream.removeTrack(track);
    track.stop();
    if (this.cameraTrack) this.stream.addTrack(this.cameraTrack);
    return this.cameraTrack;
  }

  stop() {
    if (this.screenTrack) this.stopScreen();
    this.stopTracks();
  }
}
