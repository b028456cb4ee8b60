// The master list (from the dashboard push) and the master drawer: host
// figures over time and traffic per day.
import { el, enc, getJSON, pill, rangeButtons, empty } from "../dom.js";
import { t } from "../i18n.js";
import { bytes, rate, num, pct, duration, ago } from "../fmt.js";
import { Table, clientSource } from "../table.js";
import { draw } from "../chart.js";
import * as drawer from "../drawer.js";
import { shared } from "../state.js";
import { stat, notFound, dailyChart } from "./common.js";
import { RANGES } from "./tunnels.js";

const epRate = (e) => shared.endpointRates.get(e.id) || e.rate || { rx: 0, tx: 0 };
const memRatio = (e) => (e.info && e.info.memTotal ? e.info.memUsed / e.info.memTotal : NaN);

const columns = [
  { id: "name", label: "col.master", sort: "id", cls: "t-name", cell: (e) => el("span", "alias", e.id) },
  { id: "state", label: "col.status", sort: "state", cell: (e) => pill(e.state) },
  { id: "version", label: "col.version", sort: "version", cell: (e) => (e.info ? e.info.version : "–") },
  { id: "tunnels", label: "col.tunnels", sort: "tunnels", desc: true, cls: "r", cell: (e) => num(e.tunnelCounts.running) + " / " + num(e.tunnelCounts.total) },
  { id: "cpu", label: "col.cpu", sort: "cpu", desc: true, cls: "r", cell: (e) => (e.info ? pct(e.info.cpuPercent / 100) : "–") },
  { id: "mem", label: "col.memory", sort: "mem", desc: true, cls: "r", cell: (e) => (e.info && e.info.memTotal ? bytes(e.info.memUsed) + " / " + bytes(e.info.memTotal) : "–") },
  { id: "speed", label: "col.speed", sort: "rate", desc: true, cls: "r", cell: (e) => { const r = epRate(e); const f = document.createDocumentFragment(); f.append(el("span", "rx-c", "↓ " + rate(r.rx)), el("span", "tx-c", " ↑ " + rate(r.tx))); return f; } },
  { id: "total", label: "col.total", sort: "traffic", desc: true, cls: "r", cell: (e) => bytes(e.traffic.total) },
  { id: "last", label: "col.lastEvent", sort: "last", desc: true, cls: "r", cell: (e) => ago(e.lastEvent) },
];
const value = (e, k) => {
  switch (k) {
    case "id": case "state": return e[k];
    case "version": return e.info ? e.info.version : "";
    case "tunnels": return e.tunnelCounts.total;
    case "cpu": return e.info ? e.info.cpuPercent : -1;
    case "mem": return memRatio(e) || -1;
    case "rate": { const r = epRate(e); return r.rx + r.tx; }
    case "traffic": return e.traffic.total;
    case "last": return Date.parse(e.lastEvent) || 0;
  }
  return 0;
};

async function endpoints() {
  if (!shared.dash) shared.dash = await getJSON("/api/memory/dashboard");
  return shared.dash.endpoints || [];
}

export function makeTable() {
  return new Table({
    id: "masters", columns, rowKey: (e) => e.id, sort: "id", emptyKey: "masters.empty", searchKey: "masters.search",
    source: clientSource(endpoints, (e) => [e.id, e.state, e.info ? e.info.version + " " + e.info.name : ""].join(" "), value),
    onOpen: (e) => { location.hash = "#/master/" + enc(e.id); },
  });
}

let showTunnels = () => {};
export const onShowTunnels = (f) => { showTunnels = f; };

export function openMaster(id) {
  const ctl = new AbortController();
  const body = drawer.open(id, t("master.sub"), () => ctl.abort());
  body.append(empty(t("common.loading")));
  const base = "/api/memory/endpoints/" + enc(id);
  getJSON(base + "/realtime?limit=1", ctl.signal).then((e) => build(body, base, e, ctl.signal),
    (err) => { if (err.name !== "AbortError") notFound(body, err, "master.notFound", "master.notFoundText", { id }, "#/masters"); });
}

