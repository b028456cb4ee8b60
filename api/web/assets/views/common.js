// Pieces the detail views share: stat cards, a "not found" state, and
// the daily traffic chart.
import { el, link, getJSON, problem } from "../dom.js";
import { t } from "../i18n.js";
import { bytes, date, axisTime } from "../fmt.js";
import { draw } from "../chart.js";
import { shared, localDay } from "../state.js";
import { dayStart } from "./tunnels.js";

export function stat(label, value, cls) {
  const c = el("div", "card");
  c.append(el("div", "label", label), el("div", "value" + (cls ? " " + cls : ""), value));
  return c;
}

// notFound fills body with a clear state for an unknown object (404) or a
// failed request.
export function notFound(body, err, titleKey, textKey, vars, back) {
  const box = el("div", "empty");
  box.id = "dr-notfound";
  box.append(el("strong", null, err.status === 404 ? t(titleKey) : t("common.loadFailed")));
  box.append(el("div", null, err.status === 404 ? t(textKey, vars) : problem(err)));
  if (err.message && err.status) box.append(el("div", "mono muted", err.message));
  if (back) box.append(link(back, t("common.back"), "btn"));
  body.replaceChildren(box);
}

const rx = (it) => (it.rx !== undefined ? it.rx : (it.tcpRx || 0) + (it.udpRx || 0));
const tx = (it) => (it.tx !== undefined ? it.tx : (it.tcpTx || 0) + (it.udpTx || 0));

// dailyChart draws traffic per day from a .../traffic/daily route, or,
// where that route is missing, from the hourly trend summed per day.
export async function dailyChart(box, base, days, signal) {
  let x = [], rxs = [], txs = [], msg = "";
  try {
    const body = await getJSON(base + "/traffic/daily?days=" + days, signal);
    for (const it of body.items || []) { x.push(Date.parse(dayStart(it))); rxs.push(rx(it)); txs.push(tx(it)); }
  } catch (err) {
    if (err.name === "AbortError") return;
    if (err.status !== 404) msg = problem(err);
    else {
      try {
        const body = await getJSON(base + "/traffic/trend?hours=" + Math.min(days * 24, 720), signal);
        const d = shared.dash;
        const t0 = d && d.todayStart ? Date.parse(d.todayStart) : Date.now() - (Date.now() % 86400e3);
        const byDay = new Map();
        for (const it of body.items || []) {
          const k = t0 + Math.floor((Date.parse(it.hourTime) - t0) / 86400e3) * 86400e3;
          const v = byDay.get(k) || { rx: 0, tx: 0 };
          v.rx += rx(it); v.tx += tx(it);
          byDay.set(k, v);
        }
        for (const [k, v] of [...byDay].sort((a, b) => a[0] - b[0])) { x.push(k); rxs.push(v.rx); txs.push(v.tx); }
      } catch (e2) {
        if (e2.name === "AbortError") return;
        msg = problem(e2, "hist.notFound");
      }
    }
  }
  draw(box, {
    type: "bar", stack: true, x, y: bytes, ticks: "bytes", empty: msg || t("chart.noData"), title: t("chart.daily"),
    xLabel: (ms) => localDay(new Date(ms).toISOString()).slice(5), xTip: (ms) => date(ms + 12 * 3600e3),
    series: [{ label: "↓ " + t("stat.rx"), cls: "s-rx", values: rxs }, { label: "↑ " + t("stat.tx"), cls: "s-tx", values: txs }],
  });
}

// hourlyChart draws the hourly trend of a route.
export async function hourlyChart(box, url, signal) {
  let items = [], msg = "";
  try {
    items = (await getJSON(url, signal)).items || [];
  } catch (err) {
    if (err.name === "AbortError") return;
    msg = problem(err, "hist.notFound");
  }
  const x = items.map((it) => Date.parse(it.hourTime));
  draw(box, {
    type: "bar", stack: true, x, y: bytes, ticks: "bytes", empty: msg || t("chart.noTraffic"), title: t("chart.hourly"),
    xLabel: (ms) => axisTime(ms, 86400e3),
    series: [{ label: "↓ " + t("stat.rx"), cls: "s-rx", values: items.map(rx) }, { label: "↑ " + t("stat.tx"), cls: "s-tx", values: items.map(tx) }],
  });
}
