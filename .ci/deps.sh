#!/usr/bin/env bash
# Installs the Debian packages that jumpfleet's benchmarks and browser tests
# start on their own (they skip, saying so, when one is missing). Idempotent
# and quiet: it does nothing when everything is already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The dashboard's browser tests (not written yet) will need a headless browser:
# command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
