// The moderator console: a panel of the participant page for moderators and organisers.
//
// It reads rooms, the roster, breakout plans and running recordings over the HTTP API with the moderator's
// own join token; runs breakouts (create, assign, open, extend, close, broadcast, move); mutes and removes
// people; gives and takes back the floor in moderated sfu rooms; starts and stops recordings; and keeps the help queue from `help_requested` events. Who is in
// which room right now comes from the live presence list (GET /workshops/{id}/presence); people not
// connected are shown where the plan's assignments will put them.

import { countryBadge, h, clear, toast } from "./dom.js";
import { countryName, roleName, t } from "./strings.js";

function fieldKey(el) {
  if (!el || !el.matches || !el.matches("input, select, textarea")) return null;
  if (el.id) return el.id;
  if (el.dataset.assign) return `assign:${el.dataset.assign}`;
  if (el.dataset.move) return `move:${el.dataset.move}`;
  return null;
}

/** Which element had the focus, to give it back after a re-render (keyboard users keep their place). */
function focusKey(el) {
  if (!el || !el.matches) return null;
  if (el.matches("button")) return `button:${el.id || ""}|${el.getAttribute("aria-label") || ""}|${el.textContent}`;
  return fieldKey(el);
}

const STRATEGIES = ["manual", "random", "balanced", "country_mixed", "self_select"];
const AUTO_REFRESH_MS = 15000;

export class ModeratorConsole {
  constructor({ root, api, workshopId, getSelf, getRoom, getRoster, getPlenaryId, getBreakout, getRecording, chooseRoom, setFloor, onHelpCount, getSpotlight = () => null, setSpotlight = () => false }) {
    Object.assign(this, { root, api, workshopId, getSelf, getRoom, getRoster, getPlenaryId, getBreakout, getRecording, chooseRoom, setFloor, onHelpCount, getSpotlight, setSpotlight });
    this.rooms = [];
    this.recordings = []; // recordings running in any room of the workshop
    this.people = [];
    this.plan = null;
    this.help = new Map(); // participant id -> help request
    this.creating = false;
    this.confirmRemove = null;
    this.loaded = false;
    this.error = null;
    this.pending = null;
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
  }

  path(suffix = "") {
    return `/workshops/${this.workshopId}${suffix}`;
  }

  busy() {
    return this.root.contains(document.activeElement) && document.activeElement.matches("input, select, textarea");
  }

