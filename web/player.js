// The player page (/recordings/<id>#<join token>): the composed video of one recording with its chapters, the
// per-track files, and for moderators and the organiser the consent record and the download log (docs/recordings.md).
//
// Who is asking: the join token in the URL fragment (it never reaches the server in a request line), else the admin
// token the organiser page keeps in this tab's sessionStorage. The server decides what may be seen: a participant
// without a grant gets 404 and the page says so, showing nothing of the recording.
//
// The video plays the composed file's signed URL (ten minutes; the browser seeks with Range requests). When the
// URL has expired, the page fetches a fresh one and goes on where it was. While the composition is queued or
// running, the page polls and shows its progress.

import { Api, ApiError } from "./api.js";
import { $, clear, h, jwtClaims } from "./dom.js";
import { languageName, storeChoice, storedChoice } from "./interpretation.js";
import { formatBytes, roomLabel } from "./recordings.js";
import { applyStrings, currentLocale, formatDateTime, formatDuration, mountLanguageSwitches, onLanguageChange, t } from "./strings.js";

const ADMIN_TOKEN_KEY = "roundtable.admin_token";
const POLL_MS = 3000;
const NONE_POLLS = 20;
const MODERATOR_ROLES = new Set(["organiser", "moderator"]);

const state = {
  id: null,
  api: null,
  moderator: false,
  recording: null,
  workshop: null,
  chapters: [],
  downloads: null,
  names: new Map(), // participant id -> display name
  poll: null,
  videoUrl: null,
  renewing: false,
  nonePolls: 0,
  language: undefined, // the interpretation channel heard: null the original; undefined until the workshop is known
};

