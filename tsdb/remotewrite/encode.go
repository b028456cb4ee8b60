package remotewrite

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// encoder turns samples into a Remote-Write 1.0 request. It is immutable after
// New and safe for concurrent use.
type encoder struct {
	external []prompb.Label // sorted by name
}

func newEncoder(external map[string]string) encoder {
	var e encoder
	for name, value := range external {
		e.external = append(e.external, prompb.Label{Name: name, Value: value})
	}
	slices.SortFunc(e.external, func(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) })
	return e
}

// encode groups samples by series, in order of first appearance, with each
// series' samples sorted by time as the protocol requires. Samples that no
// receiver would accept (no metric name, invalid UTF-8) are left out and
// counted in invalid.
func (e encoder) encode(samples []history.Sample) (req *prompb.WriteRequest, invalid int) {
	req = &prompb.WriteRequest{}
	index := make(map[string]int)
	var key strings.Builder
	for _, s := range samples {
		if !validSample(s) {
			invalid++
			continue
		}
		key.Reset()
		for _, v := range [...]string{s.Metric, s.Endpoint, s.Tunnel, s.Protocol, s.Direction, s.Service} {
			key.WriteString(v)
			key.WriteByte(0xff) // Not valid UTF-8, so it cannot occur in a value.
		}
		i, ok := index[key.String()]
		if !ok {
			i = len(req.Timeseries)
			index[key.String()] = i
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: e.labels(s)})
		}
		ts := &req.Timeseries[i]
		ts.Samples = append(ts.Samples, prompb.Sample{Value: s.V, Timestamp: s.T})
	}
	for i := range req.Timeseries {
		slices.SortStableFunc(req.Timeseries[i].Samples, func(a, b prompb.Sample) int {
			return cmp.Compare(a.Timestamp, b.Timestamp)
		})
	}
	return req, invalid
}

// labels returns the sorted label set of the series s belongs to. External
// labels never collide with these names: New rejects such external labels.
func (e encoder) labels(s history.Sample) []prompb.Label {
	ls := make([]prompb.Label, 0, 5+len(e.external))
	ls = append(ls, prompb.Label{Name: model.MetricNameLabel, Value: s.Metric})
	// An empty value means "no such label" to every receiver; send none.
	for _, l := range [...]prompb.Label{
		{Name: "endpoint", Value: s.Endpoint},
		{Name: "tunnel", Value: s.Tunnel},
		{Name: "service", Value: s.Service},
		{Name: "protocol", Value: s.Protocol},
		{Name: "direction", Value: s.Direction},
	} {
		if l.Value != "" {
			ls = append(ls, l)
		}
	}
	ls = append(ls, e.external...)
	slices.SortFunc(ls, func(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) })
	return ls
}

func validSample(s history.Sample) bool {
	if s.Metric == "" {
		return false
	}
	for _, v := range [...]string{s.Metric, s.Endpoint, s.Tunnel, s.Protocol, s.Direction, s.Service} {
		if !utf8.ValidString(v) {
			return false
		}
	}
	return true
}
