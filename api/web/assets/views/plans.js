// Plans: this billing cycle's use against the quota, the forecast at
// cycle end, the day the quota runs out at the current pace, past cycles,
// and the CSV for the bill.
import { el, enc, getJSON, svg, link, empty } from "../dom.js";
import { t, lang } from "../i18n.js";
import { bytes, pct, date, dateTime } from "../fmt.js";
import { Table, clientSource } from "../table.js";
import { draw } from "../chart.js";
import * as drawer from "../drawer.js";
import { stat, notFound } from "./common.js";

// useBar is the cycle's use against the quota, with the forecast as a
// marker. Widths are SVG attributes (the CSP allows no inline styles).
export function useBar(used, quota, forecast) {
  const box = el("div", "usebar");
  const s = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img" });
  s.setAttribute("aria-label", quota ? t("plan.useOf", { used: bytes(used), quota: bytes(quota) }) : bytes(used));
  const top = Math.max(quota || 0, forecast || 0, used || 0, 1);
  const w = (v) => Math.max(0, Math.min(100, (v / top) * 100));
  s.append(svg("rect", { x: 0, y: 0, width: 100, height: 10, class: "track" }));
  const ratio = quota ? used / quota : 0;
  s.append(svg("rect", { x: 0, y: 0, width: w(used), height: 10, class: "fill " + (ratio >= 1 ? "bad" : ratio >= 0.8 ? "warn" : "ok") }));
  if (quota) s.append(svg("rect", { x: w(quota) - 0.4, y: 0, width: 0.8, height: 10, class: "quota" }));
  if (forecast) s.append(svg("rect", { x: Math.min(w(forecast), 99.2), y: 0, width: 0.8, height: 10, class: "forecast" }));
  box.append(s);
  return box;
}

const matchText = (m) => (m ? Object.entries(m).filter(([, v]) => v).map(([k, v]) => t("plan.match." + k) + " " + v).join(" · ") : "");
// Cycle edges and run-out days are dates in the plan's zone.
const inZone = (v, tz) => {
  const d = new Date(v);
  if (isNaN(d)) return "–";
  try { return d.toLocaleDateString(lang(), { timeZone: tz || undefined, year: "numeric", month: "2-digit", day: "2-digit" }); } catch (_) { return date(v); }
};
const cycleText = (c, tz) => (c ? inZone(c.start, tz) + " – " + inZone(c.end, tz) : "–");

function useCell(p) {
  const f = document.createDocumentFragment();
  const c = p.cycle || {};
  f.append(useBar(c.usedBytes || 0, p.quotaBytes, p.forecast ? p.forecast.bytes : 0),
    el("span", "use-text", bytes(c.usedBytes) + (p.quotaBytes ? " / " + bytes(p.quotaBytes) + " · " + pct(c.usedRatio) : "")));
  return f;
}
function outCell(p) {
  if (!p.matched) return el("span", "warn-c", t("plan.unmatched"));
  if (p.quotaExhausted) return el("span", "bad-c", t("plan.exhausted"));
  if (p.quotaRunsOutAt) return el("span", "warn-c", inZone(p.quotaRunsOutAt, p.timezone));
  return el("span", "muted", p.quotaBytes ? t("plan.lasts") : "–");
}

const columns = [
  { id: "name", label: "col.plan", sort: "name", cls: "t-name", cell: (p) => { const f = document.createDocumentFragment(); f.append(el("span", "alias", p.name), el("span", "id", matchText(p.match))); return f; } },
  { id: "cycle", label: "col.cycle", sort: "cycle", cell: (p) => cycleText(p.cycle, p.timezone) },
  { id: "use", label: "col.use", sort: "use", desc: true, cls: "c-use", cell: useCell },
  { id: "forecast", label: "col.forecast", sort: "forecast", desc: true, cls: "r", cell: (p) => (p.forecast ? bytes(p.forecast.bytes) : "–") },
  { id: "out", label: "col.runsOut", sort: "out", cls: "r", cell: outCell },
  { id: "csv", label: "col.export", cls: "r", cell: (p) => link("/api/memory/plans/" + enc(p.name) + "?format=csv", "CSV") },
];
const value = (p, k) => {
  const c = p.cycle || {};
  switch (k) {
    case "name": return p.name;
    case "cycle": return Date.parse(c.end) || 0;
    case "use": return Number.isFinite(c.usedRatio) ? c.usedRatio : c.usedBytes || 0;
    case "forecast": return p.forecast ? p.forecast.bytes : 0;
    case "out": return p.quotaExhausted ? 0 : Date.parse(p.quotaRunsOutAt) || Infinity;
  }
  return 0;
};

let summary = null; // the list answer's unmatched count, shown above the table
async function list() {
  const body = await getJSON("/api/memory/plans");
  summary = body;
  return body.items || [];
}
export const unmatched = () => (summary ? summary.unmatched || 0 : 0);

