#!/usr/bin/env bash
# Runs the benchmark suite of issue #7 and writes BENCHMARKS.md: the targets
# with the measured medians, then every benchmark's medians of COUNT runs
# with ratios to baselines measured in the same run (internal/benchreport),
# then docs/benchmarks-notes.md. Loopback only; about 13 minutes on 2 cores.
#
# BENCHCOUNT (default 5) is the number of runs of each benchmark. Two
# figures take one run each, because a run is minutes long: the simulated
# day (cmd/nodepass-bench day) and the 30-day history set (its start-up and
# query figures are medians of 5 measurements inside the run).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${BENCHCOUNT:-5}"
# BENCHRAW keeps the raw output there (to rerun benchreport after editing
# the notes); by default it goes to a temporary file.
raw="${BENCHRAW:-$(mktemp)}"
: >"$raw"
bin="$(mktemp)"
trap '[ -n "${BENCHRAW:-}" ] || rm -f "$raw"; rm -f "$bin"' EXIT
began=$SECONDS
run() {
	echo "+ go test $* ($((SECONDS - began)) s)" >&2
	go test -run '^$' -count "$COUNT" "$@" | tee -a "$raw"
}
once() {
	echo "+ $* ($((SECONDS - began)) s)" >&2
	"$@" | tee -a "$raw"
}

# 1. Ingest per core (-cpu=1): frame + decode + state + delta + window +
#    outbox, with the encoding/json baseline; the decoder and framer alone
#    (package wire).
run -cpu 1 -bench 'BenchmarkIngest' -benchtime 400000x ./collector/
run -cpu 1 -bench 'BenchmarkDecode|BenchmarkFramer' -benchtime 400000x ./wire/
# 2. /metrics at 10,000 tunnels: plain, gzip, client_golang baseline, and
#    VictoriaMetrics/metrics writing the same per-tunnel families (#18.10).
run -bench 'BenchmarkMetrics10k$|BenchmarkMetrics10kGzip|BenchmarkMetrics10kClientGolang|BenchmarkMetrics10kVictoriaMetrics' -benchtime 10x ./collector/
# Issue 15.5: the counter state's restore at 100,000 tunnels, from a fresh
# snapshot and from the largest journal before a compaction (target 2 s;
# medians of 5 restores inside one run, as the files take a minute to make).
COUNT=1 run -bench 'BenchmarkRestore$' -benchtime 5x ./collector/
# 5. Live state and window per tunnel at 1,000, 10,000 and 100,000 tunnels.
run -bench 'BenchmarkHeapPerTunnel' -benchtime 1x ./collector/
# The outbox under a backlog (the hour change of 100,000 tunnels).
run -bench . -benchtime 200x ./history/
# 3 and 4 in process: REST rendering and serving, SSE fan-out without sockets.
run -bench . -benchtime 1s ./api/
# 6. TSDB appends and 30-day range queries (100 tunnels) in process.
run -bench 'BenchmarkAppend|BenchmarkQuery|BenchmarkWAL|BenchmarkMerge' -benchtime 3x ./tsdb/
# Issue 16.3: every 30-day REST route and every Grafana panel on the history
# data source, at 10,000 tunnels x 30 days (target 200 ms each). The data set
# (about 450 MB of blocks) is written once into $TMPDIR and kept there for
# later runs: minutes on 2 idle cores.
NODEPASS_BENCH_TUNNELS=10000 COUNT=1 run -bench 'BenchmarkLongRanges30d' -benchtime 3x -timeout 30m ./tsdb/
run -bench 'BenchmarkTick10k' -benchtime 20x ./simulator/
# 3 and 4 over loopback: the real binary, 10,000 tunnels, wrk and 2,200
# SSE clients, while it ingests 10,000 events/s from the simulator.
NODEPASS_BENCH_WRK_DURATION=2s NODEPASS_BENCH_SSE_WINDOW=6s \
	run -bench 'BenchmarkRESTLoopback|BenchmarkSSELoopback' -benchtime 1x -timeout 30m ./e2e/
# 6. Start-up and queries with 30 days of hourly history of 10,000 tunnels.
COUNT=1 run -bench 'BenchmarkHistory30d' -benchtime 1x -timeout 30m ./e2e/
# 5 and 6. A simulated day at 10,000 tunnels (resident memory, TSDB bytes),
# and the state snapshot at 10,000 and 100,000 tunnels.
go build -o "$bin" ./cmd/nodepass-bench
once "$bin" day --tunnels 10000 --hours 24
once "$bin" persist --tunnels 10000
once "$bin" persist --tunnels 100000

go run ./internal/benchreport -in "$raw" -out BENCHMARKS.md -cmd "make bench (BENCHCOUNT=$COUNT)" \
	$([ -f docs/benchmarks-notes.md ] && echo "-notes docs/benchmarks-notes.md")
echo "wrote BENCHMARKS.md in $((SECONDS - began)) s" >&2
