package push

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestStorm subscribes many streams at once (a storm is 50 in the test):
// every one is served by the next tick, and one collection follows at the
// first upkeep without a new stream, none before and none for a later
// wave smaller than a storm.
func TestStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeState(keyA, keyB)
		var (
			mu       sync.Mutex
			releases []time.Time
		)
		h := newTestHub(s, func(c *Config) {
			c.Storm = 50
			c.Release = func() (int64, time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				releases = append(releases, time.Now())
				return 0, 0
			}
		})
		t.Cleanup(runHub(h))
		synctest.Wait()
		start := time.Now()
		var (
			wg      sync.WaitGroup
			smu     sync.Mutex
			streams []*stream
		)
		for i := range 60 {
			wg.Go(func() {
				key := &keyA
				switch i % 3 {
				case 1:
					key = &keyB
				case 2:
					key = nil
				}
				st := subscribe(t, h, s, takenOver, key, true)
				smu.Lock()
				streams = append(streams, st)
				smu.Unlock()
			})
		}
		wg.Wait()
		if n := h.Clients(); n != 60 {
			t.Fatalf("%d clients after the storm", n)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		for i, st := range streams {
			if len(st.all("tunnel"))+len(st.all("dashboard")) < 2 {
				t.Fatalf("stream %d got %+v, want its first frame and a tick's", i, st.all(""))
			}
		}
		mu.Lock()
		got := append([]time.Time(nil), releases...)
		mu.Unlock()
		// The upkeep runs every second from 1.25 s after Run started: the
		// first counts the storm, the next one, with no new stream,
		// collects.
		if len(got) != 1 || got[0].Sub(start) != 2250*time.Millisecond {
			t.Fatalf("collections at %v after the storm, want one at 2.25s", offsetsOf(got, start))
		}
		for range 10 { // a later, smaller wave
			subscribe(t, h, s, takenOver, nil, true)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(releases) != 1 {
			t.Errorf("collections at %v, want only the storm's", offsetsOf(releases, start))
		}
	})
}

func offsetsOf(ts []time.Time, start time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, at := range ts {
		out[i] = at.Sub(start)
	}
	return out
}

// logLines returns the line numbers ("n=K") of a stream's log frames, and
// fails on a frame that is not valid.
func logLines(t *testing.T, st *stream) []int {
	t.Helper()
	var out []int
	for _, ev := range st.all("log") {
		_, list, ok := strings.Cut(ev.Data, `"lines":[`)
		if !ok {
			t.Fatalf("log frame %q", ev.Data)
		}
		list = strings.TrimSuffix(list, "]}")
		if list == "" {
			continue
		}
		for q := range strings.SplitSeq(list, ",") {
			l, err := strconv.Unquote(q)
			if err != nil {
				t.Fatalf("line %s: %v", q, err)
			}
			n, err := strconv.Atoi(strings.TrimPrefix(l, "n="))
			if err != nil {
				t.Fatalf("line %q", l)
			}
			out = append(out, n)
		}
	}
	return out
}

// TestLogsExactlyOnce writes log lines while clients join at different
// moments, between ticks and with lines waiting: each client gets every
// line from its first one on, once, in order, whether it came with the
// kept lines or with a tick. When the tunnel is deleted and created again
// (its log starts over), the clients get a "gone" and then the new lines.
func TestLogsExactlyOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeState(keyA)
		h := newTestHub(s, nil)
		t.Cleanup(runHub(h))
		synctest.Wait()
		const total = 400
		var streams []*stream
		firsts := map[*stream]int{}
		for i := range total {
			if i%100 == 50 {
				st := subscribe(t, h, s, takenOver, &keyA, true)
				streams = append(streams, st)
				firsts[st] = max(0, i-100) // the kept lines
			}
			s.log(keyA, "n="+strconv.Itoa(i))
			if i%10 == 9 {
				time.Sleep(time.Second / 3)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for k, st := range streams {
			got := logLines(t, st)
			if len(got) == 0 || got[0] != firsts[st] || got[len(got)-1] != total-1 {
				t.Fatalf("client %d: lines %v, want %d to %d", k, got, firsts[st], total-1)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("client %d: line %d follows %d", k, got[i], got[i-1])
				}
			}
		}

		s.remove(keyA)
		time.Sleep(3 * time.Second)
		s.add(keyA)
		s.log(keyA, "n=0")
		time.Sleep(time.Second)
		synctest.Wait()
		for k, st := range streams {
			if n := len(st.all("gone")); n != 1 {
				t.Errorf("client %d: %d gone events, want 1", k, n)
			}
			if got := logLines(t, st); got[len(got)-1] != 0 || got[len(got)-2] != total-1 {
				t.Errorf("client %d: lines end %v, want the new log's first line after the old log", k, got[len(got)-3:])
			}
		}
	})
}

// TestClientLeaves closes the clients of a tunnel: the next tick's write
// fails, and the hub forgets them and the tunnel.
func TestClientLeaves(t *testing.T) {
	for _, tr := range []transport{takenOver, netHTTP} {
		t.Run(string(tr), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFakeState(keyA)
				h := newTestHub(s, nil)
				t.Cleanup(runHub(h))
				synctest.Wait()
				a := subscribe(t, h, s, tr, &keyA, true)
				b := subscribe(t, h, s, tr, &keyA, true)
				synctest.Wait()
				for _, st := range []*stream{a, b} {
					st.cancel()
					if st.conn != nil {
						_ = st.conn.Close()
					}
				}
				time.Sleep(1500 * time.Millisecond)
				synctest.Wait()
				h.mu.Lock()
				topics := len(h.topics)
				h.mu.Unlock()
				if n := h.Clients(); n != 0 || topics != 0 {
					t.Errorf("%d clients and %d topics after both left", n, topics)
				}
			})
		})
	}
}
