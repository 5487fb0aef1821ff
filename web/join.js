// The participant page (/join#<join token>): pre-join preview, then the room (video through a peer-to-peer mesh
// or the SFU, chat, people, breakouts), and the moderator console for moderators and organisers.

import { agendaList, nowNextLine } from "./agenda.js";
import { Api, ApiError } from "./api.js";
import { $, clear, countryBadge, h, icon, jwtClaims, svg, toast } from "./dom.js";
import { Interpretation, languageName, otherOf, storeChoice, storedChoice } from "./interpretation.js";
import { LocalMedia } from "./media.js";
import { ModeratorConsole } from "./moderator.js";
import { PeerMesh } from "./peers.js";
import { myRecordingsList } from "./recordings.js";
import { SfuSession } from "./sfu.js";
import { ActiveSpeaker, GRID, STAGE, Visibility, arrange, columnsFor, pageSizeFor, qualityFor } from "./stage.js";
import { Signaling } from "./signaling.js";
import { applyStrings, countryName, currentLocale, formatDuration, formatTime, mountLanguageSwitches, onLanguageChange, roleName, t } from "./strings.js";
import { allZones, browserZone, formatDual, isZone, setViewerZone, viewerZone, zoneLabel } from "./times.js";

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
  agenda: null, // the workshop's agenda sessions (GET /workshops/{id}/agenda), ordered by start
  agendaTimer: null,
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
  speaking: new Set(), // peer ids speaking now (sfu rooms: the server's `speaking`; mesh rooms: audio levels)
  spotlight: null, // the peer id a moderator put on everyone's stage
  sfuAvailable: true, // false between sfu_unavailable and sfu_restored
  listenRequest: null, // the request id of our `listen` on its way, and the language it asks for
  listenSent: null,
  joined: false,
  reconnecting: false,
  ended: false,
};

const media = new LocalMedia();
const interp = new Interpretation(); // the room's language channels and what we listen to (interpretation.js)
let api = null;
let signaling = null;
let mesh = null; // mesh rooms: one connection per peer
let sfu = null; // sfu rooms: publishers and one subscriber
let moderator = null;
let timer = null;
const tiles = new Map(); // peer id, "self", or "screen:<feed id>" (a screen share in an sfu room) -> tile element

// The video area (see stage.js): the viewer's own choices and what is on screen.
const view = {
  chosen: null, // the viewer's layout (GRID or STAGE); null: the default (the grid, the stage for a screen or a pin)
  pinned: null, // a tile id pinned to one's own stage
  page: 0, // the grid page
  pageSize: null, // a test's override of the page size
  arranged: null, // the last arrange() result
  screens: new Set(), // screen tiles last shown: a new share brings the default layout back
  panelHidden: false,
  panelAuto: false, // the panel was hidden to make room for a shared screen, and comes back when it goes
  panelChoice: storedPanelChoice(), // "shown" | "hidden" from the panel button (remembered), null: the default
};

const PANEL_KEY = "roundtable.panel";

/** The viewer's last choice with the panel button, kept across screens and visits (null: never chosen). */
function storedPanelChoice() {
  try {
    const value = localStorage.getItem(PANEL_KEY);
    return value === "shown" || value === "hidden" ? value : null;
  } catch {
    return null; // storage can be switched off
  }
}

function rememberPanelChoice(choice) {
  view.panelChoice = choice;
  try {
    localStorage.setItem(PANEL_KEY, choice);
  } catch {
    // not remembered, still applied
  }
}
const speaker = new ActiveSpeaker({ onChange: () => renderTiles() });
let subscriptionTimer = null;
const visibility = new Visibility(() => resubscribeSoon());

// Start -------------------------------------------------------------------------------------------

async function main() {
  applyStrings();
  mountLanguageSwitches();
  onLanguageChange(relabel);
  renderReactionBar();
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
    setViewerZone(me.timezone && isZone(me.timezone) ? me.timezone : null);
  } catch (err) {
    const message =
      err instanceof ApiError && err.code === "banned"
        ? t("end_banned")
        : err instanceof ApiError && err.status === 401
          ? t("end_unauthenticated")
          : t("end_invalid_link", { error: err.message });
    showEnd(message, { heading: "end_heading_disconnected" });
    return;
  }
  document.title = `${state.workshop.title} · ${t("app_name")}`;
  await showPrejoin();
}

function showSection(id) {
  for (const section of ["loading", "prejoin", "lobby", "room", "end"]) $(`#${section}`).hidden = section !== id;
}

// Pre-join ----------------------------------------------------------------------------------------

async function showPrejoin() {
  showSection("prejoin");
  $("#pre-name").textContent = state.me.display_name;
  clear($("#pre-country"), countryBadge(state.me.country, countryName(state.me.country)));
  $("#pre-role").textContent = roleName(state.me.role);
  $("#pre-workshop").textContent = state.workshop.title;
  setupZone();
  setupListenChoice();
  loadAgenda();
  showRecordings($("#pre-recordings"));
  $("#pre-calendar").addEventListener("click", downloadCalendar);

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
    meter.attach(media.audioTrack);
    await fillDevices();
    navigator.mediaDevices.addEventListener("devicechange", fillDevices);
  }
  $("#join-button").focus();
}

// The agenda and the participant's own zone -----------------------------------------------------------------------

const AGENDA_REFRESH_MS = 60_000;

/** The workshop's agenda (everyone of the workshop may read it), shown before joining and as a line in the room. */
async function loadAgenda() {
  try {
    state.agenda = await api.all(`/workshops/${state.workshop.id}/agenda`);
  } catch {
    state.agenda = state.agenda || [];
  }
  renderAgenda();
  if (!state.agendaTimer) {
    // "Now" and "next" move with the clock; the agenda itself may change: both are refreshed.
    state.agendaTimer = setInterval(() => loadAgenda(), AGENDA_REFRESH_MS);
  }
}

function renderAgenda() {
  const w = state.workshop;
  if (!w) return;
  $("#pre-when").textContent = formatDual(w.starts_at, w.timezone, { end: w.ends_at });
  $("#pre-when").setAttribute("datetime", w.starts_at);
  $("#pre-zone-hint").textContent = t("join_zone_hint", { zone: zoneLabel(viewerZone()) });
  const sessions = state.agenda || [];
  $("#pre-agenda").hidden = !sessions.length;
  clear($("#pre-agenda-list"), agendaList(sessions, w.timezone));
  const line = $("#room-agenda");
  if (line) {
    line.textContent = nowNextLine(sessions, w.timezone);
    line.title = line.textContent; // the header shows one line of it
  }
}

/** The participant's own calendar file (the sessions with this join link), as the invitation e-mail carries it. */
async function downloadCalendar() {
  const { wid, sub: pid } = state.claims;
  try {
    const response = await fetch(`/api/v1/workshops/${wid}/participants/${pid}/invitation.ics`, {
      headers: { Authorization: `Bearer ${state.token}` },
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) throw new ApiError(response.status, "http_" + response.status, response.statusText);
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: "roundtable.ics" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (err) {
    toast(t("prejoin_calendar_failed", { error: err.message }), { kind: "error" });
  }
}

function setupZone() {
  const input = $("#pre-zone");
  input.value = viewerZone();
  input.placeholder = browserZone();
  input.addEventListener("focus", () => {
    const list = $("#pre-zone-list");
    if (!list.childElementCount) list.append(...allZones().map((z) => h("option", { value: z })));
  });
  input.addEventListener("change", async () => {
    const zone = input.value.trim();
    if (zone && !isZone(zone)) {
      toast(t("time_unknown_zone", { zone }), { kind: "error" });
      input.value = viewerZone();
      return;
    }
    try {
      // Kept on the roster (the organiser sees it; invitations and reminders use it).
      state.me = await api.request("PATCH", "/me", { json: { timezone: zone || null } });
      setViewerZone(zone || null);
      input.value = viewerZone();
      renderAgenda();
      toast(t("join_zone_saved", { zone: zoneLabel(viewerZone()) }));
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  });
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
    if (kind === "audio") meter.attach(media.audioTrack);
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
    tracksFor: (source) =>
      source === "camera" ? [media.audioTrack, media.cameraTrack] : source === "interpretation" ? [media.audioTrack] : [media.screenTrack],
    onFeedMedia: () => renderTiles(),
    onChange: () => renderTiles(),
    onRefused: onSfuRefused,
    videoFor: videoForFeed,
    audioFor: (feed) => feed.source !== "interpretation" || interp.wants(feed),
  });
  connectSignaling();
}

/** A new signalling connection (joining, or knocking again after a denial). */
function connectSignaling() {
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
    onEnded: ({ code, reason }) => ended(code, reason),
  });
  signaling.connect();
}

