package nodepassdash

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows how many samples are written: a bar redrawn in place on a
// terminal, else a line every `every` samples. Not goroutine-safe.
type progress struct {
	w        io.Writer
	terminal bool
	every    int
	total    int
	n        int
	lastLine int
}

func newProgress(w io.Writer, terminal bool, every, total int) *progress {
	return &progress{w: w, terminal: terminal, every: every, total: total}
}

func (p *progress) add(n int) {
	p.n += n
	switch {
	case p.terminal && (p.n%500 == 0 || p.n == p.total):
		const width = 40
		filled := width * p.n / max(p.total, 1)
		fmt.Fprintf(p.w, "\rimporting [%s%s] %d/%d samples", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.n, p.total)
	case !p.terminal && (p.n-p.lastLine >= p.every || p.n == p.total):
		p.lastLine = p.n
		fmt.Fprintf(p.w, "import: %d/%d samples written (%d%%)\n", p.n, p.total, 100*p.n/max(p.total, 1))
	}
}

func (p *progress) done() {
	if p.terminal && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}

// printHours lists, per endpoint and tunnel, the hours and bytes the import
// would write (hours the TSDB holds left out).
func (p *Plan) printHours(w io.Writer, have existing) {
	type acc struct {
		hours        int
		bytes        uint64
		first, last  time.Time
		endpoint, id string
	}
	var order []*acc
	byTunnel := map[[2]string]*acc{}
	endpoints := map[string]*acc{}
	var endpointOrder []string
	for _, h := range p.Tunnels {
		if have.has(sample{tunnelLabels(MetricTunnelHourly, h.Endpoint, h.Tunnel, 0), h.Hour.UnixMilli(), 0}) {
			continue
		}
		k := [2]string{h.Endpoint, h.Tunnel}
		a := byTunnel[k]
		if a == nil {
			a = &acc{first: h.Hour, endpoint: h.Endpoint, id: h.Tunnel}
			byTunnel[k] = a
			order = append(order, a)
		}
		a.hours++
		a.bytes += Bytes(h.Delta)
		a.last = h.Hour
		e := endpoints[h.Endpoint]
		if e == nil {
			e = &acc{first: h.Hour}
			endpoints[h.Endpoint] = e
			endpointOrder = append(endpointOrder, h.Endpoint)
		}
		e.hours++
		e.bytes += Bytes(h.Delta)
		e.first = minTime(e.first, h.Hour)
		e.last = maxTime(e.last, h.Hour)
	}
	fmt.Fprintln(w, "would write (tunnel hours, bytes):")
	for _, name := range endpointOrder {
		e := endpoints[name]
		fmt.Fprintf(w, "endpoint %q: %d hours, %d bytes, %s .. %s\n", name, e.hours, e.bytes, hourString(e.first), hourString(e.last))
		for _, a := range order {
			if a.endpoint != name {
				continue
			}
			alias := ""
			if n, ok := p.Names[[2]string{a.endpoint, a.id}]; ok {
				alias = fmt.Sprintf(" (%q)", n)
			}
			fmt.Fprintf(w, "  tunnel %s%s: %d hours, %d bytes, %s .. %s\n", a.id, alias, a.hours, a.bytes, hourString(a.first), hourString(a.last))
		}
	}
}

// print writes the summary.
func (r *Result) print(o Options) {
	w, s := o.Out, r.Plan.Stats
	verb := "wrote"
	if o.DryRun {
		verb = "dry run, would write"
	}
	fmt.Fprintf(w, "NodePassDash %s database: %d hourly rows, %d tunnels (endpoint, instance)\n", r.Plan.Version, s.Rows, s.Series)
	fmt.Fprintf(w, "repaired rows: %d (cumulative increments: %d, negative increments after counter resets: %d, other wrong increments: %d)\n",
		s.Repairs.Total(), s.Repairs.Cumulative, s.Repairs.Negative, s.Repairs.Other)
	fmt.Fprintf(w, "counter resets: %d; gaps bridged: %d; duplicate rows dropped: %d; idle hours skipped: %d\n",
		s.Resets, s.Gaps, s.Duplicates, s.IdleHours)
	fmt.Fprintf(w, "baseline rows (counters older than NodePassDash's history, not counted as traffic): %d, %d bytes\n", s.Baseline, s.BaselineBytes)
	if s.Misaligned > 0 {
		fmt.Fprintf(w, "rows not on a UTC hour (half-hour time zone), moved to the UTC hour start: %d\n", s.Misaligned)
	}
	if s.UnknownEndpoints > 0 {
		fmt.Fprintf(w, "rows of endpoints missing from the endpoints table, labelled nodepassdash-<id>: %d\n", s.UnknownEndpoints)
	}
	fmt.Fprintf(w, "%s: %d samples, %d tunnel hours, %d bytes; already in the TSDB: %d samples\n",
		verb, len(r.Plan.Tunnels)*8+len(r.Plan.Endpoints)*4-r.Skipped, r.HoursToWrite, r.BytesToWrite, r.Skipped)
	if r.PastRetention > 0 {
		fmt.Fprintf(w, "%d tunnel hours are older than the retention (%s): written, and deleted by the exporter's retention at its next compaction\n",
			r.PastRetention, o.Retention)
	}
	if len(r.Blocks) > 0 {
		fmt.Fprintf(w, "blocks: %s\n", strings.Join(r.Blocks, " "))
	}
}

func hourString(t time.Time) string { return t.UTC().Format("2006-01-02T15Z") }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
