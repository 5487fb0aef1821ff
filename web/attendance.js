// The workshop's attendance on the organiser page: a chart of who is present per country over time (plain SVG,
// stacked by country), tables per country, organisation and person, the CSV downloads, and certificates of
// attendance. Mounted by admin.js with `attendanceCard(api, workshop)`; the data is GET /workshops/{id}/attendance.

import { ApiError } from "./api.js";
import { clear, countryBadge, h, svg, toast } from "./dom.js";
import { countryName, roleName, t } from "./strings.js";
import { clockIn, formatDual, zoneLabel } from "./times.js";

// The workshop's zone: the chart's axis is in it (labelled), the tables give each time in the viewer's zone too.
let reportZone = "UTC";

const CHART = { width: 760, height: 260, left: 40, right: 12, top: 12, bottom: 28 };
const SHARES = [0.25, 0.5, 0.75, 0.9];
const DEFAULT_SHARE = 0.75;

/** The attendance card of one workshop; it loads itself. */
export function attendanceCard(api, workshop) {
  reportZone = workshop.timezone || "UTC";
  const body = h("div", { class: "attendance-body" }, h("p", { class: "hint" }, t("att_loading")));
  const share = h(
    "select",
    { id: "att-share", onchange: () => load() },
    SHARES.map((s) => h("option", { value: String(s), selected: s === DEFAULT_SHARE }, t("att_share_option", { percent: Math.round(s * 100) }))),
  );
  const card = h(
    "section",
    { class: "card attendance", id: "attendance", "aria-labelledby": "att-h" },
    h("h2", { id: "att-h" }, t("att_title")),
    h(
      "div",
      { class: "attendance-controls" },
      h("label", { for: "att-share" }, t("att_share_label")),
      share,
      h("button", { type: "button", class: "small", onclick: () => load() }, t("att_refresh")),
    ),
    body,
  );

  async function load() {
    const minShare = Number(share.value);
    let report;
    try {
      report = await api.get(`/workshops/${workshop.id}/attendance?min_share=${minShare}&step_s=${stepFor(workshop)}`);
    } catch (err) {
      clear(body, h("p", { class: "error", role: "alert" }, err.message));
      return;
    }
    clear(
      body,
      summary(report),
      chart(report),
      groupTable("att-countries", t("att_by_country"), report.countries, (name) => countryBadge(name, countryName(name)), report.min_share),
      h(
        "details",
        { class: "attendance-people" },
        h("summary", {}, t("att_organisations", { n: report.organisations.length })),
        groupTable("att-organisations", t("att_by_organisation"), report.organisations, (name) => name || t("att_no_organisation"), report.min_share),
      ),
      peopleTable(report),
      downloads(api, workshop),
      certificates(api, workshop, minShare),
    );
  }

  load();
  return card;
}

/** About 60 points over the scheduled time, in whole minutes. */
function stepFor(workshop) {
  const seconds = (new Date(workshop.ends_at) - new Date(workshop.starts_at)) / 1000;
  return Math.max(60, Math.round(seconds / 60 / 60) * 60);
}

function minutes(value) {
  return t("att_minutes", { n: Math.round(value) });
}

function summary(report) {
  const present = report.people.filter((p) => p.visits > 0).length;
  const enough = report.people.filter((p) => p.visits > 0 && p.share_of_schedule >= report.min_share).length;
  return h(
    "p",
    { class: "attendance-summary" },
    t("att_summary", { present, invited: report.people.filter((p) => p.on_roster).length, enough, percent: Math.round(report.min_share * 100) }),
  );
}

function colour(index, count) {
  return `hsl(${Math.round((index * 360) / Math.max(count, 1))} 65% 58%)`;
}

/** Present per country over time: one stacked bar per step. */
function chart(report) {
  const points = report.timeline;
  const countries = [...new Set(points.flatMap((p) => Object.keys(p.by_country)))].sort();
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const peak = Math.max(1, ...points.map((p) => p.total));
  const barW = plotW / Math.max(points.length, 1);
  const y = (n) => top + plotH - (n / peak) * plotH;
  const graph = svg("svg", {
    class: "attendance-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": t("att_chart_label", { peak }),
  });
  for (const tick of [0, Math.round(peak / 2), peak]) {
    graph.append(
      svg("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "axis" }, document.createTextNode(String(tick))),
    );
  }
  points.forEach((p, i) => {
    let base = 0;
    countries.forEach((c, k) => {
      const n = p.by_country[c] || 0;
      if (!n) return;
      const bar = svg("rect", { x: left + i * barW + 0.5, y: y(base + n), width: Math.max(barW - 1, 1), height: y(base) - y(base + n), fill: colour(k, countries.length) });
      bar.append(svg("title", {}, document.createTextNode(`${formatDual(p.at, reportZone, { day: false })} · ${countryName(c)}: ${n}`)));
      graph.append(bar);
      base += n;
    });
  });
  const labelEvery = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    if (i % labelEvery) return;
    graph.append(svg("text", { x: left + i * barW, y: height - 8, class: "axis" }, document.createTextNode(clockIn(Date.parse(p.at), reportZone))));
  });
  if (points.length) {
    graph.append(svg("text", { x: width - right, y: top - 4, "text-anchor": "end", class: "axis" }, document.createTextNode(zoneLabel(reportZone, Date.parse(points[0].at)))));
  }
  const legend = h(
    "ul",
    { class: "attendance-legend" },
    countries.map((c, k) =>
      h(
        "li",
        {},
        svg("svg", { class: "swatch", viewBox: "0 0 10 10", "aria-hidden": "true" }, svg("rect", { width: 10, height: 10, fill: colour(k, countries.length) })),
        countryName(c),
      ),
    ),
  );
  return h("figure", { class: "attendance-figure" }, h("figcaption", {}, t("att_chart_title")), graph, legend);
}

