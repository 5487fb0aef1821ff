// The organiser page (/admin): sign in with the admin token (kept in sessionStorage, so it is gone when
// the tab closes), create workshops, import a roster, copy invite links, see rooms.

import { Api, ApiError } from "./api.js";
import { attendanceCard } from "./attendance.js";
import { $, clear, countryBadge, h, toast } from "./dom.js";
import { applyStrings, countryName, formatDateTime, mountLanguageSwitches, onLanguageChange, roleName, t } from "./strings.js";

const TOKEN_KEY = "roundtable.admin_token";
const ROLES = ["participant", "moderator", "organiser", "observer"];

let api = null;

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
                h("span", {}, h("strong", {}, w.title), " ", h("span", { class: "hint" }, `${formatWhen(w.starts_at)} – ${formatWhen(w.ends_at)} · ${w.timezone}`)),
                h("a", { href: `#workshop/${w.id}` }, t("admin_open")),
              ),
            ),
          )
        : h("p", { class: "hint" }, t("admin_no_workshops")),
    ),
    newWorkshopForm(),
  );
}

function formatWhen(iso) {
  return formatDateTime(iso, { dateStyle: "medium", timeStyle: "short" });
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function field(id, labelKey, control, { wide = false } = {}) {
  control.id = id;
  return h("div", { class: wide ? "field wide" : "field" }, h("label", { for: id }, t(labelKey)), control);
}

function newWorkshopForm() {
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setMinutes(0, 0, 0);
  const end = new Date(start.getTime() + 8 * 3600 * 1000);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const form = h(
    "form",
    { class: "form-grid", onsubmit: (e) => createWorkshop(e) },
    field("ws-title", "admin_title_label", h("input", { name: "title", required: true, maxlength: "200" }), { wide: true }),
    field("ws-description", "admin_description", h("textarea", { name: "description", rows: "2", maxlength: "5000" }), { wide: true }),
    field("ws-timezone", "admin_timezone", h("input", { name: "timezone", value: zone, required: true })),
    field("ws-starts", "admin_starts", h("input", { name: "starts_at", type: "datetime-local", value: localInput(start), required: true })),
    field("ws-ends", "admin_ends", h("input", { name: "ends_at", type: "datetime-local", value: localInput(end), required: true })),
    field(
      "ws-consent",
      "admin_consent",
      h("select", { name: "recording_consent" }, h("option", { value: "explicit" }, t("consent_explicit")), h("option", { value: "assumed" }, t("consent_assumed"))),
    ),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary", id: "ws-create" }, t("admin_create"))),
  );
  return h("section", { class: "card", "aria-labelledby": "new-ws-h" }, h("h2", { id: "new-ws-h" }, t("admin_new_workshop")), form);
}

async function createWorkshop(e) {
  e.preventDefault();
  const data = new FormData(e.target);
  const body = {
    title: String(data.get("title")).trim(),
    description: String(data.get("description") || ""),
    timezone: String(data.get("timezone")).trim(),
    starts_at: new Date(String(data.get("starts_at"))).toISOString(),
    ends_at: new Date(String(data.get("ends_at"))).toISOString(),
    recording_consent: String(data.get("recording_consent")),
  };
  try {
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
  const view = clear($("#view"));
  view.append(
    h("p", {}, h("a", { href: "#" }, `← ${t("admin_back")}`)),
    h(
      "section",
      { class: "card", "aria-labelledby": "w-h" },
      h("h2", { id: "w-h" }, workshop.title),
      h("p", { class: "hint" }, `${formatWhen(workshop.starts_at)} – ${formatWhen(workshop.ends_at)} · ${workshop.timezone}`),
      workshop.description ? h("p", {}, workshop.description) : null,
    ),
    participantsCard(workshop, people),
    importCard(workshop),
    addCard(workshop),
    roomsCard(rooms),
    attendanceCard(api, workshop),
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
              h("tr", {}, [t("admin_name"), t("admin_country_short"), t("admin_organisation"), t("admin_role"), t("admin_email"), t("admin_invite")].map((x) => h("th", { scope: "col" }, x))),
            ),
            h("tbody", {}, people.map((p) => participantRow(p))),
          ),
        )
      : h("p", { class: "hint" }, t("admin_no_participants")),
  );
}

function participantRow(p) {
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
    h("td", {}, h("div", { class: "invite" }, link, copy)),
  );
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
