package promapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// The encoder below writes what Prometheus' jsoniter codec writes:
// timestamps as Unix seconds with up to three decimals, sample values as
// strings ("NaN", "+Inf", exponent form below 1e-6 and from 1e21), labels
// as objects, and empty lists as [] (never null). Strings go through the
// exporter's one JSON string encoder, jsonenc (label values come from
// NodePass masters and are untrusted).

// queryData is the data of /query and /query_range.
type queryData struct {
	ResultType parser.ValueType
	Result     parser.Value
}

// appendData appends one response's data.
func appendData(buf []byte, data any) ([]byte, error) {
	switch d := data.(type) {
	case *queryData:
		buf = append(buf, `{"resultType":`...)
		buf = jsonenc.AppendString(buf, string(d.ResultType))
		buf = append(buf, `,"result":`...)
		var err error
		if buf, err = appendValue(buf, d.Result); err != nil {
			return buf, err
		}
		return append(buf, '}'), nil
	case []string:
		return appendStrings(buf, d), nil
	case []labels.Labels:
		buf = append(buf, '[')
		for i, ls := range d {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendLabels(buf, ls)
		}
		return append(buf, ']'), nil
	case string:
		return jsonenc.AppendString(buf, d), nil
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return buf, fmt.Errorf("encode %T: %w", d, err)
		}
		return append(buf, b...), nil
	}
}

func appendValue(buf []byte, v parser.Value) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case promql.Vector:
		buf = append(buf, '[')
		for i, s := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"metric":`...)
			buf = appendLabels(buf, s.Metric)
			if s.H == nil {
				buf = append(buf, `,"value":`...)
				buf = appendFPoint(buf, s.T, s.F)
			} else {
				buf = append(buf, `,"histogram":`...)
				if buf, err = appendHPoint(buf, promql.HPoint{T: s.T, H: s.H}); err != nil {
					return buf, err
				}
			}
			buf = append(buf, '}')
		}
		return append(buf, ']'), nil
	case promql.Matrix:
		buf = append(buf, '[')
		for i, s := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"metric":`...)
			buf = appendLabels(buf, s.Metric)
			if len(s.Floats) > 0 {
				buf = append(buf, `,"values":[`...)
				for j, p := range s.Floats {
					if j > 0 {
						buf = append(buf, ',')
					}
					buf = appendFPoint(buf, p.T, p.F)
				}
				buf = append(buf, ']')
			}
			if len(s.Histograms) > 0 {
				buf = append(buf, `,"histograms":[`...)
				for j, p := range s.Histograms {
					if j > 0 {
						buf = append(buf, ',')
					}
					if buf, err = appendHPoint(buf, p); err != nil {
						return buf, err
					}
				}
				buf = append(buf, ']')
			}
			buf = append(buf, '}')
		}
		return append(buf, ']'), nil
	case promql.Scalar:
		return appendFPoint(buf, v.T, v.V), nil
	case promql.String:
		buf = append(buf, '[')
		buf = appendTimestamp(buf, v.T)
		buf = append(buf, ',')
		buf = jsonenc.AppendString(buf, v.V)
		return append(buf, ']'), nil
	default:
		return buf, fmt.Errorf("unexpected result type %T", v)
	}
}

// appendHPoint uses promql's own encoding; histograms are rare here (the
// exporter stores floats only).
func appendHPoint(buf []byte, p promql.HPoint) ([]byte, error) {
	b, err := p.MarshalJSON()
	if err != nil {
		return buf, fmt.Errorf("encode histogram: %w", err)
	}
	return append(buf, b...), nil
}

// appendFPoint appends [ts, "value"].
func appendFPoint(buf []byte, t int64, f float64) []byte {
	buf = append(buf, '[')
	buf = appendTimestamp(buf, t)
	buf = append(buf, ',')
	buf = appendFloat(buf, f)
	return append(buf, ']')
}

// appendTimestamp appends t (ms) as seconds: 1435781451.781, 1435781451.
func appendTimestamp(buf []byte, t int64) []byte {
	if t < 0 {
		buf = append(buf, '-')
		t = -t
	}
	buf = strconv.AppendInt(buf, t/1000, 10)
	if frac := t % 1000; frac != 0 {
		buf = append(buf, '.')
		if frac < 100 {
			buf = append(buf, '0')
		}
		if frac < 10 {
			buf = append(buf, '0')
		}
		buf = strconv.AppendInt(buf, frac, 10)
	}
	return buf
}

// appendFloat appends f as a JSON string, formatted like Prometheus.
func appendFloat(buf []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = append(buf, '"')
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	return append(buf, '"')
}

func appendLabels(buf []byte, ls labels.Labels) []byte {
	buf = append(buf, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = jsonenc.AppendString(buf, l.Name)
		buf = append(buf, ':')
		buf = jsonenc.AppendString(buf, l.Value)
	})
	return append(buf, '}')
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonenc.AppendString(buf, s)
	}
	return append(buf, ']')
}
