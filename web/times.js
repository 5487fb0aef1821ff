// Times for a workshop across a dozen time zones, with Intl only (no library). The API keeps UTC; the pages show every
// instant in the viewer's zone and the workshop's, each labelled with its own zone ("14:30 Seoul (GMT+9) · 10:30
// Kolkata (GMT+5:30)"), or once when both are the same zone; forms take wall times in the workshop's zone and turn
// them into the right UTC instant, daylight-saving transitions included (docs/agenda.md).
//
// Times are written on a 24-hour clock in every language: delegates from twenty countries read "14:30" alike.

import { currentLocale, t } from "./strings.js";

/** The browser's own IANA zone (the viewer's), or UTC. */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

let chosenZone = null;

/** The viewer's zone: the one they chose (a participant's own zone), else the browser's. */
export function viewerZone() {
  return chosenZone || browserZone();
}

/** Set (or with null, forget) the viewer's own zone; an unknown zone is refused (false). */
export function setViewerZone(zone) {
  if (zone && !isZone(zone)) return false;
  chosenZone = zone || null;
  return true;
}

/** True for an IANA zone this browser knows. */
export function isZone(zone) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Every IANA zone the browser lists (for a zone picker); the viewer's first when missing. */
export function allZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    zones = [];
  }
  return zones.includes("UTC") ? zones : ["UTC", ...zones];
}

const partsFormats = new Map();

function wallParts(ms, zone) {
  let fmt = partsFormats.get(zone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    partsFormats.set(zone, fmt);
  }
  const out = {};
  for (const p of fmt.formatToParts(new Date(ms))) if (p.type !== "literal") out[p.type] = Number(p.value);
  return out;
}

/** The zone's offset from UTC at the instant `ms`, in minutes (east positive: Kolkata +330). */
export function offsetMinutes(ms, zone) {
  const whole = Math.floor(ms / 1000) * 1000;
  const p = wallParts(whole, zone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((asUtc - whole) / 60000);
}

/** "GMT+5:30", "GMT-4", "GMT". */
export function offsetLabel(ms, zone) {
  const total = offsetMinutes(ms, zone);
  if (total === 0) return "GMT";
  const sign = total > 0 ? "+" : "-";
  const abs = Math.abs(total);
  const minutes = abs % 60;
  return `GMT${sign}${Math.floor(abs / 60)}${minutes ? ":" + String(minutes).padStart(2, "0") : ""}`;
}

/** The zone's city, as people say it: "Asia/Kolkata" -> "Kolkata", "America/Argentina/Buenos_Aires" -> "Buenos Aires". */
export function zoneCity(zone) {
  if (zone === "UTC" || zone === "Etc/UTC") return "UTC";
  return zone.split("/").pop().replace(/_/g, " ");
}

/** "Kolkata (GMT+5:30)": the zone's label at an instant (the offset changes with daylight saving). */
export function zoneLabel(zone, ms = Date.now()) {
  const city = zoneCity(zone);
  return city === "UTC" ? "UTC" : `${city} (${offsetLabel(ms, zone)})`;
}

const formats = new Map();

function format(zone, options) {
  const key = `${currentLocale()}|${zone}|${JSON.stringify(options)}`;
  let fmt = formats.get(key);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat(currentLocale(), { ...options, timeZone: zone });
    formats.set(key, fmt);
  }
  return fmt;
}

const CLOCK = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
const DAY = { weekday: "short", day: "numeric", month: "short" };

/** The wall clock in a zone: "14:30". */
export function clockIn(ms, zone) {
  return format(zone, CLOCK).format(new Date(ms));
}

/** The day in a zone: "Tue, 1 Dec". */
export function dayIn(ms, zone) {
  return format(zone, DAY).format(new Date(ms));
}

function dayKey(ms, zone) {
  const p = wallParts(ms, zone);
  return `${p.year}-${p.month}-${p.day}`;
}

/** True when the two zones show different wall times at some instant near `ms` (not merely different names). */
function sameZone(a, b, ms) {
  return a === b || (offsetMinutes(ms, a) === offsetMinutes(ms, b) && zoneCity(a) === zoneCity(b));
}

/** One instant or range in one zone: "Tue, 1 Dec, 14:30–16:00 Seoul (GMT+9)". */
function inZone(startMs, endMs, zone, withDay) {
  let text = withDay ? `${dayIn(startMs, zone)}, ${clockIn(startMs, zone)}` : clockIn(startMs, zone);
  if (endMs !== null) {
    const sameDay = dayKey(startMs, zone) === dayKey(endMs, zone);
    text += "–" + (sameDay || !withDay ? clockIn(endMs, zone) : `${dayIn(endMs, zone)}, ${clockIn(endMs, zone)}`);
  }
  return `${text} ${zoneLabel(zone, startMs)}`;
}

/**
 * An instant (or a range, with `end`) for people in two zones: the viewer's first, then the workshop's, each
 * labelled; once when the zones are the same. `day`: with the day (default true).
 */
export function formatDual(start, workshopZone, { end = null, day = true, viewer = viewerZone() } = {}) {
  const startMs = Date.parse(start);
  const endMs = end === null ? null : Date.parse(end);
  const mine = inZone(startMs, endMs, viewer, day);
  if (!workshopZone || sameZone(viewer, workshopZone, startMs)) return mine;
  return `${mine} · ${inZone(startMs, endMs, workshopZone, day)}`;
}

/** A `<time>` element showing formatDual (its datetime attribute is the UTC instant). */
export function timeElement(h, start, workshopZone, options = {}) {
  return h("time", { datetime: new Date(Date.parse(start)).toISOString(), class: "dual-time" }, formatDual(start, workshopZone, options));
}

/** "YYYY-MM-DDTHH:MM" (a datetime-local value) of the wall time in `zone` at the instant `iso`. */
export function inputValueIn(iso, zone) {
  const p = wallParts(Date.parse(iso), zone);
  const pad = (n) => String(n).padStart(2, "0");
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}

/**
 * The UTC instant (ISO) of a wall time "YYYY-MM-DDTHH:MM" in `zone`. Across a daylight-saving change the offset of
 * the instant itself is used; a wall time that does not exist (the hour skipped in spring) moves forward by the gap,
 * an ambiguous one (the hour repeated in autumn) is the earlier of the two.
 */
export function zonedToUtc(value, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(String(value).trim());
  if (!m) throw new RangeError(`not a date and time: ${value}`);
  const [year, month, day, hour, minute, second] = m.slice(1).map((x) => Number(x || 0));
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  // Two candidate offsets: the zone's just before and just after the wall time (they differ only near a change).
  const before = offsetMinutes(wall - 24 * 3600 * 1000, zone);
  const after = offsetMinutes(wall + 24 * 3600 * 1000, zone);
  const candidates = [...new Set([before, after, offsetMinutes(wall, zone)])]
    .map((off) => wall - off * 60000)
    .filter((ms) => wall - offsetMinutes(ms, zone) * 60000 === ms)
    .sort((a, b) => a - b);
  const ms = candidates.length ? candidates[0] : wall - before * 60000; // skipped hour: forward by the gap
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/** A label for a form field that takes a time in the workshop's zone: "Start (Kolkata time, GMT+5:30)". */
export function zonedFieldLabel(labelKey, zone, ms = Date.now()) {
  return t("time_field_in_zone", { label: t(labelKey), zone: zoneLabel(zone, ms) });
}
