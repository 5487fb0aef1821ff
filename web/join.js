// The participant page (/join#<join token>): pre-join preview, then the room (video through a peer-to-peer mesh
// or the SFU, chat, people, breakouts), and the moderator console for moderators and organisers.

import { Api, ApiError } from "./api.js";
import { $, clear, countryBadge, h, jwtClaims, toast } from "./dom.js";
import { LocalMedia } from "./media.js";
import { ModeratorConsole } from "./moderator.js";
import { PeerMesh } from "./peers.js";
import { SfuSession } from "./sfu.js";
import { Signaling } from "./signaling.js";
import { applyStrings, countryName, formatDuration, formatTime, roleName, t } from "./strings.js";

const MODERATOR_ROLES = new Set(["organiser", "moderator"]);

const END_MESSAGES = {
  1000: "end_left",
  4400: "end_protocol",
  4401: "end_unauthenticated",
  4403: "end_removed",
  4409: "end_replaced",
  4429: "end_room_full",
};

const state = {
  token: "",
  claims: null,
  me: null, // the participant record from the API (pre-join)
  workshop: null,
  self: null, // welcome.self, kept up to date from peer_updated
  room: null,
  plenaryId: null,
  roster: new Map(), // peer id -> PeerInfo
  connection: new Map(), // peer id -> RTCPeerConnection state
  chat: new Map(), // chat id -> message
  breakout: null,
  recording: null, // welcome/moved.recording or recording_started: the room's running recording
  consent: new Map(), // recording id -> our answer (true/false)
  breakoutDeadline: null, // performance.now() ms when the breakouts end
  closingDeadline: null, // performance.now() ms when the closing countdown ends
  hand: false,
  speaking: new Set(), // peer ids speaking now (sfu rooms)
  sfuAvailable: true, // false between sfu_unavailable and sfu_restored
  joined: false,
  reconnecting: false,
  ended: false,
};

const media = new LocalMedia();
let api = null;
let signaling = null;
let mesh = null; // mesh rooms: one connection per peer
let sfu = null; // sfu rooms: publishers and one subscriber
let moderator = null;
let timer = null;
const tiles = new Map(); // peer id, "self", or "screen:<feed id>" (a screen share in an sfu room) -> tile element

// Start -------------------------------------------------------------------------------------------

