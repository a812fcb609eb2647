#!/usr/bin/env bash
# `make bench`: runs the repository's Go benchmarks and the side-by-side
# load comparisons, then rewrites the sections of bench/RESULTS.md between
# <!-- queue:begin/end --> and <!-- load:begin/end --> (the rest of the file
# is left alone). Knobs: BENCHTIME (go test -benchtime, default 2s), PKGS
# (the packages whose benchmarks run, default ./...),
# STEADY_ACTIVE and STEADY_DURATION (the check-in cost comparison).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BENCHTIME=${BENCHTIME:-2s}
PKGS=${PKGS:-./...}
STEADY_ACTIVE=${STEADY_ACTIVE:-2000}
STEADY_DURATION=${STEADY_DURATION:-20s}
RESULTS=bench/RESULTS.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash .ci/deps.sh || echo "bench: .ci/deps.sh failed; benchmarks that need redis-server will skip" >&2

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
machine="$(nproc) × ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), open files $(ulimit -n), $($GO env GOVERSION) $($GO env GOOS)/$($GO env GOARCH), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "bench: $machine"

# --- 1. Go benchmarks, the queue comparison among them ----------------------
gocmd="go test -run '^\$' -bench . -benchtime=$BENCHTIME -timeout 60m $PKGS"
echo "bench: $gocmd"
set +e
$GO test -run '^$' -bench . -benchtime="$BENCHTIME" -timeout 60m $PKGS 2>&1 | tee "$work/go.txt"
gostatus=${PIPESTATUS[0]}
set -e

# opsps NAME: the ops/s figure of benchmark NAME (without the -GOMAXPROCS suffix).
opsps() {
	awk -v name="$1" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == "ops/s") { print $i; exit } }' "$work/go.txt"
}
ratio() { # ratio A B: A/B with one decimal, or "n/a"
	if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "n/a" }'; else echo "n/a"; fi
}
fmtops() { if [ -n "$1" ]; then printf "%.0f" "$1"; else echo "not run"; fi; }

jf=$(opsps BenchmarkQueue)
aq=$(opsps 'BenchmarkQueueAsynq/aof-always')
aqv=$(opsps 'BenchmarkQueueAsynq/volatile')
js=$(opsps 'BenchmarkQueueJetStream/sync-always')
jsd=$(opsps 'BenchmarkQueueJetStream/sync-default')
skips=$(grep -h -A2 -- '--- SKIP' "$work/go.txt" | grep -v -- '--- SKIP' | sed 's/^ *//' | sort -u || true)
verdict="not measured (asynq did not run: ${skips:-see the log below})"
if [ -n "$jf" ] && [ -n "$aq" ]; then
	verdict=$(awk -v a="$jf" -v b="$aq" 'BEGIN { r = a / b; printf "%.1f× asynq at equal durability: %s", r, (r >= 10 ? "met" : "NOT met") }')
fi

{
	echo "## Durable upgrade queue vs asynq and JetStream"
	echo
	echo "Machine: $machine."
	echo
	echo "Command (part of \`make bench\`): \`$gocmd\`. The mix (bench/queue, \`DefaultMix\`): per"
	echo "iteration enqueue 5,000 jobs with 64 concurrent producers while dispatch is held, jump 250 of"
	echo "them to the front, release dispatch, run every job under a limit of 64 in flight and"
	echo "complete it. One op = one job through that whole life; each iteration also checks that no"
	echo "job was lost or run twice, that workers never held more than 64, and that every jumped job"
	echo "ran before the waiting normal jobs. Workers do no work of their own: this measures the queue."
	echo
	echo "| queue | durability of an acknowledged write | ops/s | jumpfleet ÷ it |"
	echo "|---|---|---:|---:|"
	echo "| jumpfleet: engine.Node on Pebble | fsync per engine turn (group commit) | $(fmtops "$jf") | 1.0× |"
	echo "| asynq v0.26 on redis-server | AOF, \`appendfsync always\` | $(fmtops "$aq") | $(ratio "$jf" "$aq") |"
	echo "| asynq v0.26 on redis-server | none (\`--save '' --appendonly no\`) | $(fmtops "$aqv") | $(ratio "$jf" "$aqv") |"
	echo "| JetStream work queue (embedded nats-server) | \`SyncAlways\` (fsync per write) | $(fmtops "$js") | $(ratio "$jf" "$js") |"
	echo "| JetStream work queue (embedded nats-server) | default (fsync every 2 min) | $(fmtops "$jsd") | $(ratio "$jf" "$jsd") |"
	echo
	echo "Target from issue 5 (≥ 10× asynq in the same run): $verdict."
	if [ -n "$skips" ]; then
		echo
		echo "Skipped: $skips"
	fi
	if [ "$gostatus" -ne 0 ]; then
		echo
		echo "**go test exited with status $gostatus**: see the log below."
	fi
	echo
	echo "<details><summary>Every Go benchmark of the repository (raw)</summary>"
	echo
	echo '```text'
	grep -E '^(Benchmark|pkg:|cpu:|--- (FAIL|SKIP)|FAIL|ok )' "$work/go.txt" | grep -v 'no test files' || true
	echo '```'
	echo
	echo "</details>"
} >"$work/queue.md"

