// DOM helpers. Everything a master sends (aliases, tags, sids, URLs, log
// lines) reaches the page only as text (textContent, createTextNode) or as
// an attribute set with setAttribute, never through an HTML parser; the
// server's Content-Security-Policy allows no inline script either.
import { t } from "./i18n.js";

const SVGNS = "http://www.w3.org/2000/svg";
export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
export function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  return e;
}
export function setText(id, text) {
  const e = $(id);
  if (e && e.textContent !== text) e.textContent = text;
}
export function link(href, text, cls) {
  const a = el("a", cls, text);
  a.setAttribute("href", href);
  return a;
}

// Known states get a class and a translated name; anything else a master
// says is shown as it is, as text, in a neutral pill.
const STATES = /^(running|stopped|error|up|down|connecting|auth_failed|deleted|firing|pending|inactive)$/;
export function pill(status) {
  const s = String(status || "unknown");
  const known = STATES.test(s);
  const p = el("span", "pill" + (known ? " " + s : ""), known ? t("state." + s) : s);
  return p;
}

// empty is the message shown where a list or chart has nothing.
export function empty(text, cls) {
  return el("div", cls || "small-empty", text);
}

// HTTPError carries the status of a failed request.
export class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

export async function getJSON(url, signal) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", signal });
  if (!r.ok) {
    let msg = "HTTP " + r.status;
    try {
      const b = await r.json();
      msg = b.error || msg;
    } catch (_) { /* keep the status */ }
    throw new HTTPError(r.status, msg);
  }
  return r.json();
}

// problem words a failed request for a user: a missing route or object
// (404), or the server's own message.
export function problem(err, notFoundKey) {
  if (err && err.name === "AbortError") return "";
  if (err && err.status === 404) return t(notFoundKey || "err.notFound");
  if (err && err.status) return t("err.http", { msg: err.message });
  return t("err.network");
}

// rangeButtons is a group of toggle buttons; onPick gets the value.
export function rangeButtons(values, current, onPick, labelKey) {
  const g = el("div", "ranges");
  g.setAttribute("role", "group");
  g.setAttribute("aria-label", t(labelKey || "range.label"));
  for (const v of values) {
    const b = el("button", v === current ? "on" : "", t("range." + v));
    b.type = "button";
    b.dataset.range = v;
    b.setAttribute("aria-pressed", String(v === current));
    b.addEventListener("click", () => {
      for (const o of g.children) { o.classList.toggle("on", o === b); o.setAttribute("aria-pressed", String(o === b)); }
      onPick(v);
    });
    g.append(b);
  }
  return g;
}
