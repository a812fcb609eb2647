package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
)

// waitRows waits until the client table has loaded and every row satisfies
// ok, with want rows (-1: any number but zero).
func (e *env) waitRows(what string, want int, ok func(row string) bool) []string {
	e.t.Helper()
	var rows []string
	e.waitFor(what, func() bool {
		if e.text("cl-range") == "Loading…" {
			return false
		}
		rows = e.rows()
		if want >= 0 && len(rows) != want || want < 0 && len(rows) == 0 {
			return false
		}
		for _, r := range rows {
			if !ok(r) {
				return false
			}
		}
		return true
	})
	return rows
}

func field(row string, i int) string { return strings.Fields(row)[i] }

// The client table: paging with the API's cursor, each filter, the id
// search, an API validation error shown next to its field, the details
// panel, and retrying a failed client.
func TestClientTable(t *testing.T) {
	e := start(t)
	e.enroll(0, 60, engine.KindActive, engine.PlatformWindowsX64)
	e.enroll(60, 75, engine.KindPassive, engine.PlatformMacOSArm64)
	if err := e.api.Do(e.ctx(), "PATCH", "/v1/settings", map[string]any{"retry_limit": 1}, nil); err != nil {
		t.Fatal(err)
	}
	// Only windows-x64 gets a new version: the macOS clients stay current.
	e.publish("24.3.1", engine.PlatformWindowsX64)
	e.waitFor("5 in flight", func() bool { return e.status().InFlight == 5 })
	e.login()
	e.goTo("clients")
	any := func(string) bool { return true }

	// Paging, 25 a page, in enrollment order; the total comes from the status.
	e.set("f-limit", "25")
	rows := e.waitRows("page 1", 25, any)
	if first := field(rows[0], 0); first != cid(0).String() {
		t.Fatalf("first row %s, want %s", first, cid(0))
	}
	e.waitFor("the range", func() bool { return e.text("cl-range") == "Page 1 · clients 1–25 of 75" })
	e.click("#cl-next")
	rows = e.waitRows("page 2", 25, func(r string) bool { return field(r, 0) != cid(0).String() })
	if field(rows[0], 0) != cid(25).String() {
		t.Fatalf("page 2 starts at %s", field(rows[0], 0))
	}
	e.click("#cl-next")
	e.waitRows("page 3", 25, func(r string) bool { return field(r, 0) >= cid(50).String() })
	if !js[bool](e, `document.getElementById("cl-next").disabled`) {
		t.Errorf("Next is enabled on the last page")
	}
	e.screenshot("clients-page3")
	e.click("#cl-prev")
	e.waitRows("back on page 2", 25, func(r string) bool { return field(r, 0) < cid(50).String() && field(r, 0) >= cid(25).String() })

	// Filters.
	e.set("f-limit", "100")
	e.set("f-state", "pending")
	e.waitRows("pending clients", 55, func(r string) bool { return field(r, 1) == "pending" })
	badge := e.text("cl-rows")
	if !strings.Contains(badge, "Upgrade pending · #1") || !strings.Contains(badge, "→ 24.3.1-r7") {
		t.Errorf("pending rows lack queue position or target: %.200s", badge)
	}
	e.waitFor("the pending total", func() bool { return strings.HasSuffix(e.text("cl-range"), "of 55") })
	e.set("f-state", "upgrading")
	e.waitRows("upgrading clients", 5, func(r string) bool { return field(r, 1) == "upgrading" })
	e.set("f-state", "")
	e.set("f-kind", "passive")
	e.waitRows("passive clients", 15, func(r string) bool { return field(r, 2) == "passive" && field(r, 1) == "current" })
	e.set("f-kind", "")
	e.set("f-platform", "macos-arm64")
	e.waitRows("macOS clients", 15, func(r string) bool { return field(r, 3) == "macos-arm64" })
	e.set("f-platform", "")
	e.typeInto("f-version", v1.String())
	e.set("f-state", "current")
	e.waitRows("current clients on the old version", 15, func(r string) bool { return field(r, 4) == v1.String() && field(r, 1) == "current" })
	e.set("f-state", "")

	// The API refuses a malformed version: its message goes next to the field.
	e.typeInto("f-version", "24.x")
	e.click(`#cl-filters button[type=submit]`)
	e.waitJS(`document.getElementById("f-version-err").textContent.includes("24.x")`, "the version error")
	if js[string](e, `document.getElementById("f-version").getAttribute("aria-invalid")`) != "true" {
		t.Errorf("version field not marked invalid")
	}
	e.screenshot("clients-bad-version")
	e.typeInto("f-version", "")

	// Search by id prefix (as pasted: upper case is accepted).
	target := cid(42).String()
	e.typeInto("f-q", strings.ToUpper(target[:8])+target[8:])
	e.click(`#cl-filters button[type=submit]`)
	e.waitRows("the searched client", 1, func(r string) bool { return field(r, 0) == target })
	e.typeInto("f-q", "xyz")
	e.click(`#cl-filters button[type=submit]`)
	e.waitJS(`document.getElementById("f-q-err").textContent.includes("hex")`, "the id search error")
	e.typeInto("f-q", "")
	e.click(`#cl-filters button[type=submit]`)
	e.waitRows("all clients again", 75, any)

	// A failed upgrade shows its error; the details panel tells it all; Retry
	// queues it again.
	up := e.clients("state=upgrading")
	failing := up[0].ID.String()
	if err := e.b.Node().Fail(e.ctx(), up[0].ID, "install_failed: disk full"); err != nil {
		t.Fatal(err)
	}
	e.set("f-state", "failed")
	e.waitRows("the failed client", 1, func(r string) bool { return field(r, 0) == failing })
	if txt := e.text("cl-rows"); !strings.Contains(txt, "disk full") {
		t.Errorf("failed row lacks its error: %s", txt)
	}
	e.click(fmt.Sprintf(`#cl-rows tr[data-id=%q] button.linklike`, failing))
	e.waitJS(`document.getElementById("d-body").textContent.includes("disk full") && document.getElementById("d-body").textContent.includes("failed")`, "the details panel")
	if got := js[string](e, `document.activeElement.id`); got != "d-h" {
		t.Errorf("focus is on %q after opening the details, want the panel heading", got)
	}
	e.screenshot("clients-details-failed")
	e.click(fmt.Sprintf(`#cl-rows tr[data-id=%q] button[data-action=retry]`, failing))
	e.waitJS(`document.getElementById("cl-notice").textContent.includes("will be retried")`, "the retry notice")
	e.waitJS(fmt.Sprintf(`document.querySelector('#cl-rows tr[data-id=%q]').dataset.state === "pending"`, failing), "the retried row to be pending")
	e.waitJS(`document.getElementById("d-body").textContent.includes("retried")`, "the retry in the details history")
	// Escape closes the panel and gives focus back to the row.
	e.do(chromedpKey("Escape"))
	e.waitJS(`document.getElementById("cl-details").hidden`, "the panel to close")
	if got := js[string](e, `document.activeElement.closest("tr") ? document.activeElement.closest("tr").dataset.id : ""`); got != failing {
		t.Errorf("focus after closing is on %q", got)
	}
}

