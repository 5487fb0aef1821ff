// The invitations card of the organiser page: send every invitation with one action, see each person's state
// (queued, sent, failed with the reason), resend one, set the reminder, download a person's calendar file and the
// roster with everyone's join link (CSV). Mounted by admin.js with `invitationsCard(api, workshop)`; the data is
// GET /workshops/{id}/invitations (docs/invitations.md).

import { clear, h, toast } from "./dom.js";
import { formatDateTime, t } from "./strings.js";

const REMINDERS = [null, 15, 30, 60, 120, 1440];
const QUEUED_POLL_MS = 3000; // while something waits to be sent, the card follows it

function viewerZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** A time in the viewer's zone, labelled with it. */
function when(iso) {
  return iso ? `${formatDateTime(iso)} (${viewerZone()})` : "";
}

async function download(api, path, filename) {
  const response = await fetch(`${api.base}${path}`, {
    headers: { Authorization: `Bearer ${api.token}` },
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) throw new Error(t("inv_download_failed", { status: response.status }));
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: filename });
  link.click();
  URL.revokeObjectURL(link.href);
}

/** The invitations card of one workshop; it loads itself. */
export function invitationsCard(api, workshop) {
  const base = `/workshops/${workshop.id}`;
  const status = h("p", { class: "hint", id: "inv-status" });
  const body = h("div", { class: "invitations-body" }, h("p", { class: "hint" }, t("inv_loading")));
  const reminder = h(
    "select",
    { id: "inv-reminder" },
    REMINDERS.map((m) => h("option", { value: m === null ? "" : String(m) }, m === null ? t("inv_reminder_none") : t("inv_reminder_minutes", { n: m }))),
  );
  const card = h(
    "section",
    { class: "card invitations", id: "invitations", "aria-labelledby": "inv-h" },
    h("h2", { id: "inv-h" }, t("inv_title")),
    status,
    h(
      "div",
      { class: "card-actions" },
      h("button", { type: "button", id: "inv-send-all", onclick: () => sendAll() }, t("inv_send_all")),
      h("button", { type: "button", class: "small", id: "inv-roster", onclick: () => roster() }, t("inv_roster_csv")),
      h("button", { type: "button", class: "small", onclick: () => load() }, t("inv_refresh")),
    ),
    h(
      "p",
      {},
      h("label", { for: "inv-reminder" }, t("inv_reminder_label")),
      " ",
      reminder,
      " ",
      h("button", { type: "button", class: "small", id: "inv-reminder-save", onclick: () => saveReminder() }, t("inv_save")),
    ),
    h("p", { class: "hint" }, t("inv_secret_hint")),
    body,
  );

  async function sendAll() {
    try {
      const answer = await api.post(`${base}/invitations`, { all: true });
      toast(t(answer.sending ? "inv_queued" : "inv_queued_no_smtp", { n: answer.queued.length }));
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
    load();
  }

  async function resend(person) {
    try {
      await api.post(`${base}/invitations/${person.participant_id}/resend`);
      toast(t("inv_resent", { name: person.display_name }));
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
    load();
  }

  async function roster() {
    try {
      await download(api, `${base}/roster.csv`, `roster-${workshop.id}.csv`);
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  }

  async function saveReminder() {
    try {
      const value = reminder.value === "" ? null : Number(reminder.value);
      await api.put(`${base}/invitations/settings`, { reminder_minutes_before: value });
      toast(t("inv_reminder_saved"));
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
    load();
  }

  function stateCell(person) {
    if (!person.has_email) return h("span", { class: "hint" }, t("inv_no_email"));
    if (person.banned) return h("span", { class: "hint" }, t("inv_banned"));
    if (!person.state) return h("span", { class: "hint" }, t("inv_state_none"));
    const label = h("span", { class: `badge inv-${person.state}`, "data-state": person.state }, t(`inv_state_${person.state}`));
    const details = [];
    if (person.state === "sent") details.push(" ", when(person.sent_at));
    if (person.last_error) details.push(h("br"), h("small", { class: "error" }, t("inv_reason", { reason: person.last_error })));
    if (person.state === "queued" && person.attempts > 0) details.push(" ", t("inv_retry_at", { when: when(person.next_attempt_at) }));
    return h("span", {}, label, ...details);
  }

  function row(person) {
    const canSend = person.has_email && !person.banned;
    return h(
      "tr",
      { "data-participant": person.participant_id },
      h("td", {}, person.display_name),
      h("td", {}, person.language ? t(`inv_language_${person.language}`) : ""),
      h("td", { class: "inv-state" }, stateCell(person)),
      h("td", {}, person.reminder_state ? t(`inv_state_${person.reminder_state}`) : ""),
      h(
        "td",
        {},
        canSend ? h("button", { type: "button", class: "small inv-resend", onclick: () => resend(person) }, person.state ? t("inv_resend") : t("inv_send")) : "",
        " ",
        person.banned
          ? ""
          : h(
              "button",
              {
                type: "button",
                class: "small",
                onclick: () => download(api, `${base}/participants/${person.participant_id}/invitation.ics`, "invitation.ics").catch((err) => toast(err.message, { kind: "error" })),
              },
              t("inv_ics"),
            ),
      ),
    );
  }

  let timer = null;

  async function load() {
    clearTimeout(timer);
    let people;
    let settings;
    try {
      [people, settings] = await Promise.all([api.all(`${base}/invitations`), api.get(`${base}/invitations/settings`)]);
    } catch (err) {
      clear(body, h("p", { class: "error", role: "alert" }, err.message));
      return;
    }
    status.textContent = settings.sending ? t("inv_smtp_ready") : t("inv_smtp_missing");
    status.className = settings.sending ? "hint" : "error";
    reminder.value = settings.reminder_minutes_before === null ? "" : String(settings.reminder_minutes_before);
    if (reminder.value !== "" && !REMINDERS.includes(settings.reminder_minutes_before)) {
      reminder.append(h("option", { value: reminder.value }, t("inv_reminder_minutes", { n: settings.reminder_minutes_before })));
      reminder.value = String(settings.reminder_minutes_before);
    }
    const counts = { sent: 0, queued: 0, failed: 0 };
    for (const p of people) if (p.state) counts[p.state] += 1;
    clear(
      body,
      h("p", { id: "inv-counts" }, t("inv_counts", { sent: counts.sent, queued: counts.queued, failed: counts.failed, total: people.length })),
      settings.reminders_queued_at ? h("p", { class: "hint" }, t("inv_reminders_queued", { when: when(settings.reminders_queued_at) })) : "",
      h(
        "table",
        { class: "invitations-table" },
        h(
          "thead",
          {},
          h("tr", {}, ...["inv_col_name", "inv_col_language", "inv_col_state", "inv_col_reminder", "inv_col_actions"].map((k) => h("th", { scope: "col" }, t(k)))),
        ),
        h("tbody", {}, people.map(row)),
      ),
    );
    const waiting = people.some((p) => p.state === "queued" || p.reminder_state === "queued");
    if (waiting && settings.sending) timer = setTimeout(() => card.isConnected && load(), QUEUED_POLL_MS);
  }

  load();
  return card;
}