async function main() {
  applyStrings();
  mountLanguageSwitches();
  onLanguageChange(() => render());
  const match = location.pathname.match(/^\/recordings\/([0-9a-fA-F-]{36})\/?$/);
  const token = decodeURIComponent(location.hash.replace(/^#/, "")).trim() || sessionStorage.getItem(ADMIN_TOKEN_KEY) || "";
  if (!match) return refuse(t("player_not_found"));
  if (!token) return refuse(t("player_no_token"));
  state.id = match[1].toLowerCase();
  state.api = new Api(token);
  const claims = jwtClaims(token);
  // The admin token is no JWT; a join token names its role. The server checks either way.
  state.moderator = !claims || MODERATOR_ROLES.has(claims.role);
  const video = $("#player-video");
  video.addEventListener("error", () => renewVideoUrl());
  try {
    await load();
  } catch (err) {
    return refuse(refusal(err));
  }
  $("#player-loading").hidden = true;
  $("#player-main").hidden = false;
  render();
}

function refusal(err) {
  if (err instanceof ApiError && err.status === 404) return t("player_refused");
  if (err instanceof ApiError && err.status === 401) return t("player_bad_token");
  if (err instanceof ApiError && err.code === "banned") return t("end_banned");
  return t("player_error", { message: err.message });
}

function refuse(message) {
  stopPolling();
  $("#player-loading").hidden = true;
  $("#player-main").hidden = true;
  $("#player-refused").hidden = false;
  $("#player-refused-message").textContent = message;
  document.body.dataset.refused = "true";
}

async function load() {
  const api = state.api;
  const recording = await api.get(`/recordings/${state.id}`);
  const [workshop, chapters, downloads, roster] = await Promise.all([
    api.get(`/workshops/${recording.workshop_id}`).catch(() => null),
    api.get(`/recordings/${state.id}/chapters`).then((c) => c.chapters),
    state.moderator ? api.get(`/recordings/${state.id}/downloads`).then((d) => d.items).catch(() => null) : Promise.resolve(null),
    state.moderator ? api.all(`/workshops/${recording.workshop_id}/participants`).catch(() => []) : Promise.resolve([]),
  ]);
  state.recording = recording;
  state.workshop = workshop;
  state.chapters = chapters;
  state.downloads = downloads;
  for (const p of roster) state.names.set(p.id, p.display_name);
  for (const a of recording.consent ? recording.consent.answers : []) state.names.set(a.participant_id, a.display_name);
  for (const c of chapters) if (c.participant_id && c.name) state.names.set(c.participant_id, c.name);
  schedulePoll();
}

function composition() {
  return (state.recording && state.recording.composition) || { state: "none", progress: 0, error: null, files: [] };
}

/** The interpretation channels the composed video has a version for (docs/interpretation.md). */
function channels() {
  return [...new Set((composition().files || []).map((f) => f.language).filter(Boolean))].sort();
}

/** The file the <video> plays: the chosen channel's version (else the original), WebM where the browser takes it. */
function playable() {
  const all = composition().files || [];
  const language = state.language && channels().includes(state.language) ? state.language : null;
  const files = all.filter((f) => (f.language || null) === language);
  const probe = document.createElement("video");
  const type = (f) => (f.format === "mp4" ? "video/mp4" : "video/webm");
  return files.find((f) => f.format === "webm" && probe.canPlayType(type(f))) || files.find((f) => probe.canPlayType(type(f))) || null;
}

function waiting() {
  const rec = state.recording;
  const comp = composition();
  if (!rec || ["deleted", "failed"].includes(rec.state)) return false;
  // "none" once ready: not queued yet, or nothing to compose (no track): asked about for a minute, then left.
  const young = state.nonePolls < NONE_POLLS;
  return ["recording", "starting", "stopping"].includes(rec.state) || ["queued", "running"].includes(comp.state) || (comp.state === "none" && rec.state === "ready" && young);
}

function schedulePoll() {
  stopPolling();
  if (!waiting()) return;
  state.poll = setTimeout(async () => {
    state.poll = null;
    if (composition().state === "none") state.nonePolls += 1;
    try {
      state.recording = await state.api.get(`/recordings/${state.id}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return refuse(t("player_refused"));
    }
    render();
    schedulePoll();
  }, POLL_MS);
}

function stopPolling() {
  if (state.poll) clearTimeout(state.poll);
  state.poll = null;
}

/** A signed URL lasts ten minutes: on a load error, ask for a fresh one and go on from the same moment. */
async function renewVideoUrl() {
  if (state.renewing || !state.videoUrl) return;
  state.renewing = true;
  const video = $("#player-video");
  const at = video.currentTime;
  const wasPlaying = !video.paused;
  try {
    state.recording = await state.api.get(`/recordings/${state.id}`);
    const file = playable();
    if (file && file.download_url !== state.videoUrl) {
      state.videoUrl = file.download_url;
      video.src = file.download_url;
      video.currentTime = at;
      if (wasPlaying) video.play().catch(() => {});
    }
  } catch {
    // the message below stays; the files table still works
  } finally {
    setTimeout(() => (state.renewing = false), 30_000);
  }
}

// Rendering ----------------------------------------------------------------------------------------

function nameOf(pid) {
  return state.names.get(pid) || t("player_someone");
}

function render() {
  const rec = state.recording;
  if (!rec) return;
  const title = t("player_heading", { room: roomLabel(state.workshop, rec.room_id, rec.room_name) });
  $("#player-title").textContent = title;
  document.title = `${title} · ${t("app_name")}`;
  $("#player-when").textContent = [state.workshop ? state.workshop.title : null, formatDateTime(rec.started_at), rec.stopped_at ? formatDuration((Date.parse(rec.stopped_at) - Date.parse(rec.started_at)) / 1000) : t(`rec_state_${rec.state}`)]
    .filter(Boolean)
    .join(" · ");
  renderParts();
  renderVideo();
  renderChapters();
  renderFiles();
  renderConsent();
  renderDownloads();
}

/** A recording ended by a failover or a drain and its continuation (docs/recordings.md): each links the other. */
function renderParts() {
  const rec = state.recording;
  const box = $("#player-parts");
  const hash = location.hash; // the same token: the other part is as visible as this one
  const part = (id, key) => h("span", {}, t(key), " ", h("a", { href: `/recordings/${id}${hash}`, "data-part": key }, id.slice(0, 8)));
  const parts = [rec.continues ? part(rec.continues, "player_continues") : null, rec.continued_by ? part(rec.continued_by, "player_continued_in") : null].filter(Boolean);
  clear(box, ...parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
  box.hidden = parts.length === 0;
}

function renderVideo() {
  renderLanguages(); // first: the remembered channel decides which file plays
  const rec = state.recording;
  const comp = composition();
  const video = $("#player-video");
  const file = comp.state === "ready" ? playable() : null;
  const box = $("#player-composition");
  const message = $("#player-composition-message");
  const bar = $("#player-progress");
  video.hidden = !file;
  box.hidden = !!file;
  box.dataset.state = comp.state;
  bar.hidden = true;
  if (file) {
    if (state.videoUrl === null) {
      state.videoUrl = file.download_url;
      video.src = file.download_url;
    }
    return;
  }
  if (rec.state === "deleted") message.textContent = t("player_deleted");
  else if (["starting", "recording", "stopping"].includes(rec.state)) message.textContent = t("player_still_recording");
  else if (rec.state === "failed") message.textContent = t("player_recording_failed", { reason: rec.failure_reason || "" });
  else if (comp.state === "failed") message.textContent = t("player_composition_failed", { reason: comp.error || "" });
  else if (comp.state === "running" || comp.state === "queued") {
    const percent = Math.round((comp.progress || 0) * 100);
    message.textContent = comp.state === "queued" ? t("player_composition_queued") : t("player_composition_running", { percent });
    bar.hidden = false;
    bar.value = comp.progress || 0;
    bar.setAttribute("aria-label", t("player_progress_label", { percent }));
  } else if (comp.state === "ready") message.textContent = t("player_no_playable");
  else message.textContent = t("player_composition_none");
}

function chapterLabel(c) {
  const key = `chapter_${c.kind}`;
  if (c.kind.startsWith("breakouts_")) return c.name ? t(`${key}_named`, { plan: c.name }) : t(key);
  return t(key, { name: c.participant_id ? nameOf(c.participant_id) : c.name || "" });
}

function renderChapters() {
  const list = clear($("#chapters"));
  const video = $("#player-video");
  const playing = !video.hidden;
  for (const c of state.chapters) {
    list.append(
      h(
        "li",
        { dataset: { kind: c.kind, at: String(c.at_s) } },
        h(
          "button",
          {
            type: "button",
            class: "chapter ghost",
            disabled: !playing,
            onclick: () => {
              video.currentTime = c.at_s;
              video.play().catch(() => {});
            },
          },
          h("span", { class: "chapter-at" }, formatDuration(c.at_s)),
          " ",
          h("span", { class: "chapter-label" }, chapterLabel(c)),
        ),
      ),
    );
  }
  if (!state.chapters.length) list.append(h("li", { class: "hint" }, t("player_no_chapters")));
}

function link(url, text, label) {
  return url ? h("a", { href: url, download: "", "aria-label": label, class: "download" }, text) : h("span", { class: "hint" }, t("player_file_gone"));
}

/** "Language you hear": the original or a channel's version, remembered like the room's choice. */
function renderLanguages() {
  const langs = channels();
  let field = $("#player-language-field");
  if (!langs.length || composition().state !== "ready") {
    if (field) field.hidden = true;
    return;
  }
  if (state.language === undefined) state.language = state.workshop ? storedChoice(state.workshop.id) ?? null : null;
  if (!field) {
    const select = h("select", { id: "player-language", onchange: () => chooseLanguage(select.value || null) });
    field = h("p", { id: "player-language-field", class: "player-language" }, h("label", { for: "player-language" }, t("player_language")), " ", select);
    $("#player-video").after(field);
  }
  field.hidden = false;
  const select = $("#player-language");
  const locale = currentLocale();
  clear(
    select,
    h("option", { value: "" }, t("player_language_original")),
    langs.map((code) => h("option", { value: code }, languageName(code, locale))),
  );
  select.value = state.language && langs.includes(state.language) ? state.language : "";
}

function chooseLanguage(language) {
  state.language = language;
  if (state.workshop) storeChoice(state.workshop.id, language);
  const file = playable();
  const video = $("#player-video");
  if (!file || file.download_url === state.videoUrl) return;
  const at = video.currentTime;
  const wasPlaying = !video.paused;
  state.videoUrl = file.download_url;
  video.src = file.download_url;
  video.currentTime = at; // the same picture: the same moment, in the other language
  if (wasPlaying) video.play().catch(() => {});
}

function renderFiles() {
  const rec = state.recording;
  const comp = composition();
  const rows = [];
  for (const f of comp.files || []) {
    const format = String(f.format).toUpperCase();
    const what = f.language
      ? t("player_composed_file_language", { format, language: languageName(f.language, currentLocale()) })
      : t("player_composed_file", { format });
    rows.push(
      h(
        "tr",
        { class: "composed-file", dataset: { format: f.format } },
        h("td", {}, h("strong", {}, what)),
        h("td", {}, f.codec || ""),
        h("td", {}, f.duration_s != null ? formatDuration(f.duration_s) : ""),
        h("td", { class: "bytes" }, formatBytes(f.bytes)),
        h("td", { class: "sha", title: f.sha256 || "" }, (f.sha256 || "").slice(0, 12)),
        h("td", {}, link(f.download_url, t("player_download"), t("player_download_label", { what }))),
      ),
    );
  }
  for (const tr of rec.tracks || []) {
    const kind = tr.source === "screen" ? t("player_track_screen") : tr.kind === "audio" ? t("player_track_audio") : t("player_track_video");
    const what = `${nameOf(tr.participant_id)} · ${kind}`;
    rows.push(
      h(
        "tr",
        { class: "track-file", dataset: { trackId: tr.id } },
        h("td", {}, what, tr.state === "partial" ? h("span", { class: "tag warn" }, t("player_partial")) : null),
        h("td", {}, tr.codec),
        h("td", {}, tr.duration_s != null ? formatDuration(tr.duration_s) : ""),
        h("td", { class: "bytes" }, formatBytes(tr.bytes)),
        h("td", { class: "sha", title: tr.sha256 || "" }, (tr.sha256 || "").slice(0, 12)),
        h("td", {}, link(tr.download_url, t("player_download"), t("player_download_label", { what }))),
      ),
    );
  }
  clear(
    $("#files"),
    rows.length
      ? h(
          "table",
          { class: "data-table", id: "file-table" },
          h("thead", {}, h("tr", {}, [t("player_file"), t("player_codec"), t("player_duration"), t("player_size"), "SHA-256", ""].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, rows),
        )
      : h("p", { class: "hint" }, t("player_no_files")),
  );
}

function renderConsent() {
  const section = $("#player-consent");
  const consent = state.recording.consent;
  section.hidden = !state.moderator || !consent;
  if (section.hidden) return;
  clear(
    $("#consent"),
    h("p", {}, t(`consent_${consent.mode}`)),
    consent.answers.length
      ? h(
          "table",
          { class: "data-table", id: "consent-table" },
          h("thead", {}, h("tr", {}, [t("admin_name"), t("player_answer"), t("player_when")].map((x) => h("th", { scope: "col" }, x)))),
          h(
            "tbody",
            {},
            consent.answers.map((a) =>
              h("tr", { dataset: { participantId: a.participant_id } }, h("td", {}, a.display_name), h("td", {}, a.granted ? t("player_granted") : t("player_declined")), h("td", {}, formatDateTime(a.at, { dateStyle: "short", timeStyle: "medium" }))),
            ),
          ),
        )
      : h("p", { class: "hint" }, t("player_no_answers")),
    consent.ledger.length
      ? h(
          "details",
          {},
          h("summary", {}, t("player_ledger", { n: consent.ledger.length })),
          h("ol", { class: "ledger" }, consent.ledger.map((e) => h("li", {}, `${formatDateTime(e.at, { dateStyle: "short", timeStyle: "medium" })} · ${nameOf(e.participant_id)} · ${e.granted ? t("player_granted") : t("player_declined")}`))),
        )
      : null,
  );
}

function renderDownloads() {
  const section = $("#player-downloads");
  section.hidden = !state.moderator || state.downloads === null;
  if (section.hidden) return;
  const tracks = new Map((state.recording.tracks || []).map((tr) => [tr.id, tr]));
  const what = (id) => {
    const tr = tracks.get(id);
    return tr ? `${nameOf(tr.participant_id)} · ${tr.kind === "audio" ? t("player_track_audio") : t("player_track_video")}` : t("player_composed_file", { format: "" }).trim();
  };
  const who = (principal) => (principal === "admin" ? t("player_admin") : nameOf(principal));
  clear(
    $("#downloads"),
    state.downloads.length
      ? h(
          "table",
          { class: "data-table", id: "download-table" },
          h("thead", {}, h("tr", {}, [t("player_when"), t("player_who"), t("player_file"), t("player_via"), t("player_range"), t("player_status")].map((x) => h("th", { scope: "col" }, x)))),
          h(
            "tbody",
            {},
            state.downloads.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, formatDateTime(d.at, { dateStyle: "short", timeStyle: "medium" })),
                h("td", {}, who(d.principal)),
                h("td", {}, what(d.track_id)),
                h("td", {}, d.via === "bearer" ? t("player_via_bearer") : t("player_via_signed")),
                h("td", { class: "range" }, d.range_header || t("player_whole_file")),
                h("td", {}, String(d.status)),
              ),
            ),
          ),
        )
      : h("p", { class: "hint" }, t("player_no_downloads")),
    h("button", { type: "button", class: "small", id: "downloads-refresh", onclick: () => refreshDownloads() }, t("att_refresh")),
  );
}

async function refreshDownloads() {
  try {
    state.downloads = (await state.api.get(`/recordings/${state.id}/downloads`)).items;
  } catch {
    return;
  }
  renderDownloads();
}

// Test and debugging hook: what the page shows.
window.roundtable = {
  state: () => ({ recording: state.recording, chapters: state.chapters, moderator: state.moderator, videoUrl: state.videoUrl }),
};

main().catch((err) => refuse(t("player_error", { message: err.message })));
