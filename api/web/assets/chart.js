// The one chart drawer: time lines and bars in SVG, with a legend, hover
// values and gaps where data is missing. Every chart on the page is a call
// to draw with a spec:
//
//   draw(box, {
//     type: "line" | "bar",
//     x: [ms, ...],                       // times, oldest first
//     series: [{label, cls, values}],     // values[i] is a number or null
//     stack: true,                        // bars: stack the series
//     y: (v) => "1.2 MiB/s",              // value format (axis and hover)
//     ticks: "bytes" | "plain",           // grid steps in IEC units or plain
//     yMax: 1,                            // a fixed top (e.g. ratios)
//     step: ms,                           // expected spacing, for gaps
//     xTip: (ms) => "...",                // time format in the hover text
//     empty: "text",                      // shown with no data
//   })
//
// A line is broken (not bridged) over a null value or over a hole longer
// than 2.5 times the usual spacing, so a master that was down shows as a
// gap, not as a slope.
import { svg, el } from "./dom.js";
import { niceStep, unitOf, axisTime, dateTime } from "./fmt.js";

const H = 160, LEFT = 64, RIGHT = 8, TOP = 10, BOTTOM = 20;

export function draw(box, spec) {
  box._spec = spec;
  render(box);
}

// redrawAll redraws every chart, after a resize.
export function redrawAll() {
  for (const box of document.querySelectorAll(".chart")) if (box._spec && box.isConnected) render(box);
}

function yScale(max, spec) {
  if (spec.yMax) return { top: spec.yMax, step: niceStep(spec.yMax / 4) };
  if (!(max > 0)) return { top: 1, step: 1 };
  if (spec.ticks === "bytes" || spec.ticks === "rate") {
    const [d] = unitOf(max / 3);
    const step = niceStep(max / 3 / d) * d;
    return { top: step * Math.ceil(max / step), step };
  }
  const step = niceStep(max / 3);
  return { top: step * Math.ceil(max / step), step };
}

function render(box) {
  const spec = box._spec;
  const x = spec.x || [];
  const series = spec.series || [];
  const n = x.length;
  const w = Math.max(box.clientWidth || 0, 280), h = spec.height || H;
  const plotW = w - LEFT - RIGHT, plotH = h - TOP - BOTTOM;
  let points = 0, max = 0;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (const s of series) {
      const v = s.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      points++;
      sum += v;
      if (!spec.stack) max = Math.max(max, v);
    }
    if (spec.stack) max = Math.max(max, sum);
  }
  const sc = yScale(max, spec);
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "data-points": points });
  if (spec.title) root.setAttribute("aria-label", spec.title);
  const yOf = (v) => TOP + plotH - (Math.min(v, sc.top) / sc.top) * plotH;
  if (points > 0) {
    for (let v = 0; v <= sc.top + sc.step / 1e6; v += sc.step) {
      const y = yOf(v);
      root.append(svg("line", { x1: LEFT, x2: w - RIGHT, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: LEFT - 8, y: y + 4, "text-anchor": "end", class: "axis" });
      label.textContent = v === 0 ? "0" : tickLabel(v, sc, spec);
      root.append(label);
    }
  }
  const t0 = n ? x[0] : 0, t1 = n ? x[n - 1] : 1, span = Math.max(t1 - t0, 1);
  const bar = spec.type === "bar";
  const slot = bar ? plotW / Math.max(n, 1) : 0;
  const xOf = bar ? (i) => LEFT + i * slot + slot / 2 : (i) => (n === 1 ? LEFT + plotW / 2 : LEFT + ((x[i] - t0) / span) * plotW);

  if (bar) {
    const bw = Math.max(1, slot * 0.72);
    for (let i = 0; i < n; i++) {
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i];
        if (v === null || v === undefined || !(v > 0)) return;
        const off = spec.stack ? base : 0;
        const bx = spec.stack ? xOf(i) - bw / 2 : xOf(i) - bw / 2 + (bw / series.length) * k;
        const bwi = spec.stack ? bw : bw / series.length;
        const y0 = yOf(off), y1 = yOf(off + v);
        root.append(svg("rect", { x: bx, y: y1, width: bwi, height: Math.max(y0 - y1, 0.5), class: "bar " + s.cls }));
        base += v;
      });
    }
  } else {
    const gap = gapLimit(x, spec.step);
    for (const s of series) {
      let d = "", run = 0, prev = null;
      const dots = [];
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (v === null || v === undefined || !Number.isFinite(v)) { if (run === 1) dots.push(prev); run = 0; continue; }
        const px = xOf(i), py = yOf(v);
        if (run > 0 && x[i] - x[i - 1] > gap) { if (run === 1) dots.push(prev); run = 0; }
        d += (run === 0 ? "M" : "L") + px.toFixed(1) + " " + py.toFixed(1);
        run++;
        prev = [px, py];
      }
      if (run === 1) dots.push(prev);
      if (d) root.append(svg("path", { d, class: "line " + s.cls }));
      for (const [px, py] of dots) root.append(svg("circle", { cx: px, cy: py, r: 2.5, class: "dot " + s.cls }));
    }
  }
  // Time labels: about five, evenly spread.
  if (n > 0) {
    const want = Math.max(2, Math.min(6, Math.floor(plotW / 110)));
    const fmt = spec.xLabel || ((ms) => axisTime(ms, span));
    let lastX = -1e9;
    for (let k = 0; k < want; k++) {
      const i = Math.round((k * (n - 1)) / Math.max(want - 1, 1));
      const px = xOf(i);
      if (px - lastX < 60) continue;
      lastX = px;
      const label = svg("text", { x: px, y: h - 4, "text-anchor": k === 0 && !bar ? "start" : k === want - 1 && !bar ? "end" : "middle", class: "axis" });
      label.textContent = fmt(x[i]);
      root.append(label);
    }
  }
  const legend = el("div", "legend");
  for (const s of series) {
    const item = el("span", "item");
    item.append(el("span", "sw " + s.cls), document.createTextNode(s.label));
    legend.append(item);
  }
  const caption = el("div", "caption");
  caption.setAttribute("aria-live", "off");
  const parts = [legend, caption, root];
  if (points === 0) {
    parts.push(el("div", "none", spec.empty || ""));
  } else {
    hover(root, caption, spec, { n, x, series, xOf, h, plotH, slot, bar, w });
  }
  box.replaceChildren(...parts);
}

