// Package e2e holds the dashboard's browser tests: a real broker in-process
// (package broker, with the dashboard mounted) and a headless Chromium driven
// by chromedp. The tests skip, saying so, when /usr/bin/chromium is absent
// (.ci/deps.sh installs it). Run with -artifacts to keep the screenshots:
//
//	go test ./web/e2e -artifacts -outputdir /tmp/screens -v
package e2e
