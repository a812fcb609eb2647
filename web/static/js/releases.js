// Releases and installers. Releases are listed here but published with
// jumpctl on the broker host: a package signature needs the release key,
// which a browser must never hold. Installers are made here; those made for
// an older site release are shown invalid (clients enrolling with them are
// refused), as the upgrade guide says.

import { api } from "./api.js";
import { $, el, bytes, time, clear } from "./util.js";

export function releasesPage(ctx) {
  let visible = false;

  ctx.stream.on((ev) => {
    if (visible && ev.type === "release_published") load();
  });

  async function load() {
    const err = $("in-error");
    try {
      const [rels, ins] = await Promise.all([api("GET", "/v1/releases"), api("GET", "/v1/installers")]);
      renderReleases(rels);
      renderInstallers(ins);
    } catch (e) {
      err.textContent = "Could not read releases and installers: " + e.message;
    }
  }

  function renderReleases(r) {
    $("rl-site").textContent = r.site_release || "none published yet";
    const body = $("rl-rows");
    clear(body);
    // Newest first: the list answers oldest first.
    for (const rel of r.releases.slice().reverse()) {
      const isSite = rel.id === r.site_release;
      const targets = (rel.targets || []).map((t) =>
        el("li", null, el("strong", null, t.platform), " ", el("span", { class: "mono" }, t.version), t.size ? el("span", { class: "muted" }, ` (${bytes(t.size)})`) : null));
      body.append(el("tr", { dataset: { release: rel.id } },
        el("td", null, el("span", { class: "mono" }, rel.id), isSite ? el("span", null, " ", el("span", { class: "badge st-current" }, "current site release")) : null),
        el("td", null, rel.kind === "site" ? "Site" : "Base software"),
        el("td", null, rel.requires || "–"),
        el("td", null, time(rel.published_at)),
        el("td", null, targets.length ? el("ul", { class: "plain small" }, targets) : el("span", { class: "muted" }, "none (no client upgrades)"))));
    }
    if (r.releases.length === 0) body.append(el("tr", null, el("td", { colspan: 5, class: "muted" }, "No release installed yet.")));
  }

  function renderInstallers(r) {
    const body = $("in-rows");
    clear(body);
    for (const i of r.installers) {
      const status = i.valid
        ? el("span", { class: "badge st-current" }, "Valid")
        : el("span", null, el("span", { class: "badge st-failed" }, "Invalid"),
          el("span", { class: "small" }, ` made for ${i.site_tag || "no release"}; the site is now ${r.site_release}. Regenerate it.`));
      body.append(el("tr", { dataset: { installer: i.id, valid: String(i.valid) } },
        el("td", null, el("span", { class: "mono" }, i.id)),
        el("td", null, i.kind),
        el("td", null, i.site_tag || "(before any release)"),
        el("td", null, time(i.created)),
        el("td", null, status)));
    }
    if (r.installers.length === 0) body.append(el("tr", null, el("td", { colspan: 5, class: "muted" }, "No installers yet.")));
  }

  async function create(e) {
    e.preventDefault();
    $("in-error").textContent = "";
    try {
      const r = await api("POST", "/v1/installers", { kind: $("in-kind").value });
      $("in-new").hidden = false;
      $("in-token").value = r.token;
      $("in-token").select();
      load();
    } catch (x) {
      $("in-error").textContent = x.message;
    }
  }

  return {
    init() {
      $("in-form").addEventListener("submit", create);
      $("in-copy").addEventListener("click", async () => {
        const t = $("in-token");
        t.select();
        try {
          await navigator.clipboard.writeText(t.value);
          $("in-copy").textContent = "Copied";
        } catch {
          $("in-copy").textContent = "Select and copy";
        }
      });
    },
    show() {
      visible = true;
      $("in-new").hidden = true;
      $("in-token").value = "";
      $("in-copy").textContent = "Copy";
      load();
    },
    hide() {
      visible = false;
      // The token is shown once: do not leave it on a page left open.
      $("in-token").value = "";
      $("in-new").hidden = true;
    },
  };
}
