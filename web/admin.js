// The organiser page (/admin): sign in with the admin token (kept in sessionStorage, so it is gone when
// the tab closes), create, edit and delete workshops, import a roster, copy invite links, and watch a workshop
// live without joining a room: who is where (presence), who waits in the lobby, who is banned (docs/console.md), and
// every recording of the workshop (web/recordings.js, docs/recordings.md).
//
// The live cards poll every LIVE_POLL_MS (the presence list is in the server's memory: cheap); the lobby and bans
// cards stay hidden on a server without those routes.

import { Api, ApiError } from "./api.js";
import { agendaCard, zoneCell } from "./agenda.js";
import { attendanceCard } from "./attendance.js";
import { auditCard } from "./audit.js";
import { invitationsCard } from "./invitations.js";
import { recordingsCard } from "./recordings.js";
import { $, clear, countryBadge, h, toast } from "./dom.js";
import { languageName } from "./interpretation.js";
import { applyStrings, countryName, currentLocale, formatDateTime, formatDuration, mountLanguageSwitches, onLanguageChange, roleName, t } from "./strings.js";
import { browserZone, formatDual, inputValueIn, isZone, zonedFieldLabel, zonedToUtc } from "./times.js";

const TOKEN_KEY = "roundtable.admin_token";
const ROLES = ["participant", "moderator", "organiser", "observer"];
const STATUSES = ["scheduled", "live", "ended", "cancelled"];
const LOBBY_MODES = ["off", "everyone", "unverified"];
const LIVE_POLL_MS = 5000;

let api = null;
let live = null; // the polling of the workshop shown: {id, timer}

async function main() {
  applyStrings();
  mountLanguageSwitches();
  onLanguageChange(() => {
    document.title = t("admin_title");
    route(); // redraw the current view in the new language
  });
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await signIn($("#admin-token").value.trim());
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    api = null;
    location.hash = "";
    showSignIn();
  });
  window.addEventListener("hashchange", route);
  // How long each knock and help request has waited, every second, without a re-render.
  setInterval(() => {
    for (const el of document.querySelectorAll("[data-since]")) el.textContent = formatDuration((Date.now() - Date.parse(el.dataset.since)) / 1000);
  }, 1000);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) await signIn(saved, { quiet: true });
  else showSignIn();
}

function showSignIn(error) {
  $("#sign-in").hidden = false;
  $("#sign-out").hidden = true;
  clear($("#view"));
  const el = $("#sign-in-error");
  el.hidden = !error;
  el.textContent = error || "";
  $("#admin-token").focus();
}

async function signIn(token, { quiet = false } = {}) {
  if (!token) return;
  const candidate = new Api(token);
  try {
    await candidate.get("/workshops?limit=1");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(quiet ? null : err instanceof ApiError && err.status === 401 ? t("admin_bad_token") : err.message);
    return;
  }
  api = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#admin-token").value = "";
  $("#sign-in").hidden = true;
  $("#sign-out").hidden = false;
  await route();
}

async function route() {
  if (!api) return;
  stopLive();
  const match = location.hash.match(/^#workshop\/([0-9a-f-]{36})$/);
  if (match) await showWorkshop(match[1]);
  else await showWorkshops();
}

function failure(err) {
  toast(err.message, { kind: "error" });
}

// Workshops ---------------------------------------------------------------------------------------

async function showWorkshops() {
  let workshops = [];
  try {
    workshops = await api.all("/workshops");
  } catch (err) {
    return failure(err);
  }
  document.title = t("admin_title");
  const view = clear($("#view"));
  view.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "ws-h" },
      h("h2", { id: "ws-h" }, t("admin_workshops")),
      workshops.length
        ? h(
            "ul",
            { class: "workshop-list" },
            workshops.map((w) =>
              h(
                "li",
                {},
                h("span", {}, h("strong", {}, w.title), " ", h("span", { class: "hint" }, formatDual(w.starts_at, w.timezone, { end: w.ends_at }))),
                h("a", { href: `#workshop/${w.id}` }, t("admin_open")),
              ),
            ),
          )
        : h("p", { class: "hint" }, t("admin_no_workshops")),
    ),
    newWorkshopForm(),
  );
}

// The zone of the workshop shown: every time of its page is given in the viewer's zone and in this one.
let shownZone = null;

function formatWhen(iso) {
  return shownZone ? formatDual(iso, shownZone) : formatDateTime(iso, { dateStyle: "medium", timeStyle: "short" });
}

