GO ?= go

.PHONY: build test bench lint run quickstart stress

build:
	$(GO) build ./...

# The test command the README gives and CI runs.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Prints the issues' figures: step-down and SIGKILL failover (multi-process),
# ring join/leave and NodeFor, Call vs raw NATS, KV and lock latency; the
# agent's start-up, RSS, 100-instance job run and exec failover (separate
# agent processes); then the Go micro-benchmarks (locks, leases, ring
# assignment, placement, job file parsing, scheduler, exec supervisor); then
# SQLite replication: commit-to-standby lag at 1,000/s and flat out, promote
# time, 1 GiB snapshot and bootstrap, capture latency, apply and WAL parsing.
bench:
	$(GO) run ./cmd/bench
	$(GO) test -run '^$$' -bench . -benchtime 5x ./internal/agenttest
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./lock ./election
	$(GO) test -run '^$$' -bench . -benchmem ./placement ./jobspec ./scheduler
	$(GO) test -run '^$$' -bench . -benchtime 300x ./executor/exec
	$(GO) test -run '^$$' -bench SystemdHandoff -benchtime 20x .
	$(GO) test -run '^$$' -bench 'SQLiteSynchronousCommit|SQLiteHandoff' -benchtime 200x .
	$(GO) test -run '^$$' -bench . -benchtime 20x ./executor/systemd
	$(GO) test -run '^$$' -bench 'ReplicationLag|Snapshot1GB' -benchtime 1x -timeout 30m ./replication
	$(GO) test -run '^$$' -bench Promote -benchtime 5x ./replication
	$(GO) test -run '^$$' -bench . ./replication/capture ./replication/apply ./replication/walfile

# The chaos lab's benchmark (issue 13): three `gcl agent -server` nodes in
# network namespaces, default timings, every fault CHAOS_TRIALS times (20 by
# default; CHAOS_FAULTS=node-kill,link-down,... for some), then the table.
# Needs root, iproute2 and cgroup v2; about 35 s a trial.
.PHONY: chaos chaos-test
CHAOS_TRIALS ?= 20
# Each fault once, failing on any overlap or job that never recovers.
chaos-test:
	CHAOS=1 $(GO) test -run '^TestChaos$$' -count=1 -v -timeout 20m ./internal/chaos/

chaos:
	CHAOS_TRIALS=$(CHAOS_TRIALS) $(GO) test -run '^TestChaosTable$$' -count=1 -v -timeout 24h ./internal/chaos/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The README's first command: a one-node cluster (gcl agent -dev, embedded
# NATS) left running in the background, the example API job run on it, and
# one request to the API.
run:
	$(GO) build -o bin/gcl ./cmd/gcl
	@if bin/gcl node status >/dev/null 2>&1; then echo "an agent already runs on 127.0.0.1:4222"; else \
	  nohup bin/gcl agent -dev > gcl-dev.log 2>&1 & echo "gcl agent -dev started (log: gcl-dev.log; stop: pkill -f 'gcl agent -dev')"; \
	  for i in $$(seq 100); do bin/gcl node status >/dev/null 2>&1 && break; sleep 0.1; done; fi
	bin/gcl job run examples/jobs/api.hcl
	bin/gcl job status api
	curl -s http://127.0.0.1:8080/

quickstart:
	$(GO) run ./examples/quickstart

# The suite as users' machines and CI runners see it: make test beside two
# busy loops that keep both cores saturated, STRESS_RUNS times in a row
# (stops at the first failure).
STRESS_RUNS ?= 10
stress:
	@sh -c 'while :; do :; done' & b1=$$!; sh -c 'while :; do :; done' & b2=$$!; \
	  trap "kill $$b1 $$b2 2>/dev/null" EXIT; \
	  for i in $$(seq $(STRESS_RUNS)); do echo "== stress run $$i of $(STRESS_RUNS)"; $(MAKE) --no-print-directory test || exit 1; done