async function main() {
  applyStrings();
  state.token = decodeURIComponent(location.hash.replace(/^#/, "")).trim();
  state.claims = state.token ? jwtClaims(state.token) : null;
  if (!state.claims || !state.claims.sub || !state.claims.wid) {
    showEnd(t("end_no_token"), { heading: "end_heading_disconnected" });
    return;
  }
  api = new Api(state.token);
  try {
    const [me, workshop] = await Promise.all([
      api.get(`/workshops/${state.claims.wid}/participants/${state.claims.sub}`),
      api.get(`/workshops/${state.claims.wid}`),
    ]);
    state.me = me;
    state.workshop = workshop;
  } catch (err) {
    const message = err instanceof ApiError && err.status === 401 ? t("end_unauthenticated") : t("end_invalid_link", { error: err.message });
    showEnd(message, { heading: "end_heading_disconnected" });
    return;
  }
  document.title = `${state.workshop.title} · ${t("app_name")}`;
  await showPrejoin();
}

function showSection(id) {
  for (const section of ["loading", "prejoin", "room", "end"]) $(`#${section}`).hidden = section !== id;
}

// Pre-join ----------------------------------------------------------------------------------------

async function showPrejoin() {
  showSection("prejoin");
  $("#pre-name").textContent = state.me.display_name;
  clear($("#pre-country"), countryBadge(state.me.country, countryName(state.me.country)));
  $("#pre-role").textContent = roleName(state.me.role);
  $("#pre-workshop").textContent = state.workshop.title;

  $("#pre-mic").addEventListener("change", (e) => media.setAudioEnabled(e.target.checked));
  $("#pre-cam").addEventListener("change", (e) => {
    media.setVideoEnabled(e.target.checked);
    $("#preview").classList.toggle("off", !e.target.checked);
  });
  $("#camera-select").addEventListener("change", (e) => changeDevice("video", e.target.value));
  $("#mic-select").addEventListener("change", (e) => changeDevice("audio", e.target.value));
  $("#prejoin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join();
  });

  if (!navigator.mediaDevices) {
    showPrejoinError(t("prejoin_media_error", { error: "insecure page" }));
  } else {
    await media.start();
    if (media.error) showPrejoinError(t("prejoin_media_error", { error: media.error.name || media.error.message }));
    $("#preview").srcObject = media.stream;
    await fillDevices();
    navigator.mediaDevices.addEventListener("devicechange", fillDevices);
  }
  $("#join-button").focus();
}

function showPrejoinError(text) {
  const el = $("#prejoin-error");
  el.textContent = text;
  el.hidden = false;
}

async function fillDevices() {
  const { audio, video } = await media.devices();
  fillSelect($("#camera-select"), video, media.videoDeviceId, "prejoin_camera");
  fillSelect($("#mic-select"), audio, media.audioDeviceId, "prejoin_microphone");
}

function fillSelect(select, devices, current, kindKey) {
  clear(select);
  if (!devices.length) {
    select.append(h("option", { value: "" }, t("prejoin_no_device")));
    select.disabled = true;
    return;
  }
  select.disabled = false;
  devices.forEach((d, i) => {
    const label = d.label || `${t(kindKey)} ${i + 1}`;
    select.append(h("option", { value: d.deviceId, selected: d.deviceId === current }, label));
  });
}

async function changeDevice(kind, deviceId) {
  if (!deviceId) return;
  try {
    const track = await media.switchDevice(kind, deviceId);
    if (isSfu()) await sfu.replaceTrack(kind, track); // the camera connection keeps the camera while a screen is shared
    else if (mesh && !(kind === "video" && media.sharingScreen)) await mesh.replaceTrack(kind, track);
    $("#preview").srcObject = media.stream;
    refreshSelfTile();
  } catch (err) {
    toast(t("device_switch_failed", { error: err.name || err.message }), { kind: "error" });
  }
}

// Joining -----------------------------------------------------------------------------------------

function join() {
  const button = $("#join-button");
  button.disabled = true;
  button.textContent = t("joining");
  mesh = new PeerMesh({
    send: (msg) => signaling.send(msg),
    localStream: () => (media.stream.getTracks().length ? media.stream : null),
    onStream: attachRemoteStream,
    onState: (peerId, connectionState) => {
      if (connectionState === "closed") state.connection.delete(peerId);
      else state.connection.set(peerId, connectionState);
      renderTile(peerId);
    },
  });
  sfu = new SfuSession({
    send: (msg, options) => signaling.send(msg, options),
    selfId: () => (state.self ? state.self.id : null),
    tracksFor: (source) => (source === "camera" ? [media.audioTrack, media.cameraTrack] : [media.screenTrack]),
    onFeedMedia: () => renderTiles(),
    onChange: () => renderTiles(),
    onRefused: onSfuRefused,
  });
  signaling = new Signaling({
    token: state.token,
    onMessage: handle,
    onReconnecting: ({ attempt }) => {
      state.reconnecting = true;
      const banner = $("#reconnect-banner");
      banner.textContent = attempt > 1 ? t("reconnecting_attempt", { n: attempt }) : t("reconnecting");
      banner.hidden = false;
      document.body.classList.add("is-reconnecting");
    },
    onEnded: ({ code }) => ended(code),
  });
  signaling.connect();
}

// Incoming messages, strictly in order (see signaling.js) ----------------------------------------

async function handle(msg) {
  switch (msg.type) {
    case "welcome":
      return onWelcome(msg);
    case "peer_joined":
      mesh.close(msg.peer.id); // a stale connection from before a replace
      state.roster.set(msg.peer.id, msg.peer);
      return renderRoom();
    case "peer_left":
      state.roster.delete(msg.peer_id);
      state.speaking.delete(msg.peer_id);
      mesh.close(msg.peer_id);
      if (isSfu()) sfu.peerLeft(msg.peer_id);
      return renderRoom();
    case "peer_reconnecting": {
      const peer = state.roster.get(msg.peer_id);
      if (peer) peer.reconnecting = true;
      return renderRoom();
    }
    case "peer_resumed": {
      // Its peer connections did not survive the new socket: drop ours and wait for its offer.
      const peer = state.roster.get(msg.peer_id);
      if (peer) peer.reconnecting = false;
      mesh.close(msg.peer_id);
      return renderRoom();
    }
    case "peer_updated":
      return onPeerUpdated(msg.peer);
    case "offer":
      if (isSfu()) return; // no peer-to-peer media in an sfu room (a late one from before a switch)
      return mesh.handleOffer(msg.from, msg.sdp, politeTowards(msg.from));
    case "answer":
      return mesh.handleAnswer(msg.from, msg.sdp);
    case "candidate":
      if (msg.from === "sfu") {
        sfu.candidate(msg.pc, msg.candidate);
        return;
      }
      return mesh.handleCandidate(msg.from, msg.candidate);
    // SFU rooms. The SfuSession keeps its own order; nothing here waits for it.
    case "published":
      sfu.published(msg);
      return;
    case "subscription":
      sfu.subscription(msg);
      return;
    case "feed_added":
      if (isSfu()) sfu.feedAdded(msg.feed);
      return;
    case "feed_removed":
      if (isSfu()) sfu.feedRemoved(msg.feed_id, msg.reason);
      return;
    case "sfu_unavailable":
      return onSfuUnavailable();
    case "sfu_restored":
      return onSfuRestored();
    case "room_media_changed":
      return onRoomMediaChanged(msg);
    case "room_updated":
      // Renamed, resized or who may publish changed: the connections stay as they are.
      if (state.room && state.room.id === msg.room.id) {
        state.room = msg.room;
        renderRoom();
      }
      return;
    case "speaking":
      return onSpeaking(msg);
    case "floor":
      return onFloor(msg);
    case "chat":
      addChat(msg);
      return;
    case "moved":
      return onMoved(msg);
    case "breakouts_opened":
    case "breakouts_updated":
      setBreakout(msg.breakout);
      if (msg.type === "breakouts_opened") toast(t("breakouts_opened"));
      moderator?.onEvent(msg);
      return;
    case "breakouts_closing":
      if (state.breakout) state.breakout = { ...state.breakout, state: "closing", closes_at: msg.closes_at };
      state.closingDeadline = performance.now() + msg.seconds * 1000;
      renderBreakout();
      moderator?.onEvent(msg);
      return;
    case "breakouts_closed":
      setBreakout(null);
      toast(t("breakouts_closed"));
      moderator?.onEvent(msg);
      return;
    case "broadcast":
      return showBroadcast(msg);
    case "help_requested":
      moderator?.onEvent(msg);
      return;
    case "mute_requested":
      return onMuteRequested(msg);
    case "recording_started":
      toast(t("recording_started"));
      setRecording(msg);
      moderator?.onEvent(msg);
      return;
    case "recording_stopped":
      if (state.recording && state.recording.recording_id === msg.recording_id) {
        toast(t("recording_stopped"));
        setRecording(null);
      }
      moderator?.onEvent(msg);
      return;
    case "error":
      if (sfu.error(msg)) return; // a publish or subscribe of ours: handled there
      if (msg.code === "unavailable" && isSfu()) return; // a candidate or answer while the SFU is down: the banner says it
      if (msg.code === "not_found") console.info("signalling:", msg.message);
      else if (msg.code !== "rate_limited") toast(t("error_generic", { message: msg.message }), { kind: "error" });
      return;
    case "ack":
    case "bye":
      return;
    default:
      console.debug("signalling: ignoring", msg.type); // newer server messages are allowed
  }
}

function politeTowards(peerId) {
  const peer = state.roster.get(peerId);
  // The server's answer when we have it; else the same rule it uses (the smaller id is polite).
  return peer ? peer.polite : state.self.id < peerId;
}

function onWelcome(msg) {
  const first = !state.joined;
  state.joined = true;
  state.self = msg.self;
  state.hand = msg.self.state.hand;
  mesh.setIceServers(msg.ice_servers);
  sfu.setIceServers(mesh.iceServers);
  const available = msg.sfu_available !== false;
  if (msg.resumed && isSfu() && state.room.id === msg.room.id && msg.room.media === "sfu" && available && state.sfuAvailable) {
    // The server kept our SFU handles across the drop, and media never went through the socket: keep them.
    state.room = msg.room;
    state.roster = new Map(msg.peers.map((p) => [p.id, p]));
    sfu.resume(msg.feeds);
    syncPublishing();
    renderRoom();
  } else {
    state.sfuAvailable = available;
    enterRoom(msg.room, msg.peers, msg.feeds);
  }
  setBreakout(msg.breakout);
  setRecording(msg.recording);
  if (!msg.resumed) {
    state.chat.clear();
    clear($("#chat-log"));
    for (const item of msg.chat) addChat(item, { quiet: true });
  }
  if (first) {
    showRoom();
  }
  if (state.reconnecting) {
    state.reconnecting = false;
    $("#reconnect-banner").hidden = true;
    document.body.classList.remove("is-reconnecting");
    toast(t("reconnected"));
  }
  // Tell the room what we really send (a new member starts as audio+video on).
  signaling.send({
    type: "update",
    audio: media.hasAudio && media.audioEnabled,
    video: media.hasVideo && media.videoEnabled,
    screen: media.sharingScreen,
    hand: state.hand,
  });
  if (first && MODERATOR_ROLES.has(state.self.role)) startModerator();
  moderator?.onEvent(msg);
}

/**
 * A new room picture (welcome, moved, room_media_changed): fresh connections. In a mesh room we offer to everyone
 * as the newcomer; in an sfu room we publish (when we may) and subscribe to the others' feeds.
 */
function enterRoom(room, peers, feeds = []) {
  mesh.closeAll();
  state.room = room;
  if (room.kind === "plenary") state.plenaryId = room.id;
  state.roster = new Map(peers.map((p) => [p.id, p]));
  state.connection.clear();
  state.speaking.clear();
  if (isSfu()) {
    sfu.enter(feeds, state.sfuAvailable);
    sfu.resubscribe();
    syncPublishing();
  } else {
    sfu.leave();
    for (const peer of peers) {
      if (!peer.reconnecting) mesh.connect(peer.id, peer.polite);
    }
  }
  renderSfuBanner();
  renderRoom();
}

function isSfu() {
  return Boolean(state.room && state.room.media === "sfu");
}

function mayPublish() {
  return Boolean(state.self && state.self.may_publish !== false);
}

/** Publish in an sfu room what we have and may: camera and microphone together, the screen on its own. */
function syncPublishing() {
  if (!isSfu() || !state.sfuAvailable) return;
  const may = mayPublish();
  sfu.want({ camera: may && (media.hasAudio || media.hasVideo), screen: may && media.sharingScreen });
}

/** The server refused a publish (`what` is its source) or our subscribe (`what` is "subscribe"). */
function onSfuRefused(code, what) {
  if (code === "unavailable") {
    state.sfuAvailable = false; // the SFU is down: sfu_restored brings it back
    renderSfuBanner();
    renderTiles();
  } else if (code === "invalid_argument" || what === "subscribe") {
    console.warn("sfu: refused", what, code); // a room that just switched to mesh, or asked again on the next change
  } else if (code === "permission_denied") {
    if (mayPublish()) toast(t("sfu_publish_denied"), { kind: "error" });
  } else {
    toast(t("sfu_publish_failed", { source: t(`source_${what}`) }), { kind: "error" });
  }
}

function onSfuUnavailable() {
  state.sfuAvailable = false;
  sfu.unavailable();
  renderSfuBanner();
  renderRoom();
}

function onSfuRestored() {
  state.sfuAvailable = true;
  if (isSfu()) {
    sfu.enter([], true); // every feed went with the old SFU; the others' come back as feed_added
    sfu.resubscribe();
    syncPublishing();
    toast(t("sfu_restored"));
  }
  renderSfuBanner();
  renderRoom();
}

function renderSfuBanner() {
  $("#sfu-banner").hidden = !(isSfu() && !state.sfuAvailable);
}

function onRoomMediaChanged(msg) {
  state.sfuAvailable = true; // not told in a mesh room; a refused request says otherwise
  const self = msg.peers.find((p) => p.id === state.self.id);
  if (self) state.self = { ...state.self, may_publish: self.may_publish };
  enterRoom(
    msg.room,
    msg.peers.filter((p) => p.id !== state.self.id),
    msg.feeds,
  );
  syncRecorder();
  addSystemLine(t("media_changed", { mode: t(isSfu() ? "media_mode_sfu" : "media_mode_mesh") }));
  moderator?.onEvent(msg);
}

function onSpeaking(msg) {
  if (msg.speaking) state.speaking.add(msg.peer_id);
  else state.speaking.delete(msg.peer_id);
  renderTile(state.self && msg.peer_id === state.self.id ? "self" : msg.peer_id);
}

function onFloor(msg) {
  state.self = { ...state.self, may_publish: msg.granted };
  if (msg.granted) {
    toast(t("floor_granted", { name: msg.by.display_name }));
    sfu.allowAgain();
    syncPublishing();
  } else {
    toast(t("floor_revoked", { name: msg.by.display_name }));
    sfu.stopPublishing(); // the server already removed our feeds
    if (media.sharingScreen) {
      media.stopScreen();
      sendState({ screen: false });
    }
  }
  renderControls();
  renderRoom();
}

function onMoved(msg) {
  state.sfuAvailable = true; // not told in a mesh room; a refused request says otherwise
  enterRoom(msg.room, msg.peers, msg.feeds);
  setBreakout(msg.breakout);
  setRecording(msg.recording);
  state.chat.clear();
  clear($("#chat-log"));
  const back = msg.room.kind === "plenary";
  const note = t(back ? "moved_back" : "moved_to_room", { room: roomTitle(msg.room) });
  addSystemLine(note);
  toast(note);
  moderator?.onEvent(msg);
}

function onPeerUpdated(peer) {
  if (peer.id === state.self.id) {
    const wasHand = state.hand;
    const oldRole = state.self.role;
    const mightPublish = mayPublish();
    state.self = { ...state.self, ...peer, state: peer.state };
    if (mightPublish !== mayPublish()) {
      if (mayPublish()) sfu.allowAgain();
      else sfu.stopPublishing();
      syncPublishing();
    }
    state.hand = peer.state.hand;
    if (wasHand && !state.hand) toast(t("hand_lowered"));
    if (!MODERATOR_ROLES.has(oldRole) && MODERATOR_ROLES.has(peer.role)) startModerator();
    renderControls();
    renderRoom();
    return;
  }
  const old = state.roster.get(peer.id);
  state.roster.set(peer.id, { ...peer, reconnecting: old ? old.reconnecting && peer.reconnecting : peer.reconnecting });
  renderRoom();
}

function onMuteRequested(msg) {
  if (msg.kind === "audio") {
    media.setAudioEnabled(false);
    toast(t("muted_by_moderator", { name: msg.by.display_name }));
  } else {
    media.setVideoEnabled(false);
    toast(t("camera_off_by_moderator", { name: msg.by.display_name }));
  }
  renderControls();
  refreshSelfTile();
}

// Breakouts ---------------------------------------------------------------------------------------

function setBreakout(status) {
  state.breakout = status || null;
  state.breakoutDeadline =
    status && status.remaining_s !== null && status.remaining_s !== undefined ? performance.now() + status.remaining_s * 1000 : null;
  if (!status || status.state !== "closing") state.closingDeadline = null;
  else if (status.closes_at && state.closingDeadline === null) {
    state.closingDeadline = performance.now() + Math.max(0, Date.parse(status.closes_at) - Date.now());
  }
  renderBreakout();
}

function renderBreakout() {
  const status = state.breakout;
  const banner = $("#breakout-banner");
  const pill = $("#breakout-timer");
  if (!status) {
    banner.hidden = true;
    pill.hidden = true;
    clearInterval(timer);
    timer = null;
    renderChooser();
    renderControls();
    return;
  }
  // The header pill always shows the time left; the banner only the closing countdown, which needs attention.
  const now = performance.now();
  const closing = status.state === "closing" && state.closingDeadline !== null;
  if (closing) {
    const left = formatDuration((state.closingDeadline - now) / 1000);
    $("#breakout-text").textContent = t("breakout_closing", { time: left });
    pill.textContent = t("breakout_closing_short", { time: left });
  } else if (state.breakoutDeadline !== null) {
    pill.textContent = t("breakout_time_left", { name: status.name, time: formatDuration((state.breakoutDeadline - now) / 1000) });
  } else {
    pill.textContent = t("breakout_open_no_deadline", { name: status.name });
  }
  banner.hidden = !closing;
  pill.classList.toggle("urgent", closing);
  pill.hidden = false;
  if (!timer) timer = setInterval(renderBreakout, 1000);
  renderChooser();
  renderControls();
}

function renderChooser() {
  const box = $("#room-chooser");
  const status = state.breakout;
  if (!status || status.strategy !== "self_select" || status.state !== "open" || !state.room) {
    box.hidden = true;
    return;
  }
  clear(box, 
    h("h2", {}, t("choose_heading")),
    h("p", { class: "hint" }, t("choose_hint")),
    h(
      "ul",
      { class: "chooser-list" },
      status.rooms.map((room) =>
        h(
          "li",
          {},
          room.id === state.room.id
            ? h("span", { class: "current" }, `${room.name} · ${t("choose_current")}`)
            : h("button", { type: "button", onclick: () => chooseRoom(room.id) }, t("choose_join", { room: room.name })),
        ),
      ),
    ),
    state.plenaryId && state.room.id !== state.plenaryId
      ? h("button", { type: "button", class: "ghost", onclick: () => chooseRoom(state.plenaryId) }, t("choose_back"))
      : null,
  );
  box.hidden = false;
}

export function chooseRoom(roomId) {
  signaling.send({ type: "choose_room", room_id: roomId }, { withRequestId: true });
}

// Recording ---------------------------------------------------------------------------------------
//
// Media goes to the recorder (a hidden peer) only while our consent holds: explicit mode needs a "yes",
// assumed mode anything but a "no". We always offer to it; it only receives.

function setRecording(status) {
  const old = state.recording;
  state.recording = status ? { ...status } : null;
  if (old && (!status || old.recorder_peer_id !== status.recorder_peer_id)) mesh.close(old.recorder_peer_id);
  renderRecording();
  syncRecorder();
  moderator?.renderRooms();
}

function consentHolds() {
  const rec = state.recording;
  if (!rec) return false;
  const answer = state.consent.get(rec.recording_id);
  return rec.consent_mode === "assumed" ? answer !== false : answer === true;
}

function syncRecorder() {
  const rec = state.recording;
  if (!rec) return;
  // In an sfu room the recorder takes our feeds from the SFU: no connection of ours to it.
  const wanted = !isSfu() && consentHolds() && media.stream.getTracks().length > 0;
  if (wanted && !mesh.has(rec.recorder_peer_id)) mesh.connect(rec.recorder_peer_id, true, { sendOnly: true });
  if (!wanted && mesh.has(rec.recorder_peer_id)) mesh.close(rec.recorder_peer_id);
}

function renderRecording(forcePrompt = false) {
  const rec = state.recording;
  const pill = $("#recording-indicator");
  const banner = $("#consent-banner");
  if (!rec) {
    pill.hidden = true;
    banner.hidden = true;
    return;
  }
  const recorded = consentHolds();
  pill.textContent = `● ${t("recording_indicator")}`;
  pill.title = t(recorded ? "recording_you_are" : "recording_you_are_not");
  pill.setAttribute("aria-label", `${t(recorded ? "recording_you_are" : "recording_you_are_not")}. ${t("recording_indicator_label")}`);
  pill.hidden = false;
  const answered = state.consent.has(rec.recording_id);
  if (!answered || forcePrompt) {
    $("#consent-text").textContent = t(rec.consent_mode === "assumed" ? "consent_assumed_text" : "consent_explicit_text");
    $("#consent-yes").textContent = t(rec.consent_mode === "assumed" ? "consent_ok" : "consent_yes");
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
}

function answerConsent(granted) {
  const rec = state.recording;
  if (!rec) return;
  state.consent.set(rec.recording_id, granted);
  // The server handles one connection's messages in order: the consent is on the ledger before our offer.
  signaling.send({ type: "consent", recording_id: rec.recording_id, granted }, { withRequestId: true });
  renderRecording();
  syncRecorder();
}

function showBroadcast(msg) {
  $("#broadcast-from").textContent = t("broadcast_from", { name: msg.from.display_name }) + ":";
  $("#broadcast-text").textContent = msg.text;
  $("#broadcast-banner").hidden = false;
  addSystemLine(`${t("broadcast_from", { name: msg.from.display_name })}: ${msg.text}`);
}

// Room view ---------------------------------------------------------------------------------------

function roomTitle(room) {
  return room.kind === "plenary" ? t("room_plenary") : room.name;
}

function showRoom() {
  showSection("room");
  $("#room-title").textContent = state.workshop.title;
  // The device pickers move into the room's dialog.
  $("#devices-slot").append($("#device-fields"));
  $("#preview").srcObject = null;
  setupTabs();
  setupControls();
  $("#chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (signaling.send({ type: "chat", text }, { withRequestId: true })) input.value = "";
  });
  $("#broadcast-dismiss").addEventListener("click", () => ($("#broadcast-banner").hidden = true));
  $("#consent-yes").addEventListener("click", () => answerConsent(true));
  $("#consent-no").addEventListener("click", () => answerConsent(false));
  $("#recording-indicator").addEventListener("click", () => {
    renderRecording(true);
    $("#consent-yes").focus();
  });
  renderControls();
  renderRoom();
  $("#btn-mic").focus();
}

function renderRoom() {
  if (!state.room) return;
  $("#room-name").textContent = t("room_label", { name: roomTitle(state.room) });
  $("#btn-help").hidden = state.room.kind !== "breakout";
  renderTiles();
  renderPeople();
  renderChooser();
  moderator?.renderRooms();
}

function renderTiles() {
  const grid = $("#grid");
  if (!state.room) return;
  const wanted = ["self"];
  for (const peer of [...state.roster.values()].sort(byName)) {
    wanted.push(peer.id);
    // In an sfu room a screen share is a feed, and a tile, of its own (after its sharer's).
    if (isSfu()) for (const feed of sfu.remoteFeeds()) if (feed.peer_id === peer.id && feed.source === "screen") wanted.push(`screen:${feed.feed_id}`);
  }
  for (const [id, tile] of tiles) {
    if (!wanted.includes(id)) {
      tile.querySelector("video").srcObject = null;
      tile.remove();
      tiles.delete(id);
    }
  }
  wanted.forEach((id, index) => {
    let tile = tiles.get(id);
    if (!tile) {
      tile = makeTile(id);
      tiles.set(id, tile);
    }
    if (grid.children[index] !== tile) grid.insertBefore(tile, grid.children[index] || null);
    renderTile(id);
  });
  grid.dataset.count = String(Math.min(wanted.length, 9));
}

function makeTile(id) {
  const isSelf = id === "self";
  const video = h("video", { autoplay: true, playsinline: true, muted: isSelf, class: isSelf ? "mirrored" : "" });
  video.muted = isSelf;
  const screenFeed = id.startsWith("screen:") ? id.slice("screen:".length) : null;
  const dataset = screenFeed
    ? { feedId: screenFeed, screenOf: sfu.feeds.get(screenFeed)?.peer_id || "", self: "false" }
    : { peerId: isSelf ? state.self.id : id, self: isSelf ? "true" : "false" };
  const tile = h(
    "figure",
    { class: screenFeed ? "tile tile-screen" : "tile", dataset },
    video,
    h("div", { class: "tile-status" }),
    h("figcaption", { class: "tile-caption" }),
  );
  if (isSelf) video.srcObject = media.stream;
  return tile;
}

function refreshSelfTile() {
  const tile = tiles.get("self");
  if (tile) {
    const video = tile.querySelector("video");
    if (video.srcObject !== media.stream) video.srcObject = media.stream;
    video.classList.toggle("mirrored", !media.sharingScreen);
    renderTile("self");
  }
}

function renderTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  if (id.startsWith("screen:")) return renderScreenTile(id, tile);
  const isSelf = id === "self";
  const info = isSelf ? { ...state.self, state: selfState() } : state.roster.get(id);
  if (!info) return;
  const name = isSelf ? t("tile_you", { name: info.display_name }) : info.display_name;
  tile.setAttribute("aria-label", t("tile_label", { name }));
  const connection = isSelf ? "connected" : connectionOf(id);
  const listening = isSfu() && info.may_publish === false;
  const noVideo = listening || (!info.state.video && !info.state.screen);
  let status = "";
  if (!isSelf && info.reconnecting) status = t("peer_reconnecting");
  else if (listening) status = t(isSelf ? "tile_you_listening" : "tile_listening");
  else if (!isSelf && isSfu() && !state.sfuAvailable) status = t("tile_sfu_down");
  else if (!isSelf && connection !== "connected" && !(isSfu() && !info.state.video && !info.state.audio)) status = t("tile_connecting");
  else if (!info.state.video && !info.state.screen) status = t("tile_no_video");
  const statusEl = tile.querySelector(".tile-status");
  statusEl.textContent = status;
  statusEl.hidden = !status;
  if (!isSelf && isSfu()) {
    const feed = cameraFeedOf(id);
    showStream(tile, feed ? sfu.streamOf(feed.feed_id) : null);
  }
  tile.classList.toggle("no-video", noVideo);
  tile.classList.toggle("hand", info.state.hand);
  tile.classList.toggle("speaking", state.speaking.has(info.id));
  tile.dataset.connection = connection;
  clear(tile.querySelector(".tile-caption"), 
    countryBadge(info.country, countryName(info.country)),
    h("span", { class: "tile-name" }, name),
    stateBadges(info.state),
  );
}