function field(id, labelKey, control, { wide = false } = {}) {
  control.id = id;
  return h("div", { class: wide ? "field wide" : "field" }, h("label", { for: id }, t(labelKey)), control);
}

/** The start and end fields of a workshop form: wall times in the zone typed in the form, labelled with it. */
function zonedTimes(form, prefix) {
  const zoneInput = form.querySelector(`#${prefix}-timezone`);
  const relabel = () => {
    const zone = isZone(zoneInput.value.trim()) ? zoneInput.value.trim() : "UTC";
    for (const [name, key] of [["starts", "admin_starts"], ["ends", "admin_ends"]]) {
      const label = form.querySelector(`label[for="${prefix}-${name}"]`);
      if (label) label.textContent = zonedFieldLabel(key, zone);
    }
  };
  zoneInput.addEventListener("input", relabel);
  relabel();
}

/** The form's wall times as UTC instants, read in the form's zone (refused when the zone is unknown). */
function zonedBody(data) {
  const zone = String(data.get("timezone")).trim();
  if (!isZone(zone)) throw new RangeError(t("time_unknown_zone", { zone }));
  return { timezone: zone, starts_at: zonedToUtc(String(data.get("starts_at")), zone), ends_at: zonedToUtc(String(data.get("ends_at")), zone) };
}

function newWorkshopForm() {
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setMinutes(0, 0, 0);
  const end = new Date(start.getTime() + 8 * 3600 * 1000);
  const zone = browserZone();
  const form = h(
    "form",
    { class: "form-grid", onsubmit: (e) => createWorkshop(e) },
    field("ws-title", "admin_title_label", h("input", { name: "title", required: true, maxlength: "200" }), { wide: true }),
    field("ws-description", "admin_description", h("textarea", { name: "description", rows: "2", maxlength: "5000" }), { wide: true }),
    field("ws-timezone", "admin_timezone", h("input", { name: "timezone", value: zone, required: true })),
    field("ws-starts", "admin_starts", h("input", { name: "starts_at", type: "datetime-local", value: inputValueIn(start.toISOString(), zone), required: true })),
    field("ws-ends", "admin_ends", h("input", { name: "ends_at", type: "datetime-local", value: inputValueIn(end.toISOString(), zone), required: true })),
    field(
      "ws-consent",
      "admin_consent",
      h("select", { name: "recording_consent" }, h("option", { value: "explicit" }, t("consent_explicit")), h("option", { value: "assumed" }, t("consent_assumed"))),
    ),
    field("ws-languages", "admin_languages", h("input", { name: "languages", placeholder: "en, ru", spellcheck: "false", autocomplete: "off", title: t("admin_languages_hint") })),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary", id: "ws-create" }, t("admin_create"))),
  );
  zonedTimes(form, "ws");
  return h("section", { class: "card", "aria-labelledby": "new-ws-h" }, h("h2", { id: "new-ws-h" }, t("admin_new_workshop")), form);
}

async function createWorkshop(e) {
  e.preventDefault();
  const data = new FormData(e.target);
  try {
    const body = {
      title: String(data.get("title")).trim(),
      description: String(data.get("description") || ""),
      ...zonedBody(data),
      recording_consent: String(data.get("recording_consent")),
    };
    const languages = parseLanguages(data.get("languages"));
    if (languages.length) body.languages = languages;
    const workshop = await api.post("/workshops", body);
    toast(t("admin_created"));
    location.hash = `#workshop/${workshop.id}`;
  } catch (err) {
    failure(err);
  }
}

// One workshop ------------------------------------------------------------------------------------

async function showWorkshop(id) {
  let workshop;
  let people;
  let rooms;
  try {
    [workshop, people, rooms] = await Promise.all([
      api.get(`/workshops/${id}`),
      api.all(`/workshops/${id}/participants`),
      api.all(`/workshops/${id}/rooms`),
    ]);
  } catch (err) {
    return failure(err);
  }
  document.title = `${workshop.title} · ${t("admin_title")}`;
  shownZone = workshop.timezone;
  const view = clear($("#view"));
  view.append(
    h("p", {}, h("a", { href: "#" }, `← ${t("admin_back")}`)),
    workshopCard(workshop),
    h("div", { id: "live-cards", class: "live-cards" }),
    participantsCard(workshop, people),
    importCard(workshop),
    addCard(workshop),
    invitationsCard(api, workshop),
    agendaCard(api, workshop),
    roomsCard(rooms),
    recordingsCard(api, workshop, people, { formatWhen }),
    attendanceCard(api, workshop),
    auditCard(api, workshop),
  );
  startLive(workshop, people, rooms);
}

