package wire

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The reasons a NodePass event is rejected. They are the values of the
// reason label of nodepass_exporter_events_invalid_total, so the set is small
// and fixed (the collector adds its own "bad_id").
const (
	// ReasonMalformedJSON: the data is not one JSON object (syntax error,
	// trailing bytes, a top level that is not an object, nesting deeper than
	// 10000 levels).
	ReasonMalformedJSON = "malformed_json"
	// ReasonUnknownType: "type" is a string but not one of initial, create,
	// update, delete, log, shutdown. A newer NodePass may send new types.
	ReasonUnknownType = "unknown_type"
	// ReasonBadField: a known field holds the wrong kind of JSON value, such
	// as a number for "id", a string for "restart", an array for "instance"
	// or a non-string tag value.
	ReasonBadField = "bad_field"
	// ReasonBadNumber: a numeric field holds something other than an integer
	// in range: a string, a fraction or exponent, a negative counter, or a
	// value that overflows int64 (mode, ping, pool, tcps, udps) or uint64
	// (the four traffic counters).
	ReasonBadNumber = "bad_number"
	// ReasonMissingField: "type" is absent, or an event other than shutdown
	// lacks a non-null "instance" with "id" and all four traffic counters.
	ReasonMissingField = "missing_field"
)

// DecodeError describes why Decode rejected an event. It never quotes the
// event's bytes: an event can carry the master's API key.
type DecodeError struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Field is the dotted path of the offending field, such as
	// "instance.tcprx", or empty when the problem is not one field's.
	Field string
	// Offset is the byte offset in the data where the problem was found,
	// or -1 for a missing field, which has no place.
	Offset int
}

// Error implements error.
func (e *DecodeError) Error() string {
	switch {
	case e.Offset < 0:
		return fmt.Sprintf("decode event: %s: %s", e.Reason, e.Field)
	case e.Field != "":
		return fmt.Sprintf("decode event: %s: %s at byte %d", e.Reason, e.Field, e.Offset)
	}
	return fmt.Sprintf("decode event: %s at byte %d", e.Reason, e.Offset)
}

// Reason returns the invalid-event reason of err: the Reason of a wrapped
// *DecodeError, or "" for nil and any other error (the framer's bounds
// errors are counted by the caller under a reason of its own).
func Reason(err error) string {
	if de, ok := errors.AsType[*DecodeError](err); ok {
		return de.Reason
	}
	return ""
}

// maxDepth bounds the nesting of arrays and objects, as encoding/json does,
// so that skipping an unknown value cannot exhaust the stack.
const maxDepth = 10000

// Presence bits of the fields an instance must carry.
const (
	haveID uint8 = 1 << iota
	haveTCPRx
	haveTCPTx
	haveUDPRx
	haveUDPTx
	haveAll = haveID | haveTCPRx | haveTCPTx | haveUDPRx | haveUDPTx
)

// Outcome of decoding one typed field.
const (
	valSet   = iota // the field got a value
	valNull         // null: the field is reset, as if absent
	valWrong        // the wrong kind: the field is unchanged, an error is noted
)

// A Decoder decodes the JSON of NodePass events without allocating in steady
// state. It holds a scratch buffer for strings that need unescaping, so the
// zero value is ready to use and one Decoder should be reused per stream.
//
// The decoder is strict where a mistake would corrupt counters and lenient
// where NodePass may grow: unknown keys are skipped at any depth, and
// encoding/json's semantics are followed otherwise, so the two agree on every
// input except where documented on Decode.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	scratch []byte

	// State of the current Decode call.
	data   []byte
	pos    int
	depth  int
	errPos int // offset of the syntax error when a scan failed

	typeSet     bool   // "type" was a string (last occurrence wins)
	typeUnknown bool   // ... but not a known one
	typePos     int    // offset of the last "type" value
	have        uint8  // presence bits of the current instance
	semReason   string // first type or number error, in document order
	semField    string
	semPos      int
}

