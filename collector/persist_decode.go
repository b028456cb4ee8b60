package collector

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The snapshot and the journal frames are read by a decoder written for
// their records, as they are written by hand (persist_json.go): at 100,000
// tunnels encoding/json took most of the start-up (0.6 s and 380 MB for
// the snapshot alone, a growing slice of records copied again and again,
// reflection per field).
//
// It reads the files as this exporter writes them: the known keys, each
// once per object, in any order; every number as JSON writes it. On
// anything else (an unknown key, a null, a number out of range, a key given
// twice, a syntax error) it gives up, and the whole file or frame is read
// again by encoding/json, which decides: the same result, or the same
// error, as before. So a file edited by hand, or written by a version with
// other fields, loads as it did, and a corrupt one is refused with the same
// message. The tests compare both on random and fuzzed input.

// decodeStateFile reads a snapshot into f (a zero stateFile), as
// json.Unmarshal does.
func decodeStateFile(b []byte, f *stateFile) error {
	// A tunnel record starts with its id, and `{"id":` cannot occur inside
	// a JSON string (its quotes would be escaped): the records of every
	// endpoint share one array of the right size.
	d := stateDecoder{data: b, recs: make([]stateTunnel, 0, bytes.Count(b, []byte(`{"id":`)))}
	if d.stateFile(f) && d.end() {
		return nil
	}
	*f = stateFile{}
	return json.Unmarshal(b, f)
}

// decodeFrame reads a journal frame into jf (a zero journalFrame), as
// json.Unmarshal does.
func decodeFrame(b []byte, jf *journalFrame) error {
	d := stateDecoder{data: b, recs: make([]stateTunnel, 0, bytes.Count(b, []byte(`{"id":`)))}
	if d.frame(jf) && d.end() {
		return nil
	}
	*jf = journalFrame{}
	return json.Unmarshal(b, jf)
}

// stateDecoder scans one snapshot or frame. Each method reads one value at
// the offset (after any whitespace) and returns false when the fast path
// does not apply; the caller then falls back to encoding/json.
type stateDecoder struct {
	data []byte
	pos  int
	// recs backs the tunnel slices of every endpoint.
	recs    []stateTunnel
	scratch []byte // an unescaped string
	// interned keeps one copy of the few distinct texts many records
	// share (type, status, sample labels).
	interned map[string]string
}