// The workshop itself: its details, editing, deleting ---------------------------------------------------------

function workshopCard(workshop) {
  const card = h("section", { class: "card", id: "workshop-card", "aria-labelledby": "w-h" });
  const show = (mode) => {
    clear(
      card,
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "w-h" }, workshop.title),
        mode === "view"
          ? h(
              "span",
              { class: "card-actions" },
              h("button", { type: "button", id: "ws-edit", onclick: () => show("edit") }, t("admin_edit")),
              h("button", { type: "button", class: "danger", id: "ws-delete", onclick: () => show("delete") }, t("admin_delete")),
            )
          : null,
      ),
      h(
        "p",
        { class: "hint" },
        h("span", { class: "workshop-when" }, formatDual(workshop.starts_at, workshop.timezone, { end: workshop.ends_at })),
        ` · ${workshop.timezone} · ${t(`status_${workshop.status}`)} · ${t(`consent_${workshop.recording_consent}`)}`,
        ` · ${t("admin_lobby_mode")}: ${t(`lobby_${workshop.lobby}`)}`,
        ` · ${t("admin_languages")}: `,
        h("span", { class: "workshop-languages" }, languagesText(workshop.languages)),
      ),
      workshop.description ? h("p", { class: "description" }, workshop.description) : null,
      mode === "edit" ? editForm(workshop, () => show("view")) : null,
      mode === "delete"
        ? h(
            "div",
            { class: "confirm-box", role: "alertdialog", "aria-labelledby": "ws-delete-q" },
            h("p", { id: "ws-delete-q" }, t("admin_delete_question", { title: workshop.title })),
            h(
              "div",
              { class: "row" },
              h("button", { type: "button", class: "danger", id: "ws-delete-confirm", onclick: () => deleteWorkshop(workshop) }, t("admin_delete_confirm")),
              h("button", { type: "button", class: "ghost", onclick: () => show("view") }, t("mod_cancel")),
            ),
          )
        : null,
    );
    const first = card.querySelector("form input, #ws-delete-confirm");
    if (first && mode !== "view") first.focus();
  };
  show("view");
  return card;
}

function editForm(workshop, done) {
  const choice = (name, values, current, label) =>
    h("select", { name }, values.map((v) => h("option", { value: v, selected: v === current }, label(v))));
  const form = h(
    "form",
    {
      class: "form-grid",
      id: "ws-edit-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const data = new FormData(e.target);
        let times;
        try {
          times = zonedBody(data);
        } catch (err) {
          return toast(err.message, { kind: "error" });
        }
        const next = {
          title: String(data.get("title")).trim(),
          description: String(data.get("description") || ""),
          ...times,
          status: String(data.get("status")),
          recording_consent: String(data.get("recording_consent")),
          lobby: String(data.get("lobby")),
          languages: parseLanguages(data.get("languages")),
        };
        // Only what changed: a PATCH of the same instant written differently is no change.
        const changes = {};
        for (const [key, value] of Object.entries(next)) {
          const before = workshop[key];
          const same = key.endsWith("_at")
            ? Date.parse(before) === Date.parse(value)
            : key === "languages"
              ? JSON.stringify(before || []) === JSON.stringify(value)
              : before === value;
          if (!same) changes[key] = value;
        }
        if (!Object.keys(changes).length) return done();
        try {
          await api.request("PATCH", `/workshops/${workshop.id}`, { json: changes });
          toast(t("admin_saved"));
          await showWorkshop(workshop.id);
        } catch (err) {
          failure(err);
        }
      },
    },
    field("we-title", "admin_title_label", h("input", { name: "title", required: true, maxlength: "200", value: workshop.title }), { wide: true }),
    field("we-description", "admin_description", h("textarea", { name: "description", rows: "3", maxlength: "5000" }, workshop.description || ""), { wide: true }),
    field("we-timezone", "admin_timezone", h("input", { name: "timezone", value: workshop.timezone, required: true })),
    field("we-starts", "admin_starts", h("input", { name: "starts_at", type: "datetime-local", value: inputValueIn(workshop.starts_at, workshop.timezone), required: true })),
    field("we-ends", "admin_ends", h("input", { name: "ends_at", type: "datetime-local", value: inputValueIn(workshop.ends_at, workshop.timezone), required: true })),
    field("we-status", "admin_status", choice("status", STATUSES, workshop.status, (v) => t(`status_${v}`))),
    field("we-consent", "admin_consent", choice("recording_consent", ["explicit", "assumed"], workshop.recording_consent, (v) => t(`consent_${v}`))),
    field("we-lobby", "admin_lobby_mode", choice("lobby", LOBBY_MODES, workshop.lobby, (v) => t(`lobby_${v}`))),
    field("we-languages", "admin_languages", h("input", { name: "languages", value: (workshop.languages || []).join(", "), placeholder: "en, ru", spellcheck: "false", autocomplete: "off", "aria-describedby": "we-languages-hint" })),
    h("p", { class: "hint field wide", id: "we-languages-hint" }, t("admin_languages_hint")),
    h(
      "div",
      { class: "field row" },
      h("button", { type: "submit", class: "primary", id: "ws-save" }, t("admin_save")),
      h("button", { type: "button", class: "ghost", onclick: () => done() }, t("mod_cancel")),
    ),
  );
  zonedTimes(form, "we");
  return form;
}