export function makeTable() {
  return new Table({
    id: "plans", columns, rowKey: (p) => p.name, sort: "name", emptyKey: "plans.empty", searchKey: "plans.search", notFoundKey: "plans.missing",
    source: clientSource(list, (p) => p.name + " " + matchText(p.match), value),
    onOpen: (p) => { location.hash = "#/plan/" + enc(p.name); },
  });
}

export function openPlan(name) {
  const ctl = new AbortController();
  const body = drawer.open(name, t("plan.sub"), () => ctl.abort());
  body.append(empty(t("common.loading")));
  const url = "/api/memory/plans/" + enc(name);
  getJSON(url, ctl.signal).then((p) => build(body, url, p),
    (err) => { if (err.name !== "AbortError") notFound(body, err, "plan.notFound", "plan.notFoundText", { name }, "#/plans"); });
}

function build(body, url, p) {
  const c = p.cycle || {};
  const parts = [];
  if (!p.matched) parts.push(el("div", "note", t("plan.unmatchedText")));
  if (p.error) parts.push(el("div", "note", p.error));
  const stats = el("div", "stats");
  stats.id = "dr-stats";
  stats.append(
    stat(t("plan.used"), bytes(c.usedBytes)),
    stat(t("plan.quota"), p.quotaBytes ? bytes(p.quotaBytes) : t("plan.noQuota")),
    stat(t("col.forecast"), p.forecast ? bytes(p.forecast.bytes) : "–"),
    stat(t("col.runsOut"), p.quotaExhausted ? t("plan.exhausted") : p.quotaRunsOutAt ? inZone(p.quotaRunsOutAt, p.timezone) : "–"),
  );
  parts.push(stats);
  const use = el("div", "plan-use");
  use.append(useBar(c.usedBytes || 0, p.quotaBytes, p.forecast ? p.forecast.bytes : 0));
  const legend = el("div", "legend");
  for (const [cls, key] of [["fill", "plan.used"], ["quota", "plan.quota"], ["forecast", "col.forecast"]]) {
    const it = el("span", "item");
    it.append(el("span", "sw " + cls), document.createTextNode(t(key)));
    legend.append(it);
  }
  use.append(legend);
  parts.push(use);
  const kv = el("div", "kv");
  const rows = [
    [t("plan.matches"), matchText(p.match) || "–"],
    [t("col.cycle"), cycleText(c, p.timezone) + " (" + p.timezone + ")"],
    [t("plan.count"), t("plan.count." + p.count)],
    [t("plan.rxtx"), "↓ " + bytes(c.rxBytes) + " · ↑ " + bytes(c.txBytes)],
  ];
  if (p.forecast) rows.push([t("plan.pace"), t("plan.paceText", { perDay: bytes(p.forecast.bytesPerDay), days: p.forecast.paceDays, method: p.forecast.method })]);
  if (p.dataFrom) rows.push([t("plan.dataFrom"), dateTime(p.dataFrom)]);
  for (const [k, v] of rows) kv.append(el("div", "k", k), el("div", "v", v));
  parts.push(kv);
  const csv = link(url + "?format=csv", t("plan.csv"), "btn");
  csv.setAttribute("download", "");
  parts.push(csv);

  const past = p.pastCycles || [];
  const chart = el("div", "chart");
  chart.dataset.chart = "cycles";
  const table = el("table");
  const head = el("tr");
  for (const k of ["col.cycle", "plan.used", "plan.quota", "col.use"]) head.append(el("th", k === "col.cycle" ? "" : "r", t(k)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const pc of past.slice().reverse()) {
    const r = el("tr");
    r.append(el("td", null, cycleText(pc, p.timezone) + (pc.retained === false ? " · " + t("plan.incomplete") : "")), el("td", "r", bytes(pc.usedBytes)),
      el("td", "r", pc.quotaBytes ? bytes(pc.quotaBytes) : "–"), el("td", "r", pct(pc.usedRatio)));
    tbody.append(r);
  }
  table.append(thead, tbody);
  const wrap = el("div", "table-wrap");
  wrap.append(table);
  parts.push(drawer.section(t("plan.past"), chart, past.length ? wrap : empty(t("plan.noPast"))));
  body.replaceChildren(...parts);
  const all = [...past, { start: c.start, usedBytes: c.usedBytes, quotaBytes: p.quotaBytes }];
  draw(chart, {
    type: "bar", x: all.map((pc) => Date.parse(pc.start)), y: bytes, ticks: "bytes", empty: t("chart.noData"), title: t("plan.past"),
    xLabel: (ms) => new Date(ms).toLocaleDateString(lang(), { timeZone: p.timezone || undefined, year: "numeric", month: "2-digit" }),
    xTip: (ms) => inZone(ms, p.timezone),
    series: [{ label: t("plan.used"), cls: "s-rx", values: all.map((pc) => pc.usedBytes || 0) }, { label: t("plan.quota"), cls: "s-idle", values: all.map((pc) => pc.quotaBytes || null) }],
  });
}
