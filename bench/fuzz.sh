#!/usr/bin/env bash
# Runs every Fuzz* target in the repository for a short while each
# (`make fuzz`). FUZZTIME sets the time per target (default 10s); new
# crashers land in each package's testdata/fuzz as go test writes them.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}
GO=${GO:-go}
failed=()
ran=0
for pkg in $($GO list ./...); do
	# -list prints the matching names, then "ok <pkg>"; keep the names.
	targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "== $pkg $t ($FUZZTIME)"
		ran=$((ran + 1))
		if ! $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg"; then
			failed+=("$pkg.$t")
		fi
	done
done
if [ "$ran" -eq 0 ]; then
	echo "fuzz: no Fuzz* targets found" >&2
	exit 1
fi
echo "fuzz: $((ran - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -ne 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
