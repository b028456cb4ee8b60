package nodepassdash

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// fixture is a NodePassDash database made by the transcribed NodePassDash
// following two simulated masters for a day, and the ledger of the traffic
// the simulator was given, by the hour the import must attribute it to.
type fixture struct {
	path string
	// want maps endpoint, instance and hour start (Unix ms) to the bytes
	// added in that hour (tcp rx, tcp tx, udp rx, udp tx).
	want map[[2]string]map[int64]history.Counters
	// baselineBytes is the traffic counted before and in the first hour
	// of tunnels NodePassDash met with history.
	baselineBytes uint64
	// wrongRows is the number of (deduplicated) hourly rows whose stored
	// increment is not the ledger's traffic of that hour.
	wrongRows int
	start     time.Time
}

// Scenario (hours from the start; NodePassDash runs in UTC+8 like most of
// its users):
//   - tokyo-1: a1 has 5 GB of history when NodePassDash starts; a2 is
//     created in hour 5; a3 is created in hour 2 and deleted in hour 8.
//   - osaka-2: b1 has 3 GB of history and is reset at the start of hour 10;
//     b2 is created in hour 5 with a2's instance id (3.x mixes them up).
//   - NodePassDash is down in hours 14 to 16 and, started again at hour 17,
//     re-aggregates the last 24 hours.
const fixtureHours = 24

func makeFixture(t testing.TB, version string) *fixture {
	t.Helper()
	zone := time.FixedZone("CST", 8*3600)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f := &fixture{path: filepath.Join(t.TempDir(), "nodepass.db"), want: map[[2]string]map[int64]history.Counters{}, start: start}
	nd := newNodePassDash(t, f.path, version)
	masters := []*simulator.Master{
		simulator.New(simulator.Options{Manual: true, Seed: 1}),
		simulator.New(simulator.Options{Manual: true, Seed: 2}),
	}
	for _, m := range masters {
		t.Cleanup(func() { m.Close() })
	}
	nd.addEndpoint(1, "tokyo-1")
	nd.addEndpoint(2, "osaka-2")

	type tun struct {
		ep      int64
		m       *simulator.Master
		id      string
		scale   uint64
		created int // hour; -1: before NodePassDash
		deleted int // hour; 0: never
		live    bool
	}
	sharedID := "0a93e346"
	tuns := []*tun{
		{ep: 1, m: masters[0], id: "a1a1a1a1", scale: 1000, created: -1},
		{ep: 1, m: masters[0], id: sharedID, scale: 100, created: 5},
		{ep: 1, m: masters[0], id: "a3a3a3a3", scale: 7, created: 2, deleted: 8},
		{ep: 2, m: masters[1], id: "b1b1b1b1", scale: 300, created: -1},
		{ep: 2, m: masters[1], id: sharedID, scale: 10000, created: 5},
	}
	create := func(tu *tun) {
		if got := tu.m.CreateTunnel(simulator.TunnelSpec{ID: tu.id, Alias: "alias-" + tu.id}); got != tu.id {
			t.Fatalf("create %s: got %q", tu.id, got)
		}
		nd.addTunnel(tu.ep, tu.id, "alias-"+tu.id)
		tu.live = true
	}
	names := map[int64]string{1: "tokyo-1", 2: "osaka-2"}
	for _, tu := range tuns {
		if tu.created < 0 {
			create(tu)
			if err := tu.m.AddTraffic(tu.id, tu.scale*5_000_000, tu.scale*2_000_000, tu.scale*1000, tu.scale*500); err != nil {
				t.Fatal(err)
			}
			f.baselineBytes += tu.scale * (5_000_000 + 2_000_000 + 1000 + 500)
		}
	}
	down := func(h int) bool { return h >= 14 && h <= 16 }
	// attributed is the hour a byte added in hour h is imported at: the
	// first hour NodePassDash ran at or after it.
	attributed := func(h int) int {
		for down(h) {
			h++
		}
		return h
	}
	add := func(tu *tun, h int, c history.Counters) {
		if err := tu.m.AddTraffic(tu.id, c[0], c[1], c[2], c[3]); err != nil {
			t.Fatal(err)
		}
		if tu.created < 0 && h == 0 {
			f.baselineBytes += c[0] + c[1] + c[2] + c[3]
			return
		}
		k := [2]string{names[tu.ep], tu.id}
		if f.want[k] == nil {
			f.want[k] = map[int64]history.Counters{}
		}
		hour := start.Add(time.Duration(attributed(h)) * time.Hour).UnixMilli()
		w := f.want[k][hour]
		for i := range w {
			w[i] += c[i]
		}
		f.want[k][hour] = w
	}

	const step = 5 * time.Second
	for h := 0; h <= fixtureHours; h++ {
		hourStart := start.Add(time.Duration(h) * time.Hour)
		// The scheduler aggregates the hour that just closed.
		if h > 0 && !down(h-1) {
			nd.aggregateHour(hourStart.Add(-time.Hour).In(zone))
		}
		if h == fixtureHours {
			break
		}
		if h == 17 {
			nd.restart()
			nd.initializeRecent(hourStart.In(zone))
		}
		for s := time.Duration(0); s < time.Hour; s += step {
			now := hourStart.Add(s)
			minute := int(s / time.Minute)
			for _, tu := range tuns {
				switch {
				case !tu.live && tu.created == h && minute == 5 && s%time.Minute == 0:
					create(tu)
				case tu.live && tu.deleted > 0 && tu.deleted == h && minute == 50 && s%time.Minute == 0:
					if err := tu.m.DeleteTunnel(tu.id); err != nil {
						t.Fatal(err)
					}
					tu.live = false
				case tu.live && tu.id == "b1b1b1b1" && h == 10 && s == 0:
					if err := tu.m.ResetTunnel(tu.id); err != nil {
						t.Fatal(err)
					}
				}
				// Traffic only before minute 50: the hour's last
				// service_history row (about minute 59) holds all of it.
				if tu.live && (minute == 10 || minute == 40) && s%time.Minute == 0 {
					u := uint64(h+1) * tu.scale
					add(tu, h, history.Counters{u * 1000, u * 300, u * 20, u * 7})
				}
				if tu.live && !down(h) {
					c, ok := tu.m.Counters(tu.id)
					if !ok {
						t.Fatalf("counters of %s", tu.id)
					}
					nd.observe(TunnelKey{tu.ep, tu.id}, now.In(zone),
						[4]int64{int64(c[history.TCPRx]), int64(c[history.TCPTx]), int64(c[history.UDPRx]), int64(c[history.UDPTx])})
				}
			}
		}
	}
	nd.commit()
	f.wrongRows = f.countWrongRows(t, names)
	return f
}

// countWrongRows compares NodePassDash's stored increments with the
// ledger: a row is wrong when its increment is not the traffic the ledger
// gave that tunnel in that hour (no traffic for a baseline row).
func (f *fixture) countWrongRows(t testing.TB, names map[int64]string) int {
	t.Helper()
	db, err := ReadDatabase(t.Context(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]Row{}
	for _, r := range db.Rows {
		latest[names[r.Key.EndpointID]+r.Key.InstanceID+r.Hour.String()] = r
	}
	wrong := 0
	for _, r := range latest {
		w := f.want[[2]string{names[r.Key.EndpointID], r.Key.InstanceID}][r.Hour.UnixMilli()]
		if r.Increment != [4]int64{int64(w[0]), int64(w[1]), int64(w[2]), int64(w[3])} {
			wrong++
		}
	}
	return wrong
}