// Decode decodes one event from data into ev, replacing every field of ev.
// The Tags slice is reused.
//
// Byte slices in ev point into data where a value needed no unescaping and
// into d's scratch buffer otherwise: they are valid until data changes or the
// next call of Decode. Tags are sorted by key with duplicates removed.
//
// The rules, and where they deliberately differ from encoding/json
// (unmarshalling into a struct of pointers mirroring the wire format):
//   - The top level must be an object; encoding/json accepts a top-level null.
//   - Keys match exactly; encoding/json also matches them case-insensitively.
//   - Duplicate keys: the last wins. A repeated object (instance, meta, peer,
//     tags) merges into the earlier one, as with encoding/json.
//   - null for a known field resets it, as if it were absent; a null tag
//     value is an empty string.
//   - Numbers must be integers written without fraction or exponent (1e3 is
//     a bad_number even though it is integral), as encoding/json requires for
//     integer fields; the counters must not be negative.
//   - Invalid UTF-8 in a string becomes U+FFFD per bad byte, and unpaired
//     UTF-16 surrogates in \u escapes become U+FFFD, as in encoding/json.
//   - Errors: a syntax error anywhere wins over everything else; then an
//     unknown type; then the first wrong-kind or bad number in document
//     order; then missing fields.
//
// On error ev.Type is EventUnknown and the other fields are unspecified. The
// error is a *DecodeError; Reason extracts its reason.
func (d *Decoder) Decode(data []byte, ev *Event) error {
	tags := ev.Instance.Tags[:0]
	*ev = Event{}
	ev.Instance.Tags = tags

	d.scratch = d.scratch[:0]
	d.data, d.pos, d.depth, d.errPos = data, 0, 0, 0
	d.typeSet, d.typeUnknown, d.typePos, d.have = false, false, 0, 0
	d.semReason, d.semField, d.semPos = "", "", 0

	ok := d.event(ev)
	if ok {
		d.ws()
		if d.pos != len(data) {
			ok = d.fail()
		}
	}
	d.data = nil // do not pin the caller's buffer
	if err := d.verdict(ok, ev); err != nil {
		ev.Type = EventUnknown
		return err
	}
	ev.Instance.Tags = dedupeTags(ev.Instance.Tags)
	return nil
}

// verdict applies the precedence of errors documented on Decode.
func (d *Decoder) verdict(ok bool, ev *Event) error {
	switch {
	case !ok:
		return &DecodeError{Reason: ReasonMalformedJSON, Offset: d.errPos}
	case d.typeUnknown:
		return &DecodeError{Reason: ReasonUnknownType, Field: "type", Offset: d.typePos}
	case d.semReason != "":
		return &DecodeError{Reason: d.semReason, Field: d.semField, Offset: d.semPos}
	case !d.typeSet:
		return missing("type")
	case ev.Type == EventShutdown:
		return nil
	case !ev.HasInstance:
		return missing("instance")
	case d.have != haveAll:
		for _, m := range [...]struct {
			bit   uint8
			field string
		}{
			{haveID, "instance.id"},
			{haveTCPRx, "instance.tcprx"},
			{haveTCPTx, "instance.tcptx"},
			{haveUDPRx, "instance.udprx"},
			{haveUDPTx, "instance.udptx"},
		} {
			if d.have&m.bit == 0 {
				return missing(m.field)
			}
		}
	}
	return nil
}

func missing(field string) error {
	return &DecodeError{Reason: ReasonMissingField, Field: field, Offset: -1}
}

// wrong notes a semantic error; only the first one in the document is kept,
// like encoding/json's UnmarshalTypeError.
func (d *Decoder) wrong(reason, field string) {
	d.wrongAt(reason, field, d.pos)
}

func (d *Decoder) wrongAt(reason, field string, pos int) {
	if d.semReason == "" {
		d.semReason, d.semField, d.semPos = reason, field, pos
	}
}

// event decodes the top-level object.
func (d *Decoder) event(ev *Event) bool {
	d.ws()
	if d.peek() != '{' {
		return d.fail()
	}
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		switch string(key) {
		case "type":
			ok = d.eventType(ev)
		case "time":
			_, ok = d.stringField(&ev.Time, "time")
		case "instance":
			ok = d.instance(ev)
		case "logs":
			_, ok = d.stringField(&ev.Logs, "logs")
		default:
			ok = d.skip()
		}
		if ok {
			more, ok = d.objectNext()
		}
	}
	return ok
}

func (d *Decoder) eventType(ev *Event) bool {
	var v []byte
	d.typePos = d.pos
	st, ok := d.stringField(&v, "type")
	if !ok {
		return false
	}
	switch st {
	case valSet:
		ev.Type = parseEventType(v)
		d.typeSet, d.typeUnknown = true, ev.Type == EventUnknown
	case valNull:
		ev.Type = EventUnknown
		d.typeSet, d.typeUnknown = false, false
	}
	return true
}

func parseEventType(v []byte) EventType {
	switch string(v) {
	case "initial":
		return EventInitial
	case "create":
		return EventCreate
	case "update":
		return EventUpdate
	case "delete":
		return EventDelete
	case "log":
		return EventLog
	case "shutdown":
		return EventShutdown
	}
	return EventUnknown
}

func (d *Decoder) instance(ev *Event) bool {
	switch d.peek() {
	case 'n':
		if !d.literal("null") {
			return false
		}
		ev.HasInstance = false
		ev.Instance = Instance{Tags: ev.Instance.Tags[:0]}
		d.have = 0
		return true
	case '{':
		ev.HasInstance = true
		return d.instanceObject(&ev.Instance)
	}
	d.wrong(ReasonBadField, "instance")
	return d.skip()
}

