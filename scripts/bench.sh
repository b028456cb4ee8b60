#!/usr/bin/env bash
# Runs the benchmark suite and writes BENCHMARKS.md (medians of COUNT runs,
# ratios to baselines measured in the same run). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${BENCHCOUNT:-5}"
raw="$(mktemp)"
trap 'rm -f "$raw"' EXIT
run() { echo "+ go test $*" >&2; go test -run '^$' -count "$COUNT" "$@" | tee -a "$raw"; }

# Ingest per core (-cpu=1) with the encoding/json baseline; decoder alone.
run -cpu 1 -bench 'BenchmarkIngest|BenchmarkDecode' -benchtime 200000x ./collector/
# /metrics at 10,000 tunnels (plain, gzip, client_golang baseline); heap per tunnel.
run -bench 'BenchmarkMetrics10k' -benchtime 20x ./collector/
run -bench 'BenchmarkHeapPerTunnel' -benchtime 1x ./collector/
# REST, SSE fan-out, TSDB, simulator.
run -bench . -benchtime 1s ./api/
run -bench . -benchtime 3x ./tsdb/
run -bench 'BenchmarkTick10k' -benchtime 20x ./simulator/

go run ./internal/benchreport -in "$raw" -out BENCHMARKS.md -cmd "make bench (BENCHCOUNT=$COUNT)" \
  $( [ -f docs/benchmarks-notes.md ] && echo "-notes docs/benchmarks-notes.md" )
echo "wrote BENCHMARKS.md" >&2
