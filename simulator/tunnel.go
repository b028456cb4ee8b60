package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// tag is one meta.tags pair; an instance keeps them sorted by key.
type tag struct{ key, value string }

// instance is what the master reports about an instance, in wire order.
type instance struct {
	id, alias, typ, status, url, config string
	restart                             bool
	peerSID, peerType, peerAlias        string
	tags                                []tag
	mode, ping, pool, tcps, udps        int32
	c                                   Counters
	// head caches appendInstanceHead; nil after any head field changed.
	head []byte
}

// tunnel is a simulated instance plus the simulation's own state.
type tunnel struct {
	instance
	phase   uint32     // position of its periodic update within the interval
	rng     *rand.Rand // its own stream, so its traffic does not depend on others
	rate    Counters   // mean traffic per interval; zero is idle
	runMode int32      // mode reported after the handshake
	pooled  bool       // keeps a connection pool (servers and dual-end clients)
	ping0   int32      // typical ping in ms
	hostile bool
	secret  string // the 8-hex key in "Server started: server://KEY@..."
	listen  string
	target  string

	// mirrorOf is the server side of a showcase service pair: this client
	// reports the server's traffic of the interval mirrored. last is the
	// traffic of the tunnel's last interval.
	mirrorOf *tunnel
	last     Counters

	initial Counters // counters when the simulation started or the tunnel was created
	saved   Counters // last persisted counters: what a stale restart restores
	gen     Counters
	rolled  Counters
	resets  int
}

func (t *tunnel) dirty() { t.head = nil }

func (t *tunnel) setStatus(s string) {
	if t.status == s {
		return
	}
	t.status = s
	t.dirty()
	if s != StatusRunning {
		t.ping, t.pool, t.tcps, t.udps = 0, 0, 0, 0
	}
}

func (t *tunnel) truth(deleted bool) TunnelTruth {
	return TunnelTruth{
		ID: t.id, Alias: t.alias, Type: t.typ, Status: t.status,
		Raw: t.c, Initial: t.initial, Generated: t.gen, RolledBack: t.rolled, Resets: t.resets, Deleted: deleted,
	}
}

// setTags replaces the tags, sorted by key like encoding/json sorts a map.
func (t *tunnel) setTags(m map[string]string) {
	t.tags = t.tags[:0]
	for k, v := range m {
		t.tags = append(t.tags, tag{k, v})
	}
	sort.Slice(t.tags, func(i, j int) bool { return t.tags[i].key < t.tags[j].key })
	t.dirty()
}

// region and service name generated tunnels: enough variety to look like
// an operator's master without being random noise.
func region(i int) string {
	return [...]string{"tokyo", "hk", "sg", "fra", "lax", "sjc", "ams", "lon", "syd", "sel", "tpe", "nyc"}[i%12]
}

func service(i int) string {
	return [...]string{"web", "ssh", "game", "db", "api", "rdp", "mc", "vpn", "dns", "mail", "git", "cdn"}[i%12]
}

// numHostile is how many distinct hostileString values there are.
const numHostile = 4

// hostileString returns one of the strings an untrusted master may put in
// any string field.
func hostileString(i int) string {
	return [numHostile]string{
		"evil\"alias</script><img src=x onerror=alert(1)>",
		"line1\nline2\r\n\ttab\x00nul\x1b[31mred\x1b[0m",
		"back\\slash \u2028sep\u2029 & amp; 'quote' {\"json\":1}",
		"invalid utf8 \xff\xfe end",
	}[i%numHostile]
}

