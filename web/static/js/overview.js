// Overview: where the rollout stands (from /v1/status) and how fast it moves
// (from the event stream).

import { $, el, num, duration, clock, clear, STATE_LABEL } from "./util.js";
import { drawBars } from "./chart.js";

const BUCKET_MS = 10_000;
const BUCKETS = 60; // ten minutes
const MAX_EVENTS = 60; // activity lines kept

const EVENT_TEXT = {
  started: "upgrade started",
  upgraded: "upgraded",
  retry_scheduled: "retry scheduled",
  lease_expired: "lease expired",
  failed: "failed",
  jump_requested: "jump requested",
  jump_ready: "ready for jump",
  retried: "retried by admin",
  settings_changed: "settings changed",
  release_published: "release published",
};

export function overviewPage(ctx) {
  // The chart's buckets fill from the moment the dashboard opens, whichever
  // page is showing, so they are fed by a listener that is never removed.
  const buckets = new Map(); // bucket start (ms) -> upgrades
  const recent = [];
  let visible = false;
  let offStatus = null;
  let drawTimer = 0;
  let tick = 0;

  ctx.stream.on((ev) => {
    if (ev.type === "gap") {
      recent.unshift({ type: "gap", at: new Date().toISOString() });
    } else {
      if (ev.type === "upgraded") {
        let t = Date.parse(ev.at);
        if (isNaN(t)) t = Date.now();
        const b = Math.floor(t / BUCKET_MS) * BUCKET_MS;
        buckets.set(b, (buckets.get(b) || 0) + 1);
      }
      recent.unshift(ev);
    }
    if (recent.length > MAX_EVENTS) recent.length = MAX_EVENTS;
    scheduleDraw();
  });

  function scheduleDraw() {
    if (!visible || drawTimer) return;
    drawTimer = setTimeout(() => {
      drawTimer = 0;
      drawChart();
      drawEvents();
    }, 500);
  }

  function series() {
    const end = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    const start = end - (BUCKETS - 1) * BUCKET_MS;
    for (const k of buckets.keys()) if (k < start) buckets.delete(k);
    const out = [];
    for (let t = start; t <= end; t += BUCKET_MS) out.push({ t, v: buckets.get(t) || 0 });
    return out;
  }

  function drawChart() {
    const s = series();
    drawBars($("ov-chart"), s, { label: "Upgrades completed per 10 seconds over the last 10 minutes" });
    const body = $("ov-chart-data");
    clear(body);
    for (const p of s.filter((p) => p.v > 0).slice(-20)) {
      body.append(el("tr", null, el("td", null, clock(new Date(p.t))), el("td", { class: "num" }, num(p.v))));
    }
    if (!body.firstChild) body.append(el("tr", null, el("td", { colspan: 2 }, "No upgrades completed yet.")));
  }

  function drawEvents() {
    const list = $("ov-events");
    clear(list);
    if (recent.length === 0) {
      list.append(el("li", { class: "empty muted" }, "Waiting for activity…"));
      return;
    }
    for (const ev of recent) {
      const when = ev.at ? new Date(ev.at) : new Date();
      let what = "";
      if (ev.type === "gap") what = "some events were missed; counts were re-read";
      else if (ev.type === "settings_changed" && ev.settings)
        what = `max concurrent ${ev.settings.max_concurrent}, ${ev.settings.paused ? "paused" : "running"}`;
      else if (ev.type === "release_published") what = ev.release || "";
      else {
        what = [ev.client, ev.kind, ev.platform, ev.version,
          ev.error ? "— " + ev.error : ""].filter(Boolean).join(" ");
      }
      list.append(el("li", null, el("time", { datetime: ev.at || "" }, clock(when)),
        el("span", null, EVENT_TEXT[ev.type] || ev.type), el("span", { class: "mono" }, what)));
    }
  }

  function render(s) {
    $("ov-updated").textContent = "Updated " + clock(new Date());
    $("ov-site").textContent = s.site_release || "none published";
    const plats = $("ov-site-platforms");
    clear(plats);
    for (const [p, v] of Object.entries(s.site || {}).sort()) plats.append(el("li", null, p + ": ", el("strong", null, v)));

    $("ov-inflight").textContent = num(s.in_flight);
    $("ov-max").textContent = num(s.max_concurrent);
    const m = $("ov-inflight-meter");
    m.max = Math.max(1, s.max_concurrent);
    m.value = Math.min(s.in_flight, m.max);
    m.textContent = `${s.in_flight} of ${s.max_concurrent}`;
    $("ov-paused").hidden = !s.paused;
    $("ov-queue").textContent = `Queue: ${num(s.jump_lane)} in the jump lane, ${num(s.normal_lane)} in the normal lane`;

    $("ov-rate").textContent = num(s.upgrades_per_minute);
    $("ov-mean").textContent = s.mean_upgrade_s > 0 ? duration(s.mean_upgrade_s) : "–";
    $("ov-eta").textContent = duration(s.eta_s);
    $("ov-notseen").textContent = num(s.outdated_not_seen);

    const counts = { ...s.by_state, offline: s.offline };
    for (const k of Object.keys(STATE_LABEL)) $("c-" + k).textContent = num(counts[k] || 0);
    $("ov-total").textContent = `(${num(s.clients)} clients, ${num(s.online)} online)`;
    const bar = $("ov-bar");
    clear(bar);
    const total = Math.max(1, s.clients);
    const parts = [];
    for (const k of ["current", "pending", "upgrading", "failed"]) {
      const n = s.by_state[k] || 0;
      if (n > 0) bar.append(el("span", { class: "st-" + k, style: { width: `${(100 * n) / total}%` }, title: `${STATE_LABEL[k]}: ${n}` }));
      parts.push(`${STATE_LABEL[k]} ${Math.round((100 * n) / total)}%`);
    }
    bar.setAttribute("aria-label", "Share of clients by state: " + parts.join(", "));

    const kinds = $("ov-kinds");
    clear(kinds);
    for (const k of ["active", "passive", "jumpoint"]) {
      const r = (s.by_kind && s.by_kind[k]) || {};
      kinds.append(el("tr", null, el("th", { scope: "row" }, k === "jumpoint" ? "Jumpoint" : k[0].toUpperCase() + k.slice(1)),
        ...["current", "pending", "upgrading", "failed", "online"].map((st) => el("td", { class: "num" }, num(r[st] || 0)))));
    }
  }

  return {
    init() {},
    show() {
      visible = true;
      offStatus = ctx.status.on(render);
      drawChart();
      drawEvents();
      // Slide the chart's window even when nothing happens.
      tick = setInterval(drawChart, BUCKET_MS);
    },
    hide() {
      visible = false;
      if (offStatus) offStatus();
      offStatus = null;
      clearInterval(tick);
      clearTimeout(drawTimer);
      drawTimer = 0;
    },
  };
}
