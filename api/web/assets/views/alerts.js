// Alerts: firing and pending, as the exporter's own rules evaluate them
// (GET /api/v1/alerts, Prometheus's shape).
import { el, getJSON, pill } from "../dom.js";
import { t } from "../i18n.js";
import { dateTime, ago } from "../fmt.js";
import { Table, clientSource } from "../table.js";

let counts = { firing: 0, pending: 0 };
export const alertCounts = () => counts;

async function list() {
  const body = await getJSON("/api/v1/alerts");
  const alerts = (body.data && body.data.alerts) || [];
  counts = { firing: 0, pending: 0 };
  for (const a of alerts) if (a.state in counts) counts[a.state]++;
  return alerts.map((a, i) => ({ ...a, key: JSON.stringify(a.labels || {}) || String(i) }));
}

function labelsCell(a) {
  const f = document.createDocumentFragment();
  for (const [k, v] of Object.entries(a.labels || {})) {
    if (k === "alertname") continue;
    f.append(el("span", "chip", k + "=" + v));
  }
  return f;
}

const columns = [
  { id: "state", label: "col.status", sort: "state", cell: (a) => pill(a.state) },
  { id: "name", label: "col.alert", sort: "name", cls: "t-name", cell: (a) => el("span", "alias", (a.labels || {}).alertname || "–") },
  { id: "labels", label: "col.labels", cls: "c-labels", cell: labelsCell },
  { id: "summary", label: "col.summary", cls: "c-summary", cell: (a) => (a.annotations || {}).summary || (a.annotations || {}).description || "" },
  { id: "since", label: "col.since", sort: "since", cls: "r", cell: (a) => { const s = el("span", null, ago(a.activeAt)); s.title = dateTime(a.activeAt); return s; } },
  { id: "value", label: "col.value", cls: "r", cell: (a) => (a.value === undefined ? "" : String(a.value)) },
];
const value = (a, k) => (k === "state" ? (a.state === "firing" ? 0 : 1) : k === "name" ? (a.labels || {}).alertname || "" : -(Date.parse(a.activeAt) || 0));

export function makeTable() {
  return new Table({
    id: "alerts", columns, rowKey: (a) => a.key, sort: "state", emptyKey: "alerts.empty", searchKey: "alerts.search", notFoundKey: "alerts.missing",
    source: clientSource(list, (a) => JSON.stringify(a.labels || {}) + " " + JSON.stringify(a.annotations || {}), value),
  });
}
