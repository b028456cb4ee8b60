// Command benchreport turns `go test -bench` output into BENCHMARKS.md: a
// table of the targets of issue #7 with the measured figure beside each,
// then every benchmark's median figures over its runs, each with its ratio
// to a baseline measured in the same run.
//
// Usage: benchreport -in raw.txt -out BENCHMARKS.md -cmd "make bench" [-notes notes.md]
//
// The target table is computed from the same medians as the detailed
// tables, so the two cannot disagree; notes appended with -notes should
// refer to it rather than repeat its figures.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// baseline pairs a benchmark with the one it is compared to: the same work
// done the plain way, measured in the same run. unit is the figure compared
// (ns/op unless set); for ns/op lower is better, for the rest higher.
type baseline struct{ fast, base, unit string }

var baselines = []baseline{
	{"BenchmarkIngest/tunnels=10000/decoder=scanner", "BenchmarkIngest/tunnels=10000/decoder=stdlib", ""},
	{"BenchmarkIngest/tunnels=100000/decoder=scanner", "BenchmarkIngest/tunnels=100000/decoder=stdlib", ""},
	{"BenchmarkDecode", "BenchmarkDecodeStdlib", ""},
	{"BenchmarkMetrics10k", "BenchmarkMetrics10kClientGolang", ""},
	{"BenchmarkMetrics10kGzip", "BenchmarkMetrics10kClientGolang", ""},
	{"BenchmarkDashboard10k/cached", "BenchmarkDashboard10k/render", ""},
	{"BenchmarkEndpointsRealtime10k/cached", "BenchmarkEndpointsRealtime10k/render", ""},
	{"BenchmarkRESTLoopback/route=dashboard/conns=1/server=exporter", "BenchmarkRESTLoopback/route=dashboard/conns=1/server=fixed", "req/s"},
	{"BenchmarkRESTLoopback/route=dashboard/conns=32/server=exporter", "BenchmarkRESTLoopback/route=dashboard/conns=32/server=fixed", "req/s"},
	{"BenchmarkRESTLoopback/route=endpoints_realtime/conns=1/server=exporter", "BenchmarkRESTLoopback/route=endpoints_realtime/conns=1/server=fixed", "req/s"},
	{"BenchmarkRESTLoopback/route=endpoints_realtime/conns=32/server=exporter", "BenchmarkRESTLoopback/route=endpoints_realtime/conns=32/server=fixed", "req/s"},
	{"BenchmarkMergeBlocks/joined", "BenchmarkMergeBlocks/prometheus", "B/tunnel-minute"},
	{"BenchmarkWALBytes/per_second", "BenchmarkWALBytes/per_window", "WAL-B/sample"},
}

// target is one line of the target table: the median of unit of
// benchmark, times scale, must be at most (or at least) limit.
type target struct {
	figure    string
	benchmark string
	unit      string
	scale     float64 // applied to the median; 0 means 1
	shown     string  // unit of the scaled value
	atLeast   bool
	limit     float64
	reference string // the figure of today's NodePass dashboard backend, where the issue gives one
}