// Incoming messages, strictly in order (see signaling.js) ----------------------------------------

async function handle(msg) {
  switch (msg.type) {
    case "welcome":
      return onWelcome(msg);
    case "lobby":
      return onLobby(msg);
    case "denied":
      lobby.deniedMessage = msg.message;
      return;
    case "unmute_requested":
      return onUnmuteRequested(msg);
    case "peer_joined":
      mesh.close(msg.peer.id); // a stale connection from before a replace
      state.roster.set(msg.peer.id, msg.peer);
      return renderRoom();
    case "peer_left":
      state.roster.delete(msg.peer_id);
      state.speaking.delete(msg.peer_id);
      speaker.forget(msg.peer_id);
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
    case "interpretation":
      if (state.room && msg.room_id && msg.room_id !== state.room.id) return; // from before a move
      return setInterpretation(msg);
    case "spotlight":
      return onSpotlight(msg);
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
    case "reaction":
      return onReaction(msg);
    case "help_requested":
    case "help_handled":
    case "knock":
    case "knock_withdrawn":
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
      if (msg.request_id != null && msg.request_id === state.listenRequest) return onListenRefused(msg);
      if (msg.code === "unavailable" && isSfu()) return; // a candidate or answer while the SFU is down: the banner says it
      if (msg.code === "not_found") console.info("signalling:", msg.message);
      else if (msg.code !== "rate_limited") toast(t("error_generic", { message: msg.message }), { kind: "error" });
      if (msg.request_id != null) moderator?.onEvent(msg);
      return;
    case "agenda_next":
      moderator?.onEvent(msg);
      loadAgenda(); // a session changed or fired: the agenda line follows
      return;
    case "ack":
      if (msg.request_id != null && msg.request_id === state.listenRequest) return onListening();
      moderator?.onEvent(msg); // room controls: how many were muted, hands lowered
      return;
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

// The lobby: waiting for a moderator ----------------------------------------------------------------

const lobby = { timer: null, since: null, deniedMessage: null, wired: false };

function onLobby(msg) {
  lobby.since = Date.parse(msg.waiting_since);
  lobby.deniedMessage = null;
  showSection("lobby");
  $("#lobby-title").textContent = msg.workshop.title;
  $("#lobby-message").textContent = t(`lobby_waiting_${msg.reason}`);
  $("#lobby-denied").hidden = true;
  $("#lobby-leave").hidden = false;
  $("#lobby-preview").srcObject = media.stream;
  $("#lobby-preview").classList.toggle("off", !media.videoEnabled);
  if (state.reconnecting) {
    state.reconnecting = false;
    $("#reconnect-banner").hidden = true;
    document.body.classList.remove("is-reconnecting");
  }
  if (!lobby.wired) {
    lobby.wired = true;
    $("#knock-again").addEventListener("click", knockAgain);
    $("#lobby-leave").addEventListener("click", () => signaling.leave());
  }
  document.body.dataset.waiting = "true";
  clearInterval(lobby.timer);
  renderWaited();
  lobby.timer = setInterval(renderWaited, 1000);
}

function renderWaited() {
  const seconds = Math.max(0, Math.round((Date.now() - lobby.since) / 1000));
  $("#lobby-waited").textContent = t("lobby_waited", { time: formatDuration(seconds) });
}

function leaveLobby() {
  clearInterval(lobby.timer);
  lobby.timer = null;
  delete document.body.dataset.waiting;
}

function showDenied() {
  leaveLobby();
  showSection("lobby");
  $("#lobby-message").textContent = t("lobby_denied");
  $("#lobby-waited").textContent = "";
  $("#lobby-denied-message").textContent = lobby.deniedMessage || t("lobby_denied_no_message");
  $("#lobby-denied").hidden = false;
  $("#lobby-leave").hidden = true;
  document.body.dataset.denied = "true";
  $("#knock-again").focus();
}

function knockAgain() {
  delete document.body.dataset.denied;
  $("#lobby-denied").hidden = true;
  $("#lobby-message").textContent = t("joining");
  connectSignaling();
}

const unmutePrompts = { audio: null, video: null }; // the open "please unmute" prompt of each kind

/**
 * A moderator asks us to switch on our microphone (or camera): a prompt with a button; only our own click switches
 * the device on. One prompt per kind (a second request replaces the first); none when the device is already on;
 * it goes when the device goes on, by the prompt or by the usual button.
 */
function onUnmuteRequested(msg) {
  const on = msg.kind === "audio" ? media.hasAudio && media.audioEnabled : media.hasVideo && media.videoEnabled;
  unmutePrompts[msg.kind]?.remove();
  unmutePrompts[msg.kind] = null;
  if (on) return;
  const key = msg.kind === "audio" ? "unmute_requested" : "camera_requested";
  const item = toast(t(key, { name: msg.by.display_name }), { timeoutMs: 15000 });
  item.dataset.unmuteRequest = msg.kind;
  const button = h("button", { type: "button", class: "small primary" }, t(msg.kind === "audio" ? "unmute" : "camera_on"));
  button.addEventListener("click", () => {
    // Only the participant's own click switches a device on.
    if (msg.kind === "audio") {
      media.setAudioEnabled(true);
      sendState({ audio: media.hasAudio && media.audioEnabled });
    } else {
      media.setVideoEnabled(true);
      sendState({ video: media.hasVideo && media.videoEnabled });
    }
    item.remove();
  });
  item.insertBefore(button, item.lastChild);
  unmutePrompts[msg.kind] = item;
}

function onWelcome(msg) {
  leaveLobby();
  const first = !state.joined;
  state.joined = true;
  state.self = msg.self;
  state.hand = msg.self.state.hand;
  mesh.setIceServers(msg.ice_servers);
  sfu.setIceServers(mesh.iceServers);
  state.spotlight = msg.spotlight ?? null;
  enterInterpretation(msg.interpretation);
  const available = msg.sfu_available !== false;
  if (msg.resumed && msg.media_kept && isSfu() && state.room.id === msg.room.id && msg.room.media === "sfu" && available && state.sfuAvailable) {
    // The server kept our SFU handles across the drop, and media never went through the socket: keep them. After a
    // restart (media_kept false) they are gone: enterRoom publishes and subscribes again.
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
  syncListen();
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
  speaker.reset();
  view.pinned = null;
  view.page = 0;
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
  if (amInterpreter()) becameInterpreter(); // the booth: no camera, the microphone into the channel
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
  if (amInterpreter()) {
    // The booth: the microphone into the language channel, never into the floor, and no picture.
    sfu.want({ camera: false, screen: false, interpretation: media.hasAudio });
    return;
  }
  const may = mayPublish();
  sfu.want({ camera: may && (media.hasAudio || media.hasVideo), screen: may && media.sharingScreen, interpretation: false });
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
  if ("interpretation" in msg) enterInterpretation(msg.interpretation);
  enterRoom(
    msg.room,
    msg.peers.filter((p) => p.id !== state.self.id),
    msg.feeds,
  );
  syncListen();
  syncRecorder();
  addSystemLine(t("media_changed", { mode: t(isSfu() ? "media_mode_sfu" : "media_mode_mesh") }));
  moderator?.onEvent(msg);
}

function onSpeaking(msg) {
  if (msg.speaking) state.speaking.add(msg.peer_id);
  else state.speaking.delete(msg.peer_id);
  speakingChanged();
}

/** Who speaks changed: outline their tiles, mark them in the people list, let the stage follow (held). */
function speakingChanged() {
  for (const [id, tile] of tiles) {
    const peerId = id === "self" ? state.self && state.self.id : id;
    tile.classList.toggle("speaking", state.speaking.has(peerId));
  }
  for (const li of document.querySelectorAll("#people-list .person")) {
    const on = state.speaking.has(li.dataset.peerId);
    li.classList.toggle("speaking", on);
    const badge = li.querySelector(".badge-speaking");
    if (badge) badge.hidden = !on;
  }
  const others = new Set([...state.speaking].filter((id) => !state.self || (id !== state.self.id && !isInterpreter(id))));
  speaker.update(others); // calls renderTiles when the stage should follow
  applyAudio(); // the floor goes lower while the channel's interpreter speaks
}

// Mesh rooms have no server to tell who speaks: the browser reads the audio levels of what it receives (and of
// its own microphone), a speaker staying "speaking" for a moment after the last loud look. A look is loud when the
// level at that instant is, or when the average level since the previous look is (from the stats' cumulative
// audio energy): a short loud syllable between two looks is not missed, however late a busy machine runs them.
const LEVEL_POLL_MS = 300;
const LEVEL_ON = 0.03;
const LEVEL_LINGER_MS = 900;
const lastLoud = new Map(); // peer id -> performance.now() of its last loud look
const energySeen = new Map(); // stats id -> {energy, duration} at the previous look

/** Loud at this look: the level now, or the root mean square of the level since the last look of this stats id. */
function loudSince(key, stat) {
  const energy = stat.totalAudioEnergy || 0;
  const duration = stat.totalSamplesDuration || 0;
  const before = energySeen.get(key);
  energySeen.set(key, { energy, duration });
  if (stat.audioLevel > LEVEL_ON) return true;
  if (!before || duration <= before.duration) return false;
  return Math.sqrt(Math.max(0, energy - before.energy) / (duration - before.duration)) > LEVEL_ON;
}

let levelsLooking = false; // one look at a time: on a busy machine getStats can take longer than the poll

async function pollMeshLevels() {
  if (levelsLooking || !state.joined || state.ended || isSfu() || !mesh || !state.self) return;
  levelsLooking = true;
  try {
    await lookAtMeshLevels();
  } finally {
    levelsLooking = false;
  }
}

async function lookAtMeshLevels() {
  const now = performance.now();
  const recorder = state.recording && state.recording.recorder_peer_id;
  let first = null;
  for (const [peerId, { pc }] of mesh.peers) {
    if (peerId === recorder) continue;
    first = first || pc;
    try {
      for (const stat of (await pc.getStats()).values()) {
        if (stat.type === "inbound-rtp" && stat.kind === "audio" && loudSince(`${peerId}/${stat.id}`, stat)) {
          lastLoud.set(peerId, now);
        }
      }
    } catch {
      // closed meanwhile
    }
  }
  if (first && media.hasAudio && media.audioEnabled) {
    try {
      for (const stat of (await first.getStats()).values()) {
        if (stat.type === "media-source" && stat.kind === "audio" && loudSince(`self/${stat.id}`, stat)) {
          lastLoud.set(state.self.id, now);
        }
      }
    } catch {
      // closed meanwhile
    }
  } else {
    for (const key of [...energySeen.keys()]) if (key.startsWith("self/")) energySeen.delete(key); // muted: start afresh
  }
  if (isSfu()) return; // the room switched while we looked
  const peersNow = new Set([...mesh.peers.keys()]);
  for (const key of [...energySeen.keys()]) {
    const owner = key.slice(0, key.indexOf("/"));
    if (owner !== "self" && !peersNow.has(owner)) energySeen.delete(key);
  }
  const speaking = new Set([...lastLoud].filter(([, at]) => now - at < LEVEL_LINGER_MS).map(([id]) => id));
  for (const id of [...lastLoud.keys()]) if (!speaking.has(id)) lastLoud.delete(id);
  const same = speaking.size === state.speaking.size && [...speaking].every((id) => state.speaking.has(id));
  if (same) return;
  state.speaking = speaking;
  speakingChanged();
}

function onSpotlight(msg) {
  const before = state.spotlight;
  state.spotlight = msg.peer_id || null;
  if (state.spotlight && state.spotlight !== before) {
    const who = state.self && state.spotlight === state.self.id ? state.self : state.roster.get(state.spotlight);
    toast(t("spotlight_on", { by: msg.by ? msg.by.display_name : "", name: who ? who.display_name : "" }));
  } else if (!state.spotlight && before) {
    toast(t("spotlight_off"));
  }
  renderTiles();
  moderator?.renderRooms();
}

/** A moderator's spotlight on a peer (null ends it). */
function setSpotlight(peerId) {
  return signaling.send({ type: "spotlight", peer_id: peerId }, { withRequestId: true });
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
  state.spotlight = msg.spotlight ?? null;
  enterInterpretation(msg.interpretation);
  enterRoom(msg.room, msg.peers, msg.feeds);
  syncListen();
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
    const wasInterpreter = amInterpreter();
    state.self = { ...state.self, ...peer, state: peer.state };
    interp.selfId = state.self.id;
    if (mightPublish !== mayPublish()) {
      if (mayPublish()) sfu.allowAgain();
      else sfu.stopPublishing();
      syncPublishing();
    }
    if (wasInterpreter !== amInterpreter()) becameInterpreter();
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

// Interpretation ----------------------------------------------------------------------------------
//
// The rules are in interpretation.js; here they meet the page: the choice before joining and in the toolbar, the
// `listen` that tells the server which channel to serve us, the volumes of the floor's tiles and of the channel,
// the list of interpreters and, for an interpreter, the booth. Only in an sfu room with interpretation.

function languageLabel(code) {
  return languageName(code, currentLocale());
}

function languageInText(code) {
  return languageName(code, currentLocale(), { inText: true });
}

function listenOptions(languages, current, offline = () => false) {
  return [
    h("option", { value: "original", selected: current === "original" }, t("listen_original")),
    ...languages.map((code) =>
      h("option", { value: code, selected: current === code }, offline(code) ? t("listen_option_offline", { language: languageLabel(code) }) : languageLabel(code)),
    ),
  ];
}

/** Before joining: what to hear, remembered per workshop (offered when the workshop has languages). */
function setupListenChoice() {
  $("#pre-listen").addEventListener("change", (e) => storeChoice(state.workshop.id, e.target.value === "original" ? null : e.target.value));
  renderListenChoice();
}

function renderListenChoice() {
  const languages = (state.workshop && state.workshop.languages) || [];
  $("#pre-listen-field").hidden = !languages.length;
  const stored = storedChoice(state.workshop.id);
  clear($("#pre-listen"), listenOptions(languages, stored && languages.includes(stored) ? stored : "original"));
  const pair = state.me && state.me.interpreter ? state.me.interpreter.languages || [] : null;
  const note = $("#pre-interpreter");
  note.hidden = !pair;
  if (pair) note.textContent = t("booth_prejoin", { pair: pair.map(languageLabel).join(" ⇄ ") });
}

function interpretationOn() {
  return isSfu() && interp.enabled;
}

/** A member of this room interprets (their info says so, or a channel lists them). */
function isInterpreter(peerId) {
  if (!interpretationOn() || !state.self) return false;
  const peer = peerId === state.self.id ? state.self : state.roster.get(peerId);
  return Boolean(peer && peer.interpreter) || interp.interpreters().has(peerId);
}

function amInterpreter() {
  return Boolean(state.self) && isInterpreter(state.self.id);
}

/** The interpreter's pair: their own, else the room's first two languages. */
function boothPair() {
  const own = state.self && state.self.interpreter ? state.self.interpreter.languages : null;
  return own && own.length ? own : interp.languages.slice(0, 2);
}

/** The language the interpreter speaks into: as the server says, else the one of the pair that is not the floor's. */
function boothInto() {
  const own = state.self && state.self.interpreter ? state.self.interpreter.into : null;
  if (own) return own;
  const pair = boothPair();
  return pair.find((code) => code !== interp.languages[0]) ?? pair[0] ?? null;
}

function boothLive() {
  const channel = interp.channelOf(boothInto());
  if (channel) return channel.live_peer_id === state.self.id;
  return Boolean(state.self.interpreter && state.self.interpreter.live);
}

/** A new room: its interpretation (null: none) and our remembered choice for it. */
function enterInterpretation(info) {
  interp.selfId = state.self ? state.self.id : null;
  interp.setInfo(info ?? null);
  interp.choose(storedChoice(state.workshop.id) ?? null);
  state.listenRequest = null;
  state.listenSent = null;
}

/** The `interpretation` message: a live interpreter changed, a channel's feed came or went, interpreters changed. */
function setInterpretation(info) {
  const wasInterpreter = amInterpreter();
  interp.selfId = state.self.id;
  interp.setInfo(info);
  interp.choose(storedChoice(state.workshop.id) ?? null); // the room's languages may have changed
  if (wasInterpreter !== amInterpreter()) becameInterpreter();
  syncListen();
  resubscribeSoon(); // the channel's feed may be another one now
  renderRoom();
}

/** Tell the server what we listen to, when it does not know yet; one `listen` on its way at a time. */
function syncListen() {
  if (!interp.enabled || !signaling || state.listenRequest !== null) return;
  const wanted = interp.chosen;
  if ((interp.info.listening ?? null) === wanted) return;
  const requestId = signaling.send({ type: "listen", language: wanted }, { withRequestId: true });
  if (requestId === false) return; // the socket is down: the welcome after it brings us here again
  state.listenRequest = requestId;
  state.listenSent = wanted;
}

function onListening() {
  if (interp.info) interp.info.listening = state.listenSent;
  state.listenRequest = null;
  sfu.refresh(); // the server serves the channel now: ask for it again if it was left out
  syncListen(); // the choice may have changed meanwhile
}

function onListenRefused(msg) {
  state.listenRequest = null;
  console.warn("interpretation: listen refused", msg.code, msg.message);
  toast(t("listen_refused"), { kind: "error" });
  chooseListen(null);
}

function chooseListen(language) {
  interp.choose(language);
  storeChoice(state.workshop.id, interp.chosen);
  syncListen();
  resubscribeSoon();
  renderInterpretation();
  applyAudio();
}

/** The gain of the floor (every tile's sound): 1 unless a channel is heard. */
function floorGain() {
  return interpretationOn() ? interp.floorGain(state.speaking) : 1;
}

/** The floor's tiles at the floor's gain, the channel heard on its own element at full volume. */
function applyAudio() {
  const gain = floorGain();
  for (const [id, tile] of tiles) {
    if (id === "self") continue;
    const video = tile.querySelector("video");
    if (video.volume !== gain) video.volume = gain;
  }
  const audio = $("#channel-audio");
  const feedId = interpretationOn() ? interp.channelFeed() : null;
  const stream = feedId ? sfu.streamOf(feedId) : null;
  if (audio.srcObject !== stream) {
    audio.srcObject = stream;
    if (stream) audio.play().catch(() => {});
  }
  audio.volume = 1;
  renderInterpNotice();
}

function renderInterpretation() {
  renderListenControl();
  renderBooth();
  renderInterpNotice();
}

/** The toolbar's language picker and the floor's level under a channel. */
function renderListenControl() {
  const on = interpretationOn();
  $("#listen-control").hidden = !on;
  if (!on) return;
  const select = $("#listen-select");
  // An interpreter does not listen to the channel they speak into.
  const languages = interp.languages.filter((code) => !amInterpreter() || code !== boothInto());
  const current = interp.chosen && languages.includes(interp.chosen) ? interp.chosen : "original";
  const offline = (code) => !interp.isLive(code);
  const key = JSON.stringify([languages, current, currentLocale(), languages.map(offline)]);
  if (select.dataset.key !== key) {
    clear(select, listenOptions(languages, current, offline));
    select.dataset.key = key;
  }
  select.value = current;
  const percent = Math.round(interp.level * 100);
  $("#floor-level-field").hidden = !interp.chosen;
  const slider = $("#floor-level");
  if (document.activeElement !== slider) slider.value = String(percent);
  slider.setAttribute("aria-valuetext", t("floor_level_value", { n: percent }));
  $("#floor-level-value").textContent = t("floor_level_value", { n: percent });
}

function renderInterpNotice() {
  const notice = $("#interp-notice");
  const on = interpretationOn() && state.joined && !state.ended && interp.fallingBack();
  if (on) notice.textContent = t("interp_no_live", { language: languageInText(interp.chosen) });
  notice.hidden = !on;
}

/** The people panel's list of interpreters: their pair, and the channel they are live in. */
function renderInterpreters(people) {
  $("#interpreters").hidden = !people.length;
  const liveIn = (peerId) => (interp.info ? (interp.info.channels || []).find((c) => c.live_peer_id === peerId) : null);
  clear(
    $("#interpreter-list"),
    people.map((person) => {
      const channel = liveIn(person.id);
      const pair = person.interpreter ? person.interpreter.languages || [] : [];
      return h(
        "li",
        { class: "person interpreter", dataset: { peerId: person.id, live: String(Boolean(channel)) } },
        countryBadge(person.country, countryName(person.country)),
        h(
          "div",
          { class: "person-main" },
          h("span", { class: "person-name" }, person.display_name, person.isSelf ? h("span", { class: "you" }, ` (${t("you")})`) : null),
          h("span", { class: "person-meta" }, pair.map(languageLabel).join(" ⇄ ")),
        ),
        channel ? h("span", { class: "badge badge-live" }, t("interpreter_live_into", { language: languageInText(channel.language) })) : null,
      );
    }),
  );
}

/** We became an interpreter of this room, or stopped being one: the booth, or a tile of one's own again. */
function becameInterpreter() {
  sfu.allowAgain();
  if (amInterpreter()) {
    // The camera stays off in the booth, and a shared screen ends: an interpreter is never on the floor.
    const changes = {};
    if (media.hasVideo && media.videoEnabled) {
      media.setVideoEnabled(false);
      changes.video = false;
    }
    if (media.sharingScreen) {
      media.stopScreen();
      changes.screen = false;
    }
    if (Object.keys(changes).length) signaling.send({ type: "update", ...changes });
    if (interp.chosen && interp.chosen === boothInto()) chooseListen(null);
    if (!(state.self.interpreter && state.self.interpreter.into) && boothInto()) sendInterpret(boothInto(), false);
  }
  syncPublishing();
  renderControls();
  refreshSelfTile();
}

function sendInterpret(into, live) {
  return signaling.send({ type: "interpret", into, live }, { withRequestId: true });
}

/** One click turns the pair around: the new direction, live or not as before (a live interpreter stays live). */
function switchDirection(into) {
  if (into === boothInto()) return;
  sendInterpret(into, boothLive());
  if (interp.chosen === into) chooseListen(null);
}

/** The interpreter's booth: the direction of the pair, who is live in the channel, going live and taking over. */
function renderBooth() {
  const booth = $("#booth");
  const on = amInterpreter() && state.joined && !state.ended;
  booth.hidden = !on;
  $("#stage").classList.toggle("with-booth", on);
  if (!on) return;
  const hadFocus = booth.contains(document.activeElement);
  const pair = boothPair();
  const into = boothInto();
  const live = boothLive();
  const channel = interp.channelOf(into);
  const other = channel && channel.live_peer_id && channel.live_peer_id !== state.self.id ? state.roster.get(channel.live_peer_id) : null;
  const otherLive = Boolean(channel && channel.live_peer_id && channel.live_peer_id !== state.self.id);
  const language = into ? languageInText(into) : "";
  const muted = !(media.hasAudio && media.audioEnabled);
  const heard = interp.hearing();
  booth.dataset.state = live ? "live" : otherLive ? "other" : "none";
  let status;
  if (live) status = t("booth_status_live", { language });
  else if (otherLive) status = t("booth_status_other", { name: other ? other.display_name : t("booth_someone"), language });
  else status = t("booth_status_none", { language });
  clear(
    booth,
    h("div", { class: "booth-head" }, h("h2", { id: "booth-h" }, t("booth_heading")), h("span", { class: "hint" }, pair.map(languageLabel).join(" ⇄ "))),
    h(
      "div",
      { class: "booth-direction", role: "group", "aria-label": t("booth_direction") },
      pair.map((source) => {
        const target = otherOf(pair, source) || source;
        return h(
          "button",
          {
            type: "button",
            class: "booth-dir",
            dataset: { into: target },
            "aria-pressed": String(target === into),
            "aria-label": t("booth_direction_label", { from: languageLabel(source), into: languageLabel(target) }),
            onclick: () => switchDirection(target),
          },
          `${source.toUpperCase()} → ${target.toUpperCase()}`,
        );
      }),
    ),
    h("p", { class: "booth-status", role: "status" }, status),
    live
      ? h("div", { class: "booth-onair", "aria-hidden": "true" }, t("booth_you_are_live"))
      : h("button", { type: "button", class: "booth-take primary big", onclick: () => sendInterpret(into, true) }, t(otherLive ? "booth_take_over" : "booth_go_live")),
    live ? h("button", { type: "button", class: "booth-off ghost", onclick: () => sendInterpret(into, false) }, t("booth_go_off")) : null,
    live && muted ? h("p", { class: "booth-warn", role: "alert" }, t("booth_muted")) : null,
    h("p", { class: "hint booth-hearing" }, t("booth_hearing", { language: heard ? languageLabel(heard) : t("listen_original") })),
  );
  if (hadFocus) booth.querySelector(".booth-take, .booth-off")?.focus();
}

function setupInterpretation() {
  $("#listen-select").addEventListener("change", (e) => chooseListen(e.target.value === "original" ? null : e.target.value));
  $("#floor-level").addEventListener("input", (e) => {
    interp.setLevel(Number(e.target.value) / 100);
    renderListenControl();
    applyAudio();
  });
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
  // A continuation (after a failover or a drain): the server carried our answer over; we are not asked again.
  if (status && status.continues && state.consent.has(status.continues) && !state.consent.has(status.recording_id)) {
    state.consent.set(status.recording_id, state.consent.get(status.continues));
  }
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
  // Plainly whether *you* are in the recording; a click reopens the consent choice.
  const recorded = consentHolds();
  const wording = t(recorded ? "recording_included" : "recording_not_included");
  clear(pill, icon("i-rec", "icon rec-dot"), h("span", { class: "recording-text" }, wording));
  pill.dataset.included = String(recorded);
  pill.title = t(recorded ? "recording_you_are" : "recording_you_are_not");
  pill.setAttribute("aria-label", `${wording}. ${t("recording_indicator_label")}`);
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
  clear(
    $("#broadcast-from"),
    t("broadcast_from", { name: msg.from.display_name }),
    msg.sent_at ? h("time", { class: "banner-time", datetime: msg.sent_at }, ` · ${formatTime(msg.sent_at)}`) : null,
    ":",
  );
  $("#broadcast-text").textContent = msg.text;
  $("#broadcast-banner").hidden = false;
  armBroadcastExpiry(broadcastLifetime(msg.text));
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
  setupView();
  setupInterpretation();
  $("#chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (signaling.send({ type: "chat", text }, { withRequestId: true })) input.value = "";
  });
  $("#broadcast-dismiss").addEventListener("click", hideBroadcast);
  setupBanners();
  startQuality();
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
  // A locked room says so to everyone in it (nobody new enters without a moderator).
  const lock = $("#room-locked");
  lock.hidden = !state.room.locked;
  lock.textContent = `🔒 ${t("room_locked_badge")}`;
  lock.title = t("room_locked_title");
  $("#btn-help").hidden = state.room.kind !== "breakout";
  renderTiles();
  renderPeople();
  renderInterpretation();
  renderChooser();
  moderator?.renderRooms();
}

/** Every tile in display order: ours first, then people by name, each sfu screen share after its sharer's. */
function tileList() {
  // Interpreters are heard in their channels, never seen: no tile of theirs (nor one's own in the booth).
  const list = amInterpreter() ? [] : [{ id: "self", peerId: state.self.id, kind: "self", sharing: false }];
  for (const peer of [...state.roster.values()].sort(byName)) {
    if (isInterpreter(peer.id)) continue;
    // In a mesh room a shared screen replaces the sharer's camera: their tile is the screen.
    list.push({ id: peer.id, peerId: peer.id, kind: "camera", sharing: !isSfu() && Boolean(peer.state && peer.state.screen) });
    if (isSfu()) {
      for (const feed of sfu.remoteFeeds()) {
        if (feed.peer_id === peer.id && feed.source === "screen") list.push({ id: `screen:${feed.feed_id}`, peerId: peer.id, kind: "screen", sharing: true });
      }
    }
  }
  return list;
}

/** The tiles in their layout (stage.js decides; this puts the elements where it says). */
function renderTiles() {
  const grid = $("#grid");
  if (!state.room || !state.self) return;
  const list = tileList();
  const wanted = new Set(list.map((tile) => tile.id));
  for (const [id, tile] of tiles) {
    if (!wanted.has(id)) {
      tile.querySelector("video").srcObject = null;
      visibility.unobserve(tile);
      tile.remove();
      tiles.delete(id);
    }
  }
  for (const item of list) {
    if (!tiles.has(item.id)) {
      const tile = makeTile(item.id);
      tiles.set(item.id, tile);
    }
  }
  // A new screen share goes to the stage for everyone: the viewer's earlier choice of layout gives way once.
  const screens = new Set(list.filter((tile) => tile.sharing).map((tile) => tile.id));
  if ([...screens].some((id) => !view.screens.has(id))) view.chosen = null;
  view.screens = screens;

  const phone = window.matchMedia("(max-width: 820px)").matches;
  const pageSize = view.pageSize || pageSizeFor(window.innerWidth);
  // arrange() treats a mesh tile showing a screen like a screen tile.
  const forStage = list.map((tile) => (tile.sharing && tile.kind === "camera" ? { ...tile, kind: "screen" } : tile));
  const arranged = arrange({
    tiles: forStage,
    chosen: view.chosen,
    pinned: view.pinned,
    spotlight: state.spotlight,
    speaker: speaker.current,
    page: view.page,
    pageSize,
  });
  view.page = arranged.page;
  view.arranged = { ...arranged, pageSize };

  const areas = videoAreas(grid);
  const place = (box, ids) => {
    ids.forEach((id, i) => {
      const tile = tiles.get(id);
      if (box.children[i] !== tile) box.insertBefore(tile, box.children[i] || null);
    });
  };
  const shown = new Set();
  if (arranged.layout === STAGE) {
    const main = arranged.main ? [arranged.main] : [];
    const side = [arranged.beside, ...arranged.strip].filter(Boolean);
    place(areas.main, main);
    place(areas.strip, side);
    for (const id of [...main, ...side]) shown.add(id);
  } else {
    place(areas.page, arranged.grid);
    for (const id of arranged.grid) shown.add(id);
    areas.page.style.setProperty("--cols", String(columnsFor(arranged.grid.length, phone)));
    areas.page.dataset.count = String(arranged.grid.length);
  }
  const off = list.map((tile) => tile.id).filter((id) => !shown.has(id));
  place(areas.offstage, off); // still playing their sound, never on screen
  grid.dataset.layout = arranged.layout;
  grid.dataset.count = String(Math.min(list.length, 9));
  areas.main.hidden = areas.strip.hidden = arranged.layout !== STAGE;
  areas.page.hidden = arranged.layout !== GRID;

  for (const item of list) {
    const tile = tiles.get(item.id);
    tile.classList.toggle("on-stage", item.id === arranged.main);
    tile.classList.toggle("beside", item.id === arranged.beside);
    tile.classList.toggle("sharing", item.sharing);
    renderTile(item.id);
  }
  renderViewControls(arranged);
  applyAudio();
}

/** The boxes of the video area, made once: the stage, its strip, a grid page, and the tiles not shown. */
function videoAreas(grid) {
  let main = grid.querySelector(":scope > .stage-main");
  if (!main) {
    main = h("div", { class: "stage-main" });
    const strip = h("div", { class: "strip" });
    const page = h("div", { class: "grid-page" });
    const offstage = h("div", { class: "offstage", hidden: true, "aria-hidden": "true" });
    grid.replaceChildren(main, strip, page, offstage);
  }
  return {
    main,
    strip: grid.querySelector(":scope > .strip"),
    page: grid.querySelector(":scope > .grid-page"),
    offstage: grid.querySelector(":scope > .offstage"),
  };
}

function renderViewControls(arranged) {
  const grid = arranged.layout === GRID;
  const layoutButton = $("#btn-layout");
  layoutButton.querySelector(".btn-label").textContent = t(grid ? "layout_to_stage" : "layout_to_grid");
  layoutButton.querySelector("use").setAttribute("href", grid ? "#i-stage" : "#i-grid");
  layoutButton.setAttribute("aria-pressed", String(!grid));
  layoutButton.disabled = Boolean(state.spotlight && arranged.reason === "spotlight");
  const pager = $("#pager");
  pager.hidden = !grid || arranged.pages < 2;
  $("#page-label").textContent = t("page_of", { page: arranged.page + 1, pages: arranged.pages });
  $("#page-prev").disabled = arranged.page === 0;
  $("#page-next").disabled = arranged.page >= arranged.pages - 1;
  // A screen on the stage of a window narrower than PANEL_ROOM_PX needs the panel's room: the panel steps aside
  // and comes back when the screen goes, unless the viewer chose otherwise with the panel button (remembered).
  const mainTile = arranged.main && tiles.get(arranged.main);
  const screenOnStage = Boolean(mainTile && mainTile.classList.contains("sharing"));
  if (view.panelChoice) {
    view.panelHidden = view.panelChoice === "hidden";
    view.panelAuto = false;
  } else if (screenOnStage && !view.panelAuto && !view.panelHidden && window.innerWidth < PANEL_ROOM_PX) {
    view.panelHidden = true;
    view.panelAuto = true;
  } else if (view.panelAuto && (!screenOnStage || window.innerWidth >= PANEL_ROOM_PX)) {
    view.panelHidden = false;
    view.panelAuto = false;
  }
  $(".room-body").classList.toggle("panel-hidden", view.panelHidden);
  renderPanelButton();
}

const PANEL_ROOM_PX = 1600; // narrower than this, a shared screen on the stage takes the panel's room

/** The panel button: "Show panel" (with the count of unread chat while hidden) or "Hide panel". */
function renderPanelButton() {
  const panelButton = $("#btn-panel");
  panelButton.querySelector(".btn-label").textContent = t(view.panelHidden ? "panel_show" : "panel_hide");
  panelButton.setAttribute("aria-expanded", String(!view.panelHidden));
  panelButton.classList.toggle("panel-away", view.panelHidden);
  const unread = $("#chat-unread");
  const badge = $("#panel-unread");
  badge.hidden = !view.panelHidden || unread.hidden;
  badge.textContent = unread.textContent;
}

function setupView() {
  $("#btn-layout").addEventListener("click", () => {
    const grid = view.arranged && view.arranged.layout === GRID;
    view.chosen = grid ? STAGE : GRID;
    if (!grid) view.pinned = null; // the grid has no stage to pin to
    renderTiles();
  });
  const turn = (by) => {
    view.page += by;
    renderTiles();
  };
  $("#page-prev").addEventListener("click", () => turn(-1));
  $("#page-next").addEventListener("click", () => turn(1));
  $("#btn-panel").addEventListener("click", () => {
    rememberPanelChoice(view.panelHidden ? "shown" : "hidden");
    renderTiles();
  });
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => {
      renderTiles();
      resubscribeSoon(); // tiles changed size: maybe another simulcast layer
    }, 150);
  });
  // A tab in the background receives sound only.
  document.addEventListener("visibilitychange", () => resubscribeSoon());
  setInterval(pollMeshLevels, LEVEL_POLL_MS);
}

