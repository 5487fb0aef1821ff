// Small DOM helpers shared by the pages. No framework: the pages are small enough to update by hand.

import { t } from "./strings.js";

/**
 * Build an element: h("button", {class: "x", onclick: fn, "aria-label": "..."}, "text", child, ...).
 * Attributes starting with "on" become listeners; `dataset` takes an object; false/null attributes are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "class") {
      el.className = value;
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** Empty `el`, then append `children` as h() does (nulls skipped, arrays flattened). */
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let flagSupport = null;

/** Whether the platform draws regional-indicator pairs as flags (many Linux and Windows setups do not). */
export function supportsFlagEmoji() {
  if (flagSupport !== null) return flagSupport;
  try {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 16;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.textBaseline = "top";
    ctx.font = "14px sans-serif";
    ctx.fillText("\u{1F1EB}\u{1F1F7}", 0, 0); // France: blue, white, red when drawn as a flag
    const data = ctx.getImageData(0, 0, 16, 16).data;
    flagSupport = false;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 0 && (Math.abs(r - g) > 40 || Math.abs(g - b) > 40)) {
        flagSupport = true;
        break;
      }
    }
  } catch {
    flagSupport = false;
  }
  return flagSupport;
}

/** "PT" -> the flag emoji, or "" when the code is not two letters. */
export function flagEmoji(code) {
  if (!/^[A-Za-z]{2}$/.test(code || "")) return "";
  const base = 0x1f1e6;
  return String.fromCodePoint(...[...code.toUpperCase()].map((c) => base + c.charCodeAt(0) - 65));
}

/** A country badge: the flag where the platform can draw it, and always the ISO code. */
export function countryBadge(code, title) {
  const flag = supportsFlagEmoji() ? flagEmoji(code) : "";
  return h(
    "span",
    { class: "country", title: title || code },
    flag ? h("span", { class: "flag", "aria-hidden": "true" }, flag) : null,
    h("span", { class: "country-code" }, code),
  );
}

/** Announce a short message in the page's live region and as a toast that fades on its own or is dismissed. */
export function toast(text, { kind = "info", timeoutMs = 6000 } = {}) {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  if (kind === "error") console.warn(text);
  const label = t("dismiss");
  const item = h("div", { class: `toast toast-${kind}` }, h("span", { class: "toast-text" }, text));
  const close = h("button", { type: "button", class: "toast-close icon-button", "aria-label": label, title: label, onclick: () => item.remove() },
    document.getElementById("i-close") ? icon("i-close") : h("span", { "aria-hidden": "true" }, "×"),
  );
  item.append(close);
  region.append(item);
  setTimeout(() => item.remove(), timeoutMs);
  return item;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an SVG element (h() makes HTML ones): svg("rect", {x: 1, y: 2, width: 3, height: 4}). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

/**
 * An icon from the page's inline sprite (<symbol id="i-..."> in join.html): decorative, so hidden from
 * assistive technology; the button it sits in keeps a visible or an aria-label.
 */
export function icon(id, className = "icon") {
  return svg("svg", { class: className, "aria-hidden": "true", focusable: "false" }, svg("use", { href: `#${id}` }));
}

/** Decode a JWT's payload without checking it (the server checks; the page only wants ids). */
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1];
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
