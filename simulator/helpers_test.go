package simulator

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// wireEvent is an event as a reader decodes it, with its data line.
type wireEvent struct {
	wiretest.Event
	Raw string `json:"-"` // the data line
}

// counters returns an instance's counters as the simulator reports them.
func counters(in *wiretest.Instance) Counters {
	return Counters{in.TCPRX, in.TCPTX, in.UDPRX, in.UDPTX}
}

// describe is a compact form for table tests: "type:status", or
// "shutdown" for the shutdown event.
func (e wireEvent) describe() string {
	if e.Instance == nil {
		return e.Type
	}
	return e.Type + ":" + e.Instance.Status
}

// stream is a test client of GET /events.
type stream struct {
	t      *testing.T
	cancel context.CancelFunc
	events chan wireEvent
	first  string // the bytes before the first event
	done   chan struct{}
}

// openStream connects to base+"/v1/events" with key and parses events in
// the background until the stream ends or the test does.
func openStream(t *testing.T, srvURL, base, key string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srvURL+base+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("connect: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := &stream{t: t, cancel: cancel, events: make(chan wireEvent, 100000), done: make(chan struct{})}
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	first, err := br.ReadString('\n')
	if err == nil {
		var blank string
		blank, err = br.ReadString('\n')
		first += blank
	}
	if err != nil {
		cancel()
		resp.Body.Close()
		t.Fatalf("read retry line: %v", err)
	}
	s.first = first
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var e wireEvent
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Errorf("bad event %q: %v", data, err)
				return
			}
			e.Raw = strings.TrimSuffix(data, "\n")
			s.events <- e
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	<-s.done
}

// next returns the next event, failing the test after 5 s.
func (s *stream) next() wireEvent {
	s.t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		return e
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5s")
	}
	return wireEvent{}
}

// expectEnd waits for the stream to end.
func (s *stream) expectEnd() {
	s.t.Helper()
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return
			}
			s.t.Errorf("unexpected event before the end: %s", e.Raw)
		case <-time.After(5 * time.Second):
			s.t.Fatal("stream did not end within 5s")
		}
	}
}

// until collects events up to and including the log event whose line is
// marker.
func (s *stream) until(marker string) []wireEvent {
	s.t.Helper()
	var out []wireEvent
	for {
		e := s.next()
		if e.Type == "log" && e.Logs == marker {
			return out
		}
		out = append(out, e)
	}
}

// skipInitial reads the initial burst: n+1 events (the tunnels and the
// "********" pseudo-instance).
func (s *stream) skipInitial(n int) []wireEvent {
	s.t.Helper()
	out := make([]wireEvent, 0, n+1)
	for range n + 1 {
		e := s.next()
		if e.Type != "initial" {
			s.t.Fatalf("want initial, got %s", e.Raw)
		}
		out = append(out, e)
	}
	return out
}

// newTestMaster returns a manual master without periodic logs, served by
// an httptest server; both are closed when the test ends. Unless opts says
// otherwise, subscribers get a buffer of 1000 events so that a test's
// bursts (a create alone is 7 events) are not dropped.
func newTestMaster(t *testing.T, opts Options) (*Master, *httptest.Server) {
	t.Helper()
	opts.Manual = true
	if opts.LogRate == 0 {
		opts.LogRate = -1
	}
	if opts.SubscriberBuffer == 0 {
		opts.SubscriberBuffer = 1000
	}
	m := New(opts)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		m.Close()
		srv.Close()
	})
	return m, srv
}
