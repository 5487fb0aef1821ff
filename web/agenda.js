// The agenda: the editor on the organiser page (a card), the list on the join page and in the room (what is now,
// what is next), and a participant's time zone on the roster. Every time in the viewer's zone and the workshop's
// (web/times.js); the form takes wall times in the workshop's zone, explicitly labelled (docs/agenda.md).

import { ApiError } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { t } from "./strings.js";
import { allZones, formatDual, inputValueIn, zonedFieldLabel, zonedToUtc, zoneLabel } from "./times.js";

export const KINDS = ["plenary", "breakouts", "break"];

/** The session under way at `now` and the next one to start, from sessions ordered by start. */
export function nowAndNext(sessions, now = Date.now()) {
  const current = sessions.find((s) => Date.parse(s.starts_at) <= now && now < Date.parse(s.ends_at)) || null;
  const next = sessions.find((s) => Date.parse(s.starts_at) > now) || null;
  return { current, next };
}

/** "Working groups · 14:00–15:30 Seoul (GMT+9) · 10:30–12:00 Kolkata (GMT+5:30)". */
export function sessionWhen(session, workshopZone, { day = true } = {}) {
  return formatDual(session.starts_at, workshopZone, { end: session.ends_at, day });
}

function sessionState(s) {
  if (s.ended_fired_at) return t("agenda_state_ended");
  if (s.held) return t("agenda_state_held");
  if (s.started_fired_at) return t("agenda_state_running");
  return "";
}

// The organiser's card -----------------------------------------------------------------------------------------

