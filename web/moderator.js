// The moderator console: a panel of the participant page for moderators and organisers, built to run a room of 60.
//
// Layout (docs/console.md): a fixed action bar on top (the breakout controls: create, open, extend, close,
// broadcast), the waiting queue under it (knocks from the lobby and help requests, each gone when handled), and one
// scrolling region for everything long: search, country filter and the bulk actions on a selection (sticky at its
// top), counts by country, present people by room (natural name order) and the absent ones folded, recordings.
//
// Data: rooms, the roster, breakout plans and running recordings over the HTTP API with the moderator's own join
// token; who is where from the live presence list (GET /workshops/{id}/presence, polled every few seconds, which
// also carries the waiting help requests); knocks from the socket (welcome.knocks, knock, knock_withdrawn) and help
// from help_requested / help_handled. People not connected are shown where the plan will put them.
//
// Room controls (docs/console.md, "Room controls"): the moderator's own room is locked, muted and cleared of hands
// over the socket (lock_room, mute_all, lower_all_hands; the ack's `affected` count is shown), other rooms are locked
// over HTTP (PATCH .../rooms/{id}). The hand queue is the room's raised hands in the order they went up
// (state.hand_raised_at), live from the roster; it empties itself as hands go down.

import { countryBadge, h, clear, toast } from "./dom.js";
import { countryName, currentLocale, formatDuration, roleName, t } from "./strings.js";
import { formatDual } from "./times.js";

function fieldKey(el) {
  if (!el || !el.matches || !el.matches("input, select, textarea")) return null;
  if (el.id) return el.id;
  if (el.dataset.assign) return `assign:${el.dataset.assign}`;
  if (el.dataset.move) return `move:${el.dataset.move}`;
  if (el.dataset.denyMessage) return `deny:${el.dataset.denyMessage}`;
  return null;
}

/** Which element had the focus, to give it back after a re-render (keyboard users keep their place). */
function focusKey(el) {
  if (!el || !el.matches) return null;
  if (el.matches("input[type=checkbox]")) return `check:${el.dataset.select || el.id || ""}`;
  if (el.matches("button")) return `button:${el.id || ""}|${el.getAttribute("aria-label") || ""}|${el.textContent}`;
  return fieldKey(el);
}

const STRATEGIES = ["manual", "random", "balanced", "country_mixed", "self_select"];
const AUTO_REFRESH_MS = 15000; // rooms, roster, plans, recordings
const PRESENCE_REFRESH_MS = 4000; // who is where: in memory on the server, cheap
const MODERATOR_ROLES = new Set(["organiser", "moderator"]);

/** "Person 2" before "Person 10", accents and case ignored, in the page's language. */
export function naturalCompare(a, b) {
  return naturalCompare.collator(a, b);
}
naturalCompare.collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" }).compare;

function fold(text) {
  return String(text || "")
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase();
}

let audio = null;

/** A short two-tone chime for a knock or a help request (nothing when the page may not play sound). */
function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [i, freq] of [660, 880].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + i * 0.14);
      gain.gain.exponentialRampToValueAtTime(0.15, now + i * 0.14 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.14 + 0.13);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.14);
      osc.stop(now + i * 0.14 + 0.14);
    }
  } catch {
    // no audio: the badge and the toast still say it
  }
}

function waitedSince(iso) {
  const since = Date.parse(iso);
  return Number.isFinite(since) ? formatDuration((Date.now() - since) / 1000) : "";
}

export class ModeratorConsole {
  constructor({ root, api, workshopId, workshopZone = null, getSelf, getRoom, getRoster, getPlenaryId, getBreakout, getRecording, chooseRoom, setFloor, onHelpCount, send = () => false, getSpotlight = () => null, setSpotlight = () => false }) {
    Object.assign(this, { root, api, workshopId, getSelf, getRoom, getRoster, getPlenaryId, getBreakout, getRecording, chooseRoom, setFloor, onHelpCount, send, getSpotlight, setSpotlight });
    this.rooms = [];
    this.recordings = []; // recordings running in any room of the workshop
    this.people = [];
    this.plan = null;
    this.present = new Map(); // participant id -> {roomId, connected, state} from presence
    this.presenceText = "";
    this.help = new Map(); // participant id -> help request (help_requested, or presence.help_requests)
    this.knocks = new Map(); // knock id -> knock (welcome.knocks, knock; gone on knock_withdrawn)
    this.workshopZone = workshopZone;
    this.agendaNext = null; // the agenda's next automatic action (welcome.agenda_next, agenda_next)
    this.selected = new Set(); // participant ids picked for a bulk action
    this.search = "";
    this.country = "";
    this.showAbsent = false;
    this.creating = false;
    this.confirmRemove = null; // a participant id, or "bulk"
    this.denying = null; // a knock id whose deny message is being written
    this.loaded = false;
    this.error = null;
    this.pending = null;
    this.awaiting = new Map(); // request_id -> what to say when its ack arrives (room controls)
    // Values typed or picked but not yet sent survive re-renders (the roster changes under the moderator).
    // The listeners sit on each field, not on the panel: a pick can land on a field that a refresh has just
    // replaced, and such a detached field's events never reach the panel. Then we render again to show it.
    this.dirty = new Map();
    this.remember = (e) => {
      const key = fieldKey(e.target);
      if (!key) return;
      this.dirty.set(key, e.target.value);
      if (!e.target.isConnected) this.render();
    };
    this.render();
    this.refresh();
    this.poll = setInterval(() => {
      if (!this.root.hidden && !this.busy()) this.refresh();
    }, AUTO_REFRESH_MS);
    this.presencePoll = setInterval(() => {
      if (!this.root.hidden && !this.busy() && !this.pending) this.refreshPresence();
    }, PRESENCE_REFRESH_MS);
    // How long each knock and help request has waited, every second, without a re-render.
    this.ticker = setInterval(() => {
      for (const el of this.root.querySelectorAll("[data-since]")) el.textContent = waitedSince(el.dataset.since);
    }, 1000);
  }

  path(suffix = "") {
    return `/workshops/${this.workshopId}${suffix}`;
  }

  busy() {
    return this.root.contains(document.activeElement) && document.activeElement.matches("input:not([type=checkbox]), select, textarea");
  }

  /** Reload rooms, roster, plans and presence (coalesced: one request set at a time). */
  refresh() {
    if (this.pending) return this.pending;
    this.pending = (async () => {
      const asked = Date.now();
      try {
        const [rooms, people, plans, recordings, presence] = await Promise.all([
          this.api.all(this.path("/rooms")),
          this.api.all(this.path("/participants")),
          this.api.all(this.path("/breakouts")),
          this.api.all(this.path("/recordings?state=recording")),
          this.api.get(this.path("/presence")),
        ]);
        this.applyPresence(presence, asked);
        this.rooms = rooms;
        this.recordings = recordings;
        this.people = people;
        this.plan = this.pickPlan(plans);
        const known = new Set(people.map((p) => p.id));
        for (const id of this.selected) if (!known.has(id)) this.selected.delete(id);
        this.error = null;
        this.loaded = true;
      } catch (err) {
        this.error = err.status === 403 ? t("mod_not_allowed") : err.message;
      } finally {
        this.pending = null;
      }
      this.render();
    })();
    return this.pending;
  }

