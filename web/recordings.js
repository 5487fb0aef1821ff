// Recordings in the pages: the organiser page's card (every recording of the workshop, grouped by the breakout
// plan its room belongs to, with grants, deletion and a link to the player; breakouts opened with every room
// recorded), and the list of recordings a participant may watch (join page, end screen). See docs/recordings.md.

import { ApiError } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { currentLocale, formatDateTime, formatDuration, t } from "./strings.js";

// The card asks for each recording's detail and grants: every ten seconds while something records or composes.
const BUSY_POLL_MS = 10_000;
const IDLE_POLL_MS = 60_000;

/** "12.3 MB" in the page's language. */
export function formatBytes(bytes) {
  if (bytes == null) return "";
  for (const [unit, size] of [
    ["gigabyte", 1e9],
    ["megabyte", 1e6],
    ["kilobyte", 1e3],
  ]) {
    if (bytes >= size) return new Intl.NumberFormat(currentLocale(), { style: "unit", unit, maximumFractionDigits: 1 }).format(bytes / size);
  }
  return new Intl.NumberFormat(currentLocale(), { style: "unit", unit: "byte" }).format(bytes);
}

/** The player's address for a token: the join token travels in the fragment, as on the join page. */
export function playerHref(recordingId, token) {
  return `/recordings/${recordingId}` + (token ? `#${encodeURIComponent(token)}` : "");
}

/** A room's name as people read it: the plenary in the page's language, any other room as it was named. */
export function roomLabel(workshop, roomId, name) {
  return workshop && roomId === workshop.plenary_room_id ? t("room_plenary") : name;
}

function durationOf(rec) {
  return rec.stopped_at ? (Date.parse(rec.stopped_at) - Date.parse(rec.started_at)) / 1000 : null;
}

function compositionText(comp) {
  if (!comp || comp.state === "none") return t("rec_composition_none");
  if (comp.state === "running") return t("rec_composition_running", { percent: Math.round((comp.progress || 0) * 100) });
  if (comp.state === "failed") return t("rec_composition_failed", { reason: comp.error || "" });
  return t(`rec_composition_${comp.state}`);
}

/** A plan's recordings by run: recordings that overlap in time were made while the same run was open. */
function runsOf(items) {
  const sorted = [...items].sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
  const runs = [];
  let end = -Infinity;
  for (const rec of sorted) {
    const start = Date.parse(rec.started_at);
    if (!runs.length || start > end) {
      runs.push([]);
      end = -Infinity;
    }
    runs[runs.length - 1].push(rec);
    end = Math.max(end, rec.stopped_at ? Date.parse(rec.stopped_at) : Infinity);
  }
  return runs;
}

function busy(rec) {
  const comp = rec.composition || {};
  return ["starting", "recording", "stopping"].includes(rec.state) || ["queued", "running"].includes(comp.state);
}

// The organiser page ---------------------------------------------------------------------------------------

