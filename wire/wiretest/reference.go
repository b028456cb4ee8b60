package wiretest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The reasons of wire's DecodeError, written out again: the reference is
// independent of the code it checks.
const (
	reasonMalformedJSON = "malformed_json"
	reasonUnknownType   = "unknown_type"
	reasonBadField      = "bad_field"
	reasonBadNumber     = "bad_number"
	reasonMissingField  = "missing_field"
)

// View is a decoded event with every value a string or number, comparable
// with == and printable. Type is the wire name of the event type.
type View struct {
	Type                         string
	Time, Logs                   string
	HasInstance                  bool
	ID, Alias, IType, Status     string
	URL, Config                  string
	Restart                      bool
	PeerSID, PeerType, PeerAlias string
	Tags                         string // "k=v;" pairs sorted by key, %q-quoted
	Mode, Ping, Pool, TCPs, UDPs int64
	Counters                     history.Counters
}

// jsonRefEvent mirrors the wire format with pointers, so that "absent" and
// null (nil) are told apart from zero values.
type jsonRefEvent struct {
	Type     *string          `json:"type"`
	Time     *string          `json:"time"`
	Instance *jsonRefInstance `json:"instance"`
	Logs     *string          `json:"logs"`
}

type jsonRefInstance struct {
	ID      *string      `json:"id"`
	Alias   *string      `json:"alias"`
	Type    *string      `json:"type"`
	Status  *string      `json:"status"`
	URL     *string      `json:"url"`
	Config  *string      `json:"config"`
	Restart *bool        `json:"restart"`
	Meta    *jsonRefMeta `json:"meta"`
	Mode    *int64       `json:"mode"`
	Ping    *int64       `json:"ping"`
	Pool    *int64       `json:"pool"`
	TCPs    *int64       `json:"tcps"`
	UDPs    *int64       `json:"udps"`
	TCPRx   *uint64      `json:"tcprx"`
	TCPTx   *uint64      `json:"tcptx"`
	UDPRx   *uint64      `json:"udprx"`
	UDPTx   *uint64      `json:"udptx"`
}

type jsonRefMeta struct {
	Peer *struct {
		SID   *string `json:"sid"`
		Type  *string `json:"type"`
		Alias *string `json:"alias"`
	} `json:"peer"`
	// A map of plain strings: encoding/json stores "" for a null value,
	// which is the rule Decode follows.
	Tags map[string]string `json:"tags"`
}

// jsonRefType is the last string or null given for "type"; values of other
// kinds leave it unchanged.
type jsonRefType struct {
	set bool
	v   string
}

func (t *jsonRefType) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = jsonRefType{}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = jsonRefType{set: true, v: s}
	}
	return nil
}

// jsonRefFields are all field names the decoder knows, at any level.
var jsonRefFields = []string{
	"type", "time", "instance", "logs", "id", "alias", "status", "url", "config",
	"restart", "meta", "peer", "sid", "tags", "mode", "ping", "pool", "tcps", "udps",
	"tcprx", "tcptx", "udprx", "udptx",
}

// jsonRefNumeric are the paths whose type errors are bad_number.
var jsonRefNumeric = []string{
	"instance.mode", "instance.ping", "instance.pool", "instance.tcps", "instance.udps",
	"instance.tcprx", "instance.tcptx", "instance.udprx", "instance.udptx",
}

// jsonRefTypes are the event types of NodePass v1.14.0.
var jsonRefTypes = []string{"initial", "create", "update", "delete", "log", "shutdown"}

// Verdict is the reference verdict on one input.
type Verdict struct {
	// Reason is the reason wire's DecodeError must carry ("malformed_json",
	// "bad_number", ...), or empty when the event must be accepted; Field
	// is the DecodeError's Field.
	Reason, Field string
	// View is the decoded event when Reason is empty.
	View View
	// Folded reports a key that encoding/json matches to a known field
	// case-insensitively ("ID", "Tcprx"), which wire's Decoder deliberately
	// does not: for such inputs only the syntax verdict must agree.
	Folded bool
}