  async refreshPresence() {
    const asked = Date.now();
    try {
      const presence = await this.api.get(this.path("/presence"));
      if (this.applyPresence(presence, asked) && !this.busy()) this.render();
    } catch {
      // the full refresh reports errors
    }
  }

  /** Take a presence answer; true when it changed what the console shows. */
  applyPresence(presence, askedAt) {
    const text = JSON.stringify([presence.rooms, presence.help_requests]);
    const changed = text !== this.presenceText;
    this.presenceText = text;
    this.present = new Map();
    for (const room of presence.rooms) {
      for (const member of room.members) this.present.set(member.id, { roomId: room.room_id, connected: member.connected, state: member.state });
    }
    if (Array.isArray(presence.help_requests)) {
      // The server's queue as of the request; a request that arrived on the socket since stays.
      const next = new Map(presence.help_requests.map((r) => [r.participant_id, r]));
      for (const [pid, item] of this.help) {
        if (!next.has(pid) && Date.parse(item.at) >= askedAt - 1000) next.set(pid, item);
      }
      this.help = next;
      this.countQueue();
    }
    return changed;
  }

  pickPlan(plans) {
    const running = this.getBreakout();
    if (running) {
      const match = plans.find((p) => p.id === running.plan_id);
      if (match) return match;
    }
    const live = plans.filter((p) => p.state === "open" || p.state === "closing");
    if (live.length) return live[live.length - 1];
    const drafts = plans.filter((p) => p.state === "draft");
    return drafts.length ? drafts[drafts.length - 1] : null;
  }

  countQueue() {
    this.onHelpCount(this.help.size + this.knocks.size);
  }

  /** A signalling event that may change what the console shows. */
  onEvent(msg) {
    switch (msg.type) {
      case "ack": {
        const said = this.awaiting.get(msg.request_id);
        if (!said) return;
        this.awaiting.delete(msg.request_id);
        toast(said(msg));
        return;
      }
      case "error":
        this.awaiting.delete(msg.request_id);
        return;
      case "welcome":
        // A moderator's welcome lists the knocks waiting now (servers with a lobby); a reconnect replaces them.
        if (Array.isArray(msg.knocks)) {
          this.knocks = new Map(msg.knocks.map((k) => [k.id, k]));
          this.countQueue();
        }
        this.agendaNext = msg.agenda_next ?? null;
        this.render();
        return;
      case "agenda_next":
        this.agendaNext = msg.next ?? null;
        this.render();
        return;
      case "knock": {
        const fresh = !this.knocks.has(msg.knock.id);
        this.knocks.set(msg.knock.id, msg.knock);
        this.countQueue();
        if (fresh) {
          chime();
          toast(t("mod_knock_toast", { name: msg.knock.display_name }));
        }
        this.render();
        return;
      }
      case "knock_withdrawn":
        this.knocks.delete(msg.knock_id);
        if (this.denying === msg.knock_id) this.denying = null;
        this.countQueue();
        this.render();
        if (msg.outcome === "admitted" || msg.outcome === "denied") this.refreshPresence();
        return;
      case "help_requested": {
        const fresh = !this.help.has(msg.participant_id);
        this.help.set(msg.participant_id, msg);
        this.countQueue();
        if (fresh) chime();
        toast(t("mod_help_item", { name: msg.display_name, room: msg.room_name }) + (msg.text ? `: ${msg.text}` : ""));
        this.render();
        return;
      }
      case "help_handled":
        if (this.help.delete(msg.participant_id)) {
          this.countQueue();
          this.render();
        }
        return;
      default:
    }
    const reload = ["breakouts_opened", "breakouts_updated", "breakouts_closing", "breakouts_closed", "moved", "recording_started", "recording_stopped", "room_media_changed"];
    if (reload.includes(msg.type)) {
      this.refresh();
    } else {
      this.render();
    }
  }

  // Actions ---------------------------------------------------------------------------------------

  /**
   * Run an API call; on success forget the edits it used (`keys`) and reload. An edit made while the call
   * was under way (another field, or the same one changed again) is kept.
   */
  async act(job, done, keys) {
    const used = keys.map((key) => [key, this.dirty.get(key)]);
    try {
      const result = await job();
      for (const [key, value] of used) {
        if (this.dirty.get(key) === value) this.dirty.delete(key);
      }
      if (done) toast(done);
      await this.refresh();
      return result;
    } catch (err) {
      toast(t("mod_error", { message: err.message }), { kind: "error" });
      await this.refresh();
      return null;
    }
  }

  mute(person) {
    return this.act(() => this.api.post(this.path(`/participants/${person.id}/mute`), { kind: "audio" }), t("mod_done"), []);
  }

  remove(person, { ban = false, reason = "" } = {}) {
    this.confirmRemove = null;
    const body = ban ? { ban: true, ...(reason ? { reason } : {}) } : {};
    return this.act(() => this.api.post(this.path(`/participants/${person.id}/remove`), body), ban ? t("mod_banned", { name: person.display_name }) : t("mod_done"), []);
  }

  lowerHand(person) {
    if (this.send({ type: "lower_hand", peer_id: person.id })) toast(t("mod_done"));
  }

  /** Send over the socket; `say(ack)` is the toast once the server has done it (an error is toasted by the page). */
  sendThen(msg, say) {
    const id = this.send(msg);
    if (id === false) {
      toast(t("mod_error", { message: t("reconnecting") }), { kind: "error" });
      return false;
    }
    if (typeof id === "number" || typeof id === "string") this.awaiting.set(id, say);
    return true;
  }

  /** Lock or unlock a room: ours over the socket (room_updated tells the room), another one over HTTP. */
  setLocked(room, locked) {
    const name = this.roomName(room.id) || room.name;
    const said = t(locked ? "mod_locked_toast" : "mod_unlocked_toast", { room: name });
    if (room.id === this.getRoom().id) return this.sendThen({ type: "lock_room", locked }, () => said);
    return this.act(() => this.api.request("PATCH", this.path(`/rooms/${room.id}`), { json: { locked } }), said, []);
  }

  /** Whether a room is locked: ours from the live room (room_updated), others from the rooms list. */
  isLocked(roomId) {
    const here = this.getRoom();
    if (here && here.id === roomId) return Boolean(here.locked);
    const room = this.rooms.find((r) => r.id === roomId);
    return Boolean(room && room.locked);
  }

  muteAll() {
    return this.sendThen({ type: "mute_all", kind: "audio" }, (ack) => t("mod_mute_all_done", { n: ack.affected ?? 0 }));
  }

  lowerAllHands() {
    return this.sendThen({ type: "lower_all_hands" }, (ack) => t("mod_lower_all_done", { n: ack.affected ?? 0 }));
  }

  giveFloor(peer) {
    return this.sendThen({ type: "give_floor", peer_id: peer.id }, () => t("mod_give_floor_done", { name: peer.display_name }));
  }