# --- 2. Check-in cost over a real broker -------------------------------------
# jsonnum FILE KEY: a number from jumpload's one-object JSON summary.
jsonnum() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -1; }

{
	echo "## Check-in cost: binary protocol over TLS vs HTTPS + JSON"
	echo
	echo "Machine: $machine."
	echo
	if $GO run ./cmd/jumpload 2>&1 | grep -q 'steady'; then
		for proto in tls https; do
			cmd="go run ./cmd/jumpload steady --spawn --protocol $proto --active $STEADY_ACTIVE --duration $STEADY_DURATION --json"
			echo "Command: \`$cmd\`"
			echo
			echo "bench: $cmd" >&2
			if ! $GO run ./cmd/jumpload steady --spawn --protocol "$proto" --active "$STEADY_ACTIVE" \
				--duration "$STEADY_DURATION" --json >"$work/steady-$proto.json" 2>"$work/steady-$proto.log"; then
				echo "**failed**: $(tail -3 "$work/steady-$proto.log" | tr '\n' ' ')"
				echo
			fi
		done
		t="$work/steady-tls.json"
		h="$work/steady-https.json"
		echo "| protocol | check-ins/s | p50 ms | p99 ms | server CPU µs per check-in | server RSS MiB |"
		echo "|---|---:|---:|---:|---:|---:|"
		for proto in tls https; do
			f="$work/steady-$proto.json"
			[ -s "$f" ] || continue
			rss=$(jsonnum "$f" server_rss_bytes)
			echo "| $proto | $(jsonnum "$f" checkins_per_s) | $(jsonnum "$f" latency_p50_ms) | $(jsonnum "$f" latency_p99_ms) | $(jsonnum "$f" server_cpu_us_per_checkin) | $(awk -v r="${rss:-0}" 'BEGIN { printf "%.0f", r / 1048576 }') |"
		done
		if [ -s "$t" ] && [ -s "$h" ]; then
			echo
			echo "HTTPS + JSON costs $(ratio "$(jsonnum "$h" server_cpu_us_per_checkin)" "$(jsonnum "$t" server_cpu_us_per_checkin)") the server CPU per check-in of the binary protocol over TLS (same broker build, same engine, same run)."
		fi
	else
		echo "Not measured: \`jumpload steady\` is not available in this build."
	fi
} >"$work/load.md"

# --- 3. Splice both sections into RESULTS.md --------------------------------
if [ ! -f "$RESULTS" ]; then
	cat >"$RESULTS" <<'MD'
# Benchmark results

Written by `make bench` (bench/run.sh). Each section is rewritten between its markers;
anything outside the markers is kept.

<!-- queue:begin -->
<!-- queue:end -->

<!-- load:begin -->
<!-- load:end -->
MD
fi
splice() { # splice NAME FILE: replace the body between NAME's markers with FILE
	awk -v name="$1" -v body="$2" '
		$0 == "<!-- " name ":begin -->" { print; while ((getline line < body) > 0) print line; skip = 1; next }
		$0 == "<!-- " name ":end -->" { skip = 0 }
		!skip { print }' "$RESULTS" >"$work/results.tmp"
	if ! grep -qx "<!-- $1:begin -->" "$RESULTS"; then
		printf '\n<!-- %s:begin -->\n' "$1" >>"$work/results.tmp"
		cat "$2" >>"$work/results.tmp"
		printf '<!-- %s:end -->\n' "$1" >>"$work/results.tmp"
	fi
	cp "$work/results.tmp" "$RESULTS"
}
splice queue "$work/queue.md"
splice load "$work/load.md"
echo "bench: wrote $RESULTS"
exit "$gostatus"