function renderScreenTile(id, tile) {
  const feedId = id.slice("screen:".length);
  const feed = sfu.feeds.get(feedId);
  const owner = feed && state.roster.get(feed.peer_id);
  if (!owner) return;
  const name = t("tile_screen_of", { name: owner.display_name });
  tile.setAttribute("aria-label", t("tile_label", { name }));
  const stream = sfu.streamOf(feedId);
  showStream(tile, stream);
  const connected = Boolean(stream) && sfu.receiveState === "connected";
  const statusEl = tile.querySelector(".tile-status");
  statusEl.textContent = connected ? "" : t("tile_connecting");
  statusEl.hidden = connected;
  tile.dataset.connection = connected ? "connected" : "new";
  clear(tile.querySelector(".tile-caption"), countryBadge(owner.country, countryName(owner.country)), h("span", { class: "tile-name" }, name));
}

function showStream(tile, stream) {
  const video = tile.querySelector("video");
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  if (stream) video.play().catch(() => {});
}

/** The camera (and microphone) feed of a peer in an sfu room. */
function cameraFeedOf(peerId) {
  return sfu.remoteFeeds().find((f) => f.peer_id === peerId && f.source === "camera") || null;
}

/** How far we are from receiving a peer: its mesh connection, or in an sfu room the subscriber connection. */
function connectionOf(peerId) {
  if (!isSfu()) return state.connection.get(peerId) || "new";
  const feed = cameraFeedOf(peerId);
  if (!feed || !sfu.streamOf(feed.feed_id)) return "new";
  return sfu.receiveState;
}

