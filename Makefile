GO ?= go

.PHONY: build test bench lint run

build:
	$(GO) build ./...

# The test command the README gives and CI runs.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Prints the issue's figures: step-down and SIGKILL failover (multi-process),
# Call vs raw NATS, KV and lock latency; then the Go micro-benchmarks.
bench:
	$(GO) run ./cmd/bench
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./lock ./election

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run:
	$(GO) run ./examples/quickstart