function groupTable(id, title, groups, label, minShare) {
  const headings = [t("att_group"), t("att_invited"), t("att_present"), t("att_present_share", { percent: Math.round(minShare * 100) }), t("att_average")];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data-table", id },
      h("caption", {}, title),
      h("thead", {}, h("tr", {}, headings.map((x) => h("th", { scope: "col" }, x)))),
      h(
        "tbody",
        {},
        groups.map((g) =>
          h("tr", {}, h("td", {}, label(g.name)), h("td", {}, String(g.invited)), h("td", {}, String(g.present)), h("td", {}, String(g.present_min_share)), h("td", {}, minutes(g.average_minutes))),
        ),
      ),
    ),
  );
}

function peopleTable(report) {
  const headings = [t("admin_name"), t("admin_country_short"), t("admin_organisation"), t("admin_role"), t("att_first_join"), t("att_last_leave"), t("att_time"), t("att_share"), t("att_drops"), t("att_rooms")];
  const when = (iso) => (iso ? formatDual(iso, reportZone, { day: false }) : "");
  return h(
    "details",
    { class: "attendance-people" },
    h("summary", {}, t("att_people", { n: report.people.length })),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data-table", id: "att-people" },
        h("thead", {}, h("tr", {}, headings.map((x) => h("th", { scope: "col" }, x)))),
        h(
          "tbody",
          {},
          report.people.map((p) =>
            h(
              "tr",
              { dataset: { participantId: p.participant_id } },
              h("td", {}, p.display_name),
              h("td", {}, countryBadge(p.country, countryName(p.country))),
              h("td", {}, p.organisation),
              h("td", {}, roleName(p.role)),
              h("td", {}, when(p.first_join)),
              h("td", {}, p.present_now ? t("att_present_now") : when(p.last_leave)),
              h("td", {}, minutes(p.minutes_present)),
              h("td", {}, `${Math.round(p.share_of_schedule * 100)} %`),
              h("td", {}, String(p.drops)),
              h("td", {}, p.rooms.map((r) => `${r.room_name}: ${minutes(r.minutes)}`).join(" · ")),
            ),
          ),
        ),
      ),
    ),
  );
}

/** CSV needs the bearer token: fetched, then handed to the browser as a file. */
function downloads(api, workshop) {
  const tables = ["people", "rooms", "countries", "organisations", "timeline"];
  return h(
    "p",
    { class: "attendance-downloads" },
    t("att_csv"),
    " ",
    tables.map((table) =>
      h(
        "button",
        {
          type: "button",
          class: "small",
          onclick: async () => {
            try {
              const response = await fetch(`${api.base}/workshops/${workshop.id}/attendance.csv?table=${table}`, {
                headers: { Authorization: `Bearer ${api.token}` },
                credentials: "omit",
                cache: "no-store",
              });
              if (!response.ok) throw new ApiError(response.status, "http_" + response.status, response.statusText);
              const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `attendance-${table}.csv` });
              link.click();
              URL.revokeObjectURL(link.href);
            } catch (err) {
              toast(err.message, { kind: "error" });
            }
          },
        },
        t(`att_csv_${table}`),
      ),
    ),
  );
}

function certificates(api, workshop, minShare) {
  const status = h("p", { class: "hint", id: "att-certificates-status", "aria-live": "polite" });
  return h(
    "div",
    { class: "attendance-certificates" },
    h("h3", {}, t("att_certificates")),
    h("p", { class: "hint" }, t("att_certificates_hint", { percent: Math.round(minShare * 100) })),
    h(
      "button",
      {
        type: "button",
        class: "primary",
        id: "att-issue",
        onclick: async () => {
          try {
            const result = await api.post(`/workshops/${workshop.id}/certificates`, { min_share: minShare });
            status.textContent = t("att_certificates_issued", { n: result.issued.length, kept: result.already_issued.length });
          } catch (err) {
            toast(err.message, { kind: "error" });
          }
        },
      },
      t("att_issue", { percent: Math.round(minShare * 100) }),
    ),
    status,
  );
}
