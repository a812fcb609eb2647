package e2e_test

import (
	"strings"
	"testing"

	"jumpfleet/engine"
)

// Settings: raising max_concurrent lets more upgrades start and the overview
// shows the new cap filled; lowering it cancels nothing; out-of-range values
// come back from the API and are shown next to their field; pause and
// resume.
func TestSettings(t *testing.T) {
	e := start(t)
	e.enroll(0, 30, engine.KindActive, engine.PlatformWindowsX64)
	e.publish("24.3.1", engine.PlatformWindowsX64)
	e.waitFor("5 in flight", func() bool { return e.status().InFlight == 5 })
	e.login()
	e.goTo("settings")
	e.waitJS(`document.getElementById("s-max_concurrent").value === "5"`, "the settings form")

	e.typeInto("s-max_concurrent", "8")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("st-saved").textContent.includes("max_concurrent")`, "the saved notice")
	if s := e.status(); s.MaxConcurrent != 8 {
		t.Fatalf("max_concurrent is %d after saving 8", s.MaxConcurrent)
	}
	e.goTo("overview")
	e.waitFor("8 of 8 in flight", func() bool { return e.text("ov-inflight") == "8" && e.text("ov-max") == "8" })

	// Lower to 3: the 8 in flight go on; as they finish, no new one starts
	// until fewer than 3 are left.
	e.goTo("settings")
	e.waitJS(`document.getElementById("s-max_concurrent").value === "8"`, "the form to load")
	e.typeInto("s-max_concurrent", "3")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("s-max_concurrent").value === "3" && document.getElementById("st-saved").textContent !== ""`, "saved 3")
	e.goTo("overview")
	e.waitFor("8 in flight over a max of 3", func() bool { return e.text("ov-inflight") == "8" && e.text("ov-max") == "3" })
	e.screenshot("overview-over-cap")
	if e.finish(6) != 6 {
		t.Fatal("could not finish 6 upgrades")
	}
	e.waitFor("2 in flight, then the cap refilled to 3", func() bool { return e.text("ov-inflight") == "3" && e.text("ov-max") == "3" })
	if s := e.status(); s.InFlight != 3 {
		t.Fatalf("engine has %d in flight", s.InFlight)
	}

	// Bad values: the API's message next to the field, nothing changed.
	e.goTo("settings")
	e.waitJS(`document.getElementById("s-max_concurrent").value === "3"`, "the form to load")
	e.typeInto("s-max_concurrent", "0")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("s-max_concurrent-err").textContent.includes("max_concurrent must be between 1 and")`, "the max_concurrent error")
	if js[string](e, `document.getElementById("s-max_concurrent").getAttribute("aria-invalid")`) != "true" ||
		!strings.Contains(js[string](e, `document.getElementById("s-max_concurrent").getAttribute("aria-describedby")`), "s-max_concurrent-err") {
		t.Errorf("the field is not marked invalid or not tied to its message")
	}
	if got := js[string](e, `document.activeElement.id`); got != "s-max_concurrent" {
		t.Errorf("focus on %q after the error, want the field", got)
	}
	e.screenshot("settings-bad-max")
	if s := e.status(); s.MaxConcurrent != 3 {
		t.Fatalf("a refused setting changed max_concurrent to %d", s.MaxConcurrent)
	}
	e.typeInto("s-max_concurrent", "3")
	e.typeInto("s-lease_time", "soon")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("s-lease_time-err").textContent.includes("soon")`, "the lease_time error")
	if js[string](e, `document.getElementById("s-max_concurrent-err").textContent`) != "" {
		t.Errorf("an old error stayed on max_concurrent")
	}
	e.typeInto("s-lease_time", "10m0s")
	e.typeInto("s-retry_base", "2h")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("s-retry_base-err").textContent.includes("retry_base")`, "the backoff error on retry_base")
	e.typeInto("s-bytes_per_sec", "10")
	e.typeInto("s-retry_base", "1ms")
	e.click(`#st-form button[type=submit]`)
	e.waitJS(`document.getElementById("s-bytes_per_sec-err").textContent.includes("at least 1024")`, "the bandwidth error")
	e.screenshot("settings-bad-bandwidth")
	e.click("#st-revert")
	e.waitJS(`document.getElementById("s-bytes_per_sec-err").textContent === ""`, "revert to clear the errors")

	// Pause and resume.
	e.click("#st-pause")
	e.waitJS(`document.getElementById("st-state").textContent === "Paused"`, "paused")
	if !e.status().Paused {
		t.Fatal("the engine is not paused")
	}
	e.goTo("overview")
	e.waitJS(`!document.getElementById("ov-paused").hidden`, "the paused badge on the overview")
	e.goTo("settings")
	e.waitJS(`document.getElementById("st-pause").textContent === "Resume upgrades"`, "the resume button")
	e.click("#st-pause")
	e.waitJS(`document.getElementById("st-state").textContent === "Running"`, "running again")
	if e.status().Paused {
		t.Fatal("the engine is still paused")
	}
}