export function agendaCard(api, workshop) {
  const card = h("section", { class: "card", id: "agenda-card", "aria-labelledby": "agenda-h" });
  const state = { sessions: [], plans: [], editing: null };
  let render = () => {};
  let refresh = () => {};
  const base = `/workshops/${workshop.id}`;

  const load = async () => {
    try {
      const [sessions, plans] = await Promise.all([api.all(`${base}/agenda`), api.all(`${base}/breakouts`).catch(() => [])]);
      state.sessions = sessions;
      state.plans = plans;
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
    refresh();
  };

  const save = async (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    let body;
    try {
      body = {
        title: String(data.get("title")).trim(),
        kind: String(data.get("kind")),
        starts_at: zonedToUtc(String(data.get("starts_at")), workshop.timezone),
        ends_at: zonedToUtc(String(data.get("ends_at")), workshop.timezone),
        presenters: String(data.get("presenters") || "").trim(),
        description: String(data.get("description") || ""),
        breakout_plan_id: data.get("breakout_plan_id") ? String(data.get("breakout_plan_id")) : null,
        record: data.get("record") === "on",
      };
    } catch (err) {
      return toast(err.message, { kind: "error" });
    }
    if (body.kind !== "breakouts") body.breakout_plan_id = null;
    try {
      if (state.editing) await api.request("PATCH", `${base}/agenda/${state.editing.id}`, { json: body });
      else await api.post(`${base}/agenda`, body);
      toast(t("agenda_saved"));
      state.editing = null;
      renderForm();
      await load();
    } catch (err) {
      toast(err instanceof ApiError && err.details ? `${err.message}: ${JSON.stringify(err.details)}` : err.message, { kind: "error" });
    }
  };

  const remove = async (s) => {
    try {
      await api.request("DELETE", `${base}/agenda/${s.id}`);
      await load();
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  };

  const hold = async (s) => {
    try {
      await api.post(`${base}/agenda/${s.id}/hold`, { held: !s.held });
      await load();
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  };

  const form = () => {
    const s = state.editing;
    const first = state.sessions.length ? state.sessions[state.sessions.length - 1].ends_at : workshop.starts_at;
    const start = s ? s.starts_at : first;
    const end = s ? s.ends_at : new Date(Date.parse(start) + 3600 * 1000).toISOString();
    const plan = h(
      "select",
      { name: "breakout_plan_id", id: "ag-plan" },
      h("option", { value: "" }, t("agenda_no_plan")),
      state.plans.map((p) => h("option", { value: p.id, selected: s && s.breakout_plan_id === p.id }, p.name)),
    );
    const fieldOf = (id, label, control, wide = false) => {
      control.id = id;
      return h("div", { class: wide ? "field wide" : "field" }, h("label", { for: id }, label), control);
    };
    return h(
      "form",
      { class: "form-grid", id: "agenda-form", onsubmit: save },
      fieldOf("ag-title", t("agenda_title_label"), h("input", { name: "title", required: true, maxlength: "200", value: s ? s.title : "" }), true),
      fieldOf("ag-kind", t("agenda_kind"), h("select", { name: "kind" }, KINDS.map((k) => h("option", { value: k, selected: s ? s.kind === k : k === "plenary" }, t(`agenda_kind_${k}`))))),
      // Wall times in the workshop's zone, whatever the browser's: the label says which.
      fieldOf("ag-starts", zonedFieldLabel("agenda_starts", workshop.timezone, Date.parse(start)), h("input", { name: "starts_at", type: "datetime-local", required: true, value: inputValueIn(start, workshop.timezone) })),
      fieldOf("ag-ends", zonedFieldLabel("agenda_ends", workshop.timezone, Date.parse(end)), h("input", { name: "ends_at", type: "datetime-local", required: true, value: inputValueIn(end, workshop.timezone) })),
      fieldOf("ag-presenters", t("agenda_presenters"), h("input", { name: "presenters", maxlength: "500", value: s ? s.presenters : "" })),
      fieldOf("ag-plan", t("agenda_plan"), plan),
      h("div", { class: "field" }, h("label", {}, h("input", { type: "checkbox", name: "record", id: "ag-record", checked: Boolean(s && s.record) }), " ", t("agenda_record"))),
      fieldOf("ag-description", t("agenda_description"), h("textarea", { name: "description", rows: "2", maxlength: "5000" }, s ? s.description : ""), true),
      h(
        "div",
        { class: "field row" },
        h("button", { type: "submit", class: "primary", id: "ag-save" }, s ? t("agenda_save") : t("agenda_add")),
        s ? h("button", { type: "button", class: "ghost", onclick: () => ((state.editing = null), render()) }, t("mod_cancel")) : null,
      ),
    );
  };

  const row = (s) =>
    h(
      "tr",
      { dataset: { sessionId: s.id } },
      h("td", { class: "agenda-when" }, h("time", { datetime: s.starts_at }, sessionWhen(s, workshop.timezone))),
      h("td", {}, h("strong", {}, s.title), s.presenters ? h("div", { class: "hint" }, s.presenters) : null),
      h("td", {}, t(`agenda_kind_${s.kind}`)),
      h(
        "td",
        {},
        [
          s.breakout_plan_id ? t("agenda_opens_plan", { name: state.plans.find((p) => p.id === s.breakout_plan_id)?.name || "?" }) : "",
          s.record ? t("agenda_records") : "",
          sessionState(s),
        ]
          .filter(Boolean)
          .join(" · "),
      ),
      h(
        "td",
        { class: "row" },
        h("button", { type: "button", class: "small", onclick: () => ((state.editing = s), render()) }, t("agenda_edit")),
        s.ended_fired_at ? null : h("button", { type: "button", class: "small", onclick: () => hold(s) }, s.held ? t("agenda_release") : t("agenda_hold")),
        h("button", { type: "button", class: "small danger", onclick: () => remove(s) }, t("agenda_remove")),
      ),
    );

  // The list and the form are drawn apart: the list follows the server, the form keeps what is being typed.
  const listBox = h("div", { class: "agenda-list-box" });
  const formBox = h("div", { class: "agenda-form-box" });
  const renderList = () => {
    clear(
      listBox,
      state.sessions.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data-table", id: "agenda" },
              h("thead", {}, h("tr", {}, [t("agenda_when"), t("agenda_title_label"), t("agenda_kind"), t("agenda_automatic"), ""].map((x) => h("th", { scope: "col" }, x)))),
              h("tbody", {}, state.sessions.map(row)),
            ),
          )
        : h("p", { class: "hint" }, t("agenda_empty")),
    );
    const heading = card.querySelector("#agenda-h");
    if (heading) heading.textContent = `${t("agenda_heading")} (${state.sessions.length})`;
  };
  const renderPlans = () => {
    const select = formBox.querySelector("#ag-plan");
    if (!select) return;
    const chosen = select.value || (state.editing && state.editing.breakout_plan_id) || "";
    clear(select, h("option", { value: "" }, t("agenda_no_plan")), state.plans.map((p) => h("option", { value: p.id }, p.name)));
    select.value = chosen;
  };
  const renderForm = () => {
    clear(formBox, form());
    renderPlans();
  };
  render = () => {
    renderList();
    renderForm();
  };
  refresh = () => {
    renderList();
    renderPlans();
  };
  card.append(
    h("h2", { id: "agenda-h" }, t("agenda_heading")),
    h("p", { class: "hint" }, t("agenda_zone_hint", { zone: zoneLabel(workshop.timezone, Date.parse(workshop.starts_at)) })),
    listBox,
    formBox,
  );
  render();
  load();
  return card;
}

// The roster: a participant's own zone, which the organiser may set -----------------------------------------------

export function zoneCell(api, p) {
  const list = `zones-${p.id}`;
  const input = h("input", { type: "text", class: "zone-input", list, value: p.timezone || "", placeholder: t("time_zone_unknown"), "aria-label": t("time_zone_of", { name: p.display_name }) });
  const options = h("datalist", { id: list });
  input.addEventListener("focus", () => {
    if (!options.childElementCount) options.append(...allZones().map((z) => h("option", { value: z })));
  });
  input.addEventListener("change", async () => {
    const zone = input.value.trim() || null;
    try {
      await api.request("PATCH", `/workshops/${p.workshop_id}/participants/${p.id}`, { json: { timezone: zone } });
      p.timezone = zone;
      toast(t("admin_saved"));
    } catch (err) {
      input.value = p.timezone || "";
      toast(err.message, { kind: "error" });
    }
  });
  return h("span", {}, input, options);
}

// The join page and the room ----------------------------------------------------------------------------------------

/** The agenda as a list, with the session under way and the next one marked. */
export function agendaList(sessions, workshopZone, now = Date.now()) {
  const { current, next } = nowAndNext(sessions, now);
  if (!sessions.length) return h("p", { class: "hint" }, t("agenda_empty"));
  return h(
    "ol",
    { class: "agenda-list" },
    sessions.map((s) =>
      h(
        "li",
        { class: s === current ? "agenda-now" : s === next ? "agenda-next" : "", dataset: { sessionId: s.id } },
        s === current ? h("span", { class: "agenda-badge" }, t("agenda_now")) : s === next ? h("span", { class: "agenda-badge" }, t("agenda_next")) : null,
        " ",
        h("time", { datetime: s.starts_at }, sessionWhen(s, workshopZone)),
        " — ",
        h("strong", {}, s.title),
        s.presenters ? h("span", { class: "hint" }, ` · ${s.presenters}`) : null,
        s.kind !== "plenary" ? h("span", { class: "hint" }, ` · ${t(`agenda_kind_${s.kind}`)}`) : null,
      ),
    ),
  );
}

/** One line for the room: "Now: … · Next: …". */
export function nowNextLine(sessions, workshopZone, now = Date.now()) {
  const { current, next } = nowAndNext(sessions, now);
  const parts = [];
  if (current) parts.push(t("agenda_now_line", { title: current.title, until: formatDual(current.ends_at, workshopZone, { day: false }) }));
  if (next) parts.push(t("agenda_next_line", { title: next.title, when: sessionWhen(next, workshopZone) }));
  return parts.join(" · ");
}