// tickLabel writes every grid line of a size axis in one IEC unit (the
// step's), so an axis never reads "500 MiB, 1000 MiB, 1.46 GiB".
function tickLabel(v, sc, spec) {
  if (spec.ticks !== "bytes" && spec.ticks !== "rate") return spec.y(v);
  const [d, u] = unitOf(sc.step);
  const n = v / d;
  return String(Math.round(n * 100) / 100) + " " + u + (spec.ticks === "rate" ? "/s" : "");
}

// gapLimit is the longest spacing still drawn as one line.
function gapLimit(x, step) {
  if (step) return step * 2.5;
  const d = [];
  for (let i = 1; i < x.length; i++) d.push(x[i] - x[i - 1]);
  if (!d.length) return Infinity;
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)] * 2.5;
}

function hover(root, caption, spec, g) {
  const guide = svg("line", { x1: 0, x2: 0, y1: TOP, y2: TOP + g.plotH, class: "guide" });
  guide.setAttribute("visibility", "hidden");
  const hit = svg("rect", { x: LEFT, y: TOP, width: g.w - LEFT - RIGHT, height: g.plotH, class: "hit" });
  root.append(guide, hit);
  const tip = spec.xTip || dateTime;
  const show = (ev) => {
    const r = root.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * g.w;
    let best = 0, bd = Infinity;
    for (let i = 0; i < g.n; i++) {
      const dd = Math.abs(g.xOf(i) - px);
      if (dd < bd) { bd = dd; best = i; }
    }
    const x = g.xOf(best);
    guide.setAttribute("x1", x);
    guide.setAttribute("x2", x);
    guide.setAttribute("visibility", "visible");
    const vals = g.series.map((s) => {
      const v = s.values[best];
      return s.label + " " + (v === null || v === undefined || !Number.isFinite(v) ? "–" : spec.y(v));
    });
    caption.textContent = tip(g.x[best]) + " · " + vals.join(" · ");
  };
  hit.addEventListener("mousemove", show);
  hit.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); caption.textContent = ""; });
}
