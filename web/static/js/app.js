// The dashboard's entry point: login, hash routing between pages, and the
// two shared live feeds (the event stream and the status reader).
//
// Routing uses the URL fragment (#/clients) so every page is the one
// embedded index.html and nothing under /v1/ can collide with a page path.

import { api, token, setToken, clearToken, onUnauthorized, EventStream } from "./api.js";
import { StatusFeed } from "./status.js";
import { $ } from "./util.js";
import { overviewPage } from "./overview.js";
import { clientsPage } from "./clients.js";
import { settingsPage } from "./settings.js";
import { releasesPage } from "./releases.js";

// Progress events are left out: they are the most frequent and change no
// count the dashboard shows. Queued events are left out too: a release
// queues every online client in a few turns, and the status already counts
// them.
const STREAM_TYPES = ["started", "upgraded", "retry_scheduled", "lease_expired", "failed", "jump_requested",
  "jump_ready", "retried", "settings_changed", "release_published"];

const ctx = {
  stream: new EventStream(STREAM_TYPES),
  status: new StatusFeed(),
};

const pages = {
  overview: overviewPage(ctx),
  clients: clientsPage(ctx),
  settings: settingsPage(ctx),
  releases: releasesPage(ctx),
};

let current = null;
let loginNotice = "";

function route() {
  const signedIn = token() !== "";
  let name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "overview";
  if (!signedIn) name = "login";
  else if (!pages[name]) name = "overview";
  show(name);
}

function show(name) {
  if (current === name) return;
  if (current && pages[current]) pages[current].hide();
  for (const sec of document.querySelectorAll("main > .page")) sec.hidden = sec.id !== "page-" + name;
  $("top").hidden = name === "login";
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const prev = current;
  current = name;
  if (name === "login") {
    document.title = "Sign in · jumpfleet";
    $("login-error").textContent = loginNotice;
    $("token").focus();
    return;
  }
  startFeeds();
  const titles = { overview: "Overview", clients: "Jump clients", settings: "Settings", releases: "Releases & installers" };
  document.title = titles[name] + " · jumpfleet";
  pages[name].show();
  // Move focus to the page for keyboard and screen-reader users, but not
  // on the first paint after sign-in (the heading is read anyway).
  if (prev && prev !== "login") $("main").focus({ preventScroll: true });
}

function startFeeds() {
  ctx.stream.start();
  ctx.status.start();
}

function signOut(notice) {
  clearToken();
  ctx.stream.stop();
  ctx.status.stop();
  loginNotice = notice || "";
  if (current && pages[current]) pages[current].hide();
  current = null;
  route();
}

onUnauthorized(() => signOut("The broker refused the token (it may have been reset). Sign in again."));

ctx.stream.onState((on) => {
  const live = $("live");
  live.classList.toggle("on", on);
  live.classList.toggle("off", !on);
  $("live-text").textContent = on ? "live" : "reconnecting…";
});
// Every event may change a count: ask the status reader for a (coalesced)
// refresh. A gap means events were missed: refresh everything now.
ctx.stream.on((ev) => {
  if (ev.type === "gap") ctx.status.refresh();
  else ctx.status.poke();
});

function init() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    const err = $("login-error");
    if (!t) {
      err.textContent = "Paste the admin token.";
      $("token").setAttribute("aria-invalid", "true");
      return;
    }
    err.textContent = "Checking…";
    try {
      await api("GET", "/v1/status", undefined, t);
    } catch (x) {
      err.textContent = x.status === 401 ? "The broker refused this token." : "Sign-in failed: " + x.message;
      $("token").setAttribute("aria-invalid", "true");
      return;
    }
    $("token").removeAttribute("aria-invalid");
    $("token").value = "";
    loginNotice = "";
    err.textContent = "";
    setToken(t);
    if (!location.hash || location.hash === "#/login") location.hash = "#/overview";
    route();
    // The focused field just disappeared: start keyboard users at the top
    // bar, so that Tab reaches the navigation first.
    $("top").focus();
  });
  $("signout").addEventListener("click", () => signOut("Signed out."));
  for (const p of Object.values(pages)) p.init();
  window.addEventListener("hashchange", route);
  route();
}

init();