function resubscribeSoon() {
  clearTimeout(subscriptionTimer);
  subscriptionTimer = setTimeout(() => {
    if (sfu && isSfu()) sfu.resubscribe();
  }, 50);
}

/** The layer of a feed's video to receive: null unless its tile is on screen (and the tab in front). */
let wantEverything = false; // the benchmark's "subscribe to everything" (window.roundtable.wantEverything)

function videoForFeed(feed) {
  if (wantEverything) return "high";
  if (document.hidden) return null;
  const id = feed.source === "screen" ? `screen:${feed.feed_id}` : feed.peer_id;
  const tile = tiles.get(id);
  if (!tile || !visibility.has(id)) return null;
  return qualityFor(tile.getBoundingClientRect().width * (window.devicePixelRatio || 1));
}

function togglePin(id) {
  view.pinned = view.pinned === id ? null : id;
  if (view.pinned && view.chosen === GRID) view.chosen = null; // a pin is a stage of one's own
  renderTiles();
}

function makeTile(id) {
  const isSelf = id === "self";
  const video = h("video", { autoplay: true, playsinline: true, muted: isSelf, class: isSelf ? "mirrored" : "" });
  video.muted = isSelf;
  const screenFeed = id.startsWith("screen:") ? id.slice("screen:".length) : null;
  const dataset = screenFeed
    ? { feedId: screenFeed, screenOf: sfu.feeds.get(screenFeed)?.peer_id || "", self: "false", tileId: id }
    : { peerId: isSelf ? state.self.id : id, self: isSelf ? "true" : "false", tileId: id };
  const actions = h(
    "div",
    { class: "tile-actions" },
    h("button", { type: "button", class: "small tile-pin", onclick: () => togglePin(id) }),
    screenFeed ? null : h("button", { type: "button", class: "small tile-spotlight", hidden: true, onclick: () => spotlightTile(id) }),
  );
  const tile = h(
    "figure",
    { class: screenFeed ? "tile tile-screen" : "tile", dataset },
    video,
    h("div", { class: "tile-status" }),
    h("figcaption", { class: "tile-caption" }),
    actions,
  );
  if (isSelf) video.srcObject = media.stream;
  visibility.observe(tile);
  return tile;
}