var targets = []target{
	{"ingest per core, 10,000 tunnels", "BenchmarkIngest/tunnels=10000/decoder=scanner", "events/s", 1, "events/s", true, 500_000, "1,800 events/s on 2 cores"},
	{"ingest per core, 100,000 tunnels", "BenchmarkIngest/tunnels=100000/decoder=scanner", "events/s", 1, "events/s", true, 500_000, ""},
	{"ingest allocations, 10,000 tunnels", "BenchmarkIngest/tunnels=10000/decoder=scanner", "allocs/op", 1, "allocs/event", false, 0, ""},
	{"ingest allocations, 100,000 tunnels", "BenchmarkIngest/tunnels=100000/decoder=scanner", "allocs/op", 1, "allocs/event", false, 0, ""},
	{"/metrics, 10,000 tunnels, plain", "BenchmarkMetrics10k", "ns/op", 1e-6, "ms", false, 10, ""},
	{"/metrics, 10,000 tunnels, gzip", "BenchmarkMetrics10kGzip", "ns/op", 1e-6, "ms", false, 25, ""},
	{"/metrics allocations per scrape (130,000 series)", "BenchmarkMetrics10k", "allocs/op", 1, "allocs", false, 100, ""},
	{"dashboard, 32 connections, while ingesting", "BenchmarkRESTLoopback/route=dashboard/conns=32/server=exporter", "req/s", 1, "req/s", true, 25_000, "540 req/s at 400 tunnels"},
	{"dashboard p99, 32 connections, while ingesting", "BenchmarkRESTLoopback/route=dashboard/conns=32/server=exporter", "p99-ms", 1, "ms", false, 10, "170 ms at 400 tunnels"},
	{"SSE delivery lag p99, 2,000 tunnel clients", "BenchmarkSSELoopback", "tunnel-lag-p99-ms", 1, "ms", false, 50, ""},
	{"SSE delivery lag p99, 200 dashboard clients", "BenchmarkSSELoopback", "dashboard-lag-p99-ms", 1, "ms", false, 50, ""},
	{"SSE memory per client (resident)", "BenchmarkSSELoopback", "RSS-B/client", 1.0 / 1024, "KiB", false, 16, ""},
	{"heap per tunnel, 1,000 tunnels", "BenchmarkHeapPerTunnel/tunnels=1000", "heap-B/tunnel", 1.0 / 1024, "KiB", false, 2.5, ""},
	{"heap per tunnel, 10,000 tunnels", "BenchmarkHeapPerTunnel/tunnels=10000", "heap-B/tunnel", 1.0 / 1024, "KiB", false, 2.5, ""},
	{"heap per tunnel, 100,000 tunnels", "BenchmarkHeapPerTunnel/tunnels=100000", "heap-B/tunnel", 1.0 / 1024, "KiB", false, 2.5, ""},
	{"RSS per tunnel after a simulated day, 10,000 tunnels", "BenchmarkDay/tunnels=10000/hours=24", "RSS-B/tunnel", 1.0 / 1024, "KiB", false, 32, ""},
	{"TSDB blocks, bytes per tunnel-minute after a simulated day", "BenchmarkDay/tunnels=10000/hours=24", "blocks-B/tunnel-minute", 1, "B", false, 15, "280 B"},
	{"TSDB directory (blocks, WAL, head chunks), bytes per tunnel-minute after a simulated day", "BenchmarkDay/tunnels=10000/hours=24", "TSDB-B/tunnel-minute", 1, "B", false, 15, "280 B"},
	{"start-up to ready, 30 days x 10,000 tunnels", "BenchmarkHistory30d/startup", "ready-s", 1, "s", false, 2, ""},
	{"state restore at 100,000 tunnels, fresh snapshot", "BenchmarkRestore/case=snapshot", "restore-s", 1, "s", false, 2, ""},
	{"state restore at 100,000 tunnels, snapshot + full journal", "BenchmarkRestore/case=journal", "restore-s", 1, "s", false, 2, ""},
}

type result struct {
	pkg   string
	name  string
	units map[string][]float64
	order []string
}

var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

func main() { os.Exit(run()) }