// A jump to an outdated client is refused with "upgrade pending", moves it
// to the front of the queue, and the page later says it is ready, from the
// event stream alone.
func TestJumpToOutdatedClient(t *testing.T) {
	e := start(t)
	e.enroll(0, 20, engine.KindActive, engine.PlatformLinuxX64)
	e.publish("24.3.1", engine.PlatformLinuxX64)
	e.waitFor("5 in flight", func() bool { return e.status().InFlight == 5 })
	e.login()
	e.goTo("clients")
	e.set("f-state", "pending")
	rows := e.waitRows("pending clients", 15, func(r string) bool { return field(r, 1) == "pending" })
	last := field(rows[len(rows)-1], 0)
	row := fmt.Sprintf(`#cl-rows tr[data-id=%q]`, last)
	if txt := js[string](e, `document.querySelector('`+row+`').textContent`); !strings.Contains(txt, "#15") {
		t.Fatalf("last pending row is not 15th in the queue: %s", txt)
	}

	e.click(row + ` button[data-action=jump]`)
	e.waitJS(`document.getElementById("cl-notice").textContent.startsWith("Upgrade pending")`, "the upgrade-pending answer")
	notice := e.text("cl-notice")
	for _, want := range []string{"24.2.0-r3", "24.3.1-r7", "jump lane, position 1"} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice %q lacks %q", notice, want)
		}
	}
	e.waitJS(`document.querySelector('`+row+` [data-watch]').dataset.watch === "pending"`, "the row's jump badge")
	if txt := js[string](e, `document.querySelector('`+row+` td.state').textContent`); !strings.Contains(txt, "#1 (jump lane)") {
		t.Errorf("state cell after the jump: %s", txt)
	}
	e.screenshot("clients-jump-pending")

	// One slot frees: the jumped client starts before all the others.
	e.finish(1)
	e.waitJS(`document.querySelector('`+row+` [data-watch]').dataset.watch === "upgrading"`, "the jumped client to start")
	if c := e.clients("state=upgrading"); !containsID(c, last) {
		t.Fatalf("jumped client is not upgrading")
	}
	// It upgrades: the page says it is ready.
	ready := `document.getElementById("cl-notice").textContent.startsWith("Client ") && document.getElementById("cl-notice").textContent.includes("is ready")`
	e.waitFor("the ready notice", func() bool {
		if js[bool](e, ready) {
			return true
		}
		e.finish(5)
		return false
	})
	e.waitJS(`document.querySelector('`+row+` [data-watch]').dataset.watch === "ready"`, "the row's ready badge")
	if n := e.text("cl-notice"); !strings.Contains(n, "24.3.1-r7") {
		t.Errorf("ready notice %q does not name the new version", n)
	}
	e.screenshot("clients-jump-ready")

	// A second jump is now allowed.
	e.click(row + ` button[data-action=jump]`)
	e.waitJS(`document.getElementById("cl-notice").textContent.startsWith("Jump allowed")`, "the allowed answer")
}

func containsID(cs []adminapi.ClientJSON, id string) bool {
	for _, c := range cs {
		if c.ID.String() == id {
			return true
		}
	}
	return false
}