function spotlightTile(id) {
  const peerId = id === "self" ? state.self.id : id;
  setSpotlight(state.spotlight === peerId ? null : peerId);
}

/** The pin and spotlight buttons of a tile. */
function renderTileActions(tile, id, name) {
  const pin = tile.querySelector(".tile-pin");
  const pinned = view.pinned === id;
  pin.textContent = t(pinned ? "unpin" : "pin");
  pin.setAttribute("aria-label", t(pinned ? "unpin_label" : "pin_label", { name }));
  pin.setAttribute("aria-pressed", String(pinned));
  tile.classList.toggle("pinned", pinned);
  const spot = tile.querySelector(".tile-spotlight");
  if (!spot) return;
  const peerId = id === "self" ? state.self.id : id;
  const on = state.spotlight === peerId;
  spot.hidden = !MODERATOR_ROLES.has(state.self.role);
  spot.textContent = t(on ? "spotlight_end" : "spotlight");
  spot.setAttribute("aria-label", t(on ? "spotlight_end_label" : "spotlight_label", { name }));
  spot.setAttribute("aria-pressed", String(on));
  tile.classList.toggle("spotlit", on);
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
  renderTileActions(tile, id, name);
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
  renderTileActions(tile, id, name);
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
    hand_raised_at: state.hand && state.self.state ? state.self.state.hand_raised_at : null,
  };
}

