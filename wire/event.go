package wire

import (
	"errors"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// EventType is the "type" field of a NodePass SSE event.
type EventType uint8

// The event types a NodePass v1.14 master sends. EventUnknown is any other
// value; such an event is counted as invalid and skipped.
const (
	EventUnknown EventType = iota
	EventInitial
	EventCreate
	EventUpdate
	EventDelete
	EventLog
	EventShutdown
	// NumEventTypes is the number of EventType values, EventUnknown
	// included: the size of an array indexed by EventType.
	NumEventTypes
)

var eventTypeNames = [NumEventTypes]string{"unknown", "initial", "create", "update", "delete", "log", "shutdown"}

// String returns the wire name of t ("unknown" for EventUnknown).
func (t EventType) String() string {
	if t < NumEventTypes {
		return eventTypeNames[t]
	}
	return "unknown"
}

// PseudoInstanceID is the id of the entry that carries the master's API key
// in its url. It is not a tunnel: a reader drops it on arrival, before it
// looks at any other field.
const PseudoInstanceID = "********"

// ErrBadID is returned for an instance id that NodePass does not make.
var ErrBadID = errors.New("instance id is not 8 hex digits")

// ValidID reports whether id is what NodePass makes: 8 lowercase hex
// digits. PseudoInstanceID is not valid.
func ValidID(id []byte) bool {
	if len(id) != 8 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Tag is one key/value pair of an instance's meta.tags.
type Tag struct {
	Key, Value []byte
}

// Instance is the decoded "instance" object of an event.
//
// Byte-slice fields alias the decoder's buffers and are valid only until the
// next Decode call on the same Event: the state keeps a copy only when a value
// changed, so the steady-state path allocates nothing.
type Instance struct {
	ID        []byte
	Alias     []byte
	Type      []byte // server | client
	Status    []byte // running | stopped | error
	URL       []byte
	Config    []byte
	Restart   bool
	PeerSID   []byte
	PeerType  []byte
	PeerAlias []byte
	Tags      []Tag
	Mode      int64
	Ping      int64 // milliseconds
	Pool      int64
	TCPs      int64
	UDPs      int64
	Counters  history.Counters
}

// Event is one decoded NodePass SSE event ("event: instance" frames).
type Event struct {
	Type EventType
	// Time is the master's RFC 3339 timestamp, kept raw for diagnostics: a
	// master's clock may be wrong, so the exporter never uses it for data.
	Time []byte
	// HasInstance is false when "instance" was null (shutdown events).
	HasInstance bool
	Instance    Instance
	// Logs is one raw log line (log events), with the master's ANSI colours.
	Logs []byte
}