// newGeneratedTunnel derives everything about the i-th generated tunnel
// from the seed; the result does not depend on how many tunnels there are.
func newGeneratedTunnel(seed uint64, i int, id string, meanBytes uint64, idleFraction float64, hostile bool) *tunnel {
	r := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(i)*0xbf58476d1ce4e5b9+1))
	t := &tunnel{}
	t.id = id
	t.restart = true
	if r.IntN(3) == 0 {
		t.typ = "client"
	} else {
		t.typ = "server"
	}
	if r.IntN(10) != 0 {
		t.alias = fmt.Sprintf("%s-%s-%d", region(r.IntN(12)), service(r.IntN(12)), i+1)
	}
	t.runMode = 1
	t.pooled = true
	if t.typ == "client" {
		if r.IntN(3) == 0 {
			t.pooled = false // single-end forwarding: no pool, mode 1
		} else {
			t.runMode = 2
		}
	} else if r.IntN(4) == 0 {
		t.runMode = 2
	}
	t.listen = fmt.Sprintf("0.0.0.0:%d", 10000+i%50000)
	t.target = fmt.Sprintf("10.%d.%d.%d:%d", r.IntN(256), r.IntN(256), 1+r.IntN(254), []int{22, 80, 443, 3306, 3389, 8080, 25565}[r.IntN(7)])
	t.secret = fmt.Sprintf("%08x", r.Uint32())
	t.ping0 = int32(1 + r.IntN(120))
	switch r.IntN(5) {
	case 0:
		t.setTags(map[string]string{"env": "prod"})
	case 1:
		t.setTags(map[string]string{"env": "test", "owner": "ops"})
	}
	if r.IntN(8) == 0 {
		t.peerSID = fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
		t.peerType = strconv.Itoa(1 + r.IntN(2))
		t.peerAlias = "peer-" + region(r.IntN(12))
	}
	if r.Float64() >= idleFraction {
		// Log-uniform rates between meanBytes/16 and meanBytes*4: a few
		// tunnels carry most of the traffic, as on a real master.
		tx := uint64(float64(meanBytes) * math.Pow(2, -4+6*r.Float64()))
		rx := tx / uint64(2+r.IntN(60))
		if t.typ == "client" {
			rx, tx = tx, rx // the target-facing side mirrors the user-facing side
		}
		t.rate[history.TCPRx], t.rate[history.TCPTx] = rx, tx
		if r.IntN(5) < 2 {
			u := uint64(float64(meanBytes/8) * math.Pow(2, -3+4*r.Float64()))
			t.rate[history.UDPRx], t.rate[history.UDPTx] = u, u
		}
	}
	// Counters a master has been counting for a while before anyone
	// watches: a reader must not take this history as new traffic.
	hist := uint64(r.IntN(2000))
	t.c = Counters{t.rate[history.TCPRx] * hist, t.rate[history.TCPTx] * hist, t.rate[history.UDPRx] * hist, t.rate[history.UDPTx] * hist}
	t.initial, t.saved = t.c, t.c
	t.hostile = hostile
	if hostile {
		t.alias = hostileString(i)
		t.peerAlias = hostileString(i + 1)
		t.setTags(map[string]string{hostileString(i + 2): hostileString(i + 3), "env": "<b>prod</b>"})
	}
	// A few tunnels are not running: stopped by the operator, or failed.
	switch r.IntN(40) {
	case 0, 1:
		t.status = StatusStopped
	case 2:
		t.status = StatusError
	default:
		t.status = StatusRunning
	}
	t.rng = rand.New(rand.NewPCG(seed, uint64(i)+0x632be59bd9b4e019))
	t.setURLs()
	if t.status == StatusRunning {
		t.handshakeDone()
	} else {
		t.mode = t.runMode
	}
	return t
}

// setURLs fills url and config the way NodePass shows them: url is what the
// user asked for plus log=info, config adds every default, keys sorted.
func (t *tunnel) setURLs() {
	mode := strconv.Itoa(int(t.runMode))
	if t.typ == "client" {
		t.url = "client://" + t.listen + "/" + t.target + "?log=info&mode=" + mode
		t.config = "client://" + t.listen + "/" + t.target +
			"?block=0&dial=auto&dns=5m0s&log=info&min=64&mode=" + mode +
			"&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&sni=none"
	} else {
		t.url = "server://" + t.listen + "/" + t.target + "?log=info&mode=" + mode
		t.config = "server://" + t.listen + "/" + t.target +
			"?block=0&dial=auto&dns=5m0s&log=info&max=1024&mode=" + mode +
			"&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&type=0"
	}
	t.dirty()
}

