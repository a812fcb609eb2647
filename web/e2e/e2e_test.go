package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"jumpfleet/engine"
)

// Sign-in: a wrong token is refused on the form; the right one is kept in
// the tab's sessionStorage (never in the URL) and opens the overview;
// signing out forgets it.
func TestLogin(t *testing.T) {
	e := start(t)
	e.enroll(0, 12, engine.KindActive, engine.PlatformWindowsX64)
	e.screenshot("login")

	e.do(chromedp.SendKeys(chromedp.CSS("#token"), "jfa_wrong"), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	e.waitJS(`document.getElementById("login-error").textContent.includes("refused")`, "the refusal")
	if js[string](e, `document.getElementById("token").getAttribute("aria-invalid")`) != "true" {
		t.Errorf("the token field is not marked invalid")
	}
	js[chromedp.Void](e, `document.getElementById("token").value = ""`)
	e.login()
	if got := js[string](e, `sessionStorage.getItem("jumpfleet.adminToken")`); got != e.token {
		t.Fatalf("sessionStorage holds %q", got)
	}
	if loc := js[string](e, `location.href`); strings.Contains(loc, e.token) {
		t.Fatalf("token in the URL: %s", loc)
	}
	if n := num(e.text("c-current")); n != 12 {
		t.Fatalf("overview shows %d current, want 12", n)
	}
	e.waitJS(`document.getElementById("live").classList.contains("on")`, "the event stream to connect")
	e.screenshot("overview-empty")

	e.do(chromedp.Click(chromedp.CSS("#signout")))
	e.waitJS(`!document.getElementById("page-login").hidden`, "the login page after sign-out")
	if got := js[string](e, `sessionStorage.getItem("jumpfleet.adminToken") || ""`); got != "" {
		t.Fatalf("token kept after sign-out")
	}
}

// A rollout seen from the overview: counts move from current to pending and
// upgrading and back to current, live (no reload), never more in flight
// than the maximum, and the chart and activity list fill from the stream.
func TestOverviewFollowsRollout(t *testing.T) {
	e := start(t)
	e.enroll(0, 20, engine.KindActive, engine.PlatformWindowsX64)
	e.enroll(20, 26, engine.KindPassive, engine.PlatformLinuxX64)
	e.enroll(26, 28, engine.KindJumpoint, engine.PlatformLinuxX64)
	const total = 28
	e.login()
	js[chromedp.Void](e, `window.notReloaded = true`)

	e.publish("24.3.1", engine.PlatformWindowsX64, engine.PlatformLinuxX64)
	e.waitJS(`document.getElementById("ov-site").textContent === "24.3.1"`, "the new site version")
	// The release's sweep queues the connected persistent clients; passive
	// ones are queued by their next check-in.
	e.enroll(20, 26, engine.KindPassive, engine.PlatformLinuxX64)
	e.waitFor("5 upgrading and 23 pending on the page", func() bool {
		return num(e.text("c-upgrading")) == 5 && num(e.text("c-pending")) == total-5
	})
	if got := e.text("ov-inflight") + "/" + e.text("ov-max"); got != "5/5" {
		t.Errorf("in flight %s, want 5/5", got)
	}
	e.screenshot("overview-rollout-start")

	// Finish the upgrades in flight, one batch at a time; after each, the
	// page must show the engine's new counts without a reload.
	for round := 0; ; round++ {
		s := e.status()
		want := fmt.Sprintf("%d %d %d %d", s.ByState["current"], s.ByState["pending"], s.ByState["upgrading"], s.InFlight)
		e.waitFor("the page to show "+want, func() bool {
			return fmt.Sprintf("%d %d %d %d", num(e.text("c-current")), num(e.text("c-pending")), num(e.text("c-upgrading")),
				num(e.text("ov-inflight"))) == want
		})
		if in, max := num(e.text("ov-inflight")), num(e.text("ov-max")); in > max {
			t.Fatalf("page shows %d in flight over max %d", in, max)
		}
		if round == 2 {
			e.screenshot("overview-rollout-middle")
		}
		if s.ByState["current"] == total {
			break
		}
		if e.finish(5) == 0 {
			t.Fatalf("nothing in flight with %+v", s)
		}
	}
	e.waitJS(`document.getElementById("ov-eta").textContent === "done"`, "ETA done")
	// The chart counts every upgrade (they all fit in its ten minutes).
	e.waitJS(`[...document.querySelectorAll("#ov-chart rect.b title")].reduce((a, t) => a + Number(t.textContent.split(": ")[1]), 0) === 28`, "28 upgrades in the chart")
	if n := js[int](e, `document.querySelectorAll("#ov-events li").length`); n < 10 {
		t.Errorf("activity list has %d lines", n)
	}
	if !js[bool](e, `window.notReloaded === true`) {
		t.Errorf("the page reloaded")
	}
	kinds := js[string](e, `[...document.querySelectorAll("#ov-kinds tr")].map(r => [...r.cells].map(c => c.textContent).join(" ")).join("; ")`)
	if kinds != "Active 20 0 0 0 20; Passive 6 0 0 0 6; Jumpoint 2 0 0 0 2" {
		t.Errorf("by kind: %s", kinds)
	}
	e.screenshot("overview-rollout-done")
}
