package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// reportInterval is NodePass's: every running instance reports this often.
const reportInterval = 5 * time.Second

// genTunnel is one generated tunnel. Its figures move like the simulator's
// (package simulator, tunnel.go): log-uniform traffic rates with quiet
// intervals, a ping around its own base, a pool of 63 to 65, connection
// counts that wander. The history it leaves in the TSDB therefore
// compresses like a real one, not like a constant.
type genTunnel struct {
	id, alias, typ, status, url, config []byte

	running bool
	pooled  bool
	rate    history.Counters // mean traffic per interval
	c       history.Counters // the raw cumulative counters
	ping0   int64
	ping    int64
	pool    int64
	tcps    int64
	udps    int64
}

func newGenTunnel(r *rand.Rand, i int) *genTunnel {
	g := &genTunnel{id: fmt.Appendf(nil, "%08x", 0x10000000+i), running: r.IntN(40) > 2, pooled: r.IntN(4) != 0}
	g.typ = []byte("server")
	if r.IntN(3) == 0 {
		g.typ = []byte("client")
	}
	g.alias = fmt.Appendf(nil, "region-%d-service-%d-%d", r.IntN(12), r.IntN(12), i+1)
	g.status = []byte("running")
	if !g.running {
		g.status = []byte("stopped")
	}
	target := fmt.Sprintf("10.%d.%d.%d:443", r.IntN(256), r.IntN(256), 1+r.IntN(254))
	g.url = fmt.Appendf(nil, "%s://0.0.0.0:%d/%s?log=info&mode=1", g.typ, 10000+i%50000, target)
	g.config = fmt.Appendf(nil, "%s://0.0.0.0:%d/%s?block=0&dial=auto&dns=5m0s&log=info&max=1024&mode=1&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&type=0", g.typ, 10000+i%50000, target)
	g.ping0 = 1 + int64(r.IntN(120))
	if r.IntN(4) != 0 { // a quarter of the tunnels never carry traffic
		tx := uint64(256 << 10 * math.Pow(2, -4+6*r.Float64()))
		g.rate[history.TCPTx], g.rate[history.TCPRx] = tx, tx/uint64(2+r.IntN(60))
		if r.IntN(5) < 2 {
			u := uint64(32 << 10 * math.Pow(2, -3+4*r.Float64()))
			g.rate[history.UDPRx], g.rate[history.UDPTx] = u, u
		}
	}
	hist := uint64(r.IntN(2000)) // counted before the exporter existed
	for k := range g.c {
		g.c[k] = g.rate[k] * hist
	}
	g.step(r)
	return g
}

// step advances one report interval.
func (g *genTunnel) step(r *rand.Rand) {
	active := g.rate != (history.Counters{}) && r.IntN(5) != 0
	var d history.Counters
	if active {
		f := 0.25 + 1.5*r.Float64()
		d[history.TCPRx] = uint64(float64(g.rate[history.TCPRx]) * f)
		d[history.TCPTx] = uint64(float64(g.rate[history.TCPTx]) * f)
		if g.rate[history.UDPRx] != 0 && r.IntN(2) == 0 {
			f := 0.5 + r.Float64()
			d[history.UDPRx] = uint64(float64(g.rate[history.UDPRx]) * f)
			d[history.UDPTx] = uint64(float64(g.rate[history.UDPTx]) * f)
		}
	}
	for k := range g.c {
		g.c[k] += d[k]
	}
	if g.pooled {
		g.pool = 63 + int64(r.IntN(3))
		g.ping = max(0, g.ping0+int64(r.IntN(int(g.ping0)/4+3))-1)
	}
	switch {
	case !active:
		g.tcps = max(0, g.tcps-int64(1+r.IntN(3)))
		g.udps = 0
	default:
		g.tcps = max(0, min(512, g.tcps+int64(r.IntN(7))-3+int64(d[history.TCPTx]>>20)/8))
		g.udps = 0
		if d[history.UDPRx] > 0 {
			g.udps = 1 + int64(r.IntN(3))
		}
	}
}

// event fills ev with the tunnel's current report.
func (g *genTunnel) event(ev *wire.Event, typ wire.EventType, masterTime []byte) {
	*ev = wire.Event{
		Type: typ, Time: masterTime, HasInstance: true,
		Instance: wire.Instance{
			ID: g.id, Alias: g.alias, Type: g.typ, Status: g.status, URL: g.url, Config: g.config,
			Restart: true, Mode: 1, Ping: g.ping, Pool: g.pool, TCPs: g.tcps, UDPs: g.udps, Counters: g.c,
		},
	}
}