func (d *Decoder) instanceObject(in *Instance) bool {
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		switch string(key) {
		case "id":
			var st int
			if st, ok = d.stringField(&in.ID, "instance.id"); ok {
				d.presence(haveID, st)
			}
		case "alias":
			_, ok = d.stringField(&in.Alias, "instance.alias")
		case "type":
			_, ok = d.stringField(&in.Type, "instance.type")
		case "status":
			_, ok = d.stringField(&in.Status, "instance.status")
		case "url":
			_, ok = d.stringField(&in.URL, "instance.url")
		case "config":
			_, ok = d.stringField(&in.Config, "instance.config")
		case "restart":
			ok = d.boolField(&in.Restart, "instance.restart")
		case "meta":
			ok = d.meta(in)
		case "mode":
			ok = d.intField(&in.Mode, "instance.mode")
		case "ping":
			ok = d.intField(&in.Ping, "instance.ping")
		case "pool":
			ok = d.intField(&in.Pool, "instance.pool")
		case "tcps":
			ok = d.intField(&in.TCPs, "instance.tcps")
		case "udps":
			ok = d.intField(&in.UDPs, "instance.udps")
		case "tcprx":
			ok = d.counter(in, history.TCPRx, haveTCPRx, "instance.tcprx")
		case "tcptx":
			ok = d.counter(in, history.TCPTx, haveTCPTx, "instance.tcptx")
		case "udprx":
			ok = d.counter(in, history.UDPRx, haveUDPRx, "instance.udprx")
		case "udptx":
			ok = d.counter(in, history.UDPTx, haveUDPTx, "instance.udptx")
		default:
			ok = d.skip()
		}
		if ok {
			more, ok = d.objectNext()
		}
	}
	return ok
}

// presence keeps the presence bit of a required field in step with its
// last occurrence.
func (d *Decoder) presence(bit uint8, st int) {
	switch st {
	case valSet:
		d.have |= bit
	case valNull:
		d.have &^= bit
	}
}

func (d *Decoder) counter(in *Instance, c history.Counter, bit uint8, field string) bool {
	st, ok := d.uintField(&in.Counters[c], field)
	if ok {
		d.presence(bit, st)
	}
	return ok
}

func (d *Decoder) meta(in *Instance) bool {
	switch d.peek() {
	case 'n':
		if !d.literal("null") {
			return false
		}
		in.PeerSID, in.PeerType, in.PeerAlias = nil, nil, nil
		in.Tags = in.Tags[:0]
		return true
	case '{':
	default:
		d.wrong(ReasonBadField, "instance.meta")
		return d.skip()
	}
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		switch string(key) {
		case "peer":
			ok = d.peer(in)
		case "tags":
			ok = d.tags(in)
		default:
			ok = d.skip()
		}
		if ok {
			more, ok = d.objectNext()
		}
	}
	return ok
}

func (d *Decoder) peer(in *Instance) bool {
	switch d.peek() {
	case 'n':
		if !d.literal("null") {
			return false
		}
		in.PeerSID, in.PeerType, in.PeerAlias = nil, nil, nil
		return true
	case '{':
	default:
		d.wrong(ReasonBadField, "instance.meta.peer")
		return d.skip()
	}
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		switch string(key) {
		case "sid":
			_, ok = d.stringField(&in.PeerSID, "instance.meta.peer.sid")
		case "type":
			_, ok = d.stringField(&in.PeerType, "instance.meta.peer.type")
		case "alias":
			_, ok = d.stringField(&in.PeerAlias, "instance.meta.peer.alias")
		default:
			ok = d.skip()
		}
		if ok {
			more, ok = d.objectNext()
		}
	}
	return ok
}

// tags appends the members of meta.tags; dedupeTags makes the last of
// duplicate keys win once the whole event is read.
func (d *Decoder) tags(in *Instance) bool {
	switch d.peek() {
	case 'n':
		if !d.literal("null") {
			return false
		}
		in.Tags = in.Tags[:0]
		return true
	case '{':
	default:
		d.wrong(ReasonBadField, "instance.meta.tags")
		return d.skip()
	}
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		var value []byte
		var st int
		if st, ok = d.stringField(&value, "instance.meta.tags"); ok && st != valWrong {
			in.Tags = append(in.Tags, Tag{Key: key, Value: value})
		}
		if ok {
			more, ok = d.objectNext()
		}
	}
	return ok
}

// dedupeTags sorts tags by key and keeps the last of each run of equal keys,
// so Tags behaves like the JSON object it came from. NodePass (Go) writes map
// keys sorted, so the usual case is a single check.
func dedupeTags(tags []Tag) []Tag {
	sorted := true
	for i := 1; i < len(tags); i++ {
		if bytes.Compare(tags[i-1].Key, tags[i].Key) >= 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return tags
	}
	// Stable, so equal keys keep document order and the last one is the
	// latest; the func literal captures nothing and does not allocate.
	slices.SortStableFunc(tags, func(a, b Tag) int { return bytes.Compare(a.Key, b.Key) })
	out := tags[:0]
	for i := range tags {
		if i+1 < len(tags) && bytes.Equal(tags[i].Key, tags[i+1].Key) {
			continue
		}
		out = append(out, tags[i])
	}
	clear(tags[len(out):]) // do not pin dropped strings
	return out
}
