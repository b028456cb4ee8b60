// Number, size, rate and time formats. Sizes are IEC everywhere (KiB,
// MiB...), as in the Grafana dashboards.
import { t, lang } from "./i18n.js";

export const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

// unitOf picks the IEC unit for n: [divisor, symbol].
export function unitOf(n) {
  let i = 0, d = 1;
  while (Math.abs(n) / d >= 1024 && i < UNITS.length - 1) { d *= 1024; i++; }
  return [d, UNITS[i]];
}

export function bytes(n) {
  n = Number(n) || 0;
  const [d, u] = unitOf(n);
  const v = n / d;
  return (d === 1 ? String(Math.round(v)) : v.toFixed(Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)) + " " + u;
}
export const rate = (n) => bytes(n) + "/s";
export const num = (n) => new Intl.NumberFormat(lang()).format(Number(n) || 0);
export const pct = (ratio) => (Number.isFinite(ratio) ? (ratio * 100).toFixed(ratio < 0.1 ? 1 : 0) + " %" : "–");
export const ms = (n) => (Number.isFinite(n) ? (Number.isInteger(n) || n >= 10 ? Math.round(n) : n.toFixed(1)) + " ms" : "–");

export function dateTime(v) {
  const d = new Date(v);
  if (isNaN(d)) return "–";
  return d.toLocaleString(lang(), { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}
export function date(v) {
  const d = new Date(v);
  if (isNaN(d)) return "–";
  return d.toLocaleDateString(lang(), { year: "numeric", month: "2-digit", day: "2-digit" });
}
// axisTime labels a time axis: clock times for short spans, dates beyond.
export function axisTime(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs <= 36 * 3600e3) return d.toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return d.toLocaleDateString(lang(), { month: "2-digit", day: "2-digit" });
}
export function ago(iso) {
  if (!iso) return t("time.never");
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return t("time.agoS", { n: s });
  if (s < 3600) return t("time.agoM", { n: Math.round(s / 60) });
  if (s < 86400) return t("time.agoH", { n: Math.round(s / 3600) });
  return t("time.agoD", { n: Math.round(s / 86400) });
}
export function duration(sec) {
  sec = Number(sec) || 0;
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  if (d > 0) return t("time.dh", { d, h });
  if (h > 0) return t("time.hm", { h, m });
  return t("time.m", { m });
}

// niceStep rounds x up to 1, 2, 2.5 or 5 times a power of ten.
export function niceStep(x) {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

// RateWindow turns monotonic byte totals into rates over a sliding window
// of several samples, so a rate does not flicker between 0 and the real
// value as single updates land in one poll or the next. A total that goes
// down (a tunnel re-created) starts the window again.
export class RateWindow {
  constructor(windowMs = 15000, minMs = 1500) {
    this.windowMs = windowMs;
    this.minMs = minMs;
    this.series = new Map();
  }
  // add records totals at time tMs and returns {rx, tx} in bytes/s, or
  // null while the window is too short to say.
  add(key, tMs, rx, tx) {
    let s = this.series.get(key);
    if (!s) { s = []; this.series.set(key, s); }
    const last = s[s.length - 1];
    if (last && (rx < last.rx || tx < last.tx)) s.length = 0;
    if (!last || tMs > last.t) s.push({ t: tMs, rx, tx });
    s.seen = Date.now();
    while (s.length > 2 && s[s.length - 1].t - s[1].t >= this.windowMs) s.shift();
    return this.get(key);
  }
  get(key) {
    const s = this.series.get(key);
    if (!s || s.length < 2) return null;
    const a = s[0], b = s[s.length - 1], dt = (b.t - a.t) / 1000;
    if (dt * 1000 < this.minMs) return null;
    return { rx: (b.rx - a.rx) / dt, tx: (b.tx - a.tx) / dt };
  }
  // prune forgets keys not seen for a minute.
  prune() {
    const old = Date.now() - 60000;
    for (const [k, s] of this.series) if (s.seen < old) this.series.delete(k);
  }
}