async function deleteWorkshop(workshop) {
  try {
    await api.request("DELETE", `/workshops/${workshop.id}`);
    toast(t("admin_deleted", { title: workshop.title }));
    location.hash = ""; // back to the list (hashchange)
  } catch (err) {
    failure(err);
  }
}

// The live picture: presence, the lobby, bans -------------------------------------------------------------

const naturally = () => new Intl.Collator(currentLocale(), { numeric: true, sensitivity: "base" }).compare;

function stopLive() {
  if (live) clearInterval(live.timer);
  live = null;
}

function startLive(workshop, people, rooms) {
  stopLive();
  live = { id: workshop.id, workshop, people, rooms, timer: null };
  const state = live;
  const poll = async () => {
    if (live !== state) return;
    await refreshLive(state);
  };
  state.timer = setInterval(() => {
    if (!document.hidden) poll();
  }, LIVE_POLL_MS);
  poll();
}

async function refreshLive(state) {
  let presence;
  let knocks;
  let bans;
  let people;
  try {
    [presence, knocks, bans, people] = await Promise.all([
      api.get(`/workshops/${state.id}/presence`),
      api.get(`/workshops/${state.id}/lobby`).then((lobby) => lobby.knocks),
      api.all(`/workshops/${state.id}/bans`),
      api.all(`/workshops/${state.id}/participants`),
    ]);
  } catch (err) {
    if (live === state) renderLiveError(err);
    return;
  }
  if (live !== state) return;
  state.people = people;
  const holder = $("#live-cards");
  if (!holder) return;
  // Keep what the organiser is typing (a deny message) and where the focus is.
  const typing = holder.contains(document.activeElement) && document.activeElement.matches("input, textarea");
  if (typing) return;
  clear(holder, presenceCard(state, presence), lobbyCard(state, knocks), bansCard(state, bans));
}

function renderLiveError(err) {
  const holder = $("#live-cards");
  if (holder) clear(holder, h("section", { class: "card" }, h("p", { class: "error", role: "alert" }, t("admin_live_error", { message: err.message }))));
}

