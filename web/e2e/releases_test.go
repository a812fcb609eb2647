package e2e_test

import (
	"strings"
	"testing"

	"jumpfleet/engine"
)

// Releases and installers: the list, the CLI command for publishing, an
// installer created here, and installers made before a site upgrade shown
// invalid once it is published.
func TestReleasesAndInstallers(t *testing.T) {
	e := start(t)
	e.publish("24.2.0", engine.PlatformWindowsX64, engine.PlatformLinuxX64)
	e.login()
	e.goTo("releases")
	e.waitJS(`document.getElementById("rl-site").textContent === "24.2.0"`, "the site release")
	if !strings.Contains(e.text("page-releases"), "jumpctl --data DATA release publish") {
		t.Errorf("the page does not tell how to publish")
	}

	e.set("in-kind", "passive")
	e.click(`#in-form button[type=submit]`)
	e.waitJS(`document.getElementById("in-token").value.startsWith("jfi_")`, "the new token")
	e.waitJS(`document.querySelectorAll("#in-rows tr[data-valid=true]").length === 1`, "the installer listed as valid")
	old := js[string](e, `document.querySelector("#in-rows tr[data-installer]").dataset.installer`)
	if row := js[string](e, `document.querySelector("#in-rows tr").textContent`); !strings.Contains(row, "passive") || !strings.Contains(row, "24.2.0") {
		t.Errorf("installer row %q", row)
	}

	// A site upgrade (published by another admin, as jumpctl would): the
	// page follows the event and the old installer turns invalid.
	e.publish("24.3.1", engine.PlatformWindowsX64, engine.PlatformLinuxX64)
	e.waitJS(`document.getElementById("rl-site").textContent === "24.3.1"`, "the new site release")
	e.waitJS(`document.querySelector('#in-rows tr[data-installer="`+old+`"]').dataset.valid === "false"`, "the old installer invalid")
	if row := js[string](e, `document.querySelector('#in-rows tr[data-installer="`+old+`"]').textContent`); !strings.Contains(row, "Regenerate") {
		t.Errorf("invalid installer row does not say to regenerate: %s", row)
	}
	e.set("in-kind", "jumpoint")
	e.click(`#in-form button[type=submit]`)
	e.waitJS(`document.querySelectorAll("#in-rows tr[data-valid=true]").length === 1 && document.querySelectorAll("#in-rows tr[data-installer]").length === 2`, "a new valid installer")
	rels := js[string](e, `[...document.querySelectorAll("#rl-rows tr")].map(r => r.dataset.release).join(" ")`)
	if rels != "24.3.1 base-24.3.1 24.2.0 base-24.2.0" {
		t.Errorf("releases newest first: %s", rels)
	}
	if txt := e.text("rl-rows"); !strings.Contains(txt, "windows-x64 24.3.1-r7") || !strings.Contains(txt, "current site release") {
		t.Errorf("release rows: %.300s", txt)
	}
	e.screenshot("releases")

	// The token is shown once: leaving the page forgets it.
	e.goTo("overview")
	e.goTo("releases")
	if v := js[string](e, `document.getElementById("in-token").value`); v != "" {
		t.Errorf("the installer token is still on the page")
	}
}