function build(body, base, e, signal) {
  drawer.setTitle(e.id, pill(e.state));
  const i = e.info;
  const r = epRate(e);
  const stats = el("div", "stats");
  stats.id = "dr-stats";
  stats.append(
    stat(t("col.version"), i ? i.version || "–" : "–"),
    stat(t("master.uptime"), i ? duration(i.uptimeSeconds) : "–"),
    stat(t("col.cpu"), i ? pct(i.cpuPercent / 100) : "–"),
    stat(t("col.memory"), i && i.memTotal ? pct(i.memUsed / i.memTotal) : "–"),
    stat(t("col.tunnels"), num(e.tunnelCounts.running) + " / " + num(e.tunnelCounts.total)),
    stat("↓ " + t("stat.rx"), rate(r.rx), "rx-c"),
    stat("↑ " + t("stat.tx"), rate(r.tx), "tx-c"),
    stat(t("stat.totalSeen"), bytes(e.traffic.total)),
  );
  const parts = [stats];
  if (e.lastError && e.state !== "up") parts.push(el("div", "ep-err", t("master.lastError", { err: e.lastError })));
  if (i) parts.push(el("p", "explain", [i.name, i.os, i.arch].filter(Boolean).join(" · ")));
  const show = el("button", "btn", t("master.showTunnels"));
  show.type = "button";
  show.addEventListener("click", () => showTunnels(e.id));
  parts.push(show);

  const charts = {};
  const box = (k) => { const b = el("div", "chart"); b.dataset.chart = k; charts[k] = b; return b; };
  const msg = el("div", "small-empty");
  msg.hidden = true;
  let range = "24h";
  const head = el("div", "panel-head");
  head.append(el("h3", null, t("master.host")), rangeButtons(RANGES, range, (v) => { range = v; system(base, range, charts, msg, signal); }));
  const host = el("section", "panel flat");
  const chartsBox = el("div");
  chartsBox.append(el("h4", null, t("chart.cpu")), box("cpu"), el("h4", null, t("chart.memory")), box("mem"),
    el("h4", null, t("chart.network")), box("net"), el("h4", null, t("chart.disk")), box("disk"));
  msg.chartsBox = chartsBox;
  host.append(head, msg, chartsBox);
  const daily = el("section", "panel flat");
  const dh = el("div", "panel-head");
  dh.append(el("h3", null, t("chart.daily30")));
  daily.append(dh, box("daily"));
  parts.push(host, daily);
  body.replaceChildren(...parts);
  system(base, range, charts, msg, signal);
  dailyChart(charts.daily, base, 30, signal);
}

async function system(base, range, charts, msg, signal) {
  let items = [];
  try {
    items = (await getJSON(base + "/system?range=" + enc(range), signal)).items || [];
    msg.hidden = true;
    msg.chartsBox.hidden = false;
  } catch (err) {
    if (err.name === "AbortError") return;
    msg.hidden = false;
    msg.chartsBox.hidden = true;
    msg.textContent = err.status === 404 ? t("hist.systemNotFound") : t("err.http", { msg: err.message });
  }
  const x = items.map((it) => Date.parse(it.time));
  const col = (k) => items.map((it) => (it[k] === undefined || it[k] === null ? null : Number(it[k])));
  const e = t("chart.noData");
  draw(charts.cpu, { type: "line", x, y: pct, yMax: 1, empty: e, title: t("chart.cpu"), series: [{ label: t("col.cpu"), cls: "s-a", values: col("cpu") }] });
  draw(charts.mem, { type: "line", x, y: bytes, ticks: "bytes", empty: e, title: t("chart.memory"), series: [
    { label: t("master.memUsed"), cls: "s-rx", values: col("memUsed") },
    { label: t("master.memTotal"), cls: "s-idle", values: col("memTotal") },
    { label: t("master.swapUsed"), cls: "s-b", values: col("swapUsed") }] });
  draw(charts.net, { type: "line", x, y: rate, ticks: "rate", empty: e, title: t("chart.network"), series: [
    { label: "↓ " + t("stat.rx"), cls: "s-rx", values: col("netRxRate") }, { label: "↑ " + t("stat.tx"), cls: "s-tx", values: col("netTxRate") }] });
  draw(charts.disk, { type: "line", x, y: rate, ticks: "rate", empty: e, title: t("chart.disk"), series: [
    { label: t("master.diskRead"), cls: "s-a", values: col("diskReadRate") }, { label: t("master.diskWrite"), cls: "s-b", values: col("diskWriteRate") }] });
}