function presenceCard(state, presence) {
  const compare = naturally();
  const byId = new Map(state.people.map((p) => [p.id, p]));
  const here = new Set();
  const members = new Map(); // room id -> members there now
  for (const room of presence.rooms) {
    members.set(room.room_id, room);
    for (const m of room.members) here.add(m.id);
  }
  // Every room with someone in it, and the plenary and the running breakout rooms even when empty.
  const breakoutIds = new Set(presence.breakout ? presence.breakout.rooms.map((r) => r.id) : []);
  const known = state.rooms.filter((r) => r.kind === "plenary" || breakoutIds.has(r.id) || members.has(r.id));
  const rooms = known.map((r) => ({ room_id: r.id, name: r.name, kind: r.kind, members: [], recording_id: null, ...(members.get(r.id) || {}) }));
  for (const room of presence.rooms) if (!known.some((r) => r.id === room.room_id)) rooms.push(room);
  rooms.sort((a, b) => (a.kind === b.kind ? compare(a.name, b.name) : a.kind === "plenary" ? -1 : 1));
  const counts = new Map();
  for (const p of state.people) {
    if (p.role === "observer") continue;
    const c = counts.get(p.country) || { present: 0, invited: 0 };
    c.invited += 1;
    if (here.has(p.id)) c.present += 1;
    counts.set(p.country, c);
  }
  const absent = state.people.filter((p) => !here.has(p.id)).sort((a, b) => compare(a.display_name, b.display_name));
  const breakout = presence.breakout;
  return h(
    "section",
    { class: "card", id: "live", "aria-labelledby": "live-h" },
    h("div", { class: "card-head" }, h("h2", { id: "live-h" }, t("admin_live")), h("span", { class: "hint" }, t("admin_live_hint", { s: LIVE_POLL_MS / 1000 }))),
    h("p", { id: "live-count" }, t("admin_present_count", { present: here.size, invited: state.people.length })),
    breakout ? h("p", { class: "plan-state", dataset: { state: breakout.state } }, t("mod_plan_state", { name: breakout.name, state: t(`plan_state_${breakout.state}`) }), breakout.remaining_s != null ? ` · ${t("admin_remaining", { time: formatDuration(breakout.remaining_s) })}` : "") : null,
    counts.size
      ? h(
          "ul",
          { class: "country-counts", "aria-label": t("mod_by_country") },
          [...counts].sort((a, b) => compare(a[0], b[0])).map(([code, c]) =>
            h("li", {}, h("span", { class: "chip", dataset: { country: code }, title: t("mod_country_count_label", { country: countryName(code), present: c.present, invited: c.invited }) }, countryBadge(code, countryName(code)), " ", h("span", { class: "chip-count" }, `${c.present} / ${c.invited}`))),
          ),
        )
      : null,
    presence.help_requests && presence.help_requests.length
      ? h(
          "div",
          { class: "live-help" },
          h("h3", {}, t("admin_help_waiting")),
          h(
            "ul",
            { class: "queue-list" },
            presence.help_requests.map((r) =>
              h(
                "li",
                { class: "queue-item help-item" },
                h(
                  "span",
                  { class: "queue-main" },
                  h("span", { class: "tag help" }, t("mod_help_tag")),
                  h("span", {}, t("mod_help_item", { name: r.display_name, room: r.room_name }), r.text ? `: ${r.text}` : ""),
                  h("span", { class: "hint" }, t("mod_waiting"), " ", h("span", { dataset: { since: r.at } }, formatDuration((Date.now() - Date.parse(r.at)) / 1000))),
                ),
              ),
            ),
          ),
        )
      : null,
    rooms.length
      ? h(
          "ul",
          { class: "live-rooms", id: "live-rooms" },
          rooms.map((room) =>
            h(
              "li",
              { class: "mod-room", dataset: { roomId: room.room_id } },
              h("div", { class: "mod-room-head" }, h("strong", {}, room.kind === "plenary" ? t("room_plenary") : room.name), h("span", { class: "hint" }, ` · ${room.members.length}`), room.recording_id ? h("span", { class: "tag warn" }, t("admin_recording")) : null),
              room.members.length === 0 ? h("p", { class: "hint" }, t("mod_room_empty")) : null,
              h(
                "ul",
                { class: "mod-people" },
                [...room.members].sort((a, b) => compare(a.display_name, b.display_name)).map((m) => {
                  const person = byId.get(m.id);
                  return h(
                    "li",
                    { class: m.connected ? "mod-person live" : "mod-person reconnecting", dataset: { participantId: m.id } },
                    countryBadge(m.country, countryName(m.country)),
                    h("span", { class: "person-name" }, m.display_name),
                    m.state && m.state.hand ? h("span", { class: "hand", title: t("mod_hand_up") }, "✋") : null,
                    h("span", { class: "hint" }, [roleName(m.role), person ? person.organisation : "", m.connected ? "" : t("mod_reconnecting")].filter(Boolean).join(" · ")),
                  );
                }),
              ),
            ),
          ),
        )
      : h("p", { class: "hint" }, t("admin_nobody_live")),
    absent.length
      ? h(
          "details",
          { class: "mod-absent", id: "live-absent" },
          h("summary", {}, t("mod_absent", { n: absent.length })),
          h("ul", { class: "mod-people" }, absent.map((p) => h("li", { class: "mod-person", dataset: { participantId: p.id } }, countryBadge(p.country, countryName(p.country)), h("span", { class: "person-name" }, p.display_name), h("span", { class: "hint" }, [roleName(p.role), p.organisation].filter(Boolean).join(" · "))))),
        )
      : null,
  );
}

async function lobbyCall(state, job) {
  try {
    await job();
    toast(t("mod_done"));
  } catch (err) {
    failure(err);
  }
  await refreshLive(state);
}