/** The recordings card of one workshop; it loads itself and polls while something records or composes. */
export function recordingsCard(api, workshop, people, { formatWhen = (iso) => formatDateTime(iso) } = {}) {
  const body = h("div", { class: "recordings-body" }, h("p", { class: "hint" }, t("att_loading")));
  const card = h(
    "section",
    { class: "card recordings", id: "recordings", "aria-labelledby": "rec-h" },
    h("div", { class: "card-head" }, h("h2", { id: "rec-h" }, t("rec_title")), h("button", { type: "button", class: "small", id: "rec-refresh", onclick: () => load() }, t("att_refresh"))),
    body,
  );
  const names = new Map(people.map((p) => [p.id, p.display_name]));
  let timer = null;

  async function load() {
    clearTimeout(timer);
    if (!card.isConnected && timer !== null) return; // the page moved on
    let recordings;
    let plans;
    try {
      [recordings, plans] = await Promise.all([api.all(`/workshops/${workshop.id}/recordings`), api.all(`/workshops/${workshop.id}/breakouts`)]);
    } catch (err) {
      clear(body, h("p", { class: "error", role: "alert" }, err.message));
      return;
    }
    const live = recordings.filter((r) => r.state !== "deleted");
    const details = await Promise.all(
      live.map(async (r) => {
        try {
          const [detail, grants] = await Promise.all([api.get(`/recordings/${r.id}`), api.get(`/recordings/${r.id}/grants`)]);
          return { ...r, ...detail, grants: grants.items };
        } catch {
          return { ...r, tracks: [], grants: [] };
        }
      }),
    );
    // Keep what the organiser is choosing (a grant's select) and where the focus is.
    if (!(card.contains(document.activeElement) && document.activeElement.matches("select, input"))) render(details, plans);
    timer = setTimeout(() => {
      if (card.isConnected) load();
    }, details.some(busy) ? BUSY_POLL_MS : IDLE_POLL_MS);
  }

  function render(items, plans) {
    const planOf = new Map();
    for (const plan of plans) for (const room of plan.rooms) planOf.set(room.id, plan);
    const groups = [{ key: "rooms", title: t("rec_group_rooms"), items: [] }];
    for (const plan of plans) groups.push({ key: plan.id, plan, title: t("rec_group_plan", { name: plan.name }), items: [] });
    for (const rec of items) {
      const plan = planOf.get(rec.room_id);
      (plan ? groups.find((g) => g.key === plan.id) : groups[0]).items.push(rec);
    }
    clear(
      body,
      breakoutOpeners(plans),
      items.length ? null : h("p", { class: "hint", id: "rec-none" }, t("rec_none")),
      groups
        .filter((g) => g.items.length)
        .map((g) =>
          h(
            "div",
            { class: "rec-group", dataset: { group: g.key } },
            h("h3", {}, g.title),
            g.plan
              ? runsOf(g.items).map((run, i, runs) =>
                  h(
                    "div",
                    { class: "rec-run", dataset: { run: String(i + 1) } },
                    runs.length > 1 ? h("h4", {}, t("rec_run", { when: formatWhen(run[0].started_at) })) : null,
                    h("ul", { class: "rec-list" }, run.map((rec) => recordingItem(rec))),
                  ),
                )
              : h("ul", { class: "rec-list" }, g.items.map((rec) => recordingItem(rec))),
          ),
        ),
    );
  }

  /** Open a plan's breakouts from here, every room recorded if ticked. */
  function breakoutOpeners(plans) {
    const closed = plans.filter((p) => p.state === "draft" || p.state === "closed");
    if (!closed.length) return null;
    return h(
      "div",
      { class: "rec-open-breakouts" },
      h("h3", {}, t("rec_open_breakouts")),
      h(
        "ul",
        { class: "rec-plans" },
        closed.map((plan) => {
          const box = h("input", { type: "checkbox", id: `rec-record-${plan.id}`, checked: true });
          return h(
            "li",
            { dataset: { planId: plan.id } },
            h("strong", {}, plan.name),
            h("span", { class: "hint" }, ` · ${t("rec_plan_rooms", { n: plan.rooms.length })}`),
            h("label", { class: "toggle", for: box.id }, box, " ", t("rec_record_all")),
            h(
              "button",
              {
                type: "button",
                class: "small primary",
                "aria-label": t("rec_open_plan_label", { name: plan.name }),
                onclick: async () => {
                  try {
                    await api.post(`/workshops/${workshop.id}/breakouts/${plan.id}/open`, box.checked ? { record: true } : {});
                    toast(t("rec_plan_opened", { name: plan.name }));
                  } catch (err) {
                    toast(err.message, { kind: "error" });
                  }
                  load();
                },
              },
              t("mod_open"),
            ),
          );
        }),
      ),
    );
  }

  function recordingItem(rec) {
    const room = roomLabel(workshop, rec.room_id, rec.room_name);
    const inIt = [...new Set((rec.tracks || []).map((tr) => tr.participant_id))].map((id) => names.get(id) || t("player_someone"));
    const size = (rec.tracks || []).reduce((sum, tr) => sum + (tr.bytes || 0), 0) + ((rec.composition && rec.composition.files) || []).reduce((sum, f) => sum + (f.bytes || 0), 0);
    const duration = durationOf(rec);
    const comp = rec.composition || null;
    const granted = new Set((rec.grants || []).map((g) => g.participant_id));
    const candidates = people.filter((p) => !granted.has(p.id) && !["organiser", "moderator"].includes(p.role));
    const select = h(
      "select",
      { "aria-label": t("rec_grant_to_label", { room }) },
      h("option", { value: "" }, t("rec_grant_choose")),
      candidates.map((p) => h("option", { value: p.id }, p.display_name)),
    );
    const item = h(
      "li",
      { class: "rec-item", dataset: { recordingId: rec.id, state: rec.state } },
      h(
        "div",
        { class: "rec-head" },
        h("strong", { class: "rec-room" }, room),
        h("span", { class: `tag rec-state${busy(rec) ? " warn" : ""}` }, t(`rec_state_${rec.state}`)),
        h("span", { class: "hint" }, [formatWhen(rec.started_at), duration != null ? formatDuration(duration) : null, size ? formatBytes(size) : null].filter(Boolean).join(" · ")),
        h("a", { href: playerHref(rec.id), class: "rec-open" }, t("rec_open_player")),
      ),
      h("p", { class: "rec-people" }, inIt.length ? t("rec_people", { names: inIt.join(", ") }) : t("rec_nobody")),
      h(
        "p",
        { class: "rec-composition", dataset: { state: comp ? comp.state : "none" } },
        compositionText(comp),
        comp && comp.state === "running" ? h("progress", { max: "1", value: String(comp.progress || 0), "aria-label": compositionText(comp) }) : null,
      ),
      h(
        "div",
        { class: "rec-grants" },
        h("span", {}, t("rec_grants")),
        (rec.grants || []).length
          ? h(
              "ul",
              { class: "chips" },
              rec.grants.map((g) =>
                h(
                  "li",
                  { class: "chip", dataset: { participantId: g.participant_id } },
                  g.display_name,
                  " ",
                  h(
                    "button",
                    {
                      type: "button",
                      class: "small ghost",
                      "aria-label": t("rec_revoke_label", { name: g.display_name }),
                      onclick: () => call(() => api.request("DELETE", `/recordings/${rec.id}/grants/${g.participant_id}`), t("rec_revoked", { name: g.display_name })),
                    },
                    "×",
                  ),
                ),
              ),
            )
          : h("span", { class: "hint" }, t("rec_no_grants")),
        candidates.length
          ? h(
              "span",
              { class: "row" },
              select,
              h(
                "button",
                {
                  type: "button",
                  class: "small",
                  onclick: () => {
                    if (!select.value) return;
                    const name = select.selectedOptions[0].textContent;
                    call(() => api.post(`/recordings/${rec.id}/grants`, { participant_id: select.value }), t("rec_granted", { name }));
                  },
                },
                t("rec_grant"),
              ),
            )
          : null,
      ),
    );
    if (["ready", "failed"].includes(rec.state)) {
      const confirmBox = h(
        "span",
        { class: "row", hidden: true },
        h("span", {}, t("rec_delete_question")),
        h("button", { type: "button", class: "small danger", onclick: () => call(() => api.request("DELETE", `/recordings/${rec.id}`), t("rec_deleted")) }, t("admin_delete_confirm")),
        h("button", { type: "button", class: "small ghost", onclick: () => (confirmBox.hidden = true) }, t("mod_cancel")),
      );
      item.append(
        h(
          "div",
          { class: "row rec-actions" },
          h("button", { type: "button", class: "small danger", "aria-label": t("rec_delete_label", { room }), onclick: () => (confirmBox.hidden = false) }, t("rec_delete")),
          confirmBox,
        ),
      );
    }
    return item;
  }

  async function call(job, done) {
    try {
      await job();
      toast(done);
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
    await load();
  }

  load();
  return card;
}

// The join page and the end screen ------------------------------------------------------------------------

/** The recordings a participant may watch, as a list of links to the player; null when there are none. */
export async function myRecordingsList(api, token, workshop) {
  let items;
  try {
    items = (await api.get("/me/recordings")).items;
  } catch (err) {
    if (!(err instanceof ApiError)) console.warn("recordings not listed", err);
    return null;
  }
  if (!items.length) return null;
  return h(
    "section",
    { class: "my-recordings", "aria-labelledby": "my-rec-h" },
    h("h2", { id: "my-rec-h" }, t("rec_mine")),
    h(
      "ul",
      { class: "rec-list" },
      items.map((r) =>
        h(
          "li",
          { dataset: { recordingId: r.id } },
          h("a", { href: playerHref(r.id, token), class: "rec-watch" }, roomLabel(workshop, r.room_id, r.room_name)),
          h("span", { class: "hint" }, ` · ${[formatDateTime(r.started_at), r.duration_s != null ? formatDuration(r.duration_s) : t(`rec_state_${r.state}`), r.composition_state === "ready" ? null : compositionText({ state: r.composition_state })].filter(Boolean).join(" · ")}`),
        ),
      ),
    ),
  );
}
