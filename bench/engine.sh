#!/usr/bin/env bash
# Engine and store figures (issue 2): the four engine benchmarks and the
# in-process rollout simulations, written to bench/RESULTS.md between
# <!-- engine:begin --> and <!-- engine:end -->. Called by `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
RESULTS=bench/RESULTS.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
machine="$(nproc) × ${cpu:-unknown CPU}, $($GO env GOVERSION), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

b1="go test -run '^\$' -bench 'EngineHeartbeat|EngineJump|NodeHeartbeat' -benchtime 2s -count 3 ./engine/"
b2="go test -run '^\$' -bench EngineCheckInDurable -benchtime 300000x -count 3 ./engine/"
b3="go test -run '^\$' -bench StoreRecover -benchtime 1x -count 3 ./engine/"
for c in "$b1" "$b2" "$b3"; do echo "engine.sh: $c" >&2; eval "$c" | tee -a "$work/bench.txt" >&2; done

$GO build -o "$work/jumpload" ./cmd/jumpload
s1="jumpload sim --clients 1000000 --max-concurrent 500 --upgrade-time 60s --seed 1 --json"
s2="jumpload sim --clients 1000000 --max-concurrent 500 --upgrade-time 60s --seed 1 --passive 0.6 --jumpoints 0.01 --jump-rate 0.2 --upgrade-jitter 0.2 --json"
s3="jumpload sim --clients 1000000 --max-concurrent 500 --upgrade-time 60s --seed 1 --upgrade-jitter 0.2 --fail-rate 0.02 --jump-rate 1 --durable --json"
s4="jumpload sim --clients 100000 --max-concurrent 500 --upgrade-time 60s --seed 1 --upgrade-jitter 0.2 --fail-rate 0.02 --jump-rate 1 --durable --restart-at 1h --json"
for s in "$s1" "$s2" "$s3" "$s4"; do echo "engine.sh: $s" >&2; "$work"/$s >>"$work/sim.jsonl"; done

# metric NAME UNIT: the median over -count runs of UNIT for benchmark NAME.
metric() {
	awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == unit) print $i }' "$work/bench.txt" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.4g", v[int((NR + 1) / 2)] }'
}
simf() { sed -n "${1}p" "$work/sim.jsonl" | sed -n "s/.*\"$2\":\([-0-9.eE+a-z]*\).*/\1/p"; }

{
	echo "## Engine and store"
	echo
	echo "Machine: $machine. Medians of 3 runs. Reproduce with \`bash bench/engine.sh\`."
	echo
	echo "| figure | measured | target (issue 2) | command |"
	echo "|---|---:|---:|---|"
	echo "| heartbeat decisions/s (current client's check-in) | $(metric BenchmarkEngineHeartbeat decisions/s) | ≥ 2,000,000 | \`$b1\` |"
	echo "| jumps/s (normal → jump lane, with position) | $(metric BenchmarkEngineJump jumps/s) | — | same |"
	echo "| heartbeat through the Node (256 callers): CPU µs each | $(metric BenchmarkNodeHeartbeat cpu_us/heartbeat) | — | same |"
	echo "| durable state-changing check-ins/s (Node, Pebble on disk, Sync, 256 callers) | $(metric BenchmarkEngineCheckInDurable checkins/s) | ≥ 100,000 | \`$b2\` |"
	echo "| Pebble alone, same records, one committer, same batch size | $(metric BenchmarkEngineCheckInDurable pebble_keys/s) keys/s | | same run |"
	echo "| ratio engine ÷ Pebble alone (same batch size) | $(metric BenchmarkEngineCheckInDurable ratio_vs_pebble) | | same run |"
	echo "| Pebble alone, 256 concurrent committers (group commit ceiling) | $(metric BenchmarkEngineCheckInDurable pebble_group_keys/s) keys/s | | same run |"
	echo "| mean records per commit in the engine | $(metric BenchmarkEngineCheckInDurable records/commit) | | same run |"
	echo "| recover a 1M-client store and be ready | $(metric BenchmarkStoreRecover recover_s) s | ≤ 3 s | \`$b3\` |"
	echo "| hot index per client | $(metric BenchmarkStoreRecover index_bytes/client) B | ≤ 200 B | same |"
	echo
	echo "Rollout simulations (virtual time, in process, deterministic per seed):"
	echo
	echo "| run | upgraded | failed | violations | max in flight | makespan s | bound s | ratio | jump→start p99 s | passive late max s | passive late beyond 24 h | wall s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	n=1
	for s in "$s1" "$s2" "$s3" "$s4"; do
		echo "| \`$s\` | $(simf $n upgraded) | $(simf $n failed) | $(simf $n violations) | $(simf $n max_in_flight) | $(simf $n makespan_s) | $(simf $n bound_s) | $(simf $n makespan_ratio | cut -c1-6) | $(simf $n jump_wait_p99_s) | $(simf $n passive_late_max_s) | $(simf $n passive_late_beyond_period) | $(simf $n wall_s | cut -c1-5) |"
		n=$((n + 1))
	done
	echo
	echo "The last run crashes the server one virtual hour in (a crash image of Pebble's crashable in-memory FS:"
	echo "only synced data survives), recovers, compares every client's state, lane and queue position with"
	echo "what was acknowledged (a difference is a violation) and lets every client reconnect; the crashable"
	echo "FS is ~20× slower than the plain one, hence 100k clients."
	echo
	echo "Targets: 1M always-online clients at max_concurrent 500: 0 violations, ratio ≤ 1.02, wall ≤ 60 s;"
	echo "mixed fleet: every passive client upgraded within one check-in period (24 h) of its turn."
} >"$work/engine.md"

touch "$RESULTS"
if grep -q '<!-- engine:begin -->' "$RESULTS"; then
	awk -v f="$work/engine.md" '
		/<!-- engine:begin -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
		/<!-- engine:end -->/ { skip = 0 }
		!skip' "$RESULTS" >"$work/r.md"
	cp "$work/r.md" "$RESULTS"
else
	{ echo; echo '<!-- engine:begin -->'; cat "$work/engine.md"; echo '<!-- engine:end -->'; } >>"$RESULTS"
fi
echo "engine.sh: wrote the engine section of $RESULTS" >&2
