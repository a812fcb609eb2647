package e2e_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"jumpfleet/engine"
)

// contrastJS lists visible text whose contrast with its background is
// below WCAG AA (4.5:1, 3:1 for large text), walking up to the first
// opaque background.
const contrastJS = `(() => {
  const lum = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    const [r, g, b] = p.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return { L: 0.2126 * r + 0.7152 * g + 0.0722 * b, a: p.length > 3 ? p[3] : 1 };
  };
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const l = lum(getComputedStyle(e).backgroundColor);
      if (l && l.a > 0.5) return l.L;
    }
    return 1;
  };
  const bad = [];
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) {
    const t = w.currentNode;
    const el = t.parentElement;
    if (!t.textContent.trim() || el.closest("[hidden]") || !el.getClientRects().length) continue;
    if (el.closest("button:disabled")) continue; // WCAG exempts disabled controls
    const cs = getComputedStyle(el);
    const fg = lum(cs.color);
    if (!fg) { bad.push("unparsed colour " + cs.color); continue; }
    const b = bg(el);
    const ratio = (Math.max(fg.L, b) + 0.05) / (Math.min(fg.L, b) + 0.05);
    const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(el.tagName + "." + el.className + " '" + t.textContent.trim().slice(0, 30) + "' " + ratio.toFixed(2));
  }
  return bad;
})()`

// unlabelledJS lists visible form controls without a label and buttons
// without an accessible name.
const unlabelledJS = `(() => {
  const bad = [];
  for (const el of document.querySelectorAll("input, select, textarea, button, a[href]")) {
    if (el.closest("[hidden]") || !el.getClientRects().length) continue;
    const named = el.labels && el.labels.length > 0 || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
      (el.tagName === "BUTTON" || el.tagName === "A") && el.textContent.trim();
    if (!named) bad.push(el.outerHTML.slice(0, 80));
  }
  return bad;
})()`

// Every page: labelled controls, AA contrast, one h1; and the dashboard is
// usable from the keyboard alone (sign in, move between pages).
func TestAccessibility(t *testing.T) {
	e := start(t)
	e.enroll(0, 10, engine.KindActive, engine.PlatformWindowsX64)
	e.publish("24.3.1", engine.PlatformWindowsX64)
	check := func(page string) {
		t.Helper()
		if bad := js[[]string](e, unlabelledJS); len(bad) > 0 {
			t.Errorf("%s: controls without a name: %s", page, strings.Join(bad, "; "))
		}
		if bad := js[[]string](e, contrastJS); len(bad) > 0 {
			t.Errorf("%s: text below AA contrast: %s", page, strings.Join(bad, "; "))
		}
		if n := js[int](e, `[...document.querySelectorAll("h1")].filter(h => h.getClientRects().length).length`); n != 1 {
			t.Errorf("%s: %d visible h1", page, n)
		}
	}
	// The checks themselves catch what they look for.
	js[chromedp.Void](e, `(() => { const p = document.createElement("p"); p.id = "probe"; p.style.color = "#aaa";
		p.textContent = "low contrast probe"; document.getElementById("login-form").append(p);
		const i = document.createElement("input"); i.id = "probe-input"; document.getElementById("login-form").append(i); })()`)
	if bad := js[[]string](e, contrastJS); len(bad) != 1 || !strings.Contains(bad[0], "low contrast probe") {
		t.Fatalf("contrast check on a #aaa probe: %v", bad)
	}
	if bad := js[[]string](e, unlabelledJS); len(bad) != 1 || !strings.Contains(bad[0], "probe-input") {
		t.Fatalf("label check on an unlabelled probe: %v", bad)
	}
	js[chromedp.Void](e, `document.getElementById("probe").remove(); document.getElementById("probe-input").remove()`)
	check("login")

	// Keyboard only: the token field has focus; type, Enter.
	if got := js[string](e, `document.activeElement.id`); got != "token" {
		t.Fatalf("focus on %q at the login page", got)
	}
	e.do(chromedp.KeyEvent(e.token), chromedp.KeyEvent(kb.Enter))
	e.waitJS(`!document.getElementById("page-overview").hidden && document.getElementById("c-current").textContent !== "–"`, "the overview after a keyboard sign-in")
	check("overview")

	// Focus starts at the top bar: Tab reaches the navigation.
	e.do(chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab))
	if got := js[string](e, `document.activeElement.dataset.page || document.activeElement.outerHTML.slice(0, 60)`); got != "clients" {
		t.Fatalf("second Tab lands on %q, want the Jump clients link", got)
	}
	e.do(chromedp.KeyEvent(kb.Enter))
	e.waitJS(`!document.getElementById("page-clients").hidden && document.querySelectorAll("#cl-rows tr[data-id]").length === 10`, "the clients page from the keyboard")
	check("clients")
	// The skip link is the first stop on a fresh page load.
	e.do(chromedp.Reload())
	e.waitJS(`document.getElementById("c-current") && !document.getElementById("page-clients").hidden`, "the reloaded page")
	e.do(chromedp.KeyEvent(kb.Tab))
	if got := js[string](e, `document.activeElement.className`); got != "skip" {
		t.Errorf("first Tab after a load lands on %q, want the skip link", got)
	}
	e.goTo("settings")
	e.waitJS(`document.getElementById("s-max_concurrent").value !== ""`, "the settings")
	check("settings")
	e.goTo("releases")
	e.waitJS(`document.querySelectorAll("#rl-rows tr[data-release]").length === 2`, "the releases")
	check("releases")
}
