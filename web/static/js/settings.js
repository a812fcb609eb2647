// Settings: the rollout limits and pause/resume. The API validates the whole
// settings set in one engine turn and changes nothing if any field is out of
// range; its message names the field, and the page shows it next to that
// field.

import { api } from "./api.js";
import { $, num, bytes, clear } from "./util.js";

// Fields in form order with how their inputs map to JSON.
const FIELDS = [
  { name: "max_concurrent", type: "int" },
  { name: "starts_per_sec", type: "float" },
  { name: "start_burst", type: "int" },
  { name: "bytes_per_sec", type: "int" },
  { name: "lease_time", type: "duration" },
  { name: "retry_limit", type: "int" },
  { name: "retry_base", type: "duration" },
  { name: "retry_max", type: "duration" },
];

export function settingsPage(ctx) {
  let current = null; // settings in force
  let dirty = false;
  let visible = false;

  ctx.stream.on((ev) => {
    if (ev.type !== "settings_changed" || !ev.settings) return;
    current = ev.settings;
    if (visible) {
      renderState();
      if (!dirty) fill();
    }
  });

  function input(name) {
    return $("s-" + name);
  }

  function setError(name, msg) {
    const i = input(name);
    $("s-" + name + "-err").textContent = msg;
    if (msg) {
      i.setAttribute("aria-invalid", "true");
      i.setAttribute("aria-describedby", `s-${name}-err s-${name}-hint`);
    } else {
      i.removeAttribute("aria-invalid");
      i.setAttribute("aria-describedby", `s-${name}-hint`);
    }
  }

  function clearErrors() {
    for (const f of FIELDS) setError(f.name, "");
    $("st-error").textContent = "";
  }

  function fill() {
    if (!current) return;
    for (const f of FIELDS) input(f.name).value = current[f.name];
    dirty = false;
    clearErrors();
    bwHint();
  }

  function bwHint() {
    const v = Number(input("bytes_per_sec").value);
    $("s-bytes_per_sec-hint").textContent = "At least 1024, shared by all downloads" + (v > 0 ? ` (= ${bytes(v)}/s).` : ".");
  }

  function renderState() {
    if (!current) return;
    const b = $("st-state");
    b.textContent = current.paused ? "Paused" : "Running";
    b.className = "badge " + (current.paused ? "st-failed" : "st-current");
    $("st-state-text").textContent = current.paused
      ? "No new upgrade starts; upgrades in flight go on."
      : `Upgrades start as slots free up (at most ${num(current.max_concurrent)} at once).`;
    $("st-pause").textContent = current.paused ? "Resume upgrades" : "Pause upgrades";
  }

  async function load() {
    try {
      current = await api("GET", "/v1/settings");
      // Keep what the admin started typing while the page loaded.
      if (!dirty) fill();
      renderState();
    } catch (e) {
      $("st-error").textContent = "Could not read the settings: " + e.message;
    }
  }

  // patch collects the changed fields; it returns null after marking the
  // fields it cannot send.
  function patch() {
    const out = {};
    let ok = true;
    for (const f of FIELDS) {
      const raw = input(f.name).value.trim();
      if (f.type === "duration") {
        if (raw === "") {
          setError(f.name, "Enter a duration such as 90s or 10m.");
          ok = false;
        } else if (raw !== String(current[f.name])) out[f.name] = raw;
        continue;
      }
      // type=number gives "" for anything that is not a number.
      if (raw === "") {
        setError(f.name, "Enter a number.");
        ok = false;
        continue;
      }
      const v = Number(raw);
      if (v !== current[f.name]) out[f.name] = v;
    }
    return ok ? out : null;
  }

  // fieldOf finds the field an API error is about: by name in the message,
  // or, for a duration the API could not parse, by the value that was sent.
  function fieldOf(msg, sent) {
    const named = FIELDS.map((f) => ({ name: f.name, at: msg.search(new RegExp("\\b" + f.name + "\\b")) }))
      .filter((f) => f.at >= 0)
      .sort((a, b) => a.at - b.at);
    // "retry backoff must satisfy ... retry_base ... retry_max": prefer the
    // one this save changed.
    const changed = named.find((f) => f.name in sent);
    if (changed) return changed.name;
    if (named.length) return named[0].name;
    const m = msg.match(/duration "([^"]*)"/);
    if (m) for (const [k, v] of Object.entries(sent)) if (v === m[1]) return k;
    return null;
  }

  async function save(e) {
    e.preventDefault();
    clearErrors();
    $("st-saved").textContent = "";
    const p = patch();
    if (!p) return;
    if (Object.keys(p).length === 0) {
      $("st-saved").textContent = "Nothing changed.";
      return;
    }
    try {
      current = await api("PATCH", "/v1/settings", p);
    } catch (x) {
      const f = fieldOf(x.message, p);
      if (f) {
        setError(f, x.message);
        input(f).focus();
      } else $("st-error").textContent = x.message;
      return;
    }
    fill();
    renderState();
    $("st-saved").textContent = "Saved: " + Object.keys(p).join(", ") + ".";
  }

  async function togglePause() {
    if (!current) return;
    $("st-error").textContent = "";
    try {
      current = await api("POST", current.paused ? "/v1/resume" : "/v1/pause");
      renderState();
    } catch (e) {
      $("st-error").textContent = e.message;
    }
  }

  return {
    init() {
      $("st-form").addEventListener("submit", save);
      $("st-form").addEventListener("input", () => {
        dirty = true;
        $("st-saved").textContent = "";
        bwHint();
      });
      $("st-revert").addEventListener("click", () => {
        fill();
        clear($("st-saved"));
      });
      $("st-pause").addEventListener("click", togglePause);
    },
    show() {
      visible = true;
      dirty = false;
      load();
    },
    hide() {
      visible = false;
    },
  };
}
