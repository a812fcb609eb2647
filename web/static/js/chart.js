// A small SVG bar chart. SVG rather than canvas: it scales with the page,
// takes the page's CSS colours, and needs no redraw on resize.

import { clear, clock } from "./util.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds up to 1, 2 or 5 times a power of ten, for readable ticks.
export function niceMax(v) {
  // At least 10, so that the middle tick is a whole number.
  if (v <= 10) return 10;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// drawBars draws points [{t (ms), v}] into host as bars over time.
export function drawBars(host, points, { label }) {
  const W = 600, H = 180, L = 40, R = 8, T = 10, B = 24;
  const max = niceMax(Math.max(0, ...points.map((p) => p.v)));
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  s.append(svg("title", {}, label));
  const plotW = W - L - R, plotH = H - T - B;
  for (const f of [0, 0.5, 1]) {
    const y = T + plotH * (1 - f);
    s.append(svg("line", { class: f === 0 ? "axis" : "grid-line", x1: L, x2: W - R, y1: y, y2: y }));
    s.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, String(Math.round(max * f))));
  }
  const n = Math.max(1, points.length);
  const slot = plotW / n;
  points.forEach((p, i) => {
    if (p.v > 0) {
      const h = (plotH * p.v) / max;
      const r = svg("rect", { class: "b", x: L + i * slot + 1, y: T + plotH - h, width: Math.max(1, slot - 2), height: h });
      r.append(svg("title", {}, `${clock(new Date(p.t))}: ${p.v}`));
      s.append(r);
    }
  });
  for (const i of [0, Math.floor(n / 2), n - 1]) {
    if (!points[i]) continue;
    const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
    s.append(svg("text", { x: L + i * slot + (i === n - 1 ? slot : 0), y: H - 6, "text-anchor": anchor }, clock(new Date(points[i].t))));
  }
  clear(host);
  host.append(s);
}