/** The hand queue's order: raised hands by when they went up (the server's time), then by name. */
function byHandThenName(a, b) {
  const ha = a.state && a.state.hand;
  const hb = b.state && b.state.hand;
  if (ha !== hb) return ha ? -1 : 1;
  if (ha) {
    const ta = Date.parse(a.state.hand_raised_at || "") || Infinity;
    const tb = Date.parse(b.state.hand_raised_at || "") || Infinity;
    if (ta !== tb) return ta - tb;
  }
  return byName(a, b);
}

/** The badges of a person's state; `queued` is their place in the hand queue (people list), if known. */
function stateBadges(s, queued = null) {
  const hand = queued
    ? h("span", { class: "badge badge-hand", dataset: { queue: String(queued) }, title: t("hand_position_label", { n: queued }), "aria-label": t("hand_position_label", { n: queued }) }, t("hand_position", { n: queued }))
    : h("span", { class: "badge badge-hand" }, t("state_hand"));
  return h(
    "span",
    { class: "badges" },
    s.hand ? hand : null,
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
  // Raised hands first, in queue order (numbered 1, 2, 3...), then everyone else by name; oneself among them.
  const me = { ...state.self, state: selfState(), isSelf: true };
  const all = [me, ...[...state.roster.values()].sort(byName)];
  renderInterpreters(all.filter((p) => isInterpreter(p.id)));
  const shown = all.filter((p) => !isInterpreter(p.id)); // interpreters have a list of their own
  const hands = shown.filter((p) => p.state && p.state.hand).sort(byHandThenName);
  const position = new Map(hands.map((p, i) => [p.id, i + 1]));
  const everyone = [...hands, ...shown.filter((p) => !position.has(p.id))];
  $("#people-count").textContent = String(all.length);
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
    const speaking = state.speaking.has(person.id);
    list.append(
      h(
        "li",
        { class: speaking ? "person speaking" : "person", dataset: { peerId: person.id } },
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
        h("span", { class: "badge badge-speaking", hidden: !speaking }, t("state_speaking")),
        stateBadges(person.state, position.get(person.id)),
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
    renderPanelButton(); // a hidden panel's button shows the count too
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
      renderPanelButton();
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
  $("#btn-react").addEventListener("click", () => toggleReactions());
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (!$("#reactions").hidden) {
      toggleReactions(false);
      $("#btn-react").focus();
    } else if (!$("#broadcast-banner").hidden) hideBroadcast();
  });
}

function sendState(changes) {
  signaling.send({ type: "update", ...changes });
  for (const kind of ["audio", "video"]) {
    if (changes[kind] === true && unmutePrompts[kind]) {
      unmutePrompts[kind].remove(); // asked for it, done: the request is answered
      unmutePrompts[kind] = null;
    }
  }
  renderControls();
  refreshSelfTile();
  renderPeople();
  renderBooth(); // a live interpreter who mutes is warned
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

function setControl(button, { on, text, label, icon: iconId }) {
  const labelEl = button.querySelector(".control-label");
  if (labelEl) labelEl.textContent = text;
  else button.textContent = text;
  if (iconId) button.querySelector("svg use")?.setAttribute("href", `#${iconId}`);
  button.setAttribute("aria-label", label || text);
  button.setAttribute("aria-pressed", String(on));
}

function renderControls() {
  if (!state.self) return;
  const audio = media.hasAudio && media.audioEnabled;
  const video = media.hasVideo && media.videoEnabled;
  setControl($("#btn-mic"), { on: !audio, text: audio ? t("mute") : t("unmute"), label: audio ? t("mic_label_on") : t("mic_label_off"), icon: audio ? "i-mic" : "i-mic-off" });
  if (audio) hideMutedHint();
  $("#btn-mic").classList.toggle("off", !audio);
  $("#btn-mic").disabled = !media.hasAudio;
  setControl($("#btn-cam"), { on: !video, text: video ? t("camera_off") : t("camera_on"), label: video ? t("camera_label_on") : t("camera_label_off"), icon: video ? "i-cam" : "i-cam-off" });
  $("#btn-cam").classList.toggle("off", !video);
  $("#btn-cam").disabled = !media.hasVideo;
  $("#btn-cam").hidden = amInterpreter(); // an interpreter's picture is never shown
  const sharing = media.sharingScreen;
  setControl($("#btn-screen"), { on: sharing, text: sharing ? t("stop_share") : t("share_screen") });
  $("#btn-screen").classList.toggle("active", sharing);
  $("#btn-screen").hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) || amInterpreter();
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
    workshopZone: state.workshop ? state.workshop.timezone : null,
    getSelf: () => state.self,
    getRoom: () => state.room,
    getRoster: () => state.roster,
    getPlenaryId: () => state.plenaryId,
    getBreakout: () => state.breakout,
    getRecording: () => state.recording,
    chooseRoom,
    getSpotlight: () => state.spotlight,
    setSpotlight,
    setFloor: (peerId, granted) => signaling.send({ type: granted ? "grant_floor" : "revoke_floor", peer_id: peerId }, { withRequestId: true }),
    send: (msg) => signaling.send(msg, { withRequestId: true }),
    onHelpCount: (n) => {
      const badge = $("#help-count");
      badge.textContent = String(n);
      badge.hidden = n === 0;
    },
  });
  $("#tab-moderate").hidden = false;
  $("#sidepanel").classList.add("with-moderator");
}