function selfState() {
  return {
    audio: media.hasAudio && media.audioEnabled,
    video: media.hasVideo && media.videoEnabled,
    screen: media.sharingScreen,
    hand: state.hand,
  };
}

function stateBadges(s) {
  return h(
    "span",
    { class: "badges" },
    s.hand ? h("span", { class: "badge badge-hand" }, t("state_hand")) : null,
    s.screen ? h("span", { class: "badge badge-screen" }, t("state_screen")) : null,
    !s.audio ? h("span", { class: "badge badge-muted" }, t("state_muted")) : null,
  );
}

function attachRemoteStream(peerId, stream) {
  const tile = tiles.get(peerId);
  if (!tile) return;
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

function byName(a, b) {
  return a.display_name.localeCompare(b.display_name);
}

function renderPeople() {
  const list = clear($("#people-list"));
  const everyone = [{ ...state.self, state: selfState(), isSelf: true }, ...[...state.roster.values()].sort(byName)];
  $("#people-count").textContent = String(everyone.length);
  const canModerate = MODERATOR_ROLES.has(state.self.role);
  for (const person of everyone) {
    const actions = [];
    if (canModerate && !person.isSelf) {
      if (person.state.hand) {
        actions.push(
          h("button", { type: "button", class: "small", "aria-label": t("mod_lower_hand_label", { name: person.display_name }), onclick: () => lowerHand(person.id) }, t("mod_lower_hand")),
        );
      }
      if (person.state.audio) {
        actions.push(
          h("button", { type: "button", class: "small", "aria-label": t("mod_mute_label", { name: person.display_name }), onclick: () => moderator?.mute(person) }, t("mod_mute")),
        );
      }
    }
    list.append(
      h(
        "li",
        { class: "person", dataset: { peerId: person.id } },
        countryBadge(person.country, countryName(person.country)),
        h(
          "div",
          { class: "person-main" },
          h("span", { class: "person-name" }, person.display_name, person.isSelf ? h("span", { class: "you" }, ` (${t("you")})`) : null),
          h(
            "span",
            { class: "person-meta" },
            [countryName(person.country), person.organisation, roleName(person.role)].filter(Boolean).join(" · "),
            person.reconnecting ? ` · ${t("peer_reconnecting")}` : "",
          ),
        ),
        stateBadges(person.state),
        actions.length ? h("span", { class: "person-actions" }, actions) : null,
      ),
    );
  }
}

function lowerHand(peerId) {
  signaling.send({ type: "lower_hand", peer_id: peerId }, { withRequestId: true });
}

// Chat --------------------------------------------------------------------------------------------

function addChat(msg, { quiet = false } = {}) {
  if (state.chat.has(msg.id)) return;
  if (state.room && msg.room_id !== state.room.id) return;
  state.chat.set(msg.id, msg);
  const mine = state.self && msg.from === state.self.id;
  $("#chat-log").append(
    h(
      "li",
      { class: mine ? "chat-item mine" : "chat-item" },
      h("span", { class: "chat-meta" }, h("strong", {}, msg.display_name), " ", h("time", { datetime: msg.sent_at }, formatTime(msg.sent_at))),
      h("span", { class: "chat-text" }, msg.text),
    ),
  );
  scrollChat();
  if (!quiet && !mine && $("#panel-chat").hidden) {
    const badge = $("#chat-unread");
    badge.textContent = String((Number(badge.textContent) || 0) + 1);
    badge.hidden = false;
  }
}

function addSystemLine(text) {
  $("#chat-log").append(h("li", { class: "chat-item system" }, text));
  scrollChat();
}

function scrollChat() {
  const log = $("#chat-log");
  log.scrollTop = log.scrollHeight;
}

// Tabs and controls -------------------------------------------------------------------------------

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      $(`#${other.getAttribute("aria-controls")}`).hidden = !on;
    }
    $("#sidepanel").dataset.tab = tab.id;
    if (tab.id === "tab-chat") {
      $("#chat-unread").hidden = true;
      $("#chat-unread").textContent = "";
      scrollChat();
    }
    if (tab.id === "tab-moderate") moderator?.refresh();
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const visible = tabs.filter((x) => !x.hidden);
      const i = visible.indexOf(tab);
      let next = null;
      if (e.key === "ArrowRight") next = visible[(i + 1) % visible.length];
      if (e.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
      if (e.key === "Home") next = visible[0];
      if (e.key === "End") next = visible[visible.length - 1];
      if (next) {
        e.preventDefault();
        select(next);
        next.focus();
      }
    });
  }
}

