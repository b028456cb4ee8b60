// NodePass exporter: the built-in page. Plain ES modules, no build step.
//
// Everything a master sends (aliases, tags, sids, URLs, log lines) is
// untrusted: it only ever reaches the page as text (see dom.js).
import { $, el, setText, getJSON, rangeButtons } from "./dom.js";
import { t, apply, setLang, lang, onLang, tables as languages } from "./i18n.js";
import { bytes, rate, num, RateWindow } from "./fmt.js";
import { redrawAll } from "./chart.js";
import { Table } from "./table.js";
import * as drawer from "./drawer.js";
import { shared } from "./state.js";
import * as tunnels from "./views/tunnels.js";
import * as masters from "./views/masters.js";
import * as services from "./views/services.js";
import * as plans from "./views/plans.js";
import * as alerts from "./views/alerts.js";
import { hourlyChart, dailyChart } from "./views/common.js";

const VIEWS = { tunnels, masters, services, plans, alerts };
const POLL_MS = { tunnels: 3000, masters: 0, services: 5000, plans: 30000, alerts: 15000 }; // masters follow the push
const tables = {};
let view = "";
let openKey = "";
let online = null, lastUpdate = null;
const totalRate = new RateWindow(10000);

// ---- connection state ----

function setOnline(on) {
  if (on) lastUpdate = new Date();
  if (online === on) return;
  online = on;
  const c = $("conn");
  c.classList.remove("live", "wait", "down");
  c.classList.add(on ? "live" : "down");
  connText();
  document.body.classList.toggle("offline", !on);
  $("banner").hidden = on;
}
function connText() {
  setText("conn-text", t(online === null ? "conn.wait" : online ? "conn.live" : "conn.down"));
  setText("banner-text", t("conn.banner", { since: lastUpdate ? lastUpdate.toLocaleTimeString(lang()) : t("conn.beforeLoad") }));
}

// ---- summary cards (dashboard push) ----

function renderDashboard(d) {
  shared.dash = d;
  const now = Date.parse(d.time) || Date.now();
  for (const ep of d.endpoints || []) shared.endpointRates.add(ep.id, now, ep.traffic.rx, ep.traffic.tx);
  const r = totalRate.add("all", now, d.traffic.rx, d.traffic.tx) || d.rate;
  const ec = d.endpointCounts, tc = d.tunnelCounts;
  setText("sum-endpoints", ec.up + " / " + ec.total);
  setText("sum-endpoints-sub", ec.total === 0 ? t("sum.noneConfigured") : ec.total === ec.up ? t("sum.allConnected") : t("sum.notConnected", { n: ec.total - ec.up }));
  setText("sum-tunnels", tc.running + " / " + tc.total);
  const notes = [tc.stopped ? t("sum.stopped", { n: tc.stopped }) : "", tc.error ? t("sum.errors", { n: tc.error }) : ""].filter(Boolean);
  setText("sum-tunnels-sub", notes.join(", ") || (tc.total ? t("sum.allRunning") : t("sum.noTunnels")));
  setText("sum-rx", rate(r.rx));
  setText("sum-tx", rate(r.tx));
  setText("sum-rate-sub", t("sum.window"));
  setText("sum-today", bytes(d.todayTraffic.total));
  setText("sum-today-sub", "↓ " + bytes(d.todayTraffic.rx) + " · ↑ " + bytes(d.todayTraffic.tx));
  setText("sum-total", bytes(d.traffic.total));
  setText("sum-total-sub", t("sum.open", { tcp: num(d.connections.tcp), udp: num(d.connections.udp) }));
  $("empty").hidden = ec.total > 0;
  $("views").hidden = ec.total === 0;
  if (view === "masters") tables.masters.refresh();
}

function connectDashboard() {
  const es = new EventSource("/api/memory/sse/dashboard");
  es.addEventListener("open", () => setOnline(true));
  es.addEventListener("dashboard", (ev) => {
    let d;
    try { d = JSON.parse(ev.data); } catch (_) { return; }
    renderDashboard(d);
    setOnline(true);
  });
  // EventSource reconnects by itself (the server sends retry:); until it
  // does, the page says so instead of showing stale numbers as live.
  es.addEventListener("error", () => setOnline(false));
}