  /** Reload rooms, roster and plans (coalesced: one request set at a time). */
  refresh() {
    if (this.pending) return this.pending;
    this.pending = (async () => {
      try {
        const [rooms, people, plans, recordings, presence] = await Promise.all([
          this.api.all(this.path("/rooms")),
          this.api.all(this.path("/participants")),
          this.api.all(this.path("/breakouts")),
          this.api.all(this.path("/recordings?state=recording")),
          this.api.get(this.path("/presence")),
        ]);
        this.present = new Map();
        for (const room of presence.rooms) {
          for (const member of room.members) this.present.set(member.id, { roomId: room.room_id, connected: member.connected });
        }
        this.rooms = rooms;
        this.recordings = recordings;
        this.people = people;
        this.plan = this.pickPlan(plans);
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

  /** A signalling event that may change what the console shows. */
  onEvent(msg) {
    if (msg.type === "help_requested") {
      this.help.set(msg.participant_id, msg);
      this.onHelpCount(this.help.size);
      toast(t("mod_help_item", { name: msg.display_name, room: msg.room_name }) + (msg.text ? `: ${msg.text}` : ""));
      this.render();
      return;
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
      return null;
    }
  }

  mute(person) {
    return this.act(() => this.api.post(this.path(`/participants/${person.id}/mute`), { kind: "audio" }), t("mod_done"), []);
  }

  remove(person) {
    this.confirmRemove = null;
    return this.act(() => this.api.post(this.path(`/participants/${person.id}/remove`)), t("mod_done"), []);
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

  saveAssignments() {
    const plan = this.plan;
    const index = new Map(plan.rooms.map((r, i) => [r.id, i]));
    const assignments = {};
    for (const select of this.root.querySelectorAll("select[data-assign]")) {
      if (index.has(select.value)) assignments[select.dataset.assign] = index.get(select.value);
    }
    const keys = [...this.dirty.keys()].filter((k) => k.startsWith("assign:"));
    return this.act(() => this.api.put(this.path(`/breakouts/${plan.id}/assignments`), { assignments }), t("mod_assignments_saved"), keys);
  }

  openPlan() {
    const minutes = Number(this.root.querySelector("#mod-duration").value);
    const body = minutes > 0 ? { duration_s: Math.round(minutes * 60) } : {};
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
    const input = form.querySelector("textarea");
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

  // Views -----------------------------------------------------------------------------------------

  running() {
    return this.plan && (this.plan.state === "open" || this.plan.state === "closing");
  }

  /** The room each person is in (or will be in): the running plan's assignment, else the home room. */
  roomOf(person) {
    const live = this.present && this.present.get(person.id);
    if (live) return live.roomId;
    if (this.running() && this.plan.assignments[person.id]) return this.plan.assignments[person.id];
    return person.room_id || this.plenaryId();
  }

  render() {
    const self = this.getSelf();
    const focused = this.root.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    const scrolled = this.root.scrollTop; // emptying the panel would scroll it back to the top
    clear(this.root, 
      h("h2", { class: "visually-hidden" }, t("mod_heading")),
      this.error ? h("p", { class: "error", role: "alert" }, this.error) : null,
      !this.loaded && !this.error ? h("p", {}, t("mod_loading")) : null,
      this.loaded ? [this.helpView(), this.breakoutView(), this.roomsView(self), this.movesView(), this.recordingView()] : null,
    );
    for (const field of this.root.querySelectorAll("input, select, textarea")) {
      const key = fieldKey(field);
      if (key && this.dirty.has(key)) field.value = this.dirty.get(key);
      field.addEventListener("input", this.remember);
      field.addEventListener("change", this.remember);
    }
    this.root.scrollTop = scrolled;
    if (focused) {
      const again = [...this.root.querySelectorAll("input, select, textarea, button")].find((el) => focusKey(el) === focused);
      if (again) again.focus({ preventScroll: true });
    }
  }

  renderRooms() {
    if (this.loaded && !this.busy()) this.render();
  }

  helpView() {
    const items = [...this.help.values()];
    return h(
      "section",
      { class: "mod-section", "aria-labelledby": "mod-help-h" },
      h("h3", { id: "mod-help-h" }, t("mod_help_queue")),
      items.length
        ? h(
            "ul",
            { class: "help-list" },
            items.map((item) =>
              h(
                "li",
                { class: "help-item" },
                h("span", {}, t("mod_help_item", { name: item.display_name, room: item.room_name }), item.text ? `: ${item.text}` : ""),
                h("button", { type: "button", class: "small", onclick: () => this.chooseRoom(item.room_id) }, t("mod_help_go")),
                h(
                  "button",
                  {
                    type: "button",
                    class: "small ghost",
                    onclick: () => {
                      this.help.delete(item.participant_id);
                      this.onHelpCount(this.help.size);
                      this.render();
                    },
                  },
                  t("dismiss"),
                ),
              ),
            ),
          )
        : h("p", { class: "hint" }, t("mod_help_empty")),
    );
  }

  breakoutView() {
    const plan = this.plan;
    const section = h("section", { class: "mod-section", "aria-labelledby": "mod-breakouts-h" }, h("h3", { id: "mod-breakouts-h" }, t("mod_breakouts")));
    if (!plan || this.creating) {
      section.append(this.createForm());
      return section;
    }
    section.append(h("p", { class: "plan-state", dataset: { state: plan.state } }, t("mod_plan_state", { name: plan.name, state: t(`plan_state_${plan.state}`) })));
    if (plan.state === "draft") {
      section.append(
        this.assignTable(false),
        h("div", { class: "row" }, h("button", { type: "button", id: "mod-save-assignments", onclick: () => this.saveAssignments() }, t("mod_save_assignments"))),
        h(
          "div",
          { class: "row" },
          h("label", { for: "mod-duration" }, t("mod_duration")),
          h("input", { id: "mod-duration", type: "number", min: "1", max: "1440", step: "1", value: "15", inputmode: "numeric" }),
          h("button", { type: "button", class: "primary", id: "mod-open", onclick: () => this.openPlan() }, t("mod_open")),
        ),
        h("div", { class: "row" }, h("button", { type: "button", class: "ghost", onclick: () => this.deletePlan() }, t("mod_new_plan"))),
      );
    } else {
      if (plan.state === "open") {
        section.append(
          h(
            "div",
            { class: "row" },
            h("label", { for: "mod-extend" }, t("mod_extend_by")),
            h("input", { id: "mod-extend", type: "number", min: "1", max: "600", step: "1", value: "5", inputmode: "numeric" }),
            h("button", { type: "button", id: "mod-extend-button", onclick: () => this.extendPlan() }, t("mod_extend")),
          ),
          h(
            "div",
            { class: "row" },
            h("label", { for: "mod-countdown" }, t("mod_countdown")),
            h("input", { id: "mod-countdown", type: "number", min: "0", max: "3600", step: "1", value: String(plan.countdown_s ?? 60), inputmode: "numeric" }),
            h("button", { type: "button", class: "danger", id: "mod-close", onclick: () => this.closePlan() }, t("mod_close")),
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
          h("label", { for: "mod-broadcast" }, t("mod_broadcast_label")),
          h("textarea", { id: "mod-broadcast", rows: "1", maxlength: "2000" }),
          h("button", { type: "submit" }, t("mod_broadcast")),
        ),
      );
    }
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
      h("label", { for: "mod-plan-name" }, t("mod_plan_name")),
      h("input", { id: "mod-plan-name", name: "name", type: "text", maxlength: "200", value: t("mod_plan_name_default") }),
      h("label", { for: "mod-room-count" }, t("mod_room_count")),
      h("input", { id: "mod-room-count", name: "rooms", type: "number", min: "1", max: "100", value: "2", inputmode: "numeric" }),
      h("label", { for: "mod-strategy" }, t("mod_strategy")),
      h("select", { id: "mod-strategy", name: "strategy" }, STRATEGIES.map((s) => h("option", { value: s }, t(`strategy_${s}`)))),
      h("button", { type: "submit", class: "primary", id: "mod-create" }, t("mod_create")),
    );
  }

  /** While breakouts run: move people between rooms one by one. */
  movesView() {
    if (!this.running()) return null;
    return h("section", { class: "mod-section", "aria-labelledby": "mod-moves-h" }, h("h3", { id: "mod-moves-h" }, t("mod_moves_heading")), this.assignTable(true));
  }

  /** One row per person with a room picker: saved together while a draft, moved one by one while open. */
  assignTable(live) {
    const plan = this.plan;
    const selfId = this.getSelf().id;
    const people = this.people.filter((p) => p.id !== selfId && p.role !== "observer");
    const rows = people.map((person) => {
      const current = plan.assignments[person.id] || "";
      const label = t("mod_assign_for", { name: person.display_name });
      const select = h(
        "select",
        { "aria-label": label, dataset: live ? { move: person.id } : { assign: person.id } },
        h("option", { value: "" }, live ? t("mod_plenary") : t("mod_unassigned")),
        plan.rooms.map((room) => h("option", { value: room.id, selected: room.id === current }, room.name)),
      );
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, countryBadge(person.country, countryName(person.country)), " ", person.display_name),
        h("td", {}, select),
        live ? h("td", {}, h("button", { type: "button", class: "small", "aria-label": `${t("mod_move")} ${person.display_name}`, onclick: () => this.move(person, select) }, t("mod_move"))) : null,
      );
    });
    return h(
      "table",
      { class: "assign-table" },
      h("caption", {}, t("mod_assign_heading")),
      h("tbody", {}, rows),
    );
  }

  roomsView(self) {
    const here = this.getRoom();
    const roster = this.getRoster();
    const byRoom = new Map(this.rooms.map((r) => [r.id, []]));
    for (const person of this.people) {
      const roomId = person.id === self.id ? here.id : this.roomOf(person);
      if (!byRoom.has(roomId)) byRoom.set(roomId, []);
      byRoom.get(roomId).push(person);
    }
    const planRooms = new Set(this.running() ? this.plan.rooms.map((r) => r.id) : []);
    const rooms = [...this.rooms].sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === "plenary" ? -1 : 1));
    return h(
      "section",
      { class: "mod-section", "aria-labelledby": "mod-rooms-h" },
      h("h3", { id: "mod-rooms-h" }, t("mod_rooms"), " ", h("button", { type: "button", class: "small ghost", onclick: () => this.refresh() }, t("mod_refresh"))),
      h(
        "ul",
        { class: "mod-rooms" },
        rooms
          .filter((room) => room.kind === "plenary" || planRooms.has(room.id) || (byRoom.get(room.id) || []).length)
          .map((room) => {
            const people = (byRoom.get(room.id) || []).sort((a, b) => a.display_name.localeCompare(b.display_name));
            const isHere = room.id === here.id;
            const canVisit = !isHere && (planRooms.has(room.id) || (room.kind === "plenary" && this.running()));
            return h(
              "li",
              { class: isHere ? "mod-room here" : "mod-room", dataset: { roomId: room.id } },
              h(
                "div",
                { class: "mod-room-head" },
                h("strong", {}, room.kind === "plenary" ? t("room_plenary") : room.name),
                isHere ? h("span", { class: "hint" }, ` · ${t("mod_room_here")}`) : null,
                canVisit ? h("button", { type: "button", class: "small", onclick: () => this.chooseRoom(room.id) }, t("mod_visit")) : null,
              ),
              people.length
                ? h("ul", { class: "mod-people" }, people.map((p) => this.personRow(p, self, roster)))
                : h("p", { class: "hint" }, t("mod_nobody")),
            );
          }),
      ),
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

  personRow(person, self, roster) {
    const presence = this.present && this.present.get(person.id);
    const live = person.id === self.id || roster.has(person.id) || Boolean(presence && presence.connected);
    const isSelf = person.id === self.id;
    const confirming = this.confirmRemove === person.id;
    return h(
      "li",
      { class: live ? "mod-person live" : "mod-person", dataset: { participantId: person.id } },
      countryBadge(person.country, countryName(person.country)),
      h("span", { class: "person-name" }, person.display_name, isSelf ? ` (${t("you")})` : ""),
      h("span", { class: "hint" }, roleName(person.role)),
      isSelf
        ? h("span", { class: "person-actions" }, this.spotlightButton(person, self, roster))
        : h(
            "span",
            { class: "person-actions" },
            this.spotlightButton(person, self, roster),
            this.floorButton(person, roster),
            h("button", { type: "button", class: "small", "aria-label": t("mod_mute_label", { name: person.display_name }), onclick: () => this.mute(person) }, t("mod_mute")),
            h(
              "button",
              {
                type: "button",
                class: confirming ? "small danger" : "small",
                "aria-label": confirming ? t("mod_remove_confirm") : t("mod_remove_label", { name: person.display_name }),
                onclick: () => {
                  if (confirming) this.remove(person);
                  else {
                    this.confirmRemove = person.id;
                    this.render();
                  }
                },
              },
              confirming ? t("mod_remove_confirm") : t("mod_remove"),
            ),
          ),
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
                { class: "help-item", dataset: { recordingId: r.id } },
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