function lobbyCard(state, knocks) {
  const base = `/workshops/${state.id}/lobby`;
  const sorted = [...knocks].sort((a, b) => String(a.knocked_at).localeCompare(String(b.knocked_at)));
  const countries = [...new Set(sorted.map((k) => k.country))].sort(naturally());
  return h(
    "section",
    { class: "card", id: "lobby", "aria-labelledby": "lobby-h" },
    h("h2", { id: "lobby-h" }, t("admin_lobby"), " ", sorted.length ? h("span", { class: "count unread" }, String(sorted.length)) : null),
    sorted.length
      ? [
          h(
            "div",
            { class: "row" },
            h("button", { type: "button", class: "primary small", onclick: () => lobbyCall(state, () => api.post(`${base}/admit`, { all: true })) }, t("mod_admit_all", { n: sorted.length })),
            countries.map((c) => h("button", { type: "button", class: "small", "aria-label": t("mod_admit_country_label", { country: countryName(c) }), onclick: () => lobbyCall(state, () => api.post(`${base}/admit`, { country: c })) }, t("mod_admit_country", { country: c }))),
          ),
          h(
            "ul",
            { class: "queue-list" },
            sorted.map((k) => {
              const message = h("input", { type: "text", maxlength: "500", placeholder: t("mod_deny_message"), "aria-label": t("mod_deny_message_label", { name: k.display_name }) });
              return h(
                "li",
                { class: "queue-item knock", dataset: { knockId: k.id } },
                h(
                  "div",
                  { class: "queue-main" },
                  countryBadge(k.country, countryName(k.country)),
                  h("span", { class: "person-name" }, k.display_name),
                  k.organisation ? h("span", { class: "hint" }, k.organisation) : null,
                  k.reason ? h("span", { class: "tag" }, t(`mod_knock_reason_${k.reason}`)) : null,
                  k.link_used_elsewhere ? h("span", { class: "tag warn", title: t("mod_link_elsewhere_hint") }, t("mod_link_elsewhere")) : null,
                  h("span", { class: "hint" }, t("mod_waiting"), " ", h("span", { dataset: { since: k.knocked_at } }, formatDuration((Date.now() - Date.parse(k.knocked_at)) / 1000))),
                ),
                h(
                  "div",
                  { class: "row" },
                  h("button", { type: "button", class: "small primary", "aria-label": t("mod_admit_label", { name: k.display_name }), onclick: () => lobbyCall(state, () => api.post(`${base}/admit`, { knock_ids: [k.id] })) }, t("mod_admit")),
                  message,
                  h(
                    "button",
                    {
                      type: "button",
                      class: "small danger",
                      "aria-label": t("mod_deny_label", { name: k.display_name }),
                      onclick: () => {
                        const text = message.value.trim();
                        lobbyCall(state, () => api.post(`${base}/${k.id}/deny`, text ? { message: text } : {}));
                      },
                    },
                    t("mod_deny"),
                  ),
                ),
              );
            }),
          ),
        ]
      : h("p", { class: "hint" }, t("admin_lobby_empty")),
  );
}

function bansCard(state, bans) {
  const byId = new Map(state.people.map((p) => [p.id, p]));
  return h(
    "section",
    { class: "card", id: "bans", "aria-labelledby": "bans-h" },
    h("h2", { id: "bans-h" }, t("admin_bans")),
    bans.length
      ? h(
          "ul",
          { class: "queue-list" },
          bans.map((b) => {
            const pid = b.participant_id || b.id;
            const person = byId.get(pid) || b;
            const by = b.banned_by && typeof b.banned_by === "object" ? b.banned_by.display_name : b.banned_by;
            return h(
              "li",
              { class: "queue-item", dataset: { participantId: pid } },
              h(
                "div",
                { class: "queue-main" },
                person.country ? countryBadge(person.country, countryName(person.country)) : null,
                h("span", { class: "person-name" }, person.display_name || b.display_name || pid),
                h("span", { class: "hint" }, [b.banned_at ? t("admin_banned_at", { when: formatWhen(b.banned_at) }) : "", by ? t("admin_banned_by", { by: byId.get(by)?.display_name || by }) : "", b.ban_reason ? t("admin_ban_reason", { reason: b.ban_reason }) : ""].filter(Boolean).join(" · ")),
              ),
              h(
                "button",
                {
                  type: "button",
                  class: "small",
                  "aria-label": t("admin_unban_label", { name: person.display_name || pid }),
                  onclick: () => lobbyCall(state, () => api.post(`/workshops/${state.id}/participants/${pid}/unban`)),
                },
                t("admin_unban"),
              ),
            );
          }),
        )
      : h("p", { class: "hint" }, t("admin_no_bans")),
  );
}

