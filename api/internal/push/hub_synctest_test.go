package push

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var (
	keyA = Key{Endpoint: "tokyo-1", ID: "aaaaaaa1"}
	keyB = Key{Endpoint: "osaka", ID: "bbbbbbb1"}
)

// offsets returns the times of evs after start.
func offsets(evs []event, start time.Time) []time.Duration {
	out := make([]time.Duration, len(evs))
	for i, ev := range evs {
		out[i] = ev.at.Sub(start)
	}
	return out
}

func seconds(s ...float64) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, v := range s {
		out[i] = time.Duration(v * float64(time.Second))
	}
	return out
}

// TestTicks checks, on fake time, that a tunnel stream gets its state at
// once and then one frame per tunnel interval, and the dashboard stream its
// dashboard at once and then one per dashboard interval, the first one
// interval and half a tunnel interval after Run starts (so that the two
// ticks do not meet); ids increase along each stream. Both ways of serving
// a stream are checked.
func TestTicks(t *testing.T) {
	for _, tr := range []transport{takenOver, netHTTP} {
		t.Run(string(tr), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFakeState(keyA)
				h := newTestHub(s, nil)
				t.Cleanup(runHub(h))
				synctest.Wait() // Run serves
				start := time.Now()
				tun := subscribe(t, h, s, tr, &keyA, true)
				dash := subscribe(t, h, s, tr, nil, true)
				time.Sleep(6500 * time.Millisecond)
				synctest.Wait()

				if got, want := offsets(tun.all("tunnel"), start), seconds(0, 1, 2, 3, 4, 5, 6); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("tunnel frames at %v, want %v", got, want)
				}
				if got, want := offsets(dash.all("dashboard"), start), seconds(0, 2.5, 4.5, 6.5); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("dashboard frames at %v, want %v", got, want)
				}
				if evs := tun.all(""); len(evs) == 0 || evs[0].Retry != "3000" {
					t.Errorf("tunnel stream starts with %+v, want retry: 3000", evs)
				}
				if logs := tun.all("log"); len(logs) != 1 || !json.Valid([]byte(logs[0].Data)) {
					t.Errorf("log frames %+v, want the initial one", logs)
				}
				for _, st := range []*stream{tun, dash} {
					last := 0
					for _, ev := range st.all("") {
						if ev.ID == "" {
							continue
						}
						id, err := strconv.Atoi(ev.ID)
						if err != nil || id <= last {
							t.Fatalf("id %q after %d", ev.ID, last)
						}
						last = id
					}
				}
			})
		})
	}
}

// TestHeartbeat checks that an idle stream (ticks an hour apart) gets a
// heartbeat comment every heartbeat period.
func TestHeartbeat(t *testing.T) {
	for _, tr := range []transport{takenOver, netHTTP} {
		t.Run(string(tr), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFakeState(keyA)
				h := newTestHub(s, func(c *Config) { c.TunnelInterval, c.DashboardInterval = time.Hour, time.Hour })
				t.Cleanup(runHub(h))
				synctest.Wait()
				st := subscribe(t, h, s, tr, nil, true)
				time.Sleep(3*DefaultHeartbeat + DefaultHeartbeat/2)
				synctest.Wait()
				var beats []event
				for _, ev := range st.all("") {
					if ev.Comment != "" {
						beats = append(beats, ev)
					}
				}
				if len(beats) != 3 || beats[0].Comment != "heartbeat" {
					t.Fatalf("comments %+v, want 3 heartbeats", beats)
				}
				for i := 1; i < len(beats); i++ {
					if d := beats[i].at.Sub(beats[i-1].at); d < DefaultHeartbeat-liveness || d > DefaultHeartbeat+liveness {
						t.Errorf("heartbeats %v apart", d)
					}
				}
			})
		})
	}
}

// TestSlowClientEvicted stalls one client of a tunnel that another client
// reads: the stalled one is dropped (by its write timeout or by its queue
// filling, whichever comes first), the other gets every tick, and no tick
// ever held the state's read lock while it waited, so ingest never waited
// on a client.
func TestSlowClientEvicted(t *testing.T) {
	for _, tc := range []struct {
		name         string
		tr           transport
		buffer       int
		writeTimeout time.Duration
		within       time.Duration // the stalled client is gone by then
		dropped      uint64        // counted as fallen behind
	}{
		{"taken over, write timeout", takenOver, 16, 3 * time.Second, 3 * time.Second, 0},
		{"taken over, queue full", takenOver, 4, time.Hour, 4 * time.Second, 1},
		{"net/http, buffer full", netHTTP, 4, time.Hour, 5 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFakeState(keyA)
				h := newTestHub(s, func(c *Config) { c.Buffer, c.WriteTimeout = tc.buffer, tc.writeTimeout })
				t.Cleanup(runHub(h))
				synctest.Wait()
				start := time.Now()
				fast := subscribe(t, h, s, takenOver, &keyA, true)
				var slow *stream
				if tc.tr == takenOver {
					slow = subscribe(t, h, s, takenOver, &keyA, false)
				} else {
					slow = stalledStream(t, h, s, keyA)
				}
				// Ingest goes on meanwhile: a log line every 100 ms.
				var wg sync.WaitGroup
				var maxWait time.Duration
				wg.Go(func() {
					for i := range 100 {
						t0 := time.Now()
						s.log(keyA, "line "+strconv.Itoa(i))
						maxWait = max(maxWait, time.Since(t0))
						time.Sleep(100 * time.Millisecond)
					}
				})
				time.Sleep(tc.within)
				synctest.Wait()
				if n := h.Clients(); n != 1 {
					t.Errorf("%d clients after %v, want the reading one", n, tc.within)
				}
				if n := h.Dropped(); n != tc.dropped {
					t.Errorf("%d clients counted as fallen behind, want %d", n, tc.dropped)
				}
				if tc.tr == takenOver {
					if _, err := slow.conn.Read(make([]byte, 1)); err != io.EOF {
						t.Errorf("the stalled client's connection: read %v, want it closed", err)
					}
				}
				wg.Wait()
				synctest.Wait()
				elapsed := time.Since(start)
				if got, want := len(fast.all("tunnel")), int(elapsed/time.Second)+1; got != want {
					t.Errorf("the reading client got %d tunnel frames in %v, want %d", got, elapsed, want)
				}
				if maxWait > 0 || s.held() > 0 {
					t.Errorf("ingest waited %v for the lock, a tick held it %v", maxWait, s.held())
				}
			})
		})
	}
}

// stalledWriter is a ResponseWriter whose client never reads: every write
// waits until its deadline, as on a full TCP window.
type stalledWriter struct {
	memoryWriter
	mu       sync.Mutex
	deadline time.Time
}

func (w *stalledWriter) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = d
	return nil
}

func (w *stalledWriter) Write([]byte) (int, error) {
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		d = time.Now().Add(time.Hour)
	}
	time.Sleep(time.Until(d))
	return 0, os.ErrDeadlineExceeded
}

// stalledStream subscribes a net/http-served client of key that never
// reads.
func stalledStream(t *testing.T, h *Hub, s *fakeState, key Key) *stream {
	t.Helper()
	return subscribeWith(t, h, s, netHTTP, &key, true, func(*stream) http.ResponseWriter {
		return &stalledWriter{memoryWriter: memoryWriter{header: http.Header{}}}
	})
}
