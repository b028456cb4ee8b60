#!/bin/sh
# The issue 15 figures at a given scale (RELIABILITY.md, "Attacks and
# loads"): runs each attack test that takes E2E_TUNNELS, one at a time, and
# prints its "scale test=..." summary line (RSS idle, peak and after, bytes
# lost against the simulator's truth, latencies) and its verdict.
#
#   TUNNELS=10000 scripts/limits-scale.sh            # every attack
#   TUNNELS=100000 scripts/limits-scale.sh 'DiskFull|Kill9'  # names matching an ERE
#
# The whole output of each test goes to $LOGDIR/<test>.log (default
# /tmp/limits-scale-$TUNNELS). Disk-full tests mount a tmpfs (root only; it
# grows by 4 KiB a tunnel). At 100,000 tunnels expect minutes per test and
# a few GB of RAM; the slow /metrics readers are scripts/limits-100k.sh
# (E2E_SLOW_TUNNELS), run here too as TestSlowMetricsReaders.
set -u
cd "$(dirname "$0")/.."
TUNNELS="${TUNNELS:-10000}"
ONLY="${1:-}"
LOGDIR="${LOGDIR:-/tmp/limits-scale-$TUNNELS}"
TIMEOUT="${TIMEOUT:-60m}"
mkdir -p "$LOGDIR"

tests="
./e2e/ TestFaultDiskFull
./e2e/ TestFaultStartOnFullDisk
./e2e/ TestFaultSSEClients
./e2e/ TestSlowBodiesAtScale
./e2e/ TestSecretsRedactedInEveryForm
./e2e/ TestFaultMasterGarbage
./e2e/ TestFaultKill9Repeated
./e2e/ TestSlowMetricsReaders
./api/ TestHeavyRequestsAreCapped
./api/ TestStalledWriterIsCut
./api/ TestSlowReaderGetsItsAnswer
./collector/ TestIngestUnderBackToBackScrapes
"
echo "$tests" | while read -r pkg name; do
	[ -n "$name" ] || continue
	if [ -n "$ONLY" ] && ! echo "$name" | grep -Eq "$ONLY"; then continue; fi
	log="$LOGDIR/$name.log"
	start=$(date +%s)
	E2E_TUNNELS="$TUNNELS" E2E_SLOW_TUNNELS="$TUNNELS" \
		go test -count=1 -v -timeout "$TIMEOUT" -run "^$name\$" "$pkg" >"$log" 2>&1
	rc=$?
	echo "== $name ($pkg, TUNNELS=$TUNNELS): exit $rc after $(($(date +%s) - start)) s, log $log"
	grep -E '^(scale test=|slow-readers )' "$log"
	grep -E '^\s*(--- FAIL|panic:)|_test\.go:[0-9]+: ' "$log" | grep -v -- '--- PASS' | head -20
done
