# jumpfleet: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
DATA    ?= ./data
PKGS    ?= ./...

.PHONY: run test bench-smoke bench fuzz lint build sim

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	./bin/jumpbroker serve --data $(DATA)

# The README's test command: every package, race detector on; then the
# packages that drive the engine again with its O(fleet) self-check after
# every turn (the invariants build tag); then the test of our patch to
# quic-go (third_party/quic-go/JUMPFLEET.md), a module of its own.
test:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(GO) test -race -count=1 -timeout 30m -tags invariants ./engine/... ./broker/... ./transport/...
	cd third_party/quic-go && $(GO) test -race -count=1 ./...

# Every benchmark once so none rots (what CI runs after the tests).
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 30m $(PKGS)

bench:
	bash bench/run.sh
	bash bench/engine.sh

fuzz:
	bash bench/fuzz.sh

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

sim:
	$(GO) run ./cmd/jumpload sim --clients 1000000 --max-concurrent 500 --upgrade-time 60s --seed 1 --json
