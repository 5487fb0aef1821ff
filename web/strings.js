// Every user-facing string of the browser client, in one place per language so that it can be translated.
//
// Structure (for everyone adding strings):
// - web/i18n/en.js is the base table: every key, in English. ADD NEW STRINGS THERE. A key missing from another
//   language falls back to English (tests/e2e/test_i18n.py fails when a key has no Russian: add it to
//   web/i18n/ru.js too).
// - web/i18n/<code>.js is one language: `export const name` (its own name, for the switch) and
//   `export default { key: "text", ... }`. Adding a language is adding that file and its code to LANGUAGES below.
// - Only the chosen language's file is loaded (a top-level await here, so that importers can call t() at once).
//   The choice: what the person picked with the switch (remembered in localStorage), else the browser's language,
//   else English.
//
// `t(key, params)` looks a string up and fills `{name}` placeholders. Static markup names its strings
// with data attributes (see `applyStrings`): data-i18n (text), data-i18n-label (aria-label),
// data-i18n-placeholder, data-i18n-title. Pages re-render their dynamic parts on the "roundtable:language"
// window event (see `onLanguageChange`).

import EN, { name as EN_NAME } from "./i18n/en.js";

/** Code -> the language's own name. The order is the switch's. */
export const LANGUAGES = { en: EN_NAME, ru: "Русский" };

const STORAGE_KEY = "roundtable.language";

/** Loaded tables by language code; English always. */
export const STRINGS = { en: EN };

let language = "en";

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage can be switched off
  }
}

/** The language to start in: the remembered choice, else the first of the browser's languages we have. */
export function preferredLanguage() {
  const saved = stored();
  if (saved && saved in LANGUAGES) return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const code = String(tag).toLowerCase().split("-")[0];
    if (code in LANGUAGES) return code;
  }
  return "en";
}

async function load(lang) {
  if (STRINGS[lang]) return true;
  try {
    const module = await import(`./i18n/${lang}.js`);
    STRINGS[lang] = module.default;
    return true;
  } catch (err) {
    console.warn("language not loaded", lang, err);
    return false;
  }
}

/** Switch language (and remember it): loads its table, refills the static markup, tells the page. */
export async function setLanguage(lang, { remember = true } = {}) {
  if (!(lang in LANGUAGES) || !(await load(lang))) return false;
  language = lang;
  if (remember) {
    try {
      localStorage.setItem(STORAGE_KEY, lang);
    } catch {
      // not remembered, still switched
    }
  }
  if (typeof document !== "undefined") {
    applyStrings();
    for (const select of document.querySelectorAll("select.lang-switch")) select.value = lang;
    window.dispatchEvent(new CustomEvent("roundtable:language", { detail: { language: lang } }));
  }
  return true;
}

/** Run `fn` after every language switch (to redraw what the page built with t()). */
export function onLanguageChange(fn) {
  window.addEventListener("roundtable:language", () => fn(language));
}

export function currentLanguage() {
  return language;
}

/** The locale for dates, times and names: the browser's own variant of the chosen language (en-GB), else its code. */
export function currentLocale() {
  for (const tag of navigator.languages || []) {
    if (String(tag).toLowerCase().split("-")[0] === language) return tag;
  }
  return language;
}

{
  const initial = preferredLanguage();
  if (initial !== "en" && (await load(initial))) language = initial;
}

export function t(key, params = {}) {
  const table = STRINGS[language] || STRINGS.en;
  let text = table[key] ?? STRINGS.en[key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Fill the static markup's strings: data-i18n, data-i18n-label, data-i18n-placeholder, data-i18n-title. */
export function applyStrings(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  document.documentElement.lang = language;
}

/** A <select class="lang-switch"> of every language (each in its own name) that switches and remembers. */
export function languageSwitch(attrs = {}) {
  const select = document.createElement("select");
  select.className = "lang-switch";
  select.setAttribute("aria-label", t("language_label"));
  select.dataset.i18nLabel = "language_label";
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.lang = code;
    option.textContent = name;
    select.append(option);
  }
  for (const [key, value] of Object.entries(attrs)) select.setAttribute(key, value);
  select.value = language;
  select.addEventListener("change", () => setLanguage(select.value));
  return select;
}

/** Put a language switch into every empty `[data-lang-switch]` slot of the page. */
export function mountLanguageSwitches(root = document) {
  for (const slot of root.querySelectorAll("[data-lang-switch]")) {
    if (!slot.querySelector("select.lang-switch")) slot.append(languageSwitch());
  }
}

/** "2:05", "1:02:05": a countdown for people. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatTime(iso) {
  try {
    return new Date(iso).toLocaleTimeString(currentLocale(), { hour: "2-digit", minute: "2-digit" });
  } catch {
    return "";
  }
}

/** A date and time in the chosen language ("1 Dec 2026, 14:05" / "1 дек. 2026 г., 14:05"). */
export function formatDateTime(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  try {
    return new Date(iso).toLocaleString(currentLocale(), options);
  } catch {
    return "";
  }
}

/** The country's name in the page language ("PT" -> "Portugal"), from the browser's own data. */
export function countryName(code) {
  try {
    return new Intl.DisplayNames([currentLocale()], { type: "region" }).of(code) || code;
  } catch {
    return code;
  }
}

export function roleName(role) {
  return t(`role_${role}`);
}
