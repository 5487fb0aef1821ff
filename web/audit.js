// The workshop's audit log on the organiser page: the entries (newest page first, filtered by action family, actor
// role and time), the chain verified on request, the JSON Lines export and a signed anchor to keep elsewhere.
// Mounted by admin.js with `auditCard(api, workshop)`; the data is GET /workshops/{id}/audit (docs/records.md).

import { ApiError } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { roleName, t } from "./strings.js";
import { formatDual } from "./times.js";

const PAGE = 50;
// The families an organiser filters by most; the API takes any action or family.
const FAMILIES = ["participant", "workshop", "room", "lobby", "breakouts", "recording", "agenda", "invitation", "certificates", "records"];
const ROLES = ["admin", "system", "organiser", "moderator", "participant"];

/** The audit card of one workshop; it loads its first page when opened (the log can be long). */
export function auditCard(api, workshop) {
  const zone = workshop.timezone || "UTC";
  const family = h(
    "select",
    { id: "audit-action" },
    h("option", { value: "" }, t("audit_any_action")),
    FAMILIES.map((f) => h("option", { value: f }, t(`audit_family_${f}`))),
  );
  const role = h(
    "select",
    { id: "audit-role" },
    h("option", { value: "" }, t("audit_any_actor")),
    ROLES.map((r) => h("option", { value: r }, roleName(r))),
  );
  const rows = h("tbody", {});
  const table = h(
    "table",
    { class: "audit-table", id: "audit-entries" },
    h("thead", {}, h("tr", {}, ["audit_col_seq", "audit_col_at", "audit_col_actor", "audit_col_action", "audit_col_target"].map((k) => h("th", { scope: "col" }, t(k))))),
    rows,
  );
  const status = h("p", { class: "hint", id: "audit-status", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "small", hidden: true, onclick: () => loadPage() }, t("audit_more"));
  const verdict = h("p", { id: "audit-verdict", "aria-live": "polite" });
  let cursor = null;
  let loaded = false;

  function query() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (family.value) params.set("action", family.value);
    if (role.value) params.set("actor_role", role.value);
    if (cursor) params.set("cursor", cursor);
    return params.toString();
  }

  async function loadPage() {
    let page;
    try {
      page = await api.get(`/workshops/${workshop.id}/audit?${query()}`);
    } catch (err) {
      status.textContent = err.message;
      status.className = "error";
      return;
    }
    for (const entry of page.items) rows.append(entryRow(entry, zone));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    status.className = "hint";
    status.textContent = rows.children.length ? t("audit_shown", { n: rows.children.length }) : t("audit_none");
  }

  function reload() {
    clear(rows);
    cursor = null;
    loadPage();
  }
  family.addEventListener("change", reload);
  role.addEventListener("change", reload);

  async function verify() {
    verdict.className = "hint";
    verdict.textContent = t("audit_verifying");
    try {
      const result = await api.get(`/workshops/${workshop.id}/audit/verify`);
      if (result.ok) {
        verdict.className = "ok";
        verdict.textContent = t("audit_verified", { n: result.entries, hash: result.head_hash.slice(0, 16) });
      } else {
        verdict.className = "error";
        verdict.setAttribute("role", "alert");
        verdict.textContent = t("audit_broken", { seq: result.mismatch.seq, reason: result.mismatch.reason });
      }
    } catch (err) {
      verdict.className = "error";
      verdict.textContent = err.message;
    }
  }

  async function download(path, filename) {
    try {
      const response = await fetch(`${api.base}${path}`, {
        headers: { Authorization: `Bearer ${api.token}` },
        credentials: "omit",
        cache: "no-store",
      });
      if (!response.ok) throw new ApiError(response.status, "http_" + response.status, response.statusText);
      const link = h("a", { href: URL.createObjectURL(await response.blob()), download: filename });
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  }

  const card = h(
    "details",
    {
      class: "card audit",
      id: "audit",
      ontoggle: (e) => {
        if (e.target.open && !loaded) {
          loaded = true;
          loadPage();
        }
      },
    },
    h("summary", {}, h("h2", { id: "audit-h" }, t("audit_title"))),
    h("p", { class: "hint" }, t("audit_intro")),
    h(
      "div",
      { class: "audit-controls" },
      h("label", { for: "audit-action" }, t("audit_action_label")),
      family,
      h("label", { for: "audit-role" }, t("audit_actor_label")),
      role,
      h("button", { type: "button", class: "small", onclick: reload }, t("audit_refresh")),
    ),
    h(
      "div",
      { class: "audit-controls" },
      h("button", { type: "button", id: "audit-verify", onclick: verify }, t("audit_verify")),
      h("button", { type: "button", class: "small", onclick: () => download(`/workshops/${workshop.id}/audit.jsonl`, `audit-${workshop.id}.jsonl`) }, t("audit_export")),
      h("button", { type: "button", class: "small", onclick: () => download(`/workshops/${workshop.id}/audit/anchor`, `audit-anchor-${workshop.id}.json`) }, t("audit_anchor")),
    ),
    verdict,
    table,
    status,
    more,
  );
  return card;
}

function summarise(object) {
  return Object.entries(object || {})
    .filter(([, v]) => v !== null && v !== "" && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
}

function entryRow(entry, zone) {
  const actor = entry.redacted_at ? t("audit_redacted") : `${entry.actor.name} (${roleName(entry.actor.role)})`;
  const target = entry.redacted_at ? "" : summarise(entry.target);
  const details = entry.redacted_at ? "" : summarise(entry.details);
  return h(
    "tr",
    { "data-seq": String(entry.seq) },
    h("td", {}, String(entry.seq)),
    h("td", {}, h("time", { datetime: entry.at }, formatDual(entry.at, zone))),
    h("td", {}, actor),
    h("td", {}, h("code", {}, entry.action)),
    h("td", { title: details }, target),
  );
}