// Microphone level, the muted hint, reactions, connection quality, language --------------------------

const REACTIONS = [
  ["👍", "reaction_like"],
  ["👏", "reaction_clap"],
  ["❤️", "reaction_heart"],
  ["😂", "reaction_laugh"],
  ["😮", "reaction_wow"],
  ["🎉", "reaction_party"],
  ["✋", "reaction_hand"],
];
const REACTION_INTERVAL_MS = 1100; // the server allows about one a second per person: stay under it
const REACTION_SHOW_MS = 3500;
const MUTED_HINT_LEVEL = 0.4; // -40 dBFS and up: someone speaking, not a fan
const MUTED_HINT_WINDOW_MS = 1500; // ... at least twice within this time
const MUTED_HINT_MS = 4000;
const QUALITY_POLL_MS = 3000;
let lastReactionAt = -Infinity;
let reactionCooldown = null;
const reactionLog = []; // reactions received, newest last (the test hook shows them)
let mutedHintTimer = null;
let loudAt = []; // performance.now() of recent loud ticks while muted
let qualityTimer = null;
const qualitySamples = new WeakMap(); // RTCPeerConnection -> the previous {lost, received}
let broadcastTimer = null;
let broadcastLifetimeMs = null; // null: from the text's length (tests shorten it)