function participantsCard(workshop, people) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "p-h" },
    h("h2", { id: "p-h" }, `${t("admin_participants")} (${people.length})`),
    people.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "data-table", id: "participants" },
            h(
              "thead",
              {},
              h("tr", {}, [t("admin_name"), t("admin_country_short"), t("admin_organisation"), t("admin_role"), t("admin_email"), t("time_zone_column"), t("admin_interpreter"), t("admin_invite")].map((x) => h("th", { scope: "col" }, x))),
            ),
            h("tbody", {}, people.map((p) => participantRow(p, workshop))),
          ),
        )
      : h("p", { class: "hint" }, t("admin_no_participants")),
  );
}

function participantRow(p, workshop) {
  const link = h("input", { type: "text", readonly: true, value: p.join_url || "", "aria-label": `${t("admin_invite")}: ${p.display_name}`, class: "invite-url" });
  const copy = h(
    "button",
    { type: "button", class: "small", "aria-label": t("admin_copy_label", { name: p.display_name }), onclick: () => copyLink(link, p.display_name) },
    t("admin_copy"),
  );
  return h(
    "tr",
    { dataset: { participantId: p.id } },
    h("td", {}, p.display_name),
    h("td", {}, countryBadge(p.country, countryName(p.country))),
    h("td", {}, p.organisation),
    h("td", {}, roleName(p.role)),
    h("td", {}, p.email || ""),
    h("td", {}, zoneCell(api, p)),
    h("td", { class: "interpreter-cell" }, interpreterCell(p, workshop)),
    h("td", {}, h("div", { class: "invite" }, link, copy)),
  );
}

// Interpretation: the workshop's languages and the participants who interpret (docs/interpretation.md) ----------------

/** "en, ru" (or "en ru") -> ["en", "ru"]: lower-case codes, in order, each once. */
function parseLanguages(value) {
  const codes = String(value || "")
    .split(/[\s,;]+/)
    .map((code) => code.trim().toLowerCase())
    .filter(Boolean);
  return [...new Set(codes)];
}

function languagesText(codes) {
  return codes && codes.length ? codes.map((code) => `${languageName(code, currentLocale())} (${code})`).join(", ") : t("admin_languages_none");
}

function pairText(pair) {
  return pair.map((code) => languageName(code, currentLocale())).join(" ⇄ ");
}

/** A participant's interpreter pair: shown, set from the workshop's languages, cleared; at once, also live. */
function interpreterCell(p, workshop) {
  const languages = workshop.languages || [];
  const pair = p.interpreter ? p.interpreter.languages || [] : [];
  const cell = h("div", { class: "interpreter-pair", dataset: { interpreter: pair.join(",") } });
  const current = h("span", { class: "pair-current" }, pair.length ? pairText(pair) : "—");
  if (languages.length < 2) {
    return clear(cell, current, pair.length ? clearButton(p, workshop) : h("span", { class: "hint" }, ` ${t("admin_interpreter_no_languages")}`));
  }
  const pick = (key, value) =>
    h(
      "select",
      { class: "pair-select", "aria-label": t(key, { name: p.display_name }) },
      languages.map((code) => h("option", { value: code, selected: code === value }, languageName(code, currentLocale()))),
    );
  const first = pick("admin_interpreter_first", pair[0] || languages[0]);
  const second = pick("admin_interpreter_second", pair[1] || languages.find((code) => code !== (pair[0] || languages[0])));
  const set = h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": t("admin_interpreter_set_label", { name: p.display_name }),
      onclick: async () => {
        if (first.value === second.value) return toast(t("admin_interpreter_same"), { kind: "error" });
        await saveInterpreter(p, workshop, { languages: [first.value, second.value] });
      },
    },
    t("admin_interpreter_set"),
  );
  return clear(cell, current, h("span", { class: "row pair-edit" }, first, second, set, pair.length ? clearButton(p, workshop) : null));
}

function clearButton(p, workshop) {
  return h(
    "button",
    { type: "button", class: "small ghost", "aria-label": t("admin_interpreter_clear_label", { name: p.display_name }), onclick: () => saveInterpreter(p, workshop, null) },
    t("admin_interpreter_clear"),
  );
}

