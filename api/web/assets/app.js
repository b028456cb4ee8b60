// NodePass exporter: built-in dashboard.
//
// Everything a master sends (aliases, tags, URLs, log lines) is untrusted:
// it only ever reaches the page through textContent or an SVG attribute set
// with setAttribute, never through an HTML parser. The server's
// Content-Security-Policy allows no inline script either.
"use strict";

(function () {
  const POLL_MS = 3000;       // tunnel lists
  const TREND_MS = 60000;     // hourly charts
  const MAX_ROWS = 200;       // rows per master; the filter finds the rest
  const MAX_LOG_LINES = 500;  // lines kept in the detail view
  const SVGNS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const state = {
    dash: null,          // last dashboard event
    endpoints: null,     // last /api/memory/endpoints/realtime answer
    online: false,
    lastUpdate: null,
    detail: null,        // {endpoint, id, es}
    trendTimers: new Map(),
  };

  // ---- formatting ----

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function bytes(n) {
    n = Number(n) || 0;
    let i = 0;
    while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + UNITS[i];
  }
  const rate = (n) => bytes(n) + "/s";
  // short is a compact rate for small print: "462 K/s".
  function short(n) {
    n = Number(n) || 0;
    let i = 0;
    while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
    return (n < 10 && i > 0 ? n.toFixed(1) : String(Math.round(n))) + " " + (i === 0 ? "B" : UNITS[i][0]) + "/s";
  }
  const int = (n) => (Number(n) || 0).toLocaleString();
  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function duration(sec) {
    sec = Number(sec) || 0;
    const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    return m + "m";
  }
  const hourLabel = (iso) => {
    const d = new Date(iso);
    return String(d.getHours()).padStart(2, "0") + ":00";
  };

  // ---- DOM helpers (text only) ----

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }
  function pill(status) {
    const s = String(status || "unknown");
    const p = el("span", "pill", s.replace("_", " "));
    // Only known states become class names; anything else stays neutral.
    if (/^(running|stopped|error|up|down|connecting|auth_failed|deleted)$/.test(s)) p.classList.add(s);
    return p;
  }
  const enc = encodeURIComponent;

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!r.ok) {
      let msg = "HTTP " + r.status;
      try { msg = (await r.json()).error || msg; } catch (_) { /* keep status */ }
      const err = new Error(msg);
      err.status = r.status;
      throw err;
    }
    return r.json();
  }

  // ---- connection state ----

  function setOnline(on) {
    if (on) state.lastUpdate = new Date();
    if (state.online === on && on) return;
    state.online = on;
    const c = $("conn");
    c.classList.remove("live", "wait", "down");
    c.classList.add(on ? "live" : "down");
    setText("conn-text", on ? "Live" : "Disconnected");
    document.body.classList.toggle("offline", !on);
    $("banner").hidden = on;
    if (!on) setText("banner-since", state.lastUpdate ? state.lastUpdate.toLocaleTimeString() : "before the page loaded");
  }

  // ---- dashboard (SSE) ----

  function renderDashboard(d) {
    state.dash = d;
    const ec = d.endpointCounts, tc = d.tunnelCounts;
    setText("sum-endpoints", ec.up + " / " + ec.total);
    setText("sum-endpoints-sub", ec.total === 0 ? "none configured" : ec.total === ec.up ? "all connected" : (ec.total - ec.up) + " not connected");
    setText("sum-tunnels", tc.running + " / " + tc.total);
    setText("sum-tunnels-sub", [tc.stopped ? tc.stopped + " stopped" : "", tc.error ? tc.error + " error" : ""].filter(Boolean).join(", ") || (tc.total ? "all running" : "no tunnels"));
    setText("sum-rx", rate(d.rate.rx));
    setText("sum-rx-sub", "tcp " + short(d.rate.tcpRx) + " · udp " + short(d.rate.udpRx));
    setText("sum-tx", rate(d.rate.tx));
    setText("sum-tx-sub", "tcp " + short(d.rate.tcpTx) + " · udp " + short(d.rate.udpTx));
    setText("sum-today", bytes(d.todayTraffic.total));
    setText("sum-today-sub", "↓ " + bytes(d.todayTraffic.rx) + " · ↑ " + bytes(d.todayTraffic.tx));
    setText("sum-total", bytes(d.traffic.total));
    setText("sum-total-sub", int(d.connections.tcp) + " tcp · " + int(d.connections.udp) + " udp open");
    for (const ep of d.endpoints || []) updateEndpointHead(ep);
  }

  function connectDashboard() {
    const es = new EventSource("/api/memory/sse/dashboard");
    es.addEventListener("open", () => setOnline(true));
    es.addEventListener("dashboard", (ev) => {
      try { renderDashboard(JSON.parse(ev.data)); setOnline(true); } catch (e) { console.warn("bad dashboard event", e); }
    });
    // EventSource reconnects by itself (the server sends retry:); until it
    // does, the page says so instead of showing stale numbers as live.
    es.addEventListener("error", () => setOnline(false));
  }

  // ---- endpoints and tunnels (polled) ----

  const sections = new Map(); // endpoint id -> {root, head, meta, err, body, chart}

  function filterMatch(t, q, st) {
    if (st && t.status !== st) return false;
    if (!q) return true;
    return (t.alias || "").toLowerCase().includes(q) || t.instanceId.includes(q);
  }

  function section(ep) {
    let s = sections.get(ep.id);
    if (s) return s;
    const root = el("section", "panel endpoint");
    const headRow = el("div", "ep-head");
    const name = el("h2", null, ep.id);
    const status = pill(ep.state);
    headRow.append(name, status);
    const meta = el("div", "ep-meta");
    const err = el("div", "ep-err");
    err.hidden = true;
    const chart = el("div", "chart");
    chart.dataset.trend = "/api/memory/endpoints/" + enc(ep.id) + "/traffic/trend?hours=24";
    const body = el("div", "ep-body");
    root.append(headRow, meta, err, chart, body);
    $("endpoints").append(root);
    s = { root, status, meta, err, body, chart, id: ep.id };
    sections.set(ep.id, s);
    scheduleTrend(chart);
    return s;
  }

  function metaItem(label, value) {
    const span = el("span", null, label + " ");
    span.append(el("span", "num", value));
    return span;
  }

  function updateEndpointHead(ep) {
    const s = sections.get(ep.id);
    if (!s) return;
    const p = pill(ep.state);
    s.status.replaceWith(p);
    s.status = p;
    const items = [
      metaItem("tunnels", ep.tunnelCounts.running + "/" + ep.tunnelCounts.total),
      metaItem("↓", rate(ep.rate.rx)),
      metaItem("↑", rate(ep.rate.tx)),
      metaItem("total", bytes(ep.traffic.total)),
    ];
    if (ep.info) {
      items.push(metaItem("NodePass", ep.info.version || "?"));
      items.push(metaItem("up", duration(ep.info.uptimeSeconds)));
      items.push(metaItem("cpu", Math.round(ep.info.cpuPercent) + "%"));
    }
    if (ep.lastEvent) items.push(metaItem("last event", ago(ep.lastEvent)));
    s.meta.replaceChildren(...items);
    s.err.hidden = !ep.lastError || ep.state === "up";
    s.err.textContent = ep.lastError ? "Last error: " + ep.lastError : "";
  }

  function tunnelRow(t) {
    const tr = el("tr");
    tr.tabIndex = 0;
    tr.dataset.endpoint = t.endpointId;
    tr.dataset.id = t.instanceId;
    const name = el("td", "t-name");
    name.append(document.createTextNode(t.alias || "(no alias)"));
    name.append(el("span", "id", t.instanceId));
    const st = el("td");
    st.append(pill(t.status));
    st.className = "c-status";
    const cell = (cls, text, label) => {
      const td = el("td", cls, text);
      if (label) td.dataset.label = label; // shown on phones, where the header is hidden
      return td;
    };
    tr.append(
      name, st,
      cell("c-type", t.type + (t.mode ? " · " + t.mode : "")),
      cell("r c-conns", int(t.tcps) + " / " + int(t.udps), "tcp/udp"),
      cell("r c-pool", int(t.pool)),
      cell("r c-ping", t.status === "running" ? t.ping + " ms" : "–", "ping"),
      cell("r c-rx rx-c", rate(t.rate.rx), "↓"),
      cell("r c-tx tx-c", rate(t.rate.tx), "↑"),
      cell("r c-total", bytes(t.traffic.total), "Σ"),
    );
    return tr;
  }

  function renderEndpoints(data) {
    state.endpoints = data;
    const q = $("filter").value.trim().toLowerCase();
    const st = $("status-filter").value;
    const seen = new Set();
    for (const ep of data.endpoints) {
      seen.add(ep.id);
      const s = section(ep);
      updateEndpointHead(ep);
      const tunnels = ep.tunnels || [];
      const shown = tunnels.filter((t) => filterMatch(t, q, st));
      const wasHidden = s.chart.hidden;
      s.chart.hidden = tunnels.length === 0;
      if (wasHidden && !s.chart.hidden && s.chart._trend) drawChart(s.chart, s.chart._trend);
      if (tunnels.length === 0) {
        s.body.replaceChildren(el("div", "small-empty", ep.state === "up" ? "No tunnels on this master yet." : "Waiting for the master to connect…"));
        continue;
      }
      if (shown.length === 0) {
        s.body.replaceChildren(el("div", "small-empty", "No tunnel matches the filter."));
        continue;
      }
      const table = el("table");
      const head = el("tr");
      for (const [label, cls] of [["Tunnel", ""], ["Status", ""], ["Type", ""], ["TCP / UDP", "r"], ["Pool", "r"], ["Ping", "r"], ["↓ rx", "r"], ["↑ tx", "r"], ["Total", "r"]]) {
        head.append(el("th", cls, label));
      }
      const thead = el("thead");
      thead.append(head);
      const tbody = el("tbody");
      for (const t of shown.slice(0, MAX_ROWS)) tbody.append(tunnelRow(t));
      table.append(thead, tbody);
      const wrap = el("div", "table-wrap");
      wrap.append(table);
      const parts = [wrap];
      if (shown.length > MAX_ROWS) parts.push(el("div", "more", "Showing " + MAX_ROWS + " of " + shown.length + " tunnels; use the filter to find the others."));
      s.body.replaceChildren(...parts);
    }
    for (const [id, s] of sections) {
      if (!seen.has(id)) { s.root.remove(); sections.delete(id); }
    }
    const empty = $("empty");
    empty.hidden = data.endpoints.length > 0;
    $("toolbar").hidden = data.endpoints.length === 0;
    if (data.endpoints.length === 0 && !empty.firstChild) {
      const text = el("div");
      text.append("Add one with ", el("code", null, "--nodepass.url"), " and ", el("code", null, "--nodepass.api-key-file"),
        ", list several in ", el("code", null, "--config.file"), ", or start with ", el("code", null, "--demo"),
        " to see a simulated master.");
      empty.replaceChildren(el("strong", null, "No NodePass masters configured"), text);
    }
  }

  async function pollEndpoints() {
    if (document.hidden) return;
    try {
      renderEndpoints(await getJSON("/api/memory/endpoints/realtime"));
    } catch (e) {
      setOnline(false);
    }
  }

  // ---- hourly chart ----

  function drawChart(box, data) {
    const items = (data && data.items) || [];
    const w = Math.max(box.clientWidth, 240), h = 150, left = 58, bottom = 20, top = 10;
    const empty = !items.some((it) => it.total > 0);
    const max = Math.max(1, ...items.map((it) => it.total));
    // Three grid steps of a round size, all labelled in one unit.
    let unit = 1, u = 0;
    while (max / 3 / unit >= 1024 && u < UNITS.length - 1) { unit *= 1024; u++; }
    const step = niceStep(max / 3 / unit) * unit;
    const yMax = step * Math.ceil(max / step);
    const plotH = h - bottom - top, plotW = w - left;
    const s = svg("svg", { viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": "Traffic per hour" });
    const steps = empty ? 0 : Math.max(1, Math.round(yMax / step));
    for (let i = 0; i <= steps; i++) {
      const v = step * i, y = top + plotH - (v / yMax) * plotH;
      s.append(svg("line", { x1: left, x2: w, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: left - 8, y: y + 4, "text-anchor": "end", class: "axis" });
      label.textContent = v === 0 ? "0" : (Math.round((v / unit) * 10) / 10) + " " + UNITS[u];
      s.append(label);
    }
    const n = Math.max(items.length, 1), slot = plotW / n, bw = Math.max(2, slot * 0.7);
    const caption = box.querySelector(".caption") || el("div", "caption");
    items.forEach((it, i) => {
      const x = left + i * slot + (slot - bw) / 2;
      const rx = it.tcpRx + it.udpRx, tx = it.tcpTx + it.udpTx;
      const hRx = (rx / yMax) * plotH, hTx = (tx / yMax) * plotH;
      const open = i === items.length - 1;
      const g = svg("g", open ? { class: "open" } : {});
      g.append(svg("rect", { x, y: top + plotH - hRx, width: bw, height: hRx, class: "bar-rx" }));
      g.append(svg("rect", { x, y: top + plotH - hRx - hTx, width: bw, height: hTx, class: "bar-tx" }));
      const text = hourLabel(it.hourTime) + (open ? " (now)" : "") + " · ↓ " + bytes(rx) + " · ↑ " + bytes(tx);
      const hit = svg("rect", { x: left + i * slot, y: top, width: slot, height: plotH, class: "hit" });
      const title = svg("title", {});
      title.textContent = text;
      hit.append(title);
      hit.addEventListener("mouseenter", () => { caption.textContent = text; });
      hit.addEventListener("mouseleave", () => { caption.textContent = ""; });
      g.append(hit);
      s.append(g);
      if (i % 6 === 0 || open) {
        const label = svg("text", { x: left + i * slot + slot / 2, y: h - 4, "text-anchor": "middle", class: "axis" });
        label.textContent = open ? "now" : hourLabel(it.hourTime);
        s.append(label);
      }
    });
    const parts = [s, caption];
    if (empty) parts.push(el("div", "none", "No traffic in the last " + items.length + " hours"));
    box.replaceChildren(...parts);
  }

  function niceStep(x) {
    if (x <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  async function loadTrend(box) {
    try {
      const data = await getJSON(box.dataset.trend);
      box._trend = data;
      drawChart(box, data);
    } catch (e) {
      if (e.status === 404) return;
      box.replaceChildren(el("div", "none", "Traffic history unavailable: " + e.message));
    }
  }

  function scheduleTrend(box) {
    loadTrend(box);
    const t = setInterval(() => {
      if (!box.isConnected) { clearInterval(t); return; }
      if (!document.hidden) loadTrend(box);
    }, TREND_MS);
  }

  // ---- tunnel detail (SSE) ----

  function openDetail(endpoint, id) {
    closeDetail(false);
    const box = $("detail");
    box.hidden = false;
    setText("d-title", id);
    setText("d-sub", endpoint + " · " + id);
    $("d-status").replaceChildren();
    $("d-stats").replaceChildren();
    $("d-kv").replaceChildren();
    $("d-gone").hidden = true;
    $("d-logs").replaceChildren(el("div", "none", "Waiting for log lines…"));
    setText("d-log-count", "");
    const chart = $("d-chart");
    chart.dataset.trend = "/api/memory/endpoints/" + enc(endpoint) + "/tunnels/" + enc(id) + "/traffic/trend?hours=24";
    chart.replaceChildren();
    loadTrend(chart);
    const es = new EventSource("/api/memory/sse/endpoints/" + enc(endpoint) + "/tunnels/" + enc(id));
    state.detail = { endpoint, id, es, lines: 0, trendAt: Date.now() };
    es.addEventListener("tunnel", (ev) => renderTunnel(JSON.parse(ev.data).tunnel));
    es.addEventListener("log", (ev) => appendLogs(JSON.parse(ev.data)));
    es.addEventListener("gone", () => {
      $("d-gone").hidden = false;
      $("d-status").replaceChildren(pill("deleted"));
    });
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) setText("d-log-count", "stream closed");
    });
    $("d-close").focus();
  }

  function closeDetail(updateHash) {
    if (state.detail) { state.detail.es.close(); state.detail = null; }
    $("detail").hidden = true;
    if (updateHash && location.hash) history.replaceState(null, "", location.pathname + location.search);
  }

  function stat(label, value, cls) {
    const c = el("div", "card");
    c.append(el("div", "label", label), el("div", "value" + (cls ? " " + cls : ""), value));
    return c;
  }

  function renderTunnel(t) {
    if (!state.detail) return;
    $("d-gone").hidden = true;
    setText("d-title", t.alias || t.instanceId);
    $("d-status").replaceChildren(pill(t.status));
    $("d-stats").replaceChildren(
      stat("↓ rx", rate(t.rate.rx), "rx-c"),
      stat("↑ tx", rate(t.rate.tx), "tx-c"),
      stat("This hour", bytes(t.hour.traffic.total)),
      stat("Total", bytes(t.traffic.total)),
      stat("Ping", t.status === "running" ? t.ping + " ms" : "–"),
      stat("TCP conns", int(t.tcps)),
      stat("UDP sessions", int(t.udps)),
      stat("Pool", int(t.pool)),
    );
    const kv = [
      ["Type", t.type + (t.mode ? " · mode " + t.mode : "")],
      ["URL", t.url || "–"],
      ["Restart", t.restart ? "yes" : "no"],
      ["Traffic", "tcp ↓ " + bytes(t.traffic.tcpRx) + " ↑ " + bytes(t.traffic.tcpTx) + " · udp ↓ " + bytes(t.traffic.udpRx) + " ↑ " + bytes(t.traffic.udpTx)],
      ["Raw counters", "tcp ↓ " + bytes(t.raw.tcpRx) + " ↑ " + bytes(t.raw.tcpTx) + " · udp ↓ " + bytes(t.raw.udpRx) + " ↑ " + bytes(t.raw.udpTx)],
      ["Last event", t.lastEvent ? new Date(t.lastEvent).toLocaleString() + " (" + ago(t.lastEvent) + ")" : "–"],
    ];
    if (t.peer) kv.push(["Peer", [t.peer.alias, t.peer.type, t.peer.sid].filter(Boolean).join(" · ")]);
    for (const k of Object.keys(t.tags || {}).sort()) kv.push(["Tag " + k, t.tags[k]]);
    if (t.stale) kv.push(["Note", "restored from disk; not yet confirmed by the master"]);
    const out = [];
    for (const [k, v] of kv) out.push(el("div", "k", k), el("div", "v", v));
    $("d-kv").replaceChildren(...out);
    // The open hour grows: redraw the chart now and then.
    if (Date.now() - state.detail.trendAt > TREND_MS) {
      state.detail.trendAt = Date.now();
      loadTrend($("d-chart"));
    }
  }

  function appendLogs(ev) {
    if (!state.detail) return;
    const box = $("d-logs");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    if (ev.initial) box.replaceChildren();
    const none = box.querySelector(".none");
    if (none && ev.lines.length) none.remove();
    for (const line of ev.lines) box.append(el("div", null, line));
    while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
    if (!box.childElementCount) box.append(el("div", "none", "No log lines yet."));
    state.detail.lines = box.querySelectorAll("div:not(.none)").length;
    setText("d-log-count", state.detail.lines ? state.detail.lines + " lines" : "");
    if (atBottom || ev.initial) box.scrollTop = box.scrollHeight;
  }

  function route() {
    const m = /^#\/tunnel\/([^/]+)\/([^/]+)$/.exec(location.hash);
    if (!m) { closeDetail(false); return; }
    let endpoint, id;
    try { endpoint = decodeURIComponent(m[1]); id = decodeURIComponent(m[2]); } catch (_) { return; }
    if (!state.detail || state.detail.endpoint !== endpoint || state.detail.id !== id) openDetail(endpoint, id);
  }

  // ---- wiring ----

  function init() {
    $("endpoints").addEventListener("click", (ev) => {
      const tr = ev.target.closest("tbody tr");
      if (tr) location.hash = "#/tunnel/" + enc(tr.dataset.endpoint) + "/" + enc(tr.dataset.id);
    });
    $("endpoints").addEventListener("keydown", (ev) => {
      const tr = ev.target.closest("tbody tr");
      if (tr && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); tr.click(); }
    });
    $("d-close").addEventListener("click", () => closeDetail(true));
    $("detail").addEventListener("click", (ev) => { if (ev.target === $("detail")) closeDetail(true); });
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.detail) closeDetail(true); });
    window.addEventListener("hashchange", route);
    const rerender = () => { if (state.endpoints) renderEndpoints(state.endpoints); };
    $("filter").addEventListener("input", rerender);
    $("status-filter").addEventListener("change", rerender);
    let resize = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        for (const box of document.querySelectorAll(".chart")) if (box._trend) drawChart(box, box._trend);
      }, 150);
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) pollEndpoints(); });

    scheduleTrend($("chart-all"));
    connectDashboard();
    pollEndpoints();
    setInterval(pollEndpoints, POLL_MS);
    route();
  }

  init();
})();
