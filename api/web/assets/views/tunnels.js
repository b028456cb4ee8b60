// The tunnel list and the tunnel drawer: live figures over SSE, history
// charts from the TSDB, today's and this month's traffic, and the log.
import { $, el, enc, getJSON, pill, problem, link, rangeButtons, empty } from "../dom.js";
import { t } from "../i18n.js";
import { bytes, rate, num, ms, ago, dateTime, RateWindow } from "../fmt.js";
import { Table, clientSource } from "../table.js";
import { draw } from "../chart.js";
import * as drawer from "../drawer.js";
import { shared, tunnelRate, pointTime, localDay } from "../state.js";

const MAX_LOG_LINES = 500;
export const RANGES = ["1h", "6h", "24h", "7d", "30d"];

function nameCell(tn) {
  const f = document.createDocumentFragment();
  f.append(el("span", tn.alias ? "alias" : "alias muted", tn.alias || t("tunnel.noAlias")), el("span", "id", tn.instanceId));
  return f;
}
function speedCell(tn) {
  const r = tunnelRate(tn);
  const f = document.createDocumentFragment();
  f.append(el("span", "rx-c", "↓ " + rate(r.rx)), el("span", "tx-c", " ↑ " + rate(r.tx)));
  return f;
}

export const columns = [
  { id: "tunnel", label: "col.tunnel", sort: "alias", cls: "t-name", cell: nameCell },
  { id: "endpoint", label: "col.master", sort: "endpoint", cell: (x) => x.endpointId },
  { id: "status", label: "col.status", sort: "status", cell: (x) => pill(x.status) },
  { id: "type", label: "col.type", sort: "type", cell: (x) => x.type + (x.mode ? " · " + x.mode : "") },
  { id: "conns", label: "col.conns", sort: "tcps", desc: true, cls: "r", cell: (x) => num(x.tcps) + " / " + num(x.udps) },
  { id: "pool", label: "col.pool", sort: "pool", desc: true, cls: "r", cell: (x) => num(x.pool) },
  { id: "ping", label: "col.ping", sort: "ping", desc: true, cls: "r", cell: (x) => (x.status === "running" ? ms(x.ping) : "–") },
  { id: "speed", label: "col.speed", sort: "rate", desc: true, cls: "r", cell: speedCell },
  { id: "total", label: "col.total", sort: "traffic", desc: true, cls: "r", cell: (x) => bytes(x.traffic.total) },
];

const sortValue = (x, k) => {
  switch (k) {
    case "alias": return x.alias || "";
    case "endpoint": return x.endpointId;
    case "status": case "type": return String(x[k]);
    case "rate": { const r = tunnelRate(x); return r.rx + r.tx; }
    case "traffic": return x.traffic.total;
    default: return Number(x[k]) || 0;
  }
};
const searchText = (x) => [x.alias, x.instanceId, x.endpointId, x.type, x.status].join(" ");

// source reads a page of tunnels: from the server when it pages (it
// answers total beside items), else from the whole list it still sends.
async function source(p) {
  const qs = new URLSearchParams({ limit: String(p.limit), offset: String(p.offset) });
  if (p.sort) qs.set("sort", (p.desc ? "-" : "") + p.sort);
  if (p.q) qs.set("q", p.q);
  const body = await getJSON("/api/memory/endpoints/realtime?" + qs);
  const paged = Number.isFinite(body.total) && Array.isArray(body.items);
  const all = paged ? body.items : (body.endpoints || []).flatMap((e) => e.tunnels || []);
  for (const tn of all) shared.tunnelRates.add(tn.endpointId + "/" + tn.instanceId, pointTime(tn, body.time), tn.traffic.rx, tn.traffic.tx);
  shared.tunnelRates.prune();
  shared.endpointsSeen = (body.endpoints || []).length;
  if (paged) return { items: body.items, total: body.total };
  return clientSource(async () => all, searchText, sortValue)(p);
}

export function makeTable() {
  return new Table({
    id: "tunnels", columns, source, rowKey: (x) => x.endpointId + "/" + x.instanceId,
    onOpen: (x) => { location.hash = "#/tunnel/" + enc(x.endpointId) + "/" + enc(x.instanceId); },
    sort: "endpoint", pageSize: 25, emptyKey: "tunnels.empty", searchKey: "tunnels.search",
  });
}

// ---- the drawer ----

function stat(label, value, cls) {
  const c = el("div", "card");
  c.append(el("div", "label", label), el("div", "value" + (cls ? " " + cls : ""), value));
  return c;
}