function setupControls() {
  $("#btn-mic").addEventListener("click", () => {
    media.setAudioEnabled(!media.audioEnabled);
    sendState({ audio: media.hasAudio && media.audioEnabled });
  });
  $("#btn-cam").addEventListener("click", () => {
    media.setVideoEnabled(!media.videoEnabled);
    sendState({ video: media.hasVideo && media.videoEnabled });
  });
  $("#btn-screen").addEventListener("click", toggleScreen);
  $("#btn-hand").addEventListener("click", () => {
    state.hand = !state.hand;
    sendState({ hand: state.hand });
  });
  $("#btn-help").addEventListener("click", () => {
    if (signaling.send({ type: "ask_help" }, { withRequestId: true })) toast(t("help_sent"));
  });
  $("#btn-devices").addEventListener("click", async () => {
    await fillDevices();
    $("#devices-dialog").showModal();
  });
  $("#btn-leave").addEventListener("click", () => signaling.leave());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("#broadcast-banner").hidden) $("#broadcast-banner").hidden = true;
  });
}

function sendState(changes) {
  signaling.send({ type: "update", ...changes });
  renderControls();
  refreshSelfTile();
  renderPeople();
}

async function toggleScreen() {
  // Mesh: the screen replaces the camera on every connection. SFU: the screen is a feed of its own.
  if (media.sharingScreen) {
    const camera = media.stopScreen();
    if (isSfu()) syncPublishing();
    else await mesh.replaceTrack("video", camera);
    sendState({ screen: false });
    return;
  }
  try {
    const track = await media.startScreen(async () => {
      if (media.sharingScreen) await toggleScreen();
    });
    if (isSfu()) syncPublishing();
    else await mesh.replaceTrack("video", track);
    sendState({ screen: true });
  } catch (err) {
    toast(t("screen_share_failed", { error: err.name || err.message }), { kind: "error" });
  }
}

