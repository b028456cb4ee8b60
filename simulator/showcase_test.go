package simulator

import (
	"testing"
	"time"
)

// TestShowcase: whatever the seed, a showcase master has a running service
// pair whose client mirrors the server's traffic, a stopped tunnel and an
// error tunnel; History walks the same tunnels.
func TestShowcase(t *testing.T) {
	for _, seed := range []uint64{0, 1, 7, 12345} {
		m := New(Options{Tunnels: 6, Seed: seed, Manual: true, Showcase: true, IdleFraction: 1})
		ts := m.tunnels
		srv, cli := ts[0], ts[1]
		if srv.typ != "server" || cli.typ != "client" || srv.peerSID == "" || srv.peerSID != cli.peerSID || srv.status != StatusRunning || cli.status != StatusRunning {
			t.Fatalf("seed %d: pair %+v / %+v", seed, srv.instance, cli.instance)
		}
		if ts[5].status != StatusStopped || ts[4].status != StatusError {
			t.Errorf("seed %d: last statuses %s, %s", seed, ts[4].status, ts[5].status)
		}
		before := [2]Counters{srv.c, cli.c}
		for range 20 {
			m.Tick()
		}
		ds, dc := sub(srv.c, before[0]), sub(cli.c, before[1])
		if ds.Sum() == 0 || ds != mirrored(dc) {
			t.Errorf("seed %d: server moved %v, client %v: not mirrored", seed, ds, dc)
		}
		var hs, hc Counters
		now := time.Unix(1_800_000_000, 0)
		History(Options{Tunnels: 6, Seed: seed, Showcase: true, IdleFraction: 1}, now.Add(-time.Hour), now, 5*time.Second, time.Minute,
			func(id string, p HistoryPoint) {
				switch id {
				case srv.id:
					hs = add(hs, p.Traffic)
				case cli.id:
					hc = add(hc, p.Traffic)
				case ts[4].id, ts[5].id:
					if p.Up || p.Traffic != (Counters{}) {
						t.Errorf("seed %d: %s reported %+v", seed, id, p)
					}
				}
			}, nil)
		if hs.Sum() == 0 || hs != mirrored(hc) {
			t.Errorf("seed %d: history server %v, client %v", seed, hs, hc)
		}
	}
}