// Reference decodes data with encoding/json and applies the rules and error
// precedence documented on wire.Decoder.Decode to the result.
func Reference(data []byte) (r Verdict) {
	r.Folded = jsonRefFolded(data)
	var ev jsonRefEvent
	err := json.Unmarshal(data, &ev)
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		r.Reason = reasonMalformedJSON
		return r
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		r.Reason = reasonMalformedJSON
		return r
	}
	// The type comes from a second pass: with a *string, encoding/json
	// allocates the string before it finds that the value is, say, a number,
	// which would make "type":5 look like "type":"".
	var tp struct {
		Type jsonRefType `json:"type"`
	}
	if err := json.Unmarshal(data, &tp); err != nil {
		r.Reason = "unexpected error: " + err.Error()
		return r
	}
	typ, known := tp.Type.v, slices.Contains(jsonRefTypes, tp.Type.v)
	if tp.Type.set && !known {
		r.Reason, r.Field = reasonUnknownType, "type"
		return r
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		r.Reason, r.Field = reasonBadField, te.Field
		if slices.Contains(jsonRefNumeric, te.Field) {
			r.Reason = reasonBadNumber
		}
		return r
	} else if err != nil {
		r.Reason = "unexpected error: " + err.Error()
		return r
	}
	in := ev.Instance
	if in == nil {
		in = &jsonRefInstance{}
	}
	missing := ""
	switch {
	case !tp.Type.set:
		missing = "type"
	case typ == "shutdown":
	case ev.Instance == nil:
		missing = "instance"
	case in.ID == nil:
		missing = "instance.id"
	case in.TCPRx == nil:
		missing = "instance.tcprx"
	case in.TCPTx == nil:
		missing = "instance.tcptx"
	case in.UDPRx == nil:
		missing = "instance.udprx"
	case in.UDPTx == nil:
		missing = "instance.udptx"
	}
	if missing != "" {
		r.Reason, r.Field = reasonMissingField, missing
		return r
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	n := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	u := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	r.View = View{
		Type: typ, Time: s(ev.Time), Logs: s(ev.Logs), HasInstance: ev.Instance != nil,
		ID: s(in.ID), Alias: s(in.Alias), IType: s(in.Type), Status: s(in.Status),
		URL: s(in.URL), Config: s(in.Config), Restart: in.Restart != nil && *in.Restart,
		Mode: n(in.Mode), Ping: n(in.Ping), Pool: n(in.Pool), TCPs: n(in.TCPs), UDPs: n(in.UDPs),
		Counters: history.Counters{u(in.TCPRx), u(in.TCPTx), u(in.UDPRx), u(in.UDPTx)},
	}
	if m := in.Meta; m != nil {
		if p := m.Peer; p != nil {
			r.View.PeerSID, r.View.PeerType, r.View.PeerAlias = s(p.SID), s(p.Type), s(p.Alias)
		}
		var tags strings.Builder
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range m.Tags {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&tags, "%q=%q;", k, m.Tags[k])
		}
		r.View.Tags = tags.String()
	}
	return r
}

// jsonRefFolded reports whether valid JSON data has an object key, at any
// depth, that encoding/json would take for a known field only because it
// matches case-insensitively.
func jsonRefFolded(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() (bool, error)
	walk = func() (bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		delim, ok := tok.(json.Delim)
		if !ok {
			return false, nil
		}
		folded := false
		for dec.More() {
			if delim == '{' {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				for _, name := range jsonRefFields {
					if k != name && strings.EqualFold(k.(string), name) {
						folded = true
					}
				}
			}
			f, err := walk()
			if err != nil {
				return false, err
			}
			folded = folded || f
		}
		_, err = dec.Token()
		return folded, err
	}
	folded, _ := walk()
	return folded
}

// fuzzDecodeSeeds are hand-made inputs around the edges of the grammar.
