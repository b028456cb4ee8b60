package simulator

import (
	"bytes"
	"net/http"
	"strings"
	"sync"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// Replay is an http.Handler that replays recorded NodePass /events streams
// byte for byte: the first connection gets the first capture, the second
// connection the second, and so on. Once every capture has been served,
// further connections get only the retry line and stay open and silent.
// A request path ending in "/info" gets Info; any other path that does not
// end in "/events" gets 404.
//
// Set the exported fields before serving. Close it before closing the
// server when Hold is set, so held responses end.
type Replay struct {
	// APIKey is the X-API-Key a request must carry (401 otherwise, as on
	// a master). Empty accepts every request. NewReplay takes it from the
	// first capture's "********" pseudo-instance.
	APIKey string
	// Hold keeps each response open after its capture until the client
	// goes away or Close is called; otherwise the response ends right
	// after the capture, so the client sees the end of the stream.
	Hold bool
	// ChunkSize, if positive, writes a capture in pieces of that many
	// bytes, each flushed, so a reader meets events split across reads.
	ChunkSize int
	// Info is the body of GET .../info. Nil means an answer shaped like a
	// v1.14.0 master's.
	Info []byte

	captures [][]byte
	served   chan struct{} // closed once the last capture was written
	closed   chan struct{}
	once     sync.Once // closes closed

	mu    sync.Mutex
	conns int
	done  int // captures written completely
}

// NewReplay returns a Replay of captures, in connection order. Each
// capture is the raw bytes of a recorded stream; "HH:MM:SS.mmm " line
// prefixes (as in capture-sse-after-master-restart.txt) are removed.
func NewReplay(captures ...[]byte) *Replay {
	r := &Replay{served: make(chan struct{}), closed: make(chan struct{})}
	for _, c := range captures {
		c = StripTimestamps(c)
		r.captures = append(r.captures, c)
		if r.APIKey == "" {
			r.APIKey, _ = CaptureAPIKey(c)
		}
	}
	if len(r.captures) == 0 {
		close(r.served)
	}
	return r
}

// StripTimestamps removes a "HH:MM:SS.mmm " prefix from every line that
// has one and returns the result; input without prefixes comes back as is.
func StripTimestamps(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		if hasTimestamp(line) {
			line = line[12:]
			if len(line) > 0 && line[0] == ' ' {
				line = line[1:]
			}
		}
		out = append(out, line...)
	}
	return out
}

// hasTimestamp reports whether line starts with "HH:MM:SS.mmm" followed by
// a space, a newline or nothing.
func hasTimestamp(line []byte) bool {
	const pattern = "00:00:00.000"
	if len(line) < len(pattern) {
		return false
	}
	for i := range len(pattern) {
		c := line[i]
		if pattern[i] == '0' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != pattern[i] {
			return false
		}
	}
	return len(line) == len(pattern) || line[12] == ' ' || line[12] == '\n'
}

// CaptureAPIKey returns the API key a capture reveals: the url of its
// first "********" pseudo-instance.
func CaptureAPIKey(capture []byte) (string, bool) {
	i := bytes.Index(capture, []byte(`"id":"`+wire.PseudoInstanceID+`"`))
	if i < 0 {
		return "", false
	}
	rest := capture[i:]
	j := bytes.Index(rest, []byte(`"url":"`))
	if j < 0 {
		return "", false
	}
	rest = rest[j+len(`"url":"`):]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return "", false
	}
	return string(rest[:k]), true
}

// Connections returns how many /events requests have been accepted.
func (r *Replay) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// Served returns a channel closed once every capture has been written and
// flushed completely.
func (r *Replay) Served() <-chan struct{} { return r.served }

// Close ends every held response and makes later ones end at once.
func (r *Replay) Close() { r.once.Do(func() { close(r.closed) }) }

// defaultReplayInfo is a v1.14.0 master's /info answer (api-info.json).
const defaultReplayInfo = `{"alias":"","arch":"amd64","cpu":5,"crt":"","diskr":1023292416,"diskw":4128038912,"key":"","log":"info","mem_total":25276502016,"mem_used":591691776,"mid":"","name":"127.0.0.1","netrx":616945432,"nettx":2471057,"os":"linux","swap_total":0,"swap_used":0,"sysup":254,"tls":"0","uptime":23,"ver":"v1.14.0"}` + "\n"

// ServeHTTP implements http.Handler.
func (r *Replay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.APIKey != "" {
		if msg := checkKey(req, r.APIKey); msg != "" {
			httpError(w, msg, http.StatusUnauthorized)
			return
		}
	}
	switch {
	case strings.HasSuffix(req.URL.Path, "/info"):
		body := r.Info
		if body == nil {
			body = []byte(defaultReplayInfo)
		}
		writeJSON(w, http.StatusOK, body)
		return
	case !strings.HasSuffix(req.URL.Path, "/events"):
		http.NotFound(w, req)
		return
	case req.Method != http.MethodGet:
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}

	r.mu.Lock()
	n := r.conns
	r.conns++
	r.mu.Unlock()
	capture := []byte(sseRetry)
	isCapture := n < len(r.captures)
	if isCapture {
		capture = r.captures[n]
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	size := len(capture)
	if r.ChunkSize > 0 {
		size = r.ChunkSize
	}
	for len(capture) > 0 {
		k := min(size, len(capture))
		if _, err := w.Write(capture[:k]); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		capture = capture[k:]
	}
	if isCapture {
		r.mu.Lock()
		r.done++
		if r.done == len(r.captures) {
			close(r.served)
		}
		r.mu.Unlock()
	}
	if r.Hold || !isCapture {
		select {
		case <-req.Context().Done():
		case <-r.closed:
		}
	}
}