func (d *stateDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// next consumes c after optional whitespace.
func (d *stateDecoder) next(c byte) bool {
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (d *stateDecoder) end() bool {
	d.ws()
	return d.pos == len(d.data)
}

// object reads an object, calling member for each key with the offset at
// its value. A key is taken at most once (bit i of the key's index in
// keys); an unknown or repeated key ends the fast path.
func (d *stateDecoder) object(keys []string, member func(k int) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	var seen uint64
	for {
		if !d.next('"') {
			return false
		}
		start := d.pos
		end := bytes.IndexByte(d.data[start:], '"')
		if end < 0 {
			return false
		}
		key := d.data[start : start+end]
		d.pos = start + end + 1
		k := -1
		for i, name := range keys {
			if string(key) == name {
				k = i
				break
			}
		}
		if k < 0 || seen&(1<<k) != 0 || !d.next(':') {
			return false
		}
		seen |= 1 << k
		d.ws()
		if !member(k) {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

// array reads an array, calling elem for each element.
func (d *stateDecoder) array(elem func() bool) bool {
	if !d.next('[') {
		return false
	}
	if d.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next(']')
	}
}

// rawString returns the quoted string at the offset, quotes included, and
// whether it holds an escape or a byte that is not plain ASCII.
func (d *stateDecoder) rawString() (raw []byte, special, ok bool) {
	d.ws()
	data, i := d.data, d.pos
	if i >= len(data) || data[i] != '"' {
		return nil, false, false
	}
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			raw = data[d.pos : i+1]
			d.pos = i + 1
			return raw, special, true
		case c == '\\':
			special = true
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false, false // must be escaped: encoding/json refuses it
		case c >= utf8.RuneSelf:
			special = true
		}
	}
	return nil, false, false
}

// str reads a string into *dst; intern keeps one copy of each text (for
// the few texts many records share). A string whose escapes or bytes
// unescape cannot take (surrogates, invalid UTF-8) is read by
// encoding/json, so that its rules (a lone surrogate or a byte of invalid
// UTF-8 becomes U+FFFD) are the ones applied.
func (d *stateDecoder) str(dst *string, intern bool) bool {
	raw, special, ok := d.rawString()
	if !ok {
		return false
	}
	if special {
		var ok bool
		if d.scratch, ok = unescape(d.scratch[:0], raw[1:len(raw)-1]); ok {
			*dst = string(d.scratch)
			return true
		}
		return json.Unmarshal(raw, dst) == nil
	}
	plain := raw[1 : len(raw)-1]
	if !intern {
		*dst = string(plain)
		return true
	}
	if s, ok := d.interned[string(plain)]; ok {
		*dst = s
		return true
	}
	if d.interned == nil {
		d.interned = make(map[string]string)
	}
	if len(d.interned) < 1024 {
		s := string(plain)
		d.interned[s] = s
		*dst = s
		return true
	}
	*dst = string(plain)
	return true
}

// unescape appends the contents s of a JSON string, unescaped, to dst.
// It reads valid UTF-8 and every escape but those of surrogates (ok is
// false for the rest: encoding/json reads them).
func unescape(dst, s []byte) (_ []byte, ok bool) {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := bytes.IndexByte(s[i:], '\\')
			if j < 0 {
				j = len(s) - i
			}
			// A backslash is ASCII: no rune spans it.
			if !utf8.Valid(s[i : i+j]) {
				return dst, false
			}
			dst = append(dst, s[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(s) {
			return dst, false
		}
		switch c := s[i+1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(s) {
				return dst, false
			}
			r := hexRune(s[i+2 : i+6])
			if r < 0 || utf16.IsSurrogate(r) {
				return dst, false
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

// hexRune decodes four hex digits, or returns -1.
func hexRune(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// time reads a time as time.Time's UnmarshalJSON does.
func (d *stateDecoder) time(dst *time.Time) bool {
	raw, _, ok := d.rawString()
	return ok && dst.UnmarshalJSON(raw) == nil
}

func (d *stateDecoder) bool(dst *bool) bool {
	d.ws()
	switch {
	case bytes.HasPrefix(d.data[d.pos:], []byte("true")):
		*dst = true
		d.pos += 4
	case bytes.HasPrefix(d.data[d.pos:], []byte("false")):
		*dst = false
		d.pos += 5
	default:
		return false
	}
	return true
}

// digits reads the digits of a JSON integer (no sign, fraction or
// exponent: those end the fast path) as a magnitude up to max.
func (d *stateDecoder) digits(max uint64) (uint64, bool) {
	data, i := d.data, d.pos
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		return 0, false
	}
	v := uint64(data[i] - '0')
	i++
	if v != 0 { // "0" stands alone: a digit after it is not JSON
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			c := uint64(data[i] - '0')
			if v > (max-c)/10 {
				return 0, false
			}
			v = v*10 + c
			i++
		}
	}
	if i < len(data) && (data[i] == '.' || data[i] == 'e' || data[i] == 'E' || data[i] >= '0' && data[i] <= '9') {
		return 0, false
	}
	d.pos = i
	return v, true
}

func (d *stateDecoder) uint(dst *uint64) bool {
	d.ws()
	v, ok := d.digits(math.MaxUint64)
	*dst = v
	return ok
}

func (d *stateDecoder) int(dst *int64) bool {
	d.ws()
	neg := d.pos < len(d.data) && d.data[d.pos] == '-'
	if neg {
		d.pos++
		v, ok := d.digits(1 << 63)
		*dst = int64(-v) // -(1<<63) wraps to itself
		return ok
	}
	v, ok := d.digits(math.MaxInt64)
	*dst = int64(v)
	return ok
}

// float reads a number as encoding/json reads it into a float64.
func (d *stateDecoder) float(dst *float64) bool {
	d.ws()
	data, i := d.data, d.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return false
	}
	if i < len(data) && data[i] == '.' {
		if i++; i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		if i++; i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false
		}
		i = skipDigits(data, i+1)
	}
	v, err := strconv.ParseFloat(string(data[d.pos:i]), 64)
	if err != nil {
		return false
	}
	*dst, d.pos = v, i
	return true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// counters reads the four counters: exactly four numbers (encoding/json
// would zero missing ones and drop extra ones: not this path).
func (d *stateDecoder) counters(c *history.Counters) bool {
	if !d.next('[') {
		return false
	}
	for i := range c {
		if i > 0 && !d.next(',') || !d.uint(&c[i]) {
			return false
		}
	}
	return d.next(']')
}

func (d *stateDecoder) strings(dst *[]string) bool {
	*dst = []string{}
	return d.array(func() bool {
		var s string
		if !d.str(&s, false) {
			return false
		}
		*dst = append(*dst, s)
		return true
	})
}

var stateFileKeys = []string{"format", "savedAt", "serviceHourlyThrough", "aggregates", "endpoints", "outbox"}

func (d *stateDecoder) stateFile(f *stateFile) bool {
	return d.object(stateFileKeys, func(k int) bool {
		switch k {
		case 0:
			var v int64
			ok := d.int(&v)
			f.Format = int(v)
			return ok
		case 1:
			return d.time(&f.SavedAt)
		case 2:
			return d.int(&f.ServiceHourlyThrough)
		case 3:
			return d.bool(&f.Aggregates)
		case 4:
			f.Endpoints = []stateEndpoint{}
			return d.array(func() bool {
				f.Endpoints = append(f.Endpoints, stateEndpoint{})
				return d.endpoint(&f.Endpoints[len(f.Endpoints)-1], nil)
			})
		default:
			f.Outbox = []history.Sample{}
			return d.array(func() bool {
				f.Outbox = append(f.Outbox, history.Sample{})
				return d.sample(&f.Outbox[len(f.Outbox)-1])
			})
		}
	})
}

var endpointKeys = []string{"name", "known", "lastContact", "removedAt", "hourlyThrough", "tunnels", "retired", "absent", "unretired"}

// endpoint reads an endpoint record; je, if not nil, is the journal's
// endpoint that se belongs to, which may also list ids.
func (d *stateDecoder) endpoint(se *stateEndpoint, je *journalEndpoint) bool {
	keys := endpointKeys
	if je == nil {
		keys = keys[:7]
	}
	return d.object(keys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&se.Name, false)
		case 1:
			return d.bool(&se.Known)
		case 2:
			return d.time(&se.LastContact)
		case 3:
			return d.time(&se.RemovedAt)
		case 4:
			return d.int(&se.HourlyThrough)
		case 5:
			// Appended to the shared array (grown if it was short); the
			// endpoint's slice is capped so that appends to it copy.
			lo := len(d.recs)
			if !d.array(func() bool {
				d.recs = append(d.recs, stateTunnel{})
				return d.tunnel(&d.recs[len(d.recs)-1])
			}) {
				return false
			}
			se.Tunnels = d.recs[lo:len(d.recs):len(d.recs)]
			if cap(d.recs) == len(d.recs) {
				d.recs = d.recs[len(d.recs):] // a later append must not move what is handed out
			}
			return true
		case 6:
			if se.Retired == nil {
				se.Retired = map[string]history.Hour{}
			}
			return d.retired(se.Retired)
		case 7:
			return d.strings(&je.Absent)
		default:
			return d.strings(&je.Unretired)
		}
	})
}

// retired reads an object of hours by tunnel id.
func (d *stateDecoder) retired(m map[string]history.Hour) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		var id string
		if !d.str(&id, false) || !d.next(':') {
			return false
		}
		if _, ok := m[id]; ok {
			return false // given twice
		}
		var h history.Hour
		if !d.hour(&h) {
			return false
		}
		m[id] = h
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

var tunnelKeys = []string{"id", "alias", "type", "peerSid", "status", "mode", "raw", "total", "window", "hour"}

func (d *stateDecoder) tunnel(st *stateTunnel) bool {
	return d.object(tunnelKeys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&st.ID, false)
		case 1:
			return d.str(&st.Alias, false)
		case 2:
			return d.str(&st.Type, true)
		case 3:
			return d.str(&st.PeerSID, false)
		case 4:
			return d.str(&st.Status, true)
		case 5:
			return d.int(&st.Mode)
		case 6:
			return d.counters(&st.Raw)
		case 7:
			return d.counters(&st.Total)
		case 8:
			return d.window(&st.Window)
		default:
			return d.hour(&st.Hour)
		}
	})
}