/**
 * The microphone's level, 0..1, ten times a second, from a clone of its track: a muted (disabled) track is
 * silence to Web Audio, and the muted hint needs to hear the person who speaks while muted.
 */
class LevelMeter {
  constructor(onLevel) {
    this.onLevel = onLevel;
    this.ctx = null;
    this.track = null;
    this.source = null;
    this.analyser = null;
    this.data = null;
    this.timer = null;
    this.level = 0;
  }

  attach(track) {
    this.detach();
    if (!track || typeof AudioContext === "undefined") return;
    try {
      this.ctx = this.ctx || new AudioContext();
      this.track = track.clone();
      this.track.enabled = true;
      this.source = this.ctx.createMediaStreamSource(new MediaStream([this.track]));
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.data = new Float32Array(this.analyser.fftSize);
      this.source.connect(this.analyser);
      // Browsers may start an AudioContext suspended until the first click (join is one).
      if (this.ctx.state === "suspended") {
        this.ctx.resume().catch(() => {});
        document.addEventListener("pointerdown", () => this.ctx && this.ctx.resume().catch(() => {}), { once: true });
      }
    } catch (err) {
      console.warn("level meter:", err);
      this.detach();
      return;
    }
    if (!this.timer) this.timer = setInterval(() => this.tick(), 100);
  }

  detach() {
    if (this.source) this.source.disconnect();
    if (this.track) this.track.stop();
    this.source = this.analyser = this.track = null;
  }

  stop() {
    this.detach();
    clearInterval(this.timer);
    this.timer = null;
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
    this.level = 0;
    this.onLevel(0);
  }

  tick() {
    if (!this.analyser) return;
    this.analyser.getFloatTimeDomainData(this.data);
    let sum = 0;
    for (const v of this.data) sum += v * v;
    const rms = Math.sqrt(sum / this.data.length);
    const target = Math.min(1, Math.max(0, (20 * Math.log10(rms || 1e-9) + 60) / 50)); // -60..-10 dBFS
    this.level = target > this.level ? target : this.level * 0.6 + target * 0.4; // quick up, gentle down
    this.onLevel(this.level);
  }
}

const meter = new LevelMeter(onLevel);

function onLevel(level) {
  for (const el of document.querySelectorAll(".level-meter")) {
    el.querySelector(".level-bar").style.transform = `scaleX(${level.toFixed(3)})`;
    el.dataset.active = String(level > 0.05);
    el.dataset.muted = String(media.hasAudio && !media.audioEnabled);
    if (el.getAttribute("role") === "meter") el.setAttribute("aria-valuenow", String(Math.round(level * 100)));
  }
  // Someone speaking into a muted microphone: say so, once, for a few seconds.
  const muted = state.joined && !state.ended && media.hasAudio && !media.audioEnabled;
  if (!muted) {
    loudAt = [];
    hideMutedHint();
    return;
  }
  const now = performance.now();
  loudAt = loudAt.filter((at) => now - at < MUTED_HINT_WINDOW_MS);
  if (level >= MUTED_HINT_LEVEL) loudAt.push(now);
  if (loudAt.length >= 2) showMutedHint();
}

function showMutedHint() {
  $("#muted-hint").hidden = false;
  clearTimeout(mutedHintTimer);
  mutedHintTimer = setTimeout(hideMutedHint, MUTED_HINT_MS);
}

function hideMutedHint() {
  clearTimeout(mutedHintTimer);
  mutedHintTimer = null;
  const hint = $("#muted-hint");
  if (hint && !hint.hidden) hint.hidden = true;
}

// Reactions: a small fixed set that floats over the sender's tile, for everyone (the sender included).

function renderReactionBar() {
  clear(
    $("#reactions"),
    REACTIONS.map(([emoji, key]) =>
      h(
        "button",
        { type: "button", class: "reaction", "aria-label": t(key), title: t(key), dataset: { emoji }, onclick: () => sendReaction(emoji) },
        h("span", { "aria-hidden": "true" }, emoji),
      ),
    ),
  );
}

function toggleReactions(open = $("#reactions").hidden) {
  $("#reactions").hidden = !open;
  const button = $("#btn-react");
  button.setAttribute("aria-expanded", String(open));
  button.classList.toggle("active", open);
}

/** Send a reaction unless the last one was under a second ago (the server would refuse it). */
function sendReaction(emoji) {
  const now = performance.now();
  const wait = lastReactionAt + REACTION_INTERVAL_MS - now;
  if (wait > 0) {
    // Too soon: show that the bar is cooling down instead of sending.
    const bar = $("#reactions");
    bar.classList.add("cooling");
    clearTimeout(reactionCooldown);
    reactionCooldown = setTimeout(() => bar.classList.remove("cooling"), wait);
    return false;
  }
  lastReactionAt = now;
  return signaling.send({ type: "react", emoji }, { withRequestId: true });
}

function onReaction(msg) {
  if (!REACTIONS.some(([emoji]) => emoji === msg.emoji)) return;
  reactionLog.push({ peer_id: msg.peer_id, emoji: msg.emoji });
  if (reactionLog.length > 100) reactionLog.shift();
  const tile = [...document.querySelectorAll(".tile")].find((el) => el.dataset.peerId === msg.peer_id && !el.classList.contains("tile-screen"));
  if (!tile) return;
  const float = h("span", { class: "reaction-float", "aria-hidden": "true", dataset: { emoji: msg.emoji } }, msg.emoji);
  float.style.setProperty("--drift", `${Math.round(Math.random() * 50 - 25)}px`);
  tile.append(float);
  setTimeout(() => float.remove(), REACTION_SHOW_MS);
}

// Connection quality per tile, from getStats: packet loss since the last poll and the round-trip time.

async function measureConnection(pc) {
  const report = await pc.getStats();
  let lost = 0;
  let received = 0;
  let rtt = null;
  let remoteRtt = null;
  for (const s of report.values()) {
    if (s.type === "inbound-rtp") {
      lost += Math.max(0, s.packetsLost || 0);
      received += s.packetsReceived || 0;
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && typeof s.currentRoundTripTime === "number") {
      rtt = s.currentRoundTripTime;
    } else if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") {
      remoteRtt = Math.max(remoteRtt ?? 0, s.roundTripTime);
    }
  }
  const before = qualitySamples.get(pc);
  qualitySamples.set(pc, { lost, received });
  const dLost = before ? lost - before.lost : lost;
  const dReceived = before ? received - before.received : received;
  const seconds = rtt ?? remoteRtt;
  return {
    connected: pc.connectionState === "connected",
    loss: dLost + dReceived > 0 ? (100 * Math.max(0, dLost)) / (dLost + dReceived) : null,
    rtt: seconds === null ? null : seconds * 1000,
  };
}