async function saveInterpreter(p, workshop, interpreter) {
  try {
    const updated = await api.request("PATCH", `/workshops/${workshop.id}/participants/${p.id}`, { json: { interpreter } });
    p.interpreter = updated && "interpreter" in updated ? updated.interpreter : interpreter;
    toast(interpreter ? t("admin_interpreter_saved", { name: p.display_name, pair: pairText(interpreter.languages) }) : t("admin_interpreter_cleared", { name: p.display_name }));
  } catch (err) {
    failure(err);
  }
  const row = document.querySelector(`#participants tr[data-participant-id="${p.id}"] .interpreter-cell`);
  if (row) clear(row, interpreterCell(p, workshop));
}

async function copyLink(input, name) {
  try {
    await navigator.clipboard.writeText(input.value);
    toast(t("admin_copied", { name }));
  } catch {
    input.focus();
    input.select();
    toast(t("admin_copy_failed"), { kind: "error" });
  }
}

function importCard(workshop) {
  const problems = h("ul", { class: "problems", role: "alert" });
  const file = h("input", { type: "file", accept: ".csv,text/csv" });
  const text = h("textarea", { rows: "5", spellcheck: "false", placeholder: "display_name,country,organisation,email,role" });
  const form = h(
    "form",
    {
      class: "form-grid",
      onsubmit: async (e) => {
        e.preventDefault();
        clear(problems);
        const csv = file.files.length ? await file.files[0].text() : text.value;
        if (!csv.trim()) return;
        try {
          const result = await api.request("POST", `/workshops/${workshop.id}/participants/import`, { text: csv, contentType: "text/csv" });
          toast(t("admin_imported", { n: result.imported }));
          await showWorkshop(workshop.id);
        } catch (err) {
          toast(t("admin_import_failed", { message: err.message }), { kind: "error" });
          for (const d of Array.isArray(err.details) ? err.details : []) {
            problems.append(h("li", {}, t("admin_line_error", { line: d.line ?? d.index ?? "?", field: d.field ?? "", message: d.message ?? JSON.stringify(d) })));
          }
        }
      },
    },
    field("csv-file", "admin_csv_file", file),
    field("csv-text", "admin_csv_text", text, { wide: true }),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary", id: "csv-import" }, t("admin_import_button"))),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "imp-h" },
    h("h2", { id: "imp-h" }, t("admin_import")),
    h("p", { class: "hint" }, t("admin_import_hint")),
    form,
    problems,
  );
}

function addCard(workshop) {
  const form = h(
    "form",
    {
      class: "form-grid",
      onsubmit: async (e) => {
        e.preventDefault();
        const data = new FormData(e.target);
        const body = {
          display_name: String(data.get("display_name")).trim(),
          country: String(data.get("country")).trim().toUpperCase(),
          organisation: String(data.get("organisation") || "").trim(),
          role: String(data.get("role")),
        };
        const email = String(data.get("email") || "").trim();
        if (email) body.email = email;
        try {
          await api.post(`/workshops/${workshop.id}/participants`, body);
          toast(t("admin_added", { name: body.display_name }));
          await showWorkshop(workshop.id);
        } catch (err) {
          failure(err);
        }
      },
    },
    field("p-name", "admin_name", h("input", { name: "display_name", required: true, maxlength: "100" })),
    field("p-country", "admin_country", h("input", { name: "country", required: true, minlength: "2", maxlength: "2", pattern: "[A-Za-z]{2}" })),
    field("p-org", "admin_organisation", h("input", { name: "organisation", maxlength: "200" })),
    field("p-email", "admin_email", h("input", { name: "email", type: "email" })),
    field("p-role", "admin_role", h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, roleName(r))))),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary" }, t("admin_add"))),
  );
  return h("section", { class: "card", "aria-labelledby": "add-h" }, h("h2", { id: "add-h" }, t("admin_add_participant")), form);
}

function roomsCard(rooms) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "r-h" },
    h("h2", { id: "r-h" }, t("admin_rooms")),
    h(
      "ul",
      { class: "workshop-list", id: "rooms" },
      rooms.map((r) =>
        h("li", {}, h("strong", {}, r.name), h("span", { class: "hint" }, `${t(`admin_room_kind_${r.kind}`)} · ${t("admin_capacity", { n: r.capacity })}`)),
      ),
    ),
  );
}

main().catch((err) => failure(err));
