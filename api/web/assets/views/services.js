// Services: instances on any masters that share a meta.peer.sid, their
// traffic counted once (the client side), and whether the mirrored server
// side agrees.
import { el, enc, getJSON, pill, link, empty } from "../dom.js";
import { t } from "../i18n.js";
import { bytes } from "../fmt.js";
import { Table, clientSource } from "../table.js";
import * as drawer from "../drawer.js";
import { stat, notFound, dailyChart, hourlyChart } from "./common.js";

const sum = (c) => (c === null || c === undefined ? null : typeof c === "number" ? c
  : c.total !== undefined ? c.total : (c.tcpRx || 0) + (c.tcpTx || 0) + (c.udpRx || 0) + (c.udpTx || 0));

// member and service read the REST answer tolerantly: the names in
// docs/design.md are fixed, the inner shape of a member is not.
function member(m, side) {
  return {
    side: m.side || side || m.type || "",
    endpoint: m.endpointId || m.endpoint || "",
    id: m.instanceId || m.id || "",
    alias: m.alias || "",
    status: m.status || "",
    traffic: m.traffic || m.total || {},
  };
}
export function service(s) {
  const members = [
    ...(s.clients || []).map((m) => member(m, "client")),
    ...(s.servers || []).map((m) => member(m, "server")),
    ...(s.members || []).map((m) => member(m)),
  ];
  return {
    sid: s.sid || s.service || "", alias: s.alias || "", type: s.type || "",
    traffic: s.traffic || {}, mismatch: s.mismatch || s.mirrorMismatch || null,
    mirrored: s.mirrored !== undefined ? !!s.mirrored : members.some((m) => m.side === "client") && members.some((m) => m.side === "server"),
    members,
  };
}

function agreeCell(s) {
  if (!s.mirrored) return el("span", "muted", t("service.oneSide"));
  const m = sum(s.mismatch) || 0;
  return m === 0 ? el("span", "ok-c", t("service.agree")) : el("span", "warn-c", t("service.mismatchBy", { n: bytes(m) }));
}
function sidesCell(s) {
  const f = document.createDocumentFragment();
  for (const m of s.members) f.append(el("span", "side", t("side." + (m.side === "client" || m.side === "server" ? m.side : "other")) + " @ " + m.endpoint));
  return f;
}

const columns = [
  { id: "service", label: "col.service", sort: "alias", cls: "t-name", cell: (s) => { const f = document.createDocumentFragment(); f.append(el("span", s.alias ? "alias" : "alias muted", s.alias || t("tunnel.noAlias")), el("span", "id", s.sid)); return f; } },
  { id: "type", label: "col.type", sort: "type", cell: (s) => s.type },
  { id: "sides", label: "col.sides", sort: "sides", cell: sidesCell },
  { id: "traffic", label: "col.trafficOnce", sort: "traffic", desc: true, cls: "r", cell: (s) => bytes(sum(s.traffic)) },
  { id: "mirror", label: "col.mirror", sort: "mismatch", desc: true, cls: "r", cell: agreeCell },
];
const value = (s, k) => (k === "traffic" ? sum(s.traffic) : k === "mismatch" ? (s.mirrored ? sum(s.mismatch) || 0 : -1) : k === "sides" ? s.members.length : String(s[k]));

async function list() {
  const body = await getJSON("/api/memory/services");
  return (body.items || body.services || []).map(service);
}

export function makeTable() {
  return new Table({
    id: "services", columns, rowKey: (s) => s.sid, sort: "alias", emptyKey: "services.empty", searchKey: "services.search",
    notFoundKey: "services.missing",
    source: clientSource(list, (s) => [s.sid, s.alias, s.type, ...s.members.map((m) => m.endpoint + " " + m.id + " " + m.alias)].join(" "), value),
    onOpen: (s) => { location.hash = "#/service/" + enc(s.sid); },
  });
}

export function openService(sid) {
  const ctl = new AbortController();
  const body = drawer.open(sid, t("service.sub"), () => ctl.abort());
  body.append(empty(t("common.loading")));
  const base = "/api/memory/services/" + enc(sid);
  getJSON(base, ctl.signal).then((b) => build(body, base, service(b.service || b), ctl.signal),
    (err) => { if (err.name !== "AbortError") notFound(body, err, "service.notFound", "service.notFoundText", { sid }, "#/services"); });
}

function build(body, base, s, signal) {
  drawer.setTitle(s.alias || s.sid);
  const tr = s.traffic || {};
  const rx = tr.rx !== undefined ? tr.rx : (tr.tcpRx || 0) + (tr.udpRx || 0);
  const tx = tr.tx !== undefined ? tr.tx : (tr.tcpTx || 0) + (tr.udpTx || 0);
  const stats = el("div", "stats");
  stats.id = "dr-stats";
  stats.append(
    stat(t("col.trafficOnce"), bytes(sum(tr))),
    stat("↓ " + t("stat.rx"), bytes(rx), "rx-c"),
    stat("↑ " + t("stat.tx"), bytes(tx), "tx-c"),
    stat(t("col.mirror"), s.mirrored ? bytes(sum(s.mismatch) || 0) : t("service.oneSide")),
  );
  const kv = el("div", "kv");
  const rows = [[t("kv.sid"), s.sid], [t("col.type"), s.type || "–"], [t("kv.alias"), s.alias || "–"]];
  if (s.mismatch && typeof s.mismatch === "object") {
    const m = s.mismatch;
    rows.push([t("service.mismatchDetail"), "TCP ↓ " + bytes(m.tcpRx) + " ↑ " + bytes(m.tcpTx) + " · UDP ↓ " + bytes(m.udpRx) + " ↑ " + bytes(m.udpTx)]);
  }
  for (const [k, v] of rows) kv.append(el("div", "k", k), el("div", "v", v));

  const table = el("table");
  const head = el("tr");
  for (const k of ["col.side", "col.master", "col.tunnel", "col.status", "col.total"]) head.append(el("th", k === "col.total" ? "r" : "", t(k)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const m of s.members) {
    const r = el("tr");
    const name = el("td", "t-name");
    name.append(link("#/tunnel/" + enc(m.endpoint) + "/" + enc(m.id), m.alias || m.id), el("span", "id", m.id));
    r.append(el("td", null, t("side." + (m.side === "client" || m.side === "server" ? m.side : "other"))), el("td", null, m.endpoint), name,
      (() => { const c = el("td"); c.append(pill(m.status)); return c; })(), el("td", "r", bytes(sum(m.traffic))));
    tbody.append(r);
  }
  table.append(thead, tbody);
  const wrap = el("div", "table-wrap");
  wrap.append(table);
  const members = drawer.section(t("service.members"), s.members.length ? wrap : empty(t("service.noMembers")));

  const hourly = el("div", "chart");
  hourly.dataset.chart = "hourly";
  const daily = el("div", "chart");
  daily.dataset.chart = "daily";
  body.replaceChildren(stats, el("p", "explain", t("service.once")), kv, members,
    drawer.section(t("chart.hourly"), hourly), drawer.section(t("chart.daily30"), daily));
  hourlyChart(hourly, base + "/traffic/trend?hours=24", signal);
  dailyChart(daily, base, 30, signal);
}