  askUnmute(peer) {
    return this.sendThen({ type: "ask_unmute", peer_id: peer.id, kind: "audio" }, () => t("mod_ask_unmute_done", { name: peer.display_name }));
  }

  /** The raised hands of our room in the order they went up (the server's hand_raised_at), then by name. */
  handQueue() {
    return [...this.getRoster().values()]
      .filter((peer) => peer.state && peer.state.hand)
      .sort((a, b) => {
        const ta = Date.parse(a.state.hand_raised_at || "") || Infinity;
        const tb = Date.parse(b.state.hand_raised_at || "") || Infinity;
        return ta !== tb ? ta - tb : naturalCompare(a.display_name, b.display_name);
      });
  }

  /** The people of the selection that are still on the roster (and not oneself). */
  selection() {
    const selfId = this.getSelf().id;
    return this.people.filter((p) => this.selected.has(p.id) && p.id !== selfId);
  }

  /** One API call per selected person, all at once; one summary toast. The selection is done with. */
  async bulk(label, call, people = this.selection()) {
    this.selected.clear();
    if (!people.length) return this.render();
    const results = await Promise.allSettled(people.map((p) => call(p)));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) toast(t("mod_bulk_failed", { n: failed.length, message: failed[0].reason.message }), { kind: "error" });
    else toast(t("mod_bulk_done", { action: label, n: people.length }));
    await this.refresh();
  }

  bulkMove(roomId) {
    const plan = this.plan;
    if (!plan || !roomId) return;
    if (plan.state === "draft") {
      // A prepared plan: the picks become assignments, saved at once.
      for (const person of this.selection()) this.dirty.set(`assign:${person.id}`, roomId);
      this.selected.clear();
      return this.saveAssignments();
    }
    const movable = this.selection().filter((p) => p.role !== "observer");
    return this.bulk(t("mod_move"), (p) => this.api.post(this.path(`/breakouts/${plan.id}/move`), { participant_id: p.id, room_id: roomId }), movable);
  }

  bulkMute() {
    const live = this.selection().filter((p) => this.isLive(p));
    return this.bulk(t("mod_mute"), (p) => this.api.post(this.path(`/participants/${p.id}/mute`), { kind: "audio" }), live);
  }

  bulkLowerHand() {
    const raised = this.selection().filter((p) => this.handUp(p));
    for (const person of raised) this.send({ type: "lower_hand", peer_id: person.id });
    this.selected.clear();
    this.render();
    toast(t("mod_bulk_done", { action: t("mod_lower_hand"), n: raised.length }));
  }

  bulkRemove(ban) {
    const reason = String(this.dirty.get("mod-ban-reason") || "").trim();
    const people = this.selection().filter((p) => p.role !== "organiser" || this.getSelf().role === "organiser");
    this.confirmRemove = null;
    this.selected.clear();
    const body = ban ? { ban: true, ...(reason ? { reason } : {}) } : {};
    this.dirty.delete("mod-ban-reason");
    return this.bulk(ban ? t("mod_remove_ban") : t("mod_remove"), (p) => this.api.post(this.path(`/participants/${p.id}/remove`), body), people);
  }

  admit(selector) {
    if (this.send({ type: "admit", ...selector }, { withRequestId: true })) toast(t("mod_admitting"));
  }

  deny(knock) {
    const message = String(this.dirty.get(`deny:${knock.id}`) || "").trim();
    this.denying = null;
    this.dirty.delete(`deny:${knock.id}`);
    this.send({ type: "deny", knock_id: knock.id, ...(message ? { message } : {}) }, { withRequestId: true });
    this.render();
  }

  dismissHelp(item) {
    this.help.delete(item.participant_id);
    this.countQueue();
    this.send({ type: "dismiss_help", participant_id: item.participant_id }, { withRequestId: true });
    this.render();
  }

  createPlan(form) {
    const data = new FormData(form);
    const body = {
      name: String(data.get("name") || "").trim() || t("mod_plan_name_default"),
      rooms: Number(data.get("rooms")) || 2,
      strategy: String(data.get("strategy") || "manual"),
    };
    this.creating = false;
    return this.act(() => this.api.post(this.path("/breakouts"), body), null, ["mod-plan-name", "mod-room-count", "mod-strategy"]);
  }

  /** Every assignment of the plan with the picks made since (including people the filter hides). */
  saveAssignments() {
    const plan = this.plan;
    const index = new Map(plan.rooms.map((r, i) => [r.id, i]));
    const assignments = {};
    for (const [pid, roomId] of Object.entries(plan.assignments)) if (index.has(roomId)) assignments[pid] = index.get(roomId);
    const keys = [];
    for (const [key, value] of this.dirty) {
      if (!key.startsWith("assign:")) continue;
      keys.push(key);
      const pid = key.slice("assign:".length);
      if (index.has(value)) assignments[pid] = index.get(value);
      else delete assignments[pid];
    }
    return this.act(() => this.api.put(this.path(`/breakouts/${plan.id}/assignments`), { assignments }), t("mod_assignments_saved"), keys);
  }

  openPlan() {
    const minutes = Number(this.root.querySelector("#mod-duration").value);
    const body = minutes > 0 ? { duration_s: Math.round(minutes * 60) } : {};
    if (this.recordAll) body.record = true; // every room of the plan recorded from the opening (consent as always)
    return this.act(() => this.api.post(this.path(`/breakouts/${this.plan.id}/open`), body), null, ["mod-duration"]);
  }

  extendPlan() {
    const minutes = Number(this.root.querySelector("#mod-extend").value) || 5;
    return this.act(() => this.api.post(this.path(`/breakouts/${this.plan.id}/extend`), { seconds: Math.round(minutes * 60) }), null, ["mod-extend"]);
  }

  closePlan() {
    const raw = this.root.querySelector("#mod-countdown").value;
    const body = raw === "" ? {} : { countdown_s: Math.max(0, Math.round(Number(raw))) };
    return this.act(() => this.api.post(this.path(`/breakouts/${this.plan.id}/close`), body), null, ["mod-countdown"]);
  }

  deletePlan() {
    const keys = [...this.dirty.keys()].filter((k) => k.startsWith("assign:"));
    return this.act(() => this.api.request("DELETE", this.path(`/breakouts/${this.plan.id}`)), null, keys);
  }

  async broadcast(form) {
    const input = form.querySelector("textarea, input");
    const text = input.value.trim();
    if (!text) return;
    await this.act(() => this.api.post(this.path(`/breakouts/${this.plan.id}/broadcast`), { text }), t("mod_broadcast_sent"), ["mod-broadcast"]);
  }

  move(person, select) {
    const roomId = this.dirty.get(`move:${person.id}`) ?? select.value;
    return this.moveTo(person, roomId || this.plenaryId());
  }

  moveTo(person, roomId) {
    return this.act(
      () => this.api.post(this.path(`/breakouts/${this.plan.id}/move`), { participant_id: person.id, room_id: roomId }),
      t("mod_moved", { name: person.display_name }),
      [`move:${person.id}`],
    );
  }

  plenaryId() {
    const plenary = this.rooms.find((r) => r.kind === "plenary");
    return plenary ? plenary.id : this.getPlenaryId();
  }

  // What the views read ---------------------------------------------------------------------------

  running() {
    return this.plan && (this.plan.state === "open" || this.plan.state === "closing");
  }

  /** The room each person is in (or will be in): live presence, else the running plan's assignment, else home. */
  roomOf(person) {
    if (person.id === this.getSelf().id) return this.getRoom().id;
    const live = this.present.get(person.id);
    if (live) return live.roomId;
    if (this.running() && this.plan.assignments[person.id]) return this.plan.assignments[person.id];
    return person.room_id || this.plenaryId();
  }

  /** In signalling now (connected, or reconnecting within the grace period). */
  isLive(person) {
    return person.id === this.getSelf().id || this.getRoster().has(person.id) || this.present.has(person.id);
  }

  handUp(person) {
    const peer = this.getRoster().get(person.id);
    if (peer && peer.state) return Boolean(peer.state.hand);
    const live = this.present.get(person.id);
    return Boolean(live && live.state && live.state.hand);
  }

  roomName(roomId) {
    const room = this.rooms.find((r) => r.id === roomId) || (this.plan ? this.plan.rooms.find((r) => r.id === roomId) : null);
    if (!room) return "";
    return room.kind === "plenary" || roomId === this.plenaryId() ? t("room_plenary") : room.name;
  }

  matches(person) {
    if (this.country && person.country !== this.country) return false;
    if (!this.search) return true;
    const needle = fold(this.search);
    return [person.display_name, person.organisation, person.country, person.email].some((x) => fold(x).includes(needle));
  }

  /** Country -> {present, invited}, observers left out (they are not part of the count of a delegation). */
  countries() {
    const counts = new Map();
    for (const person of this.people) {
      if (person.role === "observer") continue;
      const c = counts.get(person.country) || { present: 0, invited: 0 };
      c.invited += 1;
      if (this.isLive(person)) c.present += 1;
      counts.set(person.country, c);
    }
    return new Map([...counts].sort((a, b) => naturalCompare(a[0], b[0])));
  }

  // Views -----------------------------------------------------------------------------------------

  render() {
    const focused = this.root.contains(document.activeElement) ? document.activeElement : null;
    const focus = focused ? focusKey(focused) : null;
    const caret = focused && focused.matches("input[type=text], input[type=search], textarea") ? [focused.selectionStart, focused.selectionEnd] : null;
    const oldScroll = this.root.querySelector(".mod-scroll");
    const scrolled = oldScroll ? oldScroll.scrollTop : 0; // emptying the panel would scroll it back to the top
    naturalCompare.collator = new Intl.Collator(currentLocale(), { numeric: true, sensitivity: "base" }).compare;
    clear(
      this.root,
      h("h2", { class: "visually-hidden" }, t("mod_heading")),
      this.error ? h("p", { class: "error", role: "alert" }, this.error) : null,
      !this.loaded && !this.error ? h("p", { class: "mod-loading" }, t("mod_loading")) : null,
      this.loaded
        ? [
            h("div", { class: "mod-bar", id: "mod-bar" }, this.roomControlsView(), this.breakoutView(), this.agendaView()),
            this.queueView(),
            this.handsView(),
            h("div", { class: "mod-scroll", id: "mod-scroll" }, this.toolsView(), this.rosterView(), this.recordingView()),
          ]
        : null,
    );
    for (const field of this.root.querySelectorAll("input, select, textarea")) {
      const key = fieldKey(field);
      if (key && this.dirty.has(key)) field.value = this.dirty.get(key);
      field.addEventListener("input", this.remember);
      field.addEventListener("change", this.remember);
    }
    const scroll = this.root.querySelector(".mod-scroll");
    if (scroll) scroll.scrollTop = scrolled;
    if (focus) {
      const again = [...this.root.querySelectorAll("input, select, textarea, button")].find((el) => focusKey(el) === focus);
      if (again) {
        again.focus({ preventScroll: true });
        if (caret && again.setSelectionRange) again.setSelectionRange(caret[0], caret[1]);
      }
    }
  }

  renderRooms() {
    if (this.loaded && !this.busy()) this.render();
  }

  /** Our room's controls, always on screen: the lock (and its state), mute everyone but presenters, lower all hands. */
  roomControlsView() {
    const here = this.getRoom();
    const locked = Boolean(here.locked);
    const hands = this.handQueue().length;
    return h(
      "section",
      { class: "mod-section mod-room-controls", "aria-labelledby": "mod-room-controls-h", dataset: { locked: String(locked) } },
      h(
        "div",
        { class: "row room-lock" },
        h("h3", { id: "mod-room-controls-h" }, t("mod_room_controls")),
        h(
          "span",
          { class: locked ? "tag lock-state locked" : "tag lock-state", id: "mod-lock-state", title: locked ? t("mod_locked_hint") : "" },
          locked ? `🔒 ${t("mod_room_locked")}` : t("mod_room_open"),
        ),
        h(
          "button",
          { type: "button", class: locked ? "small active" : "small", id: "mod-lock", "aria-pressed": String(locked), onclick: () => this.setLocked(here, !locked) },
          t(locked ? "mod_unlock" : "mod_lock"),
        ),
      ),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", class: "small", id: "mod-mute-all", onclick: () => this.muteAll() }, t("mod_mute_all")),
        h("button", { type: "button", class: "small", id: "mod-lower-all", disabled: hands === 0, onclick: () => this.lowerAllHands() }, t("mod_lower_all"), hands ? ` (${hands})` : ""),
      ),
    );
  }

  /** The hand queue of our room: first up, first served; a hand that goes down leaves it by itself. */
  handsView() {
    const queue = this.handQueue();
    if (!queue.length) return null;
    return h(
      "section",
      { class: "mod-section mod-hands", "aria-labelledby": "mod-hands-h" },
      h("h3", { id: "mod-hands-h" }, t("mod_hands"), " ", h("span", { class: "count" }, String(queue.length))),
      h(
        "ol",
        { class: "hand-queue", "aria-label": t("mod_hand_queue_label") },
        queue.map((peer, i) =>
          h(
            "li",
            { class: "queue-item hand-item", dataset: { participantId: peer.id } },
            h(
              "div",
              { class: "queue-main" },
              h("span", { class: "hand-number", "aria-hidden": "true" }, String(i + 1)),
              countryBadge(peer.country, countryName(peer.country)),
              h("span", { class: "person-name" }, peer.display_name),
              peer.state.audio ? null : h("span", { class: "tag" }, t("state_muted")),
              peer.state.hand_raised_at
                ? h("span", { class: "hint wait" }, h("span", { dataset: { since: peer.state.hand_raised_at } }, waitedSince(peer.state.hand_raised_at)))
                : null,
            ),
            h(
              "div",
              { class: "row" },
              h("button", { type: "button", class: "small primary", "aria-label": t("mod_give_floor_label", { name: peer.display_name }), onclick: () => this.giveFloor(peer) }, t("mod_give_floor")),
              peer.state.audio
                ? null
                : h("button", { type: "button", class: "small", "aria-label": t("mod_ask_unmute_label", { name: peer.display_name }), onclick: () => this.askUnmute(peer) }, t("mod_ask_unmute")),
              h("button", { type: "button", class: "small ghost", "aria-label": t("mod_lower_hand_label", { name: peer.display_name }), onclick: () => this.lowerHand(peer) }, t("mod_lower_hand")),
            ),
          ),
        ),
      ),
    );
  }

  /** What the agenda will do next by itself, and when (in the viewer's zone and the workshop's), with a hold. */
  agendaView() {
    const next = this.agendaNext;
    if (!next) return null;
    const what = next.actions.map((a) => t(`mod_agenda_${a}`)).join(", ");
    const hold = async () => {
      try {
        await this.api.post(this.path(`/agenda/${next.session_id}/hold`), { held: !next.held });
      } catch (err) {
        toast(err.message, { kind: "error" });
      }
    };
    return h(
      "section",
      { class: "mod-section mod-agenda", id: "mod-agenda", "aria-labelledby": "mod-agenda-h" },
      h("h3", { id: "mod-agenda-h" }, t("mod_agenda_next")),
      h(
        "p",
        {},
        h("strong", {}, what),
        ` · ${next.title} · `,
        h("time", { datetime: next.at }, formatDual(next.at, this.workshopZone)),
        next.held ? h("span", { class: "agenda-badge" }, ` ${t("agenda_state_held")}`) : null,
      ),
      h("button", { type: "button", class: "small", id: "mod-agenda-hold", onclick: hold }, next.held ? t("agenda_release") : t("agenda_hold")),
    );
  }

  /** The breakout controls, always on screen: what can be done with the plan in its current state. */
  breakoutView() {
    const plan = this.plan;
    const section = h("section", { class: "mod-section mod-breakouts", "aria-labelledby": "mod-breakouts-h" }, h("h3", { id: "mod-breakouts-h" }, t("mod_breakouts")));
    if (!plan || this.creating) {
      section.append(this.createForm());
      return section;
    }
    const head = h("p", { class: "plan-state", dataset: { state: plan.state } }, t("mod_plan_state", { name: plan.name, state: t(`plan_state_${plan.state}`) }));
    section.querySelector("h3").after(head);
    if (plan.state === "draft") {
      section.append(
        h(
          "div",
          { class: "row" },
          h("label", { for: "mod-duration" }, t("mod_duration")),
          h("input", { id: "mod-duration", type: "number", min: "1", max: "1440", step: "1", value: "15", inputmode: "numeric" }),
          h("button", { type: "button", class: "small primary", id: "mod-open", onclick: () => this.openPlan() }, t("mod_open")),
        ),
        h("div", { class: "row" }, h("label", { class: "toggle", for: "mod-record-all" }, h("input", { id: "mod-record-all", type: "checkbox", checked: this.recordAll === true, onchange: (e) => (this.recordAll = e.target.checked) }), " ", t("mod_record_all"))),
        h(
          "div",
          { class: "row" },
          h("button", { type: "button", class: "small", id: "mod-save-assignments", onclick: () => this.saveAssignments() }, t("mod_save_assignments")),
          h("button", { type: "button", class: "small ghost", onclick: () => this.deletePlan() }, t("mod_new_plan")),
        ),
      );
      return section;
    }
    if (plan.state === "open") {
      section.append(
        h(
          "div",
          { class: "row" },
          h("label", { for: "mod-extend" }, t("mod_extend_by")),
          h("input", { id: "mod-extend", type: "number", min: "1", max: "600", step: "1", value: "5", inputmode: "numeric" }),
          h("button", { type: "button", class: "small", id: "mod-extend-button", onclick: () => this.extendPlan() }, t("mod_extend")),
        ),
        h(
          "div",
          { class: "row" },
          h("label", { for: "mod-countdown" }, t("mod_countdown")),
          h("input", { id: "mod-countdown", type: "number", min: "0", max: "3600", step: "1", value: String(plan.countdown_s ?? 60), inputmode: "numeric" }),
          h("button", { type: "button", class: "small danger", id: "mod-close", onclick: () => this.closePlan() }, t("mod_close")),
        ),
      );
    }
    section.append(
      h(
        "form",
        {
          class: "broadcast-form",
          onsubmit: (e) => {
            e.preventDefault();
            this.broadcast(e.target);
          },
        },
        h("label", { for: "mod-broadcast", class: "visually-hidden" }, t("mod_broadcast_label")),
        h("input", { id: "mod-broadcast", type: "text", maxlength: "2000", placeholder: t("mod_broadcast_label"), autocomplete: "off" }),
        h("button", { type: "submit", class: "small", id: "mod-broadcast-button" }, t("mod_broadcast")),
      ),
    );
    return section;
  }

  createForm() {
    return h(
      "form",
      {
        class: "create-form",
        onsubmit: (e) => {
          e.preventDefault();
          this.createPlan(e.target);
        },
      },
      h("div", { class: "field wide" }, h("label", { for: "mod-plan-name" }, t("mod_plan_name")), h("input", { id: "mod-plan-name", name: "name", type: "text", maxlength: "200", value: t("mod_plan_name_default") })),
      h("div", { class: "field" }, h("label", { for: "mod-room-count" }, t("mod_room_count")), h("input", { id: "mod-room-count", name: "rooms", type: "number", min: "1", max: "100", value: "2", inputmode: "numeric" })),
      h("div", { class: "field" }, h("label", { for: "mod-strategy" }, t("mod_strategy")), h("select", { id: "mod-strategy", name: "strategy" }, STRATEGIES.map((s) => h("option", { value: s }, t(`strategy_${s}`))))),
      h("button", { type: "submit", class: "small primary", id: "mod-create" }, t("mod_create")),
    );
  }

  /** Knocks and help requests, oldest first; the section is gone when nobody waits. */
  queueView() {
    const knocks = [...this.knocks.values()].sort((a, b) => String(a.knocked_at).localeCompare(String(b.knocked_at)));
    const help = [...this.help.values()].sort((a, b) => String(a.at).localeCompare(String(b.at)));
    if (!knocks.length && !help.length) return null;
    const countries = [...new Set(knocks.map((k) => k.country))].sort(naturalCompare);
    return h(
      "section",
      { class: "mod-section mod-queue", "aria-labelledby": "mod-queue-h" },
      h("h3", { id: "mod-queue-h" }, t("mod_queue"), " ", h("span", { class: "count unread" }, String(knocks.length + help.length))),
      knocks.length > 1
        ? h(
            "div",
            { class: "row queue-bulk" },
            h("button", { type: "button", class: "small primary", id: "mod-admit-all", onclick: () => this.admit({ all: true }) }, t("mod_admit_all", { n: knocks.length })),
            countries.length > 1 || knocks.length > 1
              ? countries.map((c) =>
                  h(
                    "button",
                    { type: "button", class: "small", "aria-label": t("mod_admit_country_label", { country: countryName(c) }), onclick: () => this.admit({ country: c }) },
                    t("mod_admit_country", { country: c }),
                  ),
                )
              : null,
          )
        : null,
      h(
        "ul",
        { class: "queue-list" },
        knocks.map((k) => this.knockItem(k)),
        help.map((item) => this.helpItem(item)),
      ),
    );
  }

  knockItem(knock) {
    const denying = this.denying === knock.id;
    return h(
      "li",
      { class: "queue-item knock", dataset: { knockId: knock.id, participantId: knock.participant_id } },
      h(
        "div",
        { class: "queue-main" },
        countryBadge(knock.country, countryName(knock.country)),
        h("span", { class: "person-name" }, knock.display_name),
        knock.organisation ? h("span", { class: "hint" }, knock.organisation) : null,
        h("span", { class: "tag" }, t(`mod_knock_reason_${knock.reason}`)),
        knock.link_used_elsewhere ? h("span", { class: "tag warn", title: t("mod_link_elsewhere_hint") }, t("mod_link_elsewhere")) : null,
        knock.connected === false ? h("span", { class: "tag" }, t("mod_knock_offline")) : null,
        h("span", { class: "hint wait" }, t("mod_waiting"), " ", h("span", { class: "knock-wait", dataset: { since: knock.knocked_at } }, waitedSince(knock.knocked_at))),
      ),
      denying
        ? h(
            "form",
            {
              class: "row deny-form",
              onsubmit: (e) => {
                e.preventDefault();
                this.deny(knock);
              },
            },
            h("input", { type: "text", maxlength: "500", dataset: { denyMessage: knock.id }, placeholder: t("mod_deny_message"), "aria-label": t("mod_deny_message_label", { name: knock.display_name }) }),
            h("button", { type: "submit", class: "small danger" }, t("mod_deny_confirm")),
            h("button", { type: "button", class: "small ghost", onclick: () => ((this.denying = null), this.render()) }, t("mod_cancel")),
          )
        : h(
            "div",
            { class: "row" },
            h("button", { type: "button", class: "small primary", "aria-label": t("mod_admit_label", { name: knock.display_name }), onclick: () => this.admit({ knock_ids: [knock.id] }) }, t("mod_admit")),
            h("button", { type: "button", class: "small", "aria-label": t("mod_deny_label", { name: knock.display_name }), onclick: () => ((this.denying = knock.id), this.render()) }, t("mod_deny")),
          ),
    );
  }

  helpItem(item) {
    const roomName = this.roomName(item.room_id) || item.room_name;
    return h(
      "li",
      { class: "queue-item help-item", dataset: { participantId: item.participant_id } },
      h(
        "div",
        { class: "queue-main" },
        h("span", { class: "tag help" }, t("mod_help_tag")),
        h("span", { class: "queue-text" }, t("mod_help_item", { name: item.display_name, room: roomName }), item.text ? `: ${item.text}` : ""),
        h("span", { class: "hint wait" }, t("mod_waiting"), " ", h("span", { dataset: { since: item.at } }, waitedSince(item.at))),
      ),
      h(
        "div",
        { class: "row" },
        item.room_id !== this.getRoom().id
          ? h("button", { type: "button", class: "small primary", "aria-label": t("mod_help_go_label", { room: roomName }), onclick: () => this.chooseRoom(item.room_id) }, t("mod_help_go"))
          : null,
        h("button", { type: "button", class: "small ghost", "aria-label": t("mod_help_dismiss_label", { name: item.display_name }), onclick: () => this.dismissHelp(item) }, t("dismiss")),
      ),
    );
  }

  /** Search, country filter, selection and the bulk actions: sticky at the top of the scrolling region. */
  toolsView() {
    const selfId = this.getSelf().id;
    const shown = this.people.filter((p) => p.id !== selfId && this.matches(p) && (this.showAbsent || this.isLive(p) || this.search || this.country));
    const picked = this.selection();
    const allPicked = shown.length > 0 && shown.every((p) => this.selected.has(p.id));
    const countries = this.countries();
    const tools = h(
      "div",
      { class: "mod-tools", role: "search" },
      h(
        "div",
        { class: "row" },
        h("label", { for: "mod-search", class: "visually-hidden" }, t("mod_search")),
        h("input", {
          id: "mod-search",
          type: "search",
          placeholder: t("mod_search_placeholder"),
          value: this.search,
          autocomplete: "off",
          oninput: (e) => {
            this.search = e.target.value;
            this.render();
          },
        }),
        h("label", { for: "mod-country", class: "visually-hidden" }, t("mod_country_filter")),
        h(
          "select",
          {
            id: "mod-country",
            onchange: (e) => {
              this.country = e.target.value;
              this.dirty.delete("mod-country");
              this.render();
            },
          },
          h("option", { value: "" }, t("mod_all_countries")),
          [...countries].map(([code, c]) => h("option", { value: code, selected: code === this.country }, `${code} · ${countryName(code)} (${c.present}/${c.invited})`)),
        ),
      ),
      h(
        "div",
        { class: "row select-row" },
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            id: "mod-select-all",
            checked: allPicked,
            disabled: !shown.length,
            onchange: (e) => {
              for (const p of shown) {
                if (e.target.checked) this.selected.add(p.id);
                else this.selected.delete(p.id);
              }
              this.render();
            },
          }),
          " ",
          t("mod_select_shown", { n: shown.length }),
        ),
        picked.length ? h("span", { class: "hint", id: "mod-selected-count" }, t("mod_selected", { n: picked.length })) : null,
      ),
      this.countsView(),
      picked.length ? this.bulkBar(picked) : null,
    );
    return tools;
  }

  bulkBar(picked) {
    if (this.confirmRemove === "bulk") {
      return h(
        "div",
        { class: "row bulk-bar confirm", role: "group", "aria-label": t("mod_bulk_label") },
        h("span", {}, t("mod_remove_n", { n: picked.length })),
        h("input", { id: "mod-ban-reason", type: "text", maxlength: "500", placeholder: t("mod_ban_reason"), "aria-label": t("mod_ban_reason") }),
        h("button", { type: "button", class: "small danger", id: "mod-bulk-remove-confirm", onclick: () => this.bulkRemove(false) }, t("mod_remove_confirm")),
        h("button", { type: "button", class: "small danger", id: "mod-bulk-ban", onclick: () => this.bulkRemove(true) }, t("mod_remove_ban")),
        h("button", { type: "button", class: "small ghost", onclick: () => ((this.confirmRemove = null), this.render()) }, t("mod_cancel")),
      );
    }
    const plan = this.plan;
    const targets = plan && (plan.state === "draft" || plan.state === "open") ? plan.rooms : [];
    const withPlenary = plan && plan.state === "open";
    return h(
      "div",
      { class: "row bulk-bar", role: "group", "aria-label": t("mod_bulk_label") },
      targets.length
        ? [
            h("label", { for: "mod-bulk-room", class: "visually-hidden" }, t("mod_bulk_room")),
            h(
              "select",
              { id: "mod-bulk-room" },
              withPlenary ? h("option", { value: this.plenaryId() }, t("mod_plenary")) : null,
              targets.map((room) => h("option", { value: room.id }, room.name)),
            ),
            h(
              "button",
              {
                type: "button",
                class: "small",
                id: "mod-bulk-move",
                onclick: () => this.bulkMove(this.dirty.get("mod-bulk-room") || this.root.querySelector("#mod-bulk-room").value),
              },
              plan.state === "draft" ? t("mod_bulk_assign") : t("mod_move"),
            ),
          ]
        : null,
      h("button", { type: "button", class: "small", id: "mod-bulk-mute", onclick: () => this.bulkMute() }, t("mod_mute")),
      h("button", { type: "button", class: "small", id: "mod-bulk-lower", onclick: () => this.bulkLowerHand() }, t("mod_lower_hand")),
      h("button", { type: "button", class: "small danger", id: "mod-bulk-remove", onclick: () => ((this.confirmRemove = "bulk"), this.render()) }, t("mod_remove")),
      h("button", { type: "button", class: "small ghost", id: "mod-bulk-clear", onclick: () => (this.selected.clear(), this.render()) }, t("mod_clear_selection")),
    );
  }

  /** Present / invited by country; a chip filters the roster by its country. */
  countsView() {
    const countries = this.countries();
    if (!countries.size) return null;
    return h(
      "div",
      { class: "mod-countries" },
      h(
        "ul",
        { class: "country-counts", "aria-label": t("mod_by_country") },
        h("li", { class: "hint", "aria-hidden": "true" }, t("mod_counts_hint")),
        [...countries].map(([code, c]) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: code === this.country ? "chip active" : "chip",
                "aria-pressed": String(code === this.country),
                "aria-label": t("mod_country_count_label", { country: countryName(code), present: c.present, invited: c.invited }),
                dataset: { country: code },
                onclick: () => {
                  this.country = this.country === code ? "" : code;
                  this.dirty.delete("mod-country");
                  this.render();
                },
              },
              countryBadge(code, countryName(code)),
              " ",
              h("span", { class: "chip-count" }, `${c.present} / ${c.invited}`),
            ),
          ),
        ),
      ),
    );
  }

  /** Present people by room (plenary first), natural order; the absent ones folded below. */
  rosterView() {
    const self = this.getSelf();
    const here = this.getRoom();
    const roster = this.getRoster();
    const filtering = Boolean(this.search || this.country);
    const people = this.people.filter((p) => this.matches(p)).sort((a, b) => naturalCompare(a.display_name, b.display_name));
    const present = people.filter((p) => this.isLive(p));
    const absent = people.filter((p) => !this.isLive(p));
    const byRoom = new Map();
    for (const person of present) {
      const roomId = this.roomOf(person);
      if (!byRoom.has(roomId)) byRoom.set(roomId, []);
      byRoom.get(roomId).push(person);
    }
    const planRooms = new Set(this.running() ? this.plan.rooms.map((r) => r.id) : []);
    const plenaryId = this.plenaryId();
    const rooms = [...this.rooms]
      .filter((room) => byRoom.has(room.id) || (!filtering && (room.id === plenaryId || planRooms.has(room.id))))
      .sort((a, b) => (a.kind === b.kind ? naturalCompare(a.name, b.name) : a.kind === "plenary" ? -1 : 1));
    const absentOpen = this.showAbsent || (filtering && absent.length > 0 && present.length === 0);
    return h(
      "section",
      { class: "mod-section mod-roster", "aria-labelledby": "mod-rooms-h" },
      h(
        "h3",
        { id: "mod-rooms-h" },
        t("mod_present", { n: present.length, total: people.length }),
        " ",
        h("button", { type: "button", class: "small ghost", onclick: () => this.refresh() }, t("mod_refresh")),
      ),
      filtering && !people.length ? h("p", { class: "hint" }, t("mod_no_match")) : null,
      h(
        "ul",
        { class: "mod-rooms" },
        rooms.map((room) => {
          const members = byRoom.get(room.id) || [];
          const isHere = room.id === here.id;
          const canVisit = !isHere && (planRooms.has(room.id) || (room.kind === "plenary" && this.running()));
          return h(
            "li",
            { class: isHere ? "mod-room here" : "mod-room", dataset: { roomId: room.id } },
            h(
              "div",
              { class: "mod-room-head" },
              h("strong", {}, room.kind === "plenary" ? t("room_plenary") : room.name),
              h("span", { class: "hint" }, ` · ${members.length}`),
              isHere ? h("span", { class: "hint" }, ` · ${t("mod_room_here")}`) : null,
              this.isLocked(room.id) ? h("span", { class: "tag lock-state locked", title: t("mod_locked_hint") }, `🔒 ${t("mod_room_locked")}`) : null,
              isHere
                ? null
                : h(
                    "button",
                    {
                      type: "button",
                      class: "small ghost",
                      "aria-label": t(this.isLocked(room.id) ? "mod_unlock_label" : "mod_lock_label", { room: this.roomName(room.id) || room.name }),
                      onclick: () => this.setLocked(room, !this.isLocked(room.id)),
                    },
                    t(this.isLocked(room.id) ? "mod_unlock" : "mod_lock"),
                  ),
              canVisit ? h("button", { type: "button", class: "small", "aria-label": t("mod_visit_label", { room: room.name }), onclick: () => this.chooseRoom(room.id) }, t("mod_visit")) : null,
            ),
            members.length ? h("ul", { class: "mod-people" }, members.map((p) => this.personRow(p, self, roster))) : h("p", { class: "hint" }, t("mod_room_empty")),
          );
        }),
      ),
      absent.length
        ? h(
            "details",
            {
              class: "mod-absent",
              open: absentOpen,
              ontoggle: (e) => {
                if (e.target.open !== absentOpen) {
                  this.showAbsent = e.target.open;
                  this.render();
                }
              },
            },
            h("summary", {}, t("mod_absent", { n: absent.length })),
            h("ul", { class: "mod-people" }, absent.map((p) => this.personRow(p, self, roster))),
          )
        : null,
    );
  }

  /**
   * "Give the floor" / "Take the floor back" for someone in our room when it is a moderated sfu room (only those
   * given the floor publish there; moderators always may, observers never).
   */
  floorButton(person, roster) {
    const here = this.getRoom();
    const peer = roster.get(person.id);
    if (!peer || here.media !== "sfu") return null;
    // A change of who may publish reaches us as peer_updated (may_publish), not as a new room: ask the API too.
    const listed = this.rooms.find((r) => r.id === here.id);
    const moderated = here.publishing === "moderated" || (listed && listed.publishing === "moderated") || peer.may_publish === false;
    if (!moderated) return null;
    if (["organiser", "moderator", "observer"].includes(peer.role)) return null;
    const granted = peer.may_publish !== false;
    return h(
      "button",
      {
        type: "button",
        class: granted ? "small danger" : "small",
        "aria-label": t(granted ? "mod_floor_revoke_label" : "mod_floor_grant_label", { name: person.display_name }),
        dataset: { floor: granted ? "granted" : "none" },
        onclick: () => {
          if (this.setFloor(person.id, !granted)) toast(t(granted ? "mod_floor_revoked" : "mod_floor_granted", { name: person.display_name }));
        },
      },
      t(granted ? "mod_floor_revoke" : "mod_floor_grant"),
    );
  }

  /** "Spotlight" puts someone of our room on everyone's stage (live, for the whole room); again ends it. */
  spotlightButton(person, self, roster) {
    if (person.id !== self.id && !roster.has(person.id)) return null;
    const on = this.getSpotlight() === person.id;
    return h(
      "button",
      {
        type: "button",
        class: on ? "small active" : "small",
        "aria-pressed": String(on),
        "aria-label": t(on ? "mod_spotlight_end_label" : "mod_spotlight_label", { name: person.display_name }),
        dataset: { spotlight: on ? "on" : "off" },
        onclick: () => this.setSpotlight(on ? null : person.id),
      },
      t("mod_spotlight"),
    );
  }

  /** The room picker of a row: an assignment while the plan is a draft, a move while it runs. */
  roomPicker(person) {
    const plan = this.plan;
    if (!plan || person.role === "observer" || person.id === this.getSelf().id) return null;
    if (plan.state === "draft") {
      const current = plan.assignments[person.id] || "";
      return h(
        "select",
        { class: "room-pick", "aria-label": t("mod_assign_for", { name: person.display_name }), dataset: { assign: person.id } },
        h("option", { value: "" }, t("mod_unassigned")),
        plan.rooms.map((room) => h("option", { value: room.id, selected: room.id === current }, room.name)),
      );
    }
    if (plan.state !== "open") return null;
    const current = this.roomOf(person);
    const select = h(
      "select",
      { class: "room-pick", "aria-label": t("mod_assign_for", { name: person.display_name }), dataset: { move: person.id } },
      h("option", { value: "" }, t("mod_plenary")),
      plan.rooms.map((room) => h("option", { value: room.id, selected: room.id === current }, room.name)),
    );
    return [
      select,
      h("button", { type: "button", class: "small", "aria-label": `${t("mod_move")} ${person.display_name}`, onclick: () => this.move(person, select) }, t("mod_move")),
    ];
  }

  personRow(person, self, roster) {
    const presence = this.present.get(person.id);
    const live = this.isLive(person);
    const reconnecting = presence && !presence.connected && !roster.has(person.id);
    const isSelf = person.id === self.id;
    const confirming = this.confirmRemove === person.id;
    const hand = live && this.handUp(person);
    const room = this.roomName(this.roomOf(person));
    const checkbox = isSelf
      ? h("span", { class: "check-spacer" })
      : h("input", {
          type: "checkbox",
          class: "pick",
          checked: this.selected.has(person.id),
          "aria-label": t("mod_select_person", { name: person.display_name }),
          dataset: { select: person.id },
          onchange: (e) => {
            if (e.target.checked) this.selected.add(person.id);
            else this.selected.delete(person.id);
            this.render();
          },
        });
    let actions;
    if (isSelf) {
      actions = h("span", { class: "person-actions" }, this.spotlightButton(person, self, roster));
    } else if (confirming) {
      actions = h(
        "span",
        { class: "person-actions confirm" },
        h("button", { type: "button", class: "small danger", "aria-label": t("mod_remove_confirm"), onclick: () => this.remove(person) }, t("mod_remove_confirm")),
        h("input", { id: "mod-ban-reason", type: "text", maxlength: "500", class: "ban-reason", placeholder: t("mod_ban_reason"), "aria-label": t("mod_ban_reason") }),
        h(
          "button",
          {
            type: "button",
            class: "small danger",
            "aria-label": t("mod_remove_ban_label", { name: person.display_name }),
            onclick: () => {
              const reason = String(this.dirty.get("mod-ban-reason") || "").trim();
              this.dirty.delete("mod-ban-reason");
              this.remove(person, { ban: true, reason });
            },
          },
          t("mod_remove_ban"),
        ),
        h("button", { type: "button", class: "small ghost", onclick: () => ((this.confirmRemove = null), this.render()) }, t("mod_cancel")),
      );
    } else {
      actions = h(
        "span",
        { class: "person-actions" },
        this.roomPicker(person),
        this.spotlightButton(person, self, roster),
        this.floorButton(person, roster),
        hand ? h("button", { type: "button", class: "small", "aria-label": t("mod_lower_hand_label", { name: person.display_name }), onclick: () => this.lowerHand(person) }, t("mod_lower_hand")) : null,
        live ? h("button", { type: "button", class: "small", "aria-label": t("mod_mute_label", { name: person.display_name }), onclick: () => this.mute(person) }, t("mod_mute")) : null,
        h(
          "button",
          {
            type: "button",
            class: "small",
            "aria-label": t("mod_remove_label", { name: person.display_name }),
            onclick: () => {
              this.confirmRemove = person.id;
              this.render();
            },
          },
          t("mod_remove"),
        ),
      );
    }
    return h(
      "li",
      { class: ["mod-person", live ? "live" : "", reconnecting ? "reconnecting" : "", this.selected.has(person.id) ? "selected" : ""].filter(Boolean).join(" "), dataset: { participantId: person.id } },
      checkbox,
      countryBadge(person.country, countryName(person.country)),
      h("span", { class: "person-name" }, person.display_name, isSelf ? ` (${t("you")})` : ""),
      hand ? h("span", { class: "hand", title: t("mod_hand_up"), "aria-label": t("mod_hand_up") }, "✋") : null,
      h("span", { class: "hint person-role" }, [roleName(person.role), person.organisation, !live && room ? t("mod_goes_to", { room }) : null, reconnecting ? t("mod_reconnecting") : null].filter(Boolean).join(" · ")),
      actions,
    );
  }

  startRecording() {
    const room = this.getRoom();
    return this.act(() => this.api.post(`/rooms/${room.id}/recordings`), t("mod_recording_started"), []);
  }

  stopRecording(recordingId) {
    return this.act(() => this.api.post(`/recordings/${recordingId}/stop`), t("mod_recording_stopped"), []);
  }

  recordingView() {
    const here = this.getRoom();
    const mine = this.getRecording();
    const active = [...this.recordings];
    if (mine && !active.some((r) => r.id === mine.recording_id)) {
      active.push({ id: mine.recording_id, room_id: here.id, room_name: here.name });
    }
    const hereRecorded = active.some((r) => r.room_id === here.id);
    const roomName = (r) => (r.room_id === here.id && here.kind === "plenary" ? t("room_plenary") : r.room_name);
    return h(
      "section",
      { class: "mod-section", "aria-labelledby": "mod-recording-h" },
      h("h3", { id: "mod-recording-h" }, t("mod_recording")),
      active.length
        ? h(
            "ul",
            { class: "help-list" },
            active.map((r) =>
              h(
                "li",
                { class: "recording-item", dataset: { recordingId: r.id } },
                h("span", { class: "rec-dot", "aria-hidden": "true" }, "●"),
                h("span", {}, r.room_id === here.id ? t("mod_recording_here") : t("mod_recording_in", { room: roomName(r) })),
                h(
                  "button",
                  { type: "button", class: "small danger", "aria-label": t("mod_record_stop_label", { room: roomName(r) }), onclick: () => this.stopRecording(r.id) },
                  t("mod_record_stop"),
                ),
              ),
            ),
          )
        : h("p", { class: "hint" }, t("mod_recording_none")),
      hereRecorded ? null : h("button", { type: "button", id: "mod-record-start", onclick: () => this.startRecording() }, t("mod_record_start")),
    );
  }
}