// openTunnel shows one tunnel; a tunnel the exporter does not know gets a
// clear "not found" instead of an empty, waiting drawer.
export function openTunnel(endpoint, id) {
  const ctl = new AbortController();
  const live = { es: null, timer: 0, rates: new RateWindow(10000), usage: null, t: null };
  const body = drawer.open(id, endpoint + " · " + id, () => {
    ctl.abort();
    if (live.es) live.es.close();
    clearInterval(live.timer);
  });
  body.append(empty(t("common.loading")));
  const base = "/api/memory/endpoints/" + enc(endpoint) + "/tunnels/" + enc(id);
  getJSON(base + "/realtime", ctl.signal).then((rt) => {
    build(body, base, rt, live, ctl);
  }, (err) => {
    if (err.name === "AbortError") return;
    const box = el("div", "empty");
    box.id = "dr-notfound";
    box.append(el("strong", null, err.status === 404 ? t("tunnel.notFound") : t("tunnel.loadFailed")));
    box.append(el("div", null, err.status === 404 ? t("tunnel.notFoundText", { id, endpoint }) : problem(err)));
    if (err.message && err.status) box.append(el("div", "mono muted", err.message));
    box.append(link("#/tunnels", t("tunnel.backToList"), "btn"));
    body.replaceChildren(box);
  });
}

function build(body, base, rt, live, ctl) {
  const gone = el("div", "note", t("tunnel.gone"));
  gone.id = "dr-gone";
  gone.hidden = true;
  const closed = el("div", "note", t("tunnel.streamClosed"));
  closed.hidden = true;
  const stats = el("div", "stats");
  stats.id = "dr-stats";
  const explain = el("p", "explain", t("tunnel.totalNote"));
  const charts = {};
  const chartBox = (key) => { const b = el("div", "chart"); b.dataset.chart = key; charts[key] = b; return b; };
  const histMsg = el("div", "small-empty");
  histMsg.hidden = true;
  let range = "24h";
  const loadHistory = () => history(base, range, charts, histMsg, ctl.signal);
  const histHead = el("div", "panel-head");
  histHead.append(el("h3", null, t("tunnel.history")), rangeButtons(RANGES, range, (r) => { range = r; loadHistory(); }));
  const hist = el("section", "panel flat");
  // Without history (a 404, an error) the message stands alone: four
  // empty frames would say nothing more.
  const chartsBox = el("div");
  chartsBox.append(
    el("h4", null, t("chart.speed")), chartBox("speed"),
    el("h4", null, t("chart.ping")), chartBox("ping"),
    el("h4", null, t("chart.pool")), chartBox("pool"),
    el("h4", null, t("chart.conns")), chartBox("conns"));
  histMsg.chartsBox = chartsBox;
  hist.append(histHead, histMsg, chartsBox);
  const kv = el("div", "kv");
  const logs = el("div", "logs");
  logs.setAttribute("role", "log");
  logs.id = "dr-logs";
  const logCount = el("span", "muted");
  const logHead = el("div", "panel-head");
  logHead.append(el("h3", null, t("tunnel.log")), logCount);
  const logPanel = el("section", "panel flat");
  logPanel.append(logHead, logs);
  body.replaceChildren(gone, closed, stats, explain, hist, kv, logPanel);

  const render = (tn) => {
    live.t = tn;
    gone.hidden = true;
    drawer.setTitle(tn.alias || tn.instanceId, pill(tn.status));
    const r = live.rates.add("t", pointTime(tn), tn.traffic.rx, tn.traffic.tx) || tn.rate;
    const u = live.usage;
    stats.replaceChildren(
      stat("↓ " + t("stat.rx"), rate(r.rx), "rx-c"),
      stat("↑ " + t("stat.tx"), rate(r.tx), "tx-c"),
      stat(t("stat.today"), u ? bytes(u.today) : "–"),
      stat(t("stat.month"), u ? bytes(u.month) : "–"),
      stat(t("stat.totalSeen"), bytes(tn.traffic.total)),
      stat(t("col.ping"), tn.status === "running" ? ms(tn.ping) : "–"),
      stat(t("col.conns"), num(tn.tcps) + " / " + num(tn.udps)),
      stat(t("col.pool"), num(tn.pool)),
    );
    const c = (x) => "TCP ↓ " + bytes(x.tcpRx) + " ↑ " + bytes(x.tcpTx) + " · UDP ↓ " + bytes(x.udpRx) + " ↑ " + bytes(x.udpTx);
    const rows = [
      [t("kv.master"), tn.endpointId],
      [t("kv.type"), tn.type + (tn.mode ? " · " + t("kv.mode", { mode: tn.mode }) : "")],
      [t("kv.url"), tn.url || "–"],
      [t("kv.restart"), tn.restart ? t("common.yes") : t("common.no")],
      [t("stat.totalSeen"), c(tn.traffic)],
      [t("kv.raw"), c(tn.raw || {})],
      [t("kv.lastEvent"), tn.lastEvent ? dateTime(tn.lastEvent) + " (" + ago(tn.lastEvent) + ")" : "–"],
    ];
    const out = [];
    for (const [k, v] of rows) out.push(el("div", "k", k), el("div", "v", v));
    if (tn.peer) {
      const v = el("div", "v");
      v.append(document.createTextNode([tn.peer.alias, tn.peer.type].filter(Boolean).join(" · ") + " "));
      if (tn.peer.sid) v.append(link("#/service/" + enc(tn.peer.sid), tn.peer.sid));
      out.push(el("div", "k", t("kv.service")), v);
    }
    for (const k of Object.keys(tn.tags || {}).sort()) out.push(el("div", "k", t("kv.tag", { k })), el("div", "v", tn.tags[k]));
    if (tn.stale) out.push(el("div", "k", t("kv.note")), el("div", "v", t("tunnel.stale")));
    kv.replaceChildren(...out);
  };
  const appendLogs = (ev) => {
    const atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 24;
    if (ev.initial) logs.replaceChildren();
    const none = logs.querySelector(".none");
    if (none && ev.lines.length) none.remove();
    for (const line of ev.lines) logs.append(el("div", null, line));
    while (logs.childElementCount > MAX_LOG_LINES) logs.firstElementChild.remove();
    if (!logs.childElementCount) logs.append(el("div", "none", t("tunnel.noLogs")));
    const n = logs.querySelectorAll("div:not(.none)").length;
    logCount.textContent = n ? t("tunnel.lines", { n }) : "";
    if (atBottom || ev.initial) logs.scrollTop = logs.scrollHeight;
  };
  render(rt.tunnel);
  appendLogs({ initial: true, lines: rt.logs || [] });
  loadHistory();
  const loadUsage = () => usage(base, rt.tunnel, ctl.signal).then((u) => { live.usage = u; if (live.t) render(live.t); }, () => {});
  loadUsage();
  live.timer = setInterval(() => { if (!document.hidden) { loadUsage(); } }, 60000);

  const streamURL = "/api/memory/sse/endpoints/" + enc(rt.tunnel.endpointId) + "/tunnels/" + enc(rt.tunnel.instanceId);
  const es = new EventSource(streamURL);
  live.es = es;
  es.addEventListener("tunnel", (ev) => { closed.hidden = true; render(JSON.parse(ev.data).tunnel); });
  es.addEventListener("log", (ev) => appendLogs(JSON.parse(ev.data)));
  es.addEventListener("gone", () => { gone.hidden = false; drawer.setTitle(live.t ? live.t.alias || live.t.instanceId : "", pill("deleted")); });
  es.addEventListener("error", () => { if (es.readyState === EventSource.CLOSED) closed.hidden = false; });
}

