package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/nodepass-exporter/nodepass-exporter/collector
cpu: AMD EPYC
BenchmarkIngest/tunnels=10000/decoder=scanner   400000   1200 ns/op   833333 events/s   0 B/op   0 allocs/op
BenchmarkIngest/tunnels=10000/decoder=scanner   400000   1000 ns/op   1000000 events/s   0 B/op   0 allocs/op
BenchmarkIngest/tunnels=10000/decoder=scanner   400000   1100 ns/op   909090 events/s   0 B/op   0 allocs/op
BenchmarkIngest/tunnels=10000/decoder=stdlib    400000   6000 ns/op   166666 events/s   1391 B/op   28 allocs/op
BenchmarkMetrics10k-2   20   12000000 ns/op   0 B/op   0 allocs/op
pkg: github.com/nodepass-exporter/nodepass-exporter/e2e
BenchmarkRESTLoopback/route=dashboard/conns=32/server=exporter-2   1   2000000000 ns/op   30000 req/s   12 p99-ms
BenchmarkRESTLoopback/route=dashboard/conns=32/server=fixed-2      1   2000000000 ns/op   40000 req/s   10 p99-ms
`

// TestReport: medians, ratios to baselines and the target verdicts come
// from the same parsed figures.
func TestReport(t *testing.T) {
	results, cpu := parse(strings.NewReader(sample))
	if cpu != "AMD EPYC" || len(results) != 5 {
		t.Fatalf("cpu %q, %d results", cpu, len(results))
	}
	var b strings.Builder
	targetTable(&b, results)
	table(&b, results)
	out := b.String()
	for _, want := range []string{
		"| ingest per core, 10,000 tunnels | >= 500,000 events/s | 909,090 events/s | 3 | yes |",
		"| ingest allocations, 10,000 tunnels | <= 0 allocs/event | 0 allocs/event | 3 | yes |",
		"| /metrics, 10,000 tunnels, plain | <= 10.00 ms | 12.00 ms | 1 | no |",
		"| dashboard, 32 connections, while ingesting | >= 25,000 req/s | 30,000 req/s | 1 | yes |",
		"| dashboard p99, 32 connections, while ingesting | <= 10.00 ms | 12.00 ms | 1 | no |",
		"| start-up to ready, 30 days x 10,000 tunnels | <= 2.00 s | not measured |",
		"5.5x faster than `Ingest/tunnels=10000/decoder=stdlib`",
		"75% of `RESTLoopback/route=dashboard/conns=32/server=fixed`'s req/s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
