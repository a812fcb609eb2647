// Jump clients: a filtered, cursor-paged table over the whole fleet, a
// details panel, and the jump and retry actions.
//
// The API pages in enrollment order with an opaque cursor and examines at
// most 200,000 clients per request, so a rare filter can give short or empty
// pages that still have a next cursor. A page here follows next cursors
// (up to MAX_HOPS requests) until it has its rows, and remembers where each
// page started so "Previous" works without the API going backwards.

import { api } from "./api.js";
import { $, el, num, time, ago, stateBadge, clear } from "./util.js";

const MAX_HOPS = 12;
const REFRESH_MS = 10_000; // re-read of the visible page
const MAX_WATCHES = 100; // jump watches kept (oldest dropped first)
const FILTERS = ["q", "state", "kind", "platform", "version", "online"];

export function clientsPage(ctx) {
  let filters = {};
  let limit = 50;
  let starts = [""]; // cursor at which each visited page starts
  let page = 0;
  let next = "";
  let rows = []; // clients on this page
  const byId = new Map(); // id -> index in rows
  let seq = 0; // drops answers to superseded loads
  let selected = "";
  let detailsSeq = 0;
  let detailTimer = 0;
  let visible = false;
  let offStatus = null;
  let refresher = 0;
  let lastStatus = null;
  let loadedTotal; // matching clients when the page loaded (see total)
  // Jumps this tab asked for, to show "upgrade pending" then "ready".
  const watches = new Map(); // id -> {phase, position, lane, version}

  // Watches outlive page switches: the listener is never removed.
  ctx.stream.on((ev) => {
    if (ev.type === "gap") {
      if (visible) reloadPage();
      for (const id of watches.keys()) recheckWatch(id);
      return;
    }
    if (!ev.client) return;
    const w = watches.get(ev.client);
    const waiting = w && (w.phase === "pending" || w.phase === "upgrading");
    if (waiting && (ev.type === "jump_ready" || ev.type === "upgraded")) {
      w.phase = "ready";
      w.version = ev.version || w.version;
      notice("good", `Client ${short(ev.client)} is ready: it is now on ${w.version || "the site version"}. You can jump to it.`);
    } else if (w && w.phase === "pending" && ev.type === "started") {
      w.phase = "upgrading";
    } else if (w && w.phase === "upgrading" && (ev.type === "retry_scheduled" || ev.type === "failed")) {
      w.phase = ev.type === "failed" ? "failed" : "pending";
    }
    if (!visible) return;
    const i = byId.get(ev.client);
    if (i !== undefined) {
      const c = rows[i];
      if (ev.state) c.state = ev.state;
      if (ev.version) c.version = ev.version;
      if (ev.target) c.target = ev.target;
      if (ev.lane) c.lane = ev.lane;
      if (ev.type === "upgraded") {
        c.lane = "none";
        c.position = 0;
        c.outdated = false;
      } else if (ev.position) c.position = ev.position;
      if (ev.attempt) c.attempts = ev.attempt;
      if (ev.error) c.last_error = ev.error;
      renderRow(i);
    }
    if (ev.client === selected) scheduleDetails();
  });

  function short(id) {
    return id.slice(0, 12) + "…";
  }

  function notice(kind, text, ...extra) {
    const n = $("cl-notice");
    clear(n);
    n.className = "notice " + (kind || "");
    if (text) n.append(text, ...extra);
  }

  function addWatch(id, w) {
    watches.delete(id);
    watches.set(id, w);
    while (watches.size > MAX_WATCHES) watches.delete(watches.keys().next().value);
  }

  async function recheckWatch(id) {
    const w = watches.get(id);
    if (!w || w.phase === "ready") return;
    try {
      const c = await api("GET", "/v1/clients/" + id);
      if (c.state === "current" && !c.outdated) {
        w.phase = "ready";
        w.version = c.version;
        notice("good", `Client ${short(id)} is ready: it is now on ${c.version}. You can jump to it.`);
        if (visible) reloadPage();
      }
    } catch {
      // The next event or gap tries again.
    }
  }

  function query(cursor, n) {
    const p = new URLSearchParams();
    for (const k of FILTERS) if (filters[k]) p.set(k, filters[k]);
    p.set("limit", String(n));
    if (cursor) p.set("cursor", cursor);
    return "/v1/clients?" + p.toString();
  }

  // load shows the page starting at cursor. A quiet load refreshes the
  // page in place (queue positions move as others finish) without the
  // "Loading…" flicker.
  async function load(cursor, quiet) {
    const my = ++seq;
    const got = [];
    let cur = cursor;
    let hops = 0;
    if (!quiet) {
      loadedTotal = undefined;
      $("cl-range").textContent = "Loading…";
      setFieldError("f-q", "");
      setFieldError("f-version", "");
      $("cl-error").textContent = "";
    }
    try {
      do {
        const r = await api("GET", query(cur, limit - got.length));
        if (my !== seq) return;
        got.push(...r.clients);
        cur = r.next_cursor;
        hops++;
      } while (got.length < limit && cur && hops < MAX_HOPS);
    } catch (e) {
      if (my !== seq || quiet) return;
      showLoadError(e);
      rows = [];
      next = "";
      renderTable();
      return;
    }
    rows = got;
    next = cur;
    loadedTotal = total();
    renderTable();
  }

  function showLoadError(e) {
    if (e.code === "bad_version") setFieldError("f-version", e.message);
    else if (e.code === "bad_request" && /^q=/.test(e.message)) setFieldError("f-q", e.message);
    else if (e.code === "bad_cursor") {
      // The fleet changed under a remembered cursor: start over.
      $("cl-error").textContent = "The list moved on; showing the first page again.";
      starts = [""];
      page = 0;
      load("");
      return;
    } else $("cl-error").textContent = e.message;
    $("cl-range").textContent = "";
  }

  function setFieldError(id, msg) {
    const input = $(id);
    let p = $(id + "-err");
    if (!p) {
      p = el("p", { class: "error", id: id + "-err" });
      input.after(p);
    }
    p.textContent = msg;
    if (msg) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function reloadPage(quiet) {
    load(starts[page], quiet);
  }

  // total is the number of clients matching the filters when the status
  // counts tell it (state, kind and online filters), else undefined.
  function total() {
    const s = lastStatus;
    if (!s || filters.q || filters.platform || filters.version) return undefined;
    const { state, kind, online } = filters;
    if (online === "false") return !state && !kind ? s.offline : undefined;
    if (online === "true") return !state ? (kind ? s.by_kind[kind].online : s.online) : undefined;
    if (state && kind) return s.by_kind[kind][state];
    if (state) return s.by_state[state];
    if (kind) return ["current", "pending", "upgrading", "failed"].reduce((a, st) => a + (s.by_kind[kind][st] || 0), 0);
    return s.clients;
  }

  function renderRange() {
    // The total is taken when the page loads: rows are then updated in
    // place from events, and a total moving under them would not add up.
    const t = loadedTotal;
    let txt;
    if (rows.length === 0) txt = page === 0 ? "No clients match." : `Page ${page + 1}: no more clients.`;
    else {
      const first = page * limit + 1;
      // Rows per page are exact only when every earlier page was full,
      // which holds because a page follows cursors until it is.
      txt = `Page ${page + 1} · clients ${num(first)}–${num(first + rows.length - 1)}`;
      // A status read just before a change can lag the list: say nothing
      // rather than "1–5 of 3".
      if (t !== undefined && t >= first + rows.length - 1) txt += ` of ${num(t)}`;
    }
    $("cl-range").textContent = txt;
    $("cl-prev").disabled = page === 0;
    $("cl-next").disabled = !next;
  }

  function renderTable() {
    const body = $("cl-rows");
    clear(body);
    byId.clear();
    rows.forEach((c, i) => {
      byId.set(c.id, i);
      body.append(rowFor(c));
    });
    if (rows.length === 0) body.append(el("tr", null, el("td", { colspan: 9, class: "muted" }, "No clients on this page.")));
    renderRange();
  }

  function renderRow(i) {
    const old = $("cl-rows").children[i];
    if (old) old.replaceWith(rowFor(rows[i]));
  }

  function watchBadge(id) {
    const w = watches.get(id);
    if (!w) return null;
    const text = { pending: "Jump: upgrade pending", upgrading: "Jump: upgrading", ready: "Jump: ready", failed: "Jump: upgrade failed" }[w.phase];
    const cls = { pending: "st-pending", upgrading: "st-upgrading", ready: "st-current", failed: "st-failed" }[w.phase];
    return el("span", { class: "badge " + cls, dataset: { watch: w.phase } }, text);
  }

  function versionCell(c) {
    return el("td", { class: "nowrap" }, el("span", { class: "mono" }, c.version),
      c.outdated && c.target ? el("span", { class: "muted small" }, " → " + c.target) : null);
  }

  function rowFor(c) {
    const tr = el("tr", { dataset: { id: c.id, state: c.state }, class: c.id === selected ? "selected" : "" });
    tr.append(
      el("td", null, el("button", { type: "button", class: "linklike mono", onclick: () => openDetails(c.id), "aria-label": "Details of client " + c.id }, c.id)),
      el("td", null, c.kind),
      el("td", { class: "nowrap" }, c.platform),
      versionCell(c),
      el("td", { class: "state" }, stateBadge(c), " ", watchBadge(c.id)),
      el("td", { class: "opt nowrap" }, c.online ? el("span", { class: "online-yes" }, "● Online") : el("span", { class: "online-no" }, "○ Offline")),
      el("td", { class: "num opt" }, num(c.attempts || 0)),
      el("td", { class: "err opt" }, c.last_error || ""),
      el("td", { class: "nowrap" }, actions(c)),
    );
    return tr;
  }

  function actions(c) {
    const out = [el("button", { type: "button", class: "small", onclick: () => jump(c.id), "aria-label": "Jump to client " + c.id, dataset: { action: "jump" } }, "Jump")];
    if (c.state === "failed") {
      out.push(" ", el("button", { type: "button", class: "small", onclick: () => retry(c.id), "aria-label": "Retry client " + c.id, dataset: { action: "retry" } }, "Retry"));
    }
    return out;
  }

  async function jump(id) {
    notice("", "Jumping to " + short(id) + "…");
    let a;
    try {
      a = await api("POST", "/v1/clients/" + id + "/jump");
    } catch (e) {
      notice("bad", `Jump to ${short(id)} failed: ${e.message}`);
      return;
    }
    if (a.result === "upgrade_pending") {
      addWatch(id, { phase: a.state === "upgrading" ? "upgrading" : "pending", position: a.position, lane: a.lane, version: a.target });
      notice("warn", `Upgrade pending: client ${short(id)} runs ${a.version}, the site version is ${a.target}. ` +
        (a.state === "upgrading" ? "It is upgrading now. " : `It moved to the front of the queue (${a.lane} lane, position ${a.position}). `) +
        "This page will tell you when you can jump to it.");
    } else if (a.result === "allowed") {
      addWatch(id, { phase: "ready", version: a.version });
      notice("good", `Jump allowed: client ${short(id)} is current (${a.version}) and online.`);
    } else {
      notice("warn", `Client ${short(id)} is current (${a.version}) but offline: it cannot be reached now.`);
    }
    const i = byId.get(id);
    if (i !== undefined) {
      Object.assign(rows[i], { state: a.state, lane: a.lane, position: a.position || 0 });
      renderRow(i);
    }
    if (id === selected) scheduleDetails();
  }

  async function retry(id) {
    try {
      const c = await api("POST", "/v1/clients/" + id + "/retry");
      notice("good", `Client ${short(id)} will be retried (${c.state === "pending" ? "queued again" : c.state}).`);
      const i = byId.get(id);
      if (i !== undefined) {
        rows[i] = c;
        renderRow(i);
      }
      if (id === selected) scheduleDetails();
    } catch (e) {
      notice("bad", `Retry of ${short(id)} failed: ${e.message}`);
    }
  }

  function askRetryAll() {
    const failed = lastStatus ? lastStatus.by_state.failed : undefined;
    const yes = el("button", { type: "button", class: "primary", onclick: retryAll }, "Retry all");
    const no = el("button", { type: "button", onclick: () => notice("", "") }, "Cancel");
    notice("warn", `Give every failed client${failed !== undefined ? " (" + num(failed) + ")" : ""} a fresh set of attempts? `, yes, " ", no);
    yes.focus();
  }

  async function retryAll() {
    try {
      const r = await api("POST", "/v1/retry-failed", {});
      notice("good", `Retried ${num(r.retried)} failed client${r.retried === 1 ? "" : "s"}.`);
      reloadPage();
    } catch (e) {
      notice("bad", "Retry failed: " + e.message);
    }
  }

  // Details panel.
  async function openDetails(id) {
    selected = id;
    $("cl-details").hidden = false;
    $("cl-details").closest(".split").classList.add("open");
    for (const tr of $("cl-rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
    await loadDetails();
    $("d-h").focus();
  }

  function closeDetails() {
    const id = selected;
    selected = "";
    $("cl-details").hidden = true;
    $("cl-details").closest(".split").classList.remove("open");
    for (const tr of $("cl-rows").children) tr.classList.remove("selected");
    const btn = document.querySelector(`#cl-rows tr[data-id="${id}"] button.linklike`);
    if (btn) btn.focus();
  }

  function scheduleDetails() {
    if (detailTimer) return;
    detailTimer = setTimeout(() => {
      detailTimer = 0;
      if (selected) loadDetails();
    }, 300);
  }

  async function loadDetails() {
    const my = ++detailsSeq;
    const id = selected;
    const body = $("d-body");
    let c;
    try {
      c = await api("GET", "/v1/clients/" + id);
    } catch (e) {
      if (my !== detailsSeq) return;
      clear(body);
      body.append(el("p", { class: "error" }, e.message));
      return;
    }
    if (my !== detailsSeq) return;
    $("d-h").textContent = "Client " + short(c.id);
    $("d-h").setAttribute("tabindex", "-1");
    clear(body);
    const kv = el("dl", { class: "kv" });
    const add = (k, v) => {
      if (v === undefined || v === null || v === "") return;
      kv.append(el("dt", null, k), el("dd", null, v));
    };
    add("Id", el("span", { class: "mono" }, c.id));
    add("State", el("span", null, stateBadge(c), " ", watchBadge(c.id)));
    add("Kind", c.kind);
    add("Platform", c.platform);
    add("Version", el("span", { class: "mono" }, c.version));
    add("Target", c.target ? el("span", { class: "mono" }, c.target) : "");
    add("Outdated", c.outdated ? "yes" : "no");
    add("Online", c.online ? "yes" : "no");
    if (c.lane && c.lane !== "none") add("Queue", `${c.lane} lane, position ${num(c.position)}`);
    add("Attempts", num(c.attempts || 0));
    add("Last error", c.last_error);
    add("Last check-in", c.last_check_in ? `${ago(c.last_check_in)} (${time(c.last_check_in)})` : "never");
    add("Queued", time(c.queued_at));
    add("Started", time(c.started_at));
    add("Lease ends", time(c.lease_deadline));
    add("Retry at", time(c.retry_at));
    add("Finished", time(c.finished_at));
    body.append(kv, el("div", { class: "actions" }, actions(c)));
    const hist = (c.history || []).slice().reverse();
    body.append(el("h3", null, "Recent history"));
    if (hist.length === 0) body.append(el("p", { class: "muted small" }, "No events for this client since the broker started."));
    else {
      body.append(el("ol", { class: "history" }, hist.map((h) =>
        el("li", null, el("time", { datetime: h.at }, time(h.at)), " · ", el("strong", null, h.type.replace(/_/g, " ")),
          h.attempt ? ` (attempt ${h.attempt})` : "", h.error ? " — " + h.error : ""))));
    }
  }

  function readFilters() {
    const f = {};
    const q = $("f-q").value.trim().toLowerCase().replace(/[\s:-]/g, "");
    if (q && !/^[0-9a-f]{1,32}$/.test(q)) {
      setFieldError("f-q", "A client id is up to 32 hex digits (0-9, a-f).");
      return null;
    }
    setFieldError("f-q", "");
    f.q = q;
    for (const k of ["state", "kind", "platform", "online"]) f[k] = $("f-" + k).value;
    f.version = $("f-version").value.trim();
    limit = parseInt($("f-limit").value, 10) || 50;
    return f;
  }

  function apply() {
    const f = readFilters();
    if (!f) return;
    filters = f;
    starts = [""];
    page = 0;
    load("");
  }

  return {
    init() {
      $("cl-filters").addEventListener("submit", (e) => {
        e.preventDefault();
        apply();
      });
      $("cl-filters").addEventListener("reset", () => setTimeout(apply, 0));
      for (const id of ["f-state", "f-kind", "f-platform", "f-online", "f-limit"]) $(id).addEventListener("change", apply);
      $("cl-next").addEventListener("click", () => {
        if (!next) return;
        starts[page + 1] = next;
        page++;
        load(next);
      });
      $("cl-prev").addEventListener("click", () => {
        if (page === 0) return;
        page--;
        load(starts[page]);
      });
      $("cl-retry-all").addEventListener("click", askRetryAll);
      $("d-close").addEventListener("click", closeDetails);
      // Escape closes the details panel from anywhere on this page.
      document.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && visible && selected) closeDetails();
      });
    },
    show() {
      visible = true;
      offStatus = ctx.status.on((s) => {
        lastStatus = s;
        if (loadedTotal === undefined && seq > 0) {
          loadedTotal = total();
          renderRange();
        }
      });
      reloadPage();
      if (selected) loadDetails();
      // Events update rows in place, but queue positions of the clients
      // on this page move whenever anyone ahead of them starts: re-read
      // this one page (never the fleet) now and then.
      // Not while a keyboard user is in the table: rebuilding it would
      // take their focus away.
      refresher = setInterval(() => {
        if (!$("cl-rows").contains(document.activeElement)) reloadPage(true);
      }, REFRESH_MS);
    },
    hide() {
      visible = false;
      seq++;
      clearInterval(refresher);
      if (offStatus) offStatus();
      offStatus = null;
    },
  };
}

