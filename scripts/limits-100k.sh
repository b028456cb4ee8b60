#!/bin/sh
# The issue 15 figures at 100,000 tunnels (RELIABILITY.md, "Attacks and
# loads"): 20 clients that never read /metrics, with the heap and RSS before,
# during and after. Several minutes and about 2 GB of RAM; run it alone on
# the machine. Prints one "slow-readers ..." line per run.
set -eu
cd "$(dirname "$0")/.."
TUNNELS="${TUNNELS:-100000}"
E2E_SLOW_TUNNELS="$TUNNELS" go test -count=1 -timeout 30m -v -run 'TestSlowMetricsReaders$' ./e2e/ 2>&1 |
	grep -E 'slow-readers|limits_memory_test|^(--- |ok|FAIL)'