var windowKeys = []string{"start", "first", "last", "points", "up", "traffic", "ping", "pool", "tcps", "udps", "prev"}

func (d *stateDecoder) window(w *history.Window) bool {
	return d.object(windowKeys, func(k int) bool {
		switch k {
		case 0:
			return d.int(&w.Start)
		case 1:
			return d.int(&w.First)
		case 2:
			return d.int(&w.Last)
		case 3:
			return d.int(&w.Points)
		case 4:
			return d.int(&w.UpPoints)
		case 5:
			return d.counters(&w.Traffic)
		case 6:
			return d.int(&w.PingSum)
		case 7:
			return d.int(&w.PoolSum)
		case 8:
			return d.int(&w.TCPsSum)
		case 9:
			return d.int(&w.UDPsSum)
		default:
			return d.int(&w.Prev)
		}
	})
}

var hourKeys = []string{"start", "traffic", "totals", "points", "last"}

func (d *stateDecoder) hour(h *history.Hour) bool {
	return d.object(hourKeys, func(k int) bool {
		switch k {
		case 0:
			return d.int(&h.Start)
		case 1:
			return d.counters(&h.Traffic)
		case 2:
			return d.counters(&h.Totals)
		case 3:
			return d.uint(&h.Points)
		default:
			return d.hourRecord(&h.Last)
		}
	})
}