function setControl(button, { on, text, label }) {
  button.textContent = text;
  button.setAttribute("aria-label", label || text);
  button.setAttribute("aria-pressed", String(on));
}

function renderControls() {
  if (!state.self) return;
  const audio = media.hasAudio && media.audioEnabled;
  const video = media.hasVideo && media.videoEnabled;
  setControl($("#btn-mic"), { on: !audio, text: audio ? t("mute") : t("unmute"), label: audio ? t("mic_label_on") : t("mic_label_off") });
  $("#btn-mic").classList.toggle("off", !audio);
  $("#btn-mic").disabled = !media.hasAudio;
  setControl($("#btn-cam"), { on: !video, text: video ? t("camera_off") : t("camera_on"), label: video ? t("camera_label_on") : t("camera_label_off") });
  $("#btn-cam").classList.toggle("off", !video);
  $("#btn-cam").disabled = !media.hasVideo;
  const sharing = media.sharingScreen;
  setControl($("#btn-screen"), { on: sharing, text: sharing ? t("stop_share") : t("share_screen") });
  $("#btn-screen").classList.toggle("active", sharing);
  $("#btn-screen").hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  $("#btn-screen").disabled = isSfu() && !mayPublish() && !sharing;
  setControl($("#btn-hand"), { on: state.hand, text: state.hand ? t("lower_hand") : t("raise_hand") });
  $("#btn-hand").classList.toggle("active", state.hand);
}

