GO ?= go

.PHONY: build test bench lint run

build:
	$(GO) build ./...

# The test command the README gives and CI runs.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Prints the issues' figures: step-down and SIGKILL failover (multi-process),
# ring join/leave and NodeFor, Call vs raw NATS, KV and lock latency; then
# the Go micro-benchmarks (locks, leases, ring assignment, placement, job
# file parsing).
bench:
	$(GO) run ./cmd/bench
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./lock ./election
	$(GO) test -run '^$$' -bench . -benchmem ./placement ./jobspec

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run:
	$(GO) run ./examples/quickstart
