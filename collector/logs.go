package collector

// logRing keeps a tunnel's last log lines, ANSI colour codes stripped. It is
// allocated on the first line, so tunnels without logs cost nothing.
type logRing struct {
	lines []string
	next  int    // index of the oldest line once full
	seq   uint64 // number of lines ever added
}

func (r *logRing) add(line []byte, max int) {
	s := string(stripANSI(line))
	if len(r.lines) < max {
		r.lines = append(r.lines, s)
	} else {
		r.lines[r.next] = s
		r.next = (r.next + 1) % len(r.lines)
	}
	r.seq++
}

// since returns the lines added after sequence number after (0 for all that
// are kept), oldest first, and the current sequence number.
func (r *logRing) since(after uint64) ([]string, uint64) {
	n := len(r.lines)
	missing := r.seq - min(after, r.seq)
	if missing > uint64(n) {
		missing = uint64(n)
	}
	out := make([]string, 0, missing)
	for i := n - int(missing); i < n; i++ {
		out = append(out, r.lines[(r.next+i)%n])
	}
	return out, r.seq
}

// LogsSince returns the tunnel's kept log lines added after sequence number
// after, and the current sequence number. The caller holds the read lock.
func (t *Tunnel) LogsSince(after uint64) ([]string, uint64) { return t.logs.since(after) }

// stripANSI removes ANSI escape sequences (CSI "ESC [ ... final byte" and
// two-byte escapes) and other control characters but tab, and makes the text
// valid UTF-8.
func stripANSI(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b:
			if i+1 < len(b) && b[i+1] == '[' {
				i += 2
				for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c < 0x20 && c != '\t', c == 0x7f:
		default:
			out = append(out, c)
		}
	}
	return toValidUTF8(out)
}