// Moderators --------------------------------------------------------------------------------------

function startModerator() {
  if (moderator) return;
  moderator = new ModeratorConsole({
    root: $("#panel-moderate"),
    api,
    workshopId: state.room.workshop_id,
    getSelf: () => state.self,
    getRoom: () => state.room,
    getRoster: () => state.roster,
    getPlenaryId: () => state.plenaryId,
    getBreakout: () => state.breakout,
    getRecording: () => state.recording,
    chooseRoom,
    setFloor: (peerId, granted) => signaling.send({ type: granted ? "grant_floor" : "revoke_floor", peer_id: peerId }, { withRequestId: true }),
    onHelpCount: (n) => {
      const badge = $("#help-count");
      badge.textContent = String(n);
      badge.hidden = n === 0;
    },
  });
  $("#tab-moderate").hidden = false;
  $("#sidepanel").classList.add("with-moderator");
}

// The end -----------------------------------------------------------------------------------------

function ended(code) {
  state.ended = true;
  mesh?.closeAll();
  sfu?.leave();
  media.stop();
  clearInterval(timer);
  for (const tile of tiles.values()) tile.querySelector("video").srcObject = null;
  $("#reconnect-banner").hidden = true;
  $("#breakout-banner").hidden = true;
  $("#consent-banner").hidden = true;
  const key = END_MESSAGES[code] || "end_protocol";
  showEnd(t(key), { heading: code === 1000 ? "end_heading" : "end_heading_disconnected", rejoin: [1000, 4409, 4429].includes(code) });
}

