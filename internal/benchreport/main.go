// Command benchreport turns `go test -bench` output into the tables of
// BENCHMARKS.md: the median of every reported unit over the runs of each
// benchmark, and its ratio to a baseline measured in the same run.
//
// Usage: benchreport -in raw.txt -out BENCHMARKS.md -cmd "make bench"
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

// baselines maps a benchmark to the baseline it is compared with (the same
// work done the plain way, measured in the same run).
var baselines = []struct{ fast, base string }{
	{"BenchmarkIngest/tunnels=10000/decoder=scanner", "BenchmarkIngest/tunnels=10000/decoder=stdlib"},
	{"BenchmarkIngest/tunnels=100000/decoder=scanner", "BenchmarkIngest/tunnels=100000/decoder=stdlib"},
	{"BenchmarkDecode", "BenchmarkDecodeStdlib"},
	{"BenchmarkMetrics10k", "BenchmarkMetrics10kClientGolang"},
	{"BenchmarkMetrics10kGzip", "BenchmarkMetrics10kClientGolang"},
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
	notes := flag.String("notes", "", "markdown file appended after the tables (targets, analysis)")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	results, cpu := parse(f)
	var b strings.Builder
	header(&b, *cmd, cpu)
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

func header(b *strings.Builder, cmd, cpu string) {
	goVersion := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	mem := ""
	if m, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(m), "\n", 2)[0])[1] + " kB"
	}
	fmt.Fprintf(b, "# Benchmarks\n\nWritten by `%s` on %s.\n\n", cmd, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- machine: %s, %d cores, %s memory (a shared machine: figures are medians, and noisy)\n", cpu, runtime.NumCPU(), mem)
	fmt.Fprintf(b, "- %s\n- every figure is the median of the runs listed; \"vs baseline\" is that median's ratio to the baseline's median from the same run\n\n", goVersion)
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
			if base := byName[p.base]; base != nil && len(base.units["ns/op"]) > 0 && len(r.units["ns/op"]) > 0 {
				ratio = fmt.Sprintf("%.1fx faster than `%s`", median(base.units["ns/op"])/median(r.units["ns/op"]), strings.TrimPrefix(p.base, "Benchmark"))
			}
		}
		fmt.Fprintf(b, "| `%s` | %d | %s | %s |\n", strings.TrimPrefix(r.name, "Benchmark"), runs, strings.Join(cells, ", "), ratio)
	}
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
