package e2e_test

import (
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
