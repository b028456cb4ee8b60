package tsdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// The encoder below writes exactly what Prometheus' jsoniter codec writes:
// timestamps as Unix seconds with up to three decimals, sample values as
// strings ("NaN", "+Inf", exponent form below 1e-6 and from 1e21), labels
// as objects, and empty lists as [] (never null).

// queryData is the data of /query and /query_range.
type queryData struct {
	ResultType parser.ValueType
	Result     parser.Value
}

// appendData writes one response's data.
func appendData(buf *bytes.Buffer, data any) error {
	switch d := data.(type) {
	case *queryData:
		buf.WriteString(`{"resultType":`)
		appendString(buf, string(d.ResultType))
		buf.WriteString(`,"result":`)
		if err := appendValue(buf, d.Result); err != nil {
			return err
		}
		buf.WriteByte('}')
	case []string:
		appendStrings(buf, d)
	case []labels.Labels:
		buf.WriteByte('[')
		for i, ls := range d {
			if i > 0 {
				buf.WriteByte(',')
			}
			appendLabels(buf, ls)
		}
		buf.WriteByte(']')
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}

func appendValue(buf *bytes.Buffer, v parser.Value) error {
	switch v := v.(type) {
	case promql.Vector:
		buf.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"metric":`)
			appendLabels(buf, s.Metric)
			if s.H == nil {
				buf.WriteString(`,"value":`)
				appendFPoint(buf, s.T, s.F)
			} else {
				buf.WriteString(`,"histogram":`)
				if err := appendHPoint(buf, promql.HPoint{T: s.T, H: s.H}); err != nil {
					return err
				}
			}
			buf.WriteByte('}')
		}
		buf.WriteByte(']')
	case promql.Matrix:
		buf.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"metric":`)
			appendLabels(buf, s.Metric)
			if len(s.Floats) > 0 {
				buf.WriteString(`,"values":[`)
				for j, p := range s.Floats {
					if j > 0 {
						buf.WriteByte(',')
					}
					appendFPoint(buf, p.T, p.F)
				}
				buf.WriteByte(']')
			}
			if len(s.Histograms) > 0 {
				buf.WriteString(`,"histograms":[`)
				for j, p := range s.Histograms {
					if j > 0 {
						buf.WriteByte(',')
					}
					if err := appendHPoint(buf, p); err != nil {
						return err
					}
				}
				buf.WriteByte(']')
			}
			buf.WriteByte('}')
		}
		buf.WriteByte(']')
	case promql.Scalar:
		appendFPoint(buf, v.T, v.V)
	case promql.String:
		buf.WriteByte('[')
		appendTimestamp(buf, v.T)
		buf.WriteByte(',')
		appendString(buf, v.V)
		buf.WriteByte(']')
	default:
		return fmt.Errorf("unexpected result type %T", v)
	}
	return nil
}

// appendHPoint uses promql's own encoding; histograms are rare here (the
// exporter stores floats only).
func appendHPoint(buf *bytes.Buffer, p promql.HPoint) error {
	b, err := p.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode histogram: %w", err)
	}
	buf.Write(b)
	return nil
}

// appendFPoint writes [ts, "value"].
func appendFPoint(buf *bytes.Buffer, t int64, f float64) {
	buf.WriteByte('[')
	appendTimestamp(buf, t)
	buf.WriteByte(',')
	appendFloat(buf, f)
	buf.WriteByte(']')
}

// appendTimestamp writes t (ms) as seconds: 1435781451.781, 1435781451.
func appendTimestamp(buf *bytes.Buffer, t int64) {
	if t < 0 {
		buf.WriteByte('-')
		t = -t
	}
	var b [24]byte
	buf.Write(strconv.AppendInt(b[:0], t/1000, 10))
	if frac := t % 1000; frac != 0 {
		buf.WriteByte('.')
		if frac < 100 {
			buf.WriteByte('0')
		}
		if frac < 10 {
			buf.WriteByte('0')
		}
		buf.Write(strconv.AppendInt(b[:0], frac, 10))
	}
}

// appendFloat writes f as a JSON string, formatted like Prometheus.
func appendFloat(buf *bytes.Buffer, f float64) {
	var b [32]byte
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	out := strconv.AppendFloat(b[:1], f, format, -1, 64)
	out[0] = '"'
	buf.Write(out)
	buf.WriteByte('"')
}

func appendLabels(buf *bytes.Buffer, ls labels.Labels) {
	buf.WriteByte('{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		appendString(buf, l.Name)
		buf.WriteByte(':')
		appendString(buf, l.Value)
	})
	buf.WriteByte('}')
}

func appendStrings(buf *bytes.Buffer, ss []string) {
	buf.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendString(buf, s)
	}
	buf.WriteByte(']')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does
// (HTML-safe: <, > and & escaped; invalid UTF-8 as U+FFFD). Label values
// come from NodePass masters and are untrusted.
func appendString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