// ---- all traffic ----

let allRange = "24h";
function loadAll() {
  const box = $("chart-all");
  if (allRange === "24h") hourlyChart(box, "/api/memory/traffic/trend?hours=24");
  else dailyChart(box, "/api/memory", allRange === "7d" ? 7 : 30);
}

// ---- views and routing ----

let pollTimer = 0;
function show(name) {
  if (view === name) return;
  view = name;
  for (const k of Object.keys(VIEWS)) {
    $("view-" + k).hidden = k !== name;
    const tab = $("tab-" + k);
    if (k === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  clearInterval(pollTimer);
  tables[name].refresh();
  if (POLL_MS[name]) pollTimer = setInterval(() => { if (!document.hidden) tables[name].refresh(); }, POLL_MS[name]);
}

const DRAWERS = [
  [/^#\/tunnel\/([^/]+)\/([^/]+)$/, "tunnels", (a, b) => tunnels.openTunnel(a, b)],
  [/^#\/master\/([^/]+)$/, "masters", (a) => masters.openMaster(a)],
  [/^#\/service\/([^/]+)$/, "services", (a) => services.openService(a)],
  [/^#\/plan\/([^/]+)$/, "plans", (a) => plans.openPlan(a)],
];

function route(force) {
  const h = location.hash;
  for (const [re, name, open] of DRAWERS) {
    const m = re.exec(h);
    if (!m) continue;
    let args;
    try { args = m.slice(1).map(decodeURIComponent); } catch (_) { break; }
    show(name);
    if (force || openKey !== h) { openKey = h; open(...args); }
    return;
  }
  const m = /^#\/(\w+)/.exec(h);
  show(m && VIEWS[m[1]] ? m[1] : view || "tunnels");
  openKey = "";
  if (drawer.isOpen()) drawer.close(false);
}

// ---- header, footer, language ----

function languagePicker() {
  const sel = $("lang");
  sel.replaceChildren();
  for (const code of Object.keys(languages)) {
    const o = el("option", null, languages[code]["lang.name"]);
    o.value = code;
    o.selected = code === lang();
    sel.append(o);
  }
}

async function version() {
  try {
    const s = await getJSON("/api/status");
    if (s.version) { setText("version", t("footer.version", { v: s.version })); return; }
  } catch (_) { /* try the Prometheus build info */ }
  try {
    const b = await getJSON("/api/v1/status/buildinfo");
    if (b.data && b.data.version) setText("version", t("footer.version", { v: b.data.version }));
  } catch (_) { /* leave it out */ }
}

async function alertBadge() {
  const badge = $("alert-badge");
  try {
    const body = await getJSON("/api/v1/alerts");
    const firing = ((body.data && body.data.alerts) || []).filter((a) => a.state === "firing").length;
    badge.textContent = firing ? String(firing) : "";
    badge.hidden = !firing;
  } catch (_) { badge.hidden = true; }
}

function init() {
  apply(document);
  languagePicker();
  connText();
  for (const [k, mod] of Object.entries(VIEWS)) {
    tables[k] = mod.makeTable();
    $("view-" + k).append(tables[k].root);
  }
  $("lang").addEventListener("change", (ev) => setLang(ev.target.value));
  onLang(() => {
    languagePicker();
    connText();
    for (const tb of Object.values(tables)) { tb.head(); tb.refresh(); }
    if (shared.dash) renderDashboard(shared.dash);
    allRanges();
    loadAll();
    version();
    route(true);
  });
  Table.offline = () => setOnline(false);
  masters.onShowTunnels((name) => { tables.tunnels.setQuery(name); location.hash = "#/tunnels"; });
  drawer.init(() => { location.hash = "#/" + view; });
  window.addEventListener("hashchange", () => route(false));
  let resize = 0;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(redrawAll, 150); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && tables[view]) tables[view].refresh(); });
  allRanges();
  loadAll();
  setInterval(() => { if (!document.hidden) loadAll(); }, 60000);
  connectDashboard();
  version();
  alertBadge();
  setInterval(alertBadge, 30000);
  route(false);
}

function allRanges() {
  $("all-ranges").replaceChildren(rangeButtons(["24h", "7d", "30d"], allRange, (r) => { allRange = r; loadAll(); }));
}

init();