function qualityLevel(m) {
  if (!m || !m.connected || (m.loss === null && m.rtt === null)) return "unknown";
  const loss = m.loss ?? 0;
  const rtt = m.rtt ?? 0;
  if (loss >= 10 || rtt >= 800) return "poor";
  if (loss >= 3 || rtt >= 300) return "fair";
  return "good";
}

function renderQuality(peerId, m) {
  const tile = [...document.querySelectorAll(".tile")].find((el) => el.dataset.peerId === peerId && el.dataset.self !== "true");
  if (!tile) return;
  let el = tile.querySelector(".tile-quality");
  if (!el) {
    el = h("span", { class: "tile-quality", role: "img" });
    el.append(svg("svg", { class: "quality-bars", viewBox: "0 0 12 12", "aria-hidden": "true", focusable: "false" },
      svg("rect", { x: 0, y: 8, width: 3, height: 4, rx: 0.5 }),
      svg("rect", { x: 4.5, y: 4.5, width: 3, height: 7.5, rx: 0.5 }),
      svg("rect", { x: 9, y: 1, width: 3, height: 11, rx: 0.5 }),
    ));
    tile.append(el);
  }
  const level = qualityLevel(m);
  const number = new Intl.NumberFormat(currentLocale(), { maximumFractionDigits: 1 });
  const text =
    level === "unknown"
      ? t("quality_unknown")
      : t("quality_detail", { quality: t(`quality_${level}`), loss: number.format(m.loss ?? 0), rtt: number.format(Math.round(m.rtt ?? 0)) });
  el.dataset.quality = level;
  tile.dataset.quality = level;
  if (el.title !== text) {
    el.title = text;
    el.setAttribute("aria-label", text);
  }
}

async function pollQuality() {
  if (!state.joined || state.ended || document.hidden) return;
  try {
    if (isSfu()) {
      // Everything we receive comes through one subscriber connection: its quality is every remote tile's.
      const sub = sfu.connections().find((c) => c.role === "subscribe");
      const m = sub ? await measureConnection(sub.pc) : null;
      for (const peer of state.roster.values()) renderQuality(peer.id, cameraFeedOf(peer.id) ? m : null);
    } else {
      for (const peer of state.roster.values()) {
        const entry = mesh.peers.get(peer.id);
        renderQuality(peer.id, entry ? await measureConnection(entry.pc) : null);
      }
    }
  } catch (err) {
    console.debug("quality:", err);
  }
}

function startQuality() {
  if (qualityTimer) return;
  qualityTimer = setInterval(pollQuality, QUALITY_POLL_MS);
}

// Broadcasts stay long enough to read (longer for longer text), then go; hovering or focusing one keeps it.

function broadcastLifetime(text) {
  return broadcastLifetimeMs ?? Math.min(90_000, 30_000 + 80 * text.length);
}

function armBroadcastExpiry(ms) {
  clearTimeout(broadcastTimer);
  broadcastTimer = setTimeout(hideBroadcast, ms);
}

function hideBroadcast() {
  clearTimeout(broadcastTimer);
  broadcastTimer = null;
  const banner = $("#broadcast-banner");
  const hadFocus = banner.contains(document.activeElement);
  banner.hidden = true;
  if (hadFocus) $("#btn-mic").focus();
}

function setupBanners() {
  const banner = $("#broadcast-banner");
  const pause = () => clearTimeout(broadcastTimer);
  const resume = () => {
    if (!banner.hidden && !banner.matches(":hover") && !banner.contains(document.activeElement)) {
      armBroadcastExpiry(Math.min(8000, broadcastLifetime($("#broadcast-text").textContent)));
    }
  };
  // Banners sit just under the room header, whose height changes (it wraps on a phone).
  const header = $(".room-header");
  if (header && "ResizeObserver" in window) {
    new ResizeObserver(() => document.documentElement.style.setProperty("--room-header-h", `${header.offsetHeight}px`)).observe(header);
  }
  banner.addEventListener("pointerenter", pause);
  banner.addEventListener("focusin", pause);
  banner.addEventListener("pointerleave", resume);
  banner.addEventListener("focusout", () => setTimeout(resume, 0));
}

// Language: the switch redraws everything built with t().

function relabel() {
  if (state.workshop) document.title = `${state.workshop.title} · ${t("app_name")}`;
  if (state.me && !$("#prejoin").hidden) {
    clear($("#pre-country"), countryBadge(state.me.country, countryName(state.me.country)));
    $("#pre-role").textContent = roleName(state.me.role);
    if ($("#join-button").disabled) $("#join-button").textContent = t("joining");
  }
  fillDevices().catch(() => {});
  if (!$("#prejoin").hidden) renderListenChoice();
  renderReactionBar();
  renderAgenda();
  if (state.joined && !state.ended) {
    renderControls();
    renderRoom();
    renderRecording();
    renderBreakout();
    moderator?.render();
    pollQuality();
  }
}

// The end -----------------------------------------------------------------------------------------

function ended(code, reason = "") {
  if (code === 4405) {
    showDenied(); // the camera preview stays: knocking again is one click away
    return;
  }
  leaveLobby();
  state.ended = true;
  mesh?.closeAll();
  sfu?.leave();
  media.stop();
  meter.stop();
  hideMutedHint();
  clearInterval(qualityTimer);
  qualityTimer = null;
  toggleReactions(false);
  clearInterval(timer);
  for (const tile of tiles.values()) tile.querySelector("video").srcObject = null;
  $("#channel-audio").srcObject = null;
  $("#interp-notice").hidden = true;
  $("#reconnect-banner").hidden = true;
  $("#breakout-banner").hidden = true;
  $("#consent-banner").hidden = true;
  const key = code === 4403 && reason.startsWith("banned") ? "end_banned" : END_MESSAGES[code] || "end_protocol";
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
  if (state.me) showRecordings($("#end-recordings"));
}

/** The recordings this participant may watch (GET /me/recordings), as links to the player; nothing when none. */
async function showRecordings(slot) {
  const list = await myRecordingsList(api, state.token, state.workshop);
  clear(slot, list);
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
    spotlight: state.spotlight,
    activeSpeaker: speaker.current,
    breakout: state.breakout,
    recording: state.recording,
    recordingConsent: state.recording ? state.consent.get(state.recording.recording_id) ?? null : null,
  }),
  /** The video area: the layout, what is on the stage, the grid page, the tiles on screen, the active speaker. */
  layout: () => ({
    ...view.arranged,
    chosen: view.chosen,
    pinned: view.pinned,
    spotlight: state.spotlight,
    speaker: speaker.current,
    visible: [...visibility.visible].sort(),
    panelHidden: view.panelHidden,
  }),
  /** Make grid pages hold `n` tiles (null: the default for the screen). */
  setPageSize: (n) => {
    view.pageSize = n;
    renderTiles();
  },
  /** The benchmark's baseline (bench/stage_view.py): ask for every feed's video at the high layer, past the client's
   * own cap (the server still clamps it); false: back to what is shown. */
  wantEverything: (on) => {
    wantEverything = Boolean(on);
    if (sfu) sfu.uncapped = wantEverything;
    resubscribeSoon();
  },
  /** What the subscriber connection asked the SFU for and what it receives, per feed and kind. */
  subscription: () => (sfu ? sfu.subscriptionInfo() : null),
  /** Interpretation: the floor's gain now (0..1), the channel heard (a language, null: the original), the rest. */
  interpretation: {
    floorGain: () => floorGain(),
    channel: () => (isSfu() ? interp.hearing() : null),
    state: () => ({
      enabled: interp.enabled && isSfu(),
      languages: interp.languages,
      chosen: interp.chosen,
      hearing: isSfu() ? interp.hearing() : null,
      fallingBack: isSfu() && interp.fallingBack(),
      level: interp.level,
      ducked: interp.ducked(state.speaking),
      channelFeed: interp.channelFeed(),
      listening: interp.info ? interp.info.listening ?? null : null,
      channels: interp.info ? interp.info.channels || [] : [],
      booth: amInterpreter() ? { ...state.self.interpreter, into: boothInto(), live: boothLive() } : null,
    }),
  },
  /** Drop the signalling socket as a network failure would. */
  dropConnection: () => signaling && signaling.dropForTest(),
  /** Reactions received, oldest first: [{peer_id, emoji}]. */
  reactions: () => reactionLog.map((r) => ({ ...r })),
  /** How long the next broadcast banners stay (null: from their length). */
  setBroadcastLifetime: (ms) => {
    broadcastLifetimeMs = ms;
  },
};

main().catch((err) => {
  console.error(err);
  showEnd(t("end_invalid_link", { error: err.message }), { heading: "end_heading_disconnected" });
});
