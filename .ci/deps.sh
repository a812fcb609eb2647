#!/usr/bin/env bash
# Installs the Debian packages that jumpfleet's benchmarks and browser tests
# start on their own (they skip, saying so, when one is missing). Idempotent
# and quiet: it installs nothing when everything is already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

# Nothing here exits early: sections for other packages follow.
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp)
	# apt and debconf are chatty even with -qq: keep their output unless they fail.
	if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		echo "deps: could not install ${need[*]}" >&2
		exit 1
	fi
	rm -f "$log"
fi

# --- web: headless Chromium for the dashboard's browser tests (web/e2e) ---
# Owned by the web package; they skip, saying so, without /usr/bin/chromium.
if [ ! -x /usr/bin/chromium ]; then
	web_sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		web_sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$web_sudo apt-get update -qq >/dev/null
	$web_sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# --- end web ---