// handshakeDone sets the figures a running instance reports once its
// tunnel is up.
func (t *tunnel) handshakeDone() {
	t.mode = t.runMode
	if t.pooled {
		t.pool = 63 + int32(t.rng.IntN(3))
	}
	t.ping = t.ping0
}

// step advances one report interval for a running tunnel: it returns the
// traffic carried and moves ping, pool and the connection counts.
func (t *tunnel) step() Counters {
	r := t.rng
	var d Counters
	active := t.rate != (Counters{}) && r.IntN(5) != 0 // some quiet intervals
	if active {
		f := 0.25 + 1.5*r.Float64()
		d[history.TCPRx] = uint64(float64(t.rate[history.TCPRx]) * f)
		d[history.TCPTx] = uint64(float64(t.rate[history.TCPTx]) * f)
		if t.rate[history.UDPRx] != 0 && r.IntN(2) == 0 {
			g := 0.5 + r.Float64()
			d[history.UDPRx] = uint64(float64(t.rate[history.UDPRx]) * g)
			d[history.UDPTx] = uint64(float64(t.rate[history.UDPTx]) * g)
		}
	}
	if t.pooled {
		t.pool = 63 + int32(r.IntN(3))
		t.ping = max(0, t.ping0+int32(r.IntN(int(t.ping0)/4+3))-1)
	} else {
		t.pool = 0
		t.ping = 0 // a single-end client has no tunnel to ping
	}
	switch {
	case !active:
		t.tcps = max(0, t.tcps-int32(1+r.IntN(3)))
		t.udps = 0
	default:
		t.tcps = max(0, min(512, t.tcps+int32(r.IntN(7))-3+int32(d[history.TCPTx]>>20)/8))
		if d[history.UDPRx] > 0 {
			t.udps = 1 + int32(r.IntN(3))
		} else {
			t.udps = 0
		}
	}
	return d
}

// FormatLogLine formats one log line the way NodePass's logger does,
// colour codes included, e.g.
// "2026-11-21 23:53:25.141  \x1b[32mINFO\x1b[0m  Server started: ...".
// level is DEBUG, INFO, WARN or ERROR.
func FormatLogLine(t time.Time, level, msg string) string {
	color := "32"
	switch level {
	case "DEBUG":
		color = "34"
	case "WARN":
		color = "33"
	case "ERROR":
		color = "31"
	}
	return t.Format("2006-01-02 15:04:05.000") + "  \x1b[" + color + "m" + level + "\x1b[0m  " + msg
}

// startedMessage is the log line an instance writes when it starts.
func (t *tunnel) startedMessage(verb string) string {
	kind := "Server"
	q := "?dns=5m0s&max=1024&mode=" + strconv.Itoa(int(t.runMode)) + "&type=0&dial=auto&read=0s&rate=0&slot=65536&proxy=0&block=0&notcp=0&noudp=0"
	if t.typ == "client" {
		kind = "Client"
		q = "?dns=5m0s&sni=none&min=64&mode=" + strconv.Itoa(int(t.runMode)) + "&dial=auto&read=0s&rate=0&slot=65536&proxy=0&block=0&notcp=0&noudp=0"
	}
	return kind + " " + verb + ": " + t.typ + "://" + t.secret + "@" + t.listen + "/" + t.target + q
}

func (t *tunnel) kind() string {
	if t.typ == "client" {
		return "Client"
	}
	return "Server"
}

// periodicLogs returns the log lines of an exchange (or, now and then, an
// error) for one interval.
func (t *tunnel) periodicLogs() [][2]string {
	r := t.rng
	if t.hostile && r.IntN(2) == 0 {
		return [][2]string{{"WARN", hostileString(r.IntN(numHostile))}}
	}
	peer := fmt.Sprintf("127.0.0.1:%d", 30000+r.IntN(30000))
	if r.IntN(12) == 0 {
		return [][2]string{{"ERROR", "commonUDPOnce: read from target failed: read udp " + peer + "->" + t.target + ": use of closed network connection"}}
	}
	return [][2]string{
		{"INFO", "Starting exchange: " + peer + " <-> " + t.target},
		{"INFO", "Exchange complete: EOF"},
	}
}