func run() int {
	in := flag.String("in", "", "raw go test -bench output")
	out := flag.String("out", "BENCHMARKS.md", "markdown file to write")
	cmd := flag.String("cmd", "make bench", "the command that produced the input")
	notes := flag.String("notes", "", "markdown file appended after the tables (analysis)")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	results, cpu := parse(f)
	ran := time.Now()
	if fi, err := f.Stat(); err == nil {
		ran = fi.ModTime() // when the run wrote its last line
	}
	var b strings.Builder
	header(&b, *cmd, cpu, ran)
	targetTable(&b, results)
	table(&b, results)
	if *notes != "" {
		n, err := os.ReadFile(*notes)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		b.WriteString("\n")
		b.Write(n)
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func parse(r io.Reader) ([]*result, string) {
	byName := map[string]*result{}
	var list []*result
	pkg, cpu := "", ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			continue
		case strings.HasPrefix(line, "cpu: "):
			cpu = strings.TrimPrefix(line, "cpu: ")
			continue
		}
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		res := byName[pkg+" "+name]
		if res == nil {
			res = &result{pkg: pkg, name: name, units: map[string][]float64{}}
			byName[pkg+" "+name] = res
			list = append(list, res)
		}
		fields := strings.Fields(m[4])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			unit := fields[i+1]
			if _, ok := res.units[unit]; !ok {
				res.order = append(res.order, unit)
			}
			res.units[unit] = append(res.units[unit], v)
		}
	}
	return list, cpu
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func header(b *strings.Builder, cmd, cpu string, ran time.Time) {
	goVersion := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	mem := ""
	if m, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(m), "\n", 2)[0])[1] + " kB"
	}
	fmt.Fprintf(b, "# Benchmarks\n\nMeasured by `%s`, run ending %s.\n\n", cmd, ran.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- machine: %s, %d cores, %s memory (a shared machine: figures are medians, and noisy)\n", cpu, runtime.NumCPU(), mem)
	fmt.Fprintf(b, "- %s\n- every figure is the median of the runs listed; \"vs baseline\" compares that median with the baseline's median from the same run\n", goVersion)
}

// targetTable writes the targets with the measured medians.
func targetTable(b *strings.Builder, results []*result) {
	byName := map[string]*result{}
	for _, r := range results {
		byName[r.name] = r
	}
	fmt.Fprintf(b, "\n## Targets (issue #7)\n\n| figure | target | measured | runs | met | today's NodePass dashboard backend |\n|---|---|---|---|---|---|\n")
	for _, t := range targets {
		op := "<="
		if t.atLeast {
			op = ">="
		}
		measured, runs, met := "not measured", "", ""
		if r := byName[t.benchmark]; r != nil && len(r.units[t.unit]) > 0 {
			scale := t.scale
			if scale == 0 {
				scale = 1
			}
			v := median(r.units[t.unit]) * scale
			measured = format(v) + " " + t.shown
			runs = strconv.Itoa(len(r.units[t.unit]))
			ok := v <= t.limit
			if t.atLeast {
				ok = v >= t.limit
			}
			met = "no"
			if ok {
				met = "yes"
			}
		}
		fmt.Fprintf(b, "| %s | %s %s %s | %s | %s | %s | %s |\n", t.figure, op, format(t.limit), t.shown, measured, runs, met, t.reference)
	}
}

func table(b *strings.Builder, results []*result) {
	byName := map[string]*result{}
	for _, r := range results {
		byName[r.name] = r
	}
	pkg := ""
	for _, r := range results {
		if r.pkg != pkg {
			pkg = r.pkg
			fmt.Fprintf(b, "\n## %s\n\n| benchmark | runs | median | vs baseline |\n|---|---|---|---|\n", pkg)
		}
		var cells []string
		runs := 0
		for _, u := range r.order {
			runs = max(runs, len(r.units[u]))
			cells = append(cells, fmt.Sprintf("%s %s", format(median(r.units[u])), u))
		}
		ratio := ""
		for _, p := range baselines {
			if p.fast != r.name {
				continue
			}
			unit := p.unit
			if unit == "" {
				unit = "ns/op"
			}
			base := byName[p.base]
			if base == nil || len(base.units[unit]) == 0 || len(r.units[unit]) == 0 {
				continue
			}
			name := strings.TrimPrefix(p.base, "Benchmark")
			if unit == "ns/op" {
				ratio = fmt.Sprintf("%.1fx faster than `%s`", median(base.units[unit])/median(r.units[unit]), name)
			} else {
				ratio = fmt.Sprintf("%.0f%% of `%s`'s %s", 100*median(r.units[unit])/median(base.units[unit]), name, unit)
			}
		}
		fmt.Fprintf(b, "| `%s` | %d | %s | %s |\n", strings.TrimPrefix(r.name, "Benchmark"), runs, strings.Join(cells, ", "), ratio)
	}
}

func format(v float64) string {
	switch {
	case v >= 10_000:
		return group(strconv.FormatFloat(v, 'f', 0, 64))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// group puts thousands separators into a string of digits.
func group(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