function showEnd(message, { heading = "end_heading", rejoin = false } = {}) {
  showSection("end");
  $("#end-heading").textContent = t(heading);
  $("#end-message").textContent = message;
  const button = $("#rejoin");
  button.hidden = !rejoin;
  button.onclick = () => location.reload();
  document.body.dataset.ended = "true";
  $("#end-heading").setAttribute("tabindex", "-1");
  $("#end-heading").focus();
}

// Test and debugging hook -------------------------------------------------------------------------

window.roundtable = {
  /** Per peer (mesh) or per remote feed (sfu; `peerId` is its publisher): connection state and bytes by kind. */
  stats: async () => [...(mesh ? await mesh.stats() : []), ...(sfu ? await sfu.stats() : [])],
  /** Every open RTCPeerConnection of the page with its role: "mesh" (with peerId), "publish:camera", ... */
  connections: () => [
    ...(mesh ? [...mesh.peers].map(([peerId, { pc }]) => ({ role: "mesh", peerId, pc })) : []),
    ...(sfu ? sfu.connections() : []),
  ],
  /** Our feeds and the room's (sfu rooms). */
  feeds: () => (sfu ? [...sfu.feeds.values()] : []),
  state: () => ({
    joined: state.joined,
    ended: state.ended,
    reconnecting: state.reconnecting,
    self: state.self,
    room: state.room,
    peers: [...state.roster.values()].map((p) => ({ ...p, connection: isSfu() ? connectionOf(p.id) : state.connection.get(p.id) || null })),
    sfuAvailable: state.sfuAvailable,
    speaking: [...state.speaking],
    breakout: state.breakout,
    recording: state.recording,
    recordingConsent: state.recording ? state.consent.get(state.recording.recording_id) ?? null : null,
  }),
  /** Drop the signalling socket as a network failure would. */
  dropConnection: () => signaling && signaling.dropForTest(),
};

main().catch((err) => {
  console.error(err);
  showEnd(t("end_invalid_link", { error: err.message }), { heading: "end_heading_disconnected" });
});
