package wire

import (
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the Decoder's lexical layer: whitespace, strings, numbers,
// literals, object punctuation and skipping of unknown values. Every method
// that can meet a syntax error returns false after recording the offset with
// fail; callers stop at the first false.

// plainByte marks the ASCII bytes that can appear in a JSON string as
// themselves: everything printable except '"' and '\\'.
var plainByte = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// fail records a syntax error at the current offset.
func (d *Decoder) fail() bool {
	return d.failAt(d.pos)
}

func (d *Decoder) failAt(pos int) bool {
	d.errPos = pos
	return false
}

// peek returns the byte at the current offset, or 0 at the end.
func (d *Decoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// ws skips JSON whitespace.
func (d *Decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// literal consumes lit (true, false or null) at the current offset.
func (d *Decoder) literal(lit string) bool {
	end := d.pos + len(lit)
	if end > len(d.data) || string(d.data[d.pos:end]) != lit {
		return d.fail()
	}
	d.pos = end
	return true
}

// objectStart consumes the '{' at the current offset and reports whether a
// member follows; if so the offset is at its key.
func (d *Decoder) objectStart() (more, ok bool) {
	if d.depth++; d.depth > maxDepth {
		return false, d.fail()
	}
	d.pos++
	d.ws()
	switch d.peek() {
	case '"':
		return true, true
	case '}':
		d.pos++
		d.depth--
		return false, true
	}
	return false, d.fail()
}

// objectNext consumes what follows a member's value: ',' and the next key's
// opening quote (more), or the closing '}'.
func (d *Decoder) objectNext() (more, ok bool) {
	d.ws()
	switch d.peek() {
	case ',':
		d.pos++
		d.ws()
		if d.peek() == '"' {
			return true, true
		}
	case '}':
		d.pos++
		d.depth--
		return false, true
	}
	return false, d.fail()
}

// key reads a member's key and its colon, leaving the offset at the value.
func (d *Decoder) key() ([]byte, bool) {
	k, ok := d.str()
	if !ok || !d.colon() {
		return nil, false
	}
	return k, true
}

func (d *Decoder) colon() bool {
	d.ws()
	if d.peek() != ':' {
		return d.fail()
	}
	d.pos++
	d.ws()
	return true
}

// stringField decodes a string-valued field into *dst.
func (d *Decoder) stringField(dst *[]byte, field string) (int, bool) {
	switch d.peek() {
	case '"':
		s, ok := d.str()
		if ok {
			*dst = s
		}
		return valSet, ok
	case 'n':
		if !d.literal("null") {
			return 0, false
		}
		*dst = nil
		return valNull, true
	}
	d.wrong(ReasonBadField, field)
	return valWrong, d.skip()
}

func (d *Decoder) boolField(dst *bool, field string) bool {
	switch d.peek() {
	case 't':
		*dst = true
		return d.literal("true")
	case 'f':
		*dst = false
		return d.literal("false")
	case 'n':
		*dst = false
		return d.literal("null")
	}
	d.wrong(ReasonBadField, field)
	return d.skip()
}

// intField decodes an int64 field. Anything but an integer in range is a
// bad_number, whatever its JSON kind.
func (d *Decoder) intField(dst *int64, field string) bool {
	start := d.pos
	mag, neg, st, ok := d.integer(field)
	if !ok || st == valWrong {
		return ok
	}
	switch {
	case st == valNull:
		*dst = 0
	case !neg && mag <= math.MaxInt64:
		*dst = int64(mag)
	case neg && mag <= 1<<63:
		*dst = int64(-mag) // two's complement: -(1<<63) wraps to MinInt64
	default:
		d.wrongAt(ReasonBadNumber, field, start)
	}
	return true
}

// uintField decodes a uint64 field (a counter), reporting valSet, valNull or
// valWrong for the presence bookkeeping.
func (d *Decoder) uintField(dst *uint64, field string) (int, bool) {
	start := d.pos
	mag, neg, st, ok := d.integer(field)
	if !ok || st == valWrong {
		return st, ok
	}
	if st == valNull {
		*dst = 0
		return valNull, true
	}
	if neg {
		// Even -0: encoding/json's ParseUint refuses it too.
		d.wrongAt(ReasonBadNumber, field, start)
		return valWrong, true
	}
	*dst = mag
	return valSet, true
}

// integer reads an integer's magnitude and sign, or null. A value of another
// kind, a fraction, an exponent or a magnitude over uint64 is noted as a
// bad_number and reported as valWrong.
func (d *Decoder) integer(field string) (mag uint64, neg bool, st int, ok bool) {
	start := d.pos
	switch c := d.peek(); {
	case c == 'n':
		return 0, false, valNull, d.literal("null")
	case c != '-' && (c < '0' || c > '9'):
		d.wrong(ReasonBadNumber, field)
		return 0, false, valWrong, d.skip()
	}
	isInt, ok := d.number()
	if !ok {
		return 0, false, 0, false
	}
	digits := d.data[start:d.pos]
	if digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	for i := 0; isInt && i < len(digits); i++ {
		v := uint64(digits[i] - '0')
		if mag > (math.MaxUint64-v)/10 {
			isInt = false // out of range
		}
		mag = mag*10 + v
	}
	if !isInt {
		d.wrongAt(ReasonBadNumber, field, start)
		return 0, false, valWrong, true
	}
	return mag, neg, valSet, true
}

// number scans a number per the JSON grammar and reports whether it is an
// integer: no fraction and no exponent.
func (d *Decoder) number() (isInt, ok bool) {
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
		return false, d.failAt(i)
	}
	isInt = true
	if i < len(data) && data[i] == '.' {
		isInt = false
		if i++; i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false, d.failAt(i)
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		if i++; i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false, d.failAt(i)
		}
		i = skipDigits(data, i+1)
	}
	d.pos = i
	return isInt, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// str reads the string at the current offset (its opening quote). It
// returns a sub-slice of the data when the string needs no rewriting, and a
// slice of the scratch buffer when it has escapes or invalid UTF-8.
func (d *Decoder) str() ([]byte, bool) {
	start, end, rewrite, ok := d.scanString()
	if !ok {
		return nil, false
	}
	if !rewrite {
		return d.data[start:end:end], true
	}
	return d.unescape(d.data[start:end]), true
}

// scanString validates the string at the current offset and moves past it.
// start and end bound its contents; rewrite reports escapes or invalid
// UTF-8.
func (d *Decoder) scanString() (start, end int, rewrite, ok bool) {
	data := d.data
	i := d.pos + 1
	start = i
	for i < len(data) {
		c := data[i]
		if c < utf8.RuneSelf {
			if plainByte[c] {
				i++
				continue
			}
			switch c {
			case '"':
				d.pos = i + 1
				return start, i, rewrite, true
			case '\\':
				rewrite = true
				if i+1 >= len(data) {
					return 0, 0, false, d.failAt(i + 1)
				}
				switch data[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > len(data) || hex4(data[i+2:i+6]) < 0 {
						return 0, 0, false, d.failAt(i)
					}
					i += 6
				default:
					return 0, 0, false, d.failAt(i + 1)
				}
			default: // a control character must be escaped
				return 0, 0, false, d.failAt(i)
			}
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			rewrite = true
		}
		i += size
	}
	return 0, 0, false, d.failAt(len(data))
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
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

// unescape appends the decoded form of the validated string contents s to
// the scratch buffer and returns it. It follows encoding/json exactly: each
// invalid UTF-8 byte and each unpaired surrogate becomes U+FFFD.
func (d *Decoder) unescape(s []byte) []byte {
	out := d.scratch
	off := len(out)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			e := s[i+1]
			i += 2
			switch e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(s[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					// The contents are validated, so a backslash here
					// starts an escape and "\u" has four hex digits.
					r2 := rune(-1)
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 = hex4(s[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, e)
			}
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(s) && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			out = append(out, s[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s[i:i+size]...)
			}
			i += size
		}
	}
	d.scratch = out
	// Capped, so that an append by a caller cannot overwrite the next string.
	return out[off:len(out):len(out)]
}

// skip validates and steps over one value of any kind.
func (d *Decoder) skip() bool {
	switch c := d.peek(); c {
	case '{':
		more, ok := d.objectStart()
		for ok && more {
			if _, _, _, ok = d.scanString(); ok && d.colon() && d.skip() {
				more, ok = d.objectNext()
			} else {
				ok = false
			}
		}
		return ok
	case '[':
		return d.skipArray()
	case '"':
		_, _, _, ok := d.scanString()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			_, ok := d.number()
			return ok
		}
		return d.fail()
	}
}

func (d *Decoder) skipArray() bool {
	if d.depth++; d.depth > maxDepth {
		return d.fail()
	}
	d.pos++
	d.ws()
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return true
	}
	for {
		if !d.skip() {
			return false
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
		case ']':
			d.pos++
			d.depth--
			return true
		default:
			return d.fail()
		}
	}
}