var hourRecordKeys = []string{"start", "traffic", "points"}

func (d *stateDecoder) hourRecord(r *history.HourRecord) bool {
	return d.object(hourRecordKeys, func(k int) bool {
		switch k {
		case 0:
			return d.int(&r.Start)
		case 1:
			return d.counters(&r.Traffic)
		default:
			return d.uint(&r.Points)
		}
	})
}

var sampleKeys = []string{"Metric", "Endpoint", "Tunnel", "Protocol", "Direction", "T", "V", "Service"}

func (d *stateDecoder) sample(s *history.Sample) bool {
	return d.object(sampleKeys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&s.Metric, true)
		case 1:
			return d.str(&s.Endpoint, true)
		case 2:
			return d.str(&s.Tunnel, false)
		case 3:
			return d.str(&s.Protocol, true)
		case 4:
			return d.str(&s.Direction, true)
		case 5:
			return d.int(&s.T)
		case 6:
			return d.float(&s.V)
		default:
			return d.str(&s.Service, true)
		}
	})
}

var frameKeys = []string{"savedAt", "serviceHourlyThrough", "names", "endpoints", "head", "outbox"}

func (d *stateDecoder) frame(jf *journalFrame) bool {
	return d.object(frameKeys, func(k int) bool {
		switch k {
		case 0:
			return d.time(&jf.SavedAt)
		case 1:
			return d.int(&jf.ServiceHourlyThrough)
		case 2:
			return d.strings(&jf.Names)
		case 3:
			jf.Endpoints = []journalEndpoint{}
			return d.array(func() bool {
				jf.Endpoints = append(jf.Endpoints, journalEndpoint{})
				je := &jf.Endpoints[len(jf.Endpoints)-1]
				return d.endpoint(&je.stateEndpoint, je)
			})
		case 4:
			return d.uint(&jf.Head)
		default:
			jf.Outbox = []journalSample{}
			return d.array(func() bool {
				jf.Outbox = append(jf.Outbox, journalSample{})
				return d.journalSample(&jf.Outbox[len(jf.Outbox)-1])
			})
		}
	})
}

var journalSampleKeys = []string{"seq", "sample"}

func (d *stateDecoder) journalSample(js *journalSample) bool {
	return d.object(journalSampleKeys, func(k int) bool {
		if k == 0 {
			return d.uint(&js.Seq)
		}
		return d.sample(&js.Sample)
	})
}