// history draws the four charts of a range from the TSDB windows.
async function history(base, range, charts, msg, signal) {
  let body;
  try {
    body = await getJSON(base + "/history?range=" + enc(range), signal);
    msg.hidden = true;
    msg.chartsBox.hidden = false;
  } catch (err) {
    if (err.name === "AbortError") return;
    msg.hidden = false;
    msg.textContent = problem(err, "hist.notFound");
    msg.chartsBox.hidden = true;
    body = { items: [] };
  }
  const items = body.items || [];
  const x = items.map((it) => Date.parse(it.time));
  const col = (k) => items.map((it) => (it[k] === undefined || it[k] === null ? null : Number(it[k])));
  const e = t("chart.noData");
  draw(charts.speed, { type: "line", x, y: rate, ticks: "rate", empty: e, title: t("chart.speed"),
    series: [{ label: "↓ " + t("stat.rx"), cls: "s-rx", values: col("rateRx") }, { label: "↑ " + t("stat.tx"), cls: "s-tx", values: col("rateTx") }] });
  draw(charts.ping, { type: "line", x, y: ms, empty: e, title: t("chart.ping"), series: [{ label: t("col.ping"), cls: "s-a", values: col("ping") }] });
  draw(charts.pool, { type: "line", x, y: num, empty: e, title: t("chart.pool"), series: [{ label: t("col.pool"), cls: "s-b", values: col("pool") }] });
  draw(charts.conns, { type: "line", x, y: num, empty: e, title: t("chart.conns"),
    series: [{ label: "TCP", cls: "s-rx", values: col("tcps") }, { label: "UDP", cls: "s-tx", values: col("udps") }] });
}

// usage is today's and this month's traffic of a tunnel, in the
// exporter's time zone: from the daily route, or summed from the hourly
// trend where that route is missing.
async function usage(base, tn, signal) {
  try {
    const body = await getJSON(base + "/traffic/daily?days=31", signal);
    return sumDays(body.items || []);
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  const d = shared.dash;
  const hours = 720;
  const body = await getJSON(base + "/traffic/trend?hours=" + hours, signal);
  const todayStart = d && d.todayStart ? Date.parse(d.todayStart) : (() => { const x = new Date(); x.setHours(0, 0, 0, 0); return +x; })();
  const dom = Number(localDay(new Date(todayStart).toISOString()).slice(8, 10));
  const monthStart = todayStart - (dom - 1) * 86400e3;
  let today = 0, month = 0;
  for (const it of body.items || []) {
    const h = Date.parse(it.hourTime);
    if (h >= todayStart) today += it.total;
    if (h >= monthStart) month += it.total;
  }
  return { today, month };
}

// dayOf names the day of a daily item, whatever the field is called.
export const dayStart = (it) => it.day || it.date || it.dayTime || it.time || it.start;

export function sumDays(items) {
  if (!items.length) return { today: 0, month: 0 };
  const last = localDay(dayStart(items[items.length - 1]));
  let month = 0;
  for (const it of items) if (localDay(dayStart(it)).slice(0, 7) === last.slice(0, 7)) month += Number(it.total) || 0;
  return { today: Number(items[items.length - 1].total) || 0, month };
}
