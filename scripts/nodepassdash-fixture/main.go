// Command nodepassdash-fixture makes importer/nodepassdash/testdata's
// NodePassDash database: it runs a real NodePassDash build (its binary is
// given with --nodepassdash) against two simulated NodePass masters whose
// event clock runs at a chosen pace, so that NodePassDash records eleven
// hours of traffic in a few minutes, and writes beside the database what the
// simulator sent per tunnel and hour. scripts/nodepassdash-fixture.sh builds
// NodePassDash and runs this; importer/nodepassdash/testdata/README.md says
// why the scenario is what it is.
//
// NodePassDash writes one service_history row per 12 update events of an
// instance (the counters of the 12th) and at each hour close takes the
// hour's last row. The scenario keeps every instance's 12th update on the
// last report of each hour (actions that send extra updates are followed by
// a short stop that realigns the count), so that an hour's row holds exactly
// the counters at the hour's end and the simulator's hourly ledger is what a
// perfect reader of NodePassDash's database can recover. The command checks
// that at the end and fails if NodePassDash saw something else.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"

	_ "modernc.org/sqlite"
)

func main() { os.Exit(run()) }

type config struct {
	npd      string // NodePassDash binary
	version  string // NodePassDash version or commit, for the ledger
	work     string // scratch directory NodePassDash runs in
	outDB    string
	outJSON  string
	hours    int
	watchMin int // minutes into hour 1 at which NodePassDash starts watching
	pace     time.Duration
	tz       string // time zone of NodePassDash and of the masters' clocks
}

func run() int {
	var c config
	fs := flag.NewFlagSet("nodepassdash-fixture", flag.ContinueOnError)
	fs.StringVar(&c.npd, "nodepassdash", "", "NodePassDash server binary (required)")
	fs.StringVar(&c.version, "nodepassdash-version", "", "NodePassDash version and commit, recorded in the ledger")
	fs.StringVar(&c.work, "work", "", "scratch directory for NodePassDash (default: a new temporary directory)")
	fs.StringVar(&c.outDB, "out-db", "importer/nodepassdash/testdata/nodepassdash-4.0.5.db", "where to write the VACUUMed database")
	fs.StringVar(&c.outJSON, "out-ledger", "importer/nodepassdash/testdata/nodepassdash-4.0.5.json", "where to write what the simulator sent")
	fs.IntVar(&c.hours, "hours", 11, "simulated hours (the last ends at least two real hours ago)")
	fs.IntVar(&c.watchMin, "watch-minute", 30, "minute of hour 1 at which NodePassDash is started")
	fs.StringVar(&c.tz, "tz", "Asia/Shanghai", "time zone NodePassDash and the masters run in (most NodePassDash users are in UTC+8)")
	fs.DurationVar(&c.pace, "pace", 3*time.Millisecond, "real time per simulated report interval while NodePassDash watches")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if c.npd == "" {
		fmt.Fprintln(os.Stderr, "nodepassdash-fixture: --nodepassdash is required")
		return 2
	}
	if err := generate(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "nodepassdash-fixture:", err)
		return 1
	}
	return 0
}

// interval is NodePass's report interval, and perRow the updates
// NodePassDash folds into one service_history row.
const (
	interval = 5 * time.Second
	perRow   = 12
	perHour  = int(time.Hour / interval)
)

// Ledger is the JSON written beside the database.
type Ledger struct {
	NodePassDash string `json:"nodepassdash"`
	Note         string `json:"note"`
	// TimeZone is the zone NodePassDash and the masters ran in; the
	// times here are UTC.
	TimeZone string `json:"timeZone"`
	// Hours are the simulated hours (UTC hour starts), in order.
	Hours []time.Time `json:"hours"`
	// WatchStart is when NodePassDash started to follow the masters.
	WatchStart time.Time      `json:"watchStart"`
	Tunnels    []LedgerTunnel `json:"tunnels"`
}

// LedgerTunnel is one tunnel's story and traffic.
type LedgerTunnel struct {
	Endpoint string `json:"endpoint"` // NodePassDash endpoint name
	ID       string `json:"id"`       // NodePass instance id
	// BeforeWatch is set for tunnels that carried traffic before
	// NodePassDash started.
	BeforeWatch bool   `json:"beforeWatch"`
	Created     int    `json:"createdHour"`           // index into Hours
	Deleted     int    `json:"deletedHour,omitempty"` // index into Hours; 0: never
	Resets      []int  `json:"resetHours,omitempty"`  // indexes into Hours
	Sent        []Sent `json:"sent"`                  // one per hour of Hours
}

// Sent is the traffic a tunnel carried in one hour, and its raw counters
// (what the master reports) at the hour's end.
type Sent struct {
	Traffic [4]uint64 `json:"traffic"` // tcp rx, tcp tx, udp rx, udp tx
	Raw     [4]uint64 `json:"raw"`
}

type master struct {
	name string
	sim  *simulator.Master
	srv  *http.Server
	url  string
}

type tunnelKey struct{ master, id string }

type world struct {
	clock   atomic.Int64 // Unix ns of the simulated clock
	loc     *time.Location
	start   time.Time
	masters []*master
	// updates counts the update events NodePassDash has been sent per
	// tunnel since it started watching; watchTicks the report intervals
	// since then.
	updates    map[tunnelKey]int
	watching   bool
	watch      time.Time // when NodePassDash started watching
	watchTicks int
	ticks      int // report intervals since start
	ledger     map[tunnelKey]*LedgerTunnel
	order      []tunnelKey
	pace       time.Duration
}

func (w *world) now() time.Time { return time.Unix(0, w.clock.Load()).In(w.loc) }

// tick runs one report interval on every master at the simulated time of
// interval number w.ticks (3 s past a 5 s step, so that the last interval
// of an hour is at hh:59:58).
func (w *world) tick() {
	w.clock.Store(w.start.Add(time.Duration(w.ticks)*interval + 3*time.Second).UnixNano())
	// NodePassDash hands events to four workers, and now and then two
	// updates of an instance reach its history worker in the wrong order
	// (seen even two seconds apart), so that the 12th update of a row is
	// not the newest. Only the row closing an hour counts: its last
	// reports carry no traffic (a status update with the same counters in
	// place of the interval's report), so their order does not matter.
	quiet := w.watching && w.ticks%perHour >= perHour-quietTicks
	for _, m := range w.masters {
		for _, t := range m.sim.Snapshot().Tunnels {
			if t.Deleted || t.Status != simulator.StatusRunning {
				continue
			}
			if w.watching {
				w.updates[tunnelKey{m.name, t.ID}]++
			}
			if quiet {
				_ = m.sim.SetStatus(t.ID, simulator.StatusRunning)
			}
		}
		if !quiet {
			m.sim.Tick()
		}
	}
	w.ticks++
	if w.watching {
		w.watchTicks++
		if w.pace > 0 {
			time.Sleep(w.pace)
		}
	}
}

// quietTicks is how many of an hour's last report intervals carry no
// traffic.
const quietTicks = 3

// offset is how far the tunnel's update count is from the report
// intervals, modulo a service_history row.
func (w *world) offset(k tunnelKey) int {
	return ((w.updates[k]-w.watchTicks)%perRow + perRow) % perRow
}

// realign stops the running tunnel for as many intervals as make its 12th
// updates fall on the intervals' again (a stop sends one update, a start
// two).
func (w *world) realign(m *master, id string) error {
	k := tunnelKey{m.name, id}
	if w.offset(k) == 0 {
		return nil
	}
	if err := m.sim.StopTunnel(id); err != nil {
		return err
	}
	w.updates[k]++
	for w.offset(k) != perRow-2 {
		w.tick()
	}
	if err := m.sim.StartTunnel(id); err != nil {
		return err
	}
	w.updates[k] += 2
	if w.offset(k) != 0 {
		return fmt.Errorf("realign %s/%s: offset %d", m.name, id, w.offset(k))
	}
	return nil
}

func (w *world) hourIndex() int { return w.ticks / perHour }

func (w *world) create(m *master, id string, rate simulator.Counters) error {
	if got := m.sim.CreateTunnel(simulator.TunnelSpec{ID: id, Alias: m.name + "-" + id[:4], Traffic: rate, Stopped: true}); got != id {
		return fmt.Errorf("create %s on %s: got %q", id, m.name, got)
	}
	k := tunnelKey{m.name, id}
	w.ledger[k] = &LedgerTunnel{Endpoint: m.name, ID: id, BeforeWatch: !w.watching, Created: w.hourIndex()}
	w.order = append(w.order, k)
	if err := m.sim.StartTunnel(id); err != nil {
		return err
	}
	if w.watching {
		w.updates[k] += 2
	}
	return w.realign(m, id)
}

func (w *world) reset(m *master, id string) error {
	if err := m.sim.ResetTunnel(id); err != nil {
		return err
	}
	k := tunnelKey{m.name, id}
	w.updates[k]++
	w.ledger[k].Resets = append(w.ledger[k].Resets, w.hourIndex())
	return w.realign(m, id)
}

// remove deletes a tunnel on an hour boundary: the update with status
// stopped it sends opens a row NodePassDash never completes, and it holds
// no traffic.
func (w *world) remove(m *master, id string) error {
	if err := m.sim.DeleteTunnel(id); err != nil {
		return err
	}
	w.ledger[tunnelKey{m.name, id}].Deleted = w.hourIndex()
	return nil
}

// closeHour records, at the end of hour h, each tunnel's generated traffic
// and raw counters.
func (w *world) closeHour(h int, prev map[tunnelKey]simulator.Counters) {
	for _, m := range w.masters {
		for _, t := range m.sim.Snapshot().Tunnels {
			k := tunnelKey{m.name, t.ID}
			l := w.ledger[k]
			if l == nil {
				continue
			}
			for len(l.Sent) < h {
				l.Sent = append(l.Sent, Sent{})
			}
			if len(l.Sent) > h {
				continue
			}
			g := t.Generated
			p := prev[k]
			s := Sent{Traffic: [4]uint64{g[history.TCPRx] - p[history.TCPRx], g[history.TCPTx] - p[history.TCPTx], g[history.UDPRx] - p[history.UDPRx], g[history.UDPTx] - p[history.UDPTx]}}
			if !t.Deleted {
				s.Raw = [4]uint64(t.Raw)
			}
			l.Sent = append(l.Sent, s)
			prev[k] = g
		}
	}
}

func generate(ctx context.Context, c config) error {
	if c.hours < 6 {
		return errors.New("--hours must be at least 6")
	}
	loc, err := time.LoadLocation(c.tz)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	// The last simulated hour ends two hours before now, and the first is
	// within the 24 hours NodePassDash re-aggregates when it starts.
	start := now.Truncate(time.Hour).Add(-time.Duration(c.hours+2) * time.Hour)
	w := &world{start: start, loc: loc, updates: map[tunnelKey]int{}, ledger: map[tunnelKey]*LedgerTunnel{}, pace: c.pace}
	w.clock.Store(start.UnixNano())
	for i, name := range []string{"tokyo-1", "osaka-2"} {
		m, err := startMaster(name, uint64(i+1), w.now)
		if err != nil {
			return err
		}
		defer m.srv.Close()
		defer m.sim.Close()
		w.masters = append(w.masters, m)
	}
	tokyo, osaka := w.masters[0], w.masters[1]
	mb := func(tcp, udp uint64) simulator.Counters {
		return simulator.Counters{tcp << 10, tcp << 9, udp << 10, udp << 8}
	}

	// Hour 0: the masters run before NodePassDash exists.
	for _, s := range []struct {
		m    *master
		id   string
		rate simulator.Counters
	}{
		{tokyo, "a1a1a1a1", mb(2048, 64)},
		{tokyo, "a2a2a2a2", mb(512, 0)},
		{osaka, "b1b1b1b1", mb(1024, 256)},
	} {
		if err := w.create(s.m, s.id, s.rate); err != nil {
			return err
		}
	}
	work := c.work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "nodepassdash-fixture-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	nd := &nodePassDash{bin: c.npd, dir: work, tz: c.tz}
	defer nd.stop()

	prev := map[tunnelKey]simulator.Counters{}
	for h := 0; h < c.hours; h++ {
		if err := w.script(h, tokyo, osaka); err != nil {
			return fmt.Errorf("hour %d: %w", h, err)
		}
		for w.ticks < (h+1)*perHour {
			if h == 1 && !w.watching && w.ticks == perHour+c.watchMin*perRow {
				if err := nd.setUp(ctx, w.masters); err != nil {
					return fmt.Errorf("NodePassDash: %w", err)
				}
				w.watching = true
				w.watch = w.start.Add(time.Duration(w.ticks) * interval)
			}
			w.tick()
		}
		if err := w.drain(ctx); err != nil {
			return err
		}
		if w.watching {
			if err := w.waitRows(ctx, nd, h); err != nil {
				return err
			}
		}
		w.closeHour(h, prev)
		if w.watching {
			fmt.Fprintf(os.Stderr, "hour %d of %d simulated (%s)\n", h+1, c.hours, w.now().Format(time.RFC3339))
		}
	}
	for _, k := range w.order {
		if w.ledger[k].Deleted == 0 && w.offset(k) != 0 {
			return fmt.Errorf("tunnel %v: rows not aligned on hours (offset %d)", k, w.offset(k))
		}
	}
	// service_history is written from a queue flushed every 500 ms.
	time.Sleep(3 * time.Second)
	if err := nd.reaggregate(ctx); err != nil {
		return fmt.Errorf("NodePassDash: %w", err)
	}
	if b, err := os.ReadFile(nd.log.Name()); err != nil {
		return err
	} else if bytes.Contains(b, []byte("队列已满")) {
		return fmt.Errorf("NodePassDash dropped updates (its queue was full): slow down --pace (log: %s)", nd.log.Name())
	}
	l := &Ledger{
		NodePassDash: c.version,
		Note:         "written by scripts/nodepassdash-fixture; traffic is what the simulator generated in the hour, raw the counters it reported at the hour's end",
		TimeZone:     c.tz,
		WatchStart:   w.watch,
	}
	for h := 0; h < c.hours; h++ {
		l.Hours = append(l.Hours, start.Add(time.Duration(h)*time.Hour))
	}
	for _, k := range w.order {
		l.Tunnels = append(l.Tunnels, *w.ledger[k])
	}
	if err := checkDatabase(nd.dbPath(), l, loc); err != nil {
		return err
	}
	if err := vacuumInto(nd.dbPath(), c.outDB); err != nil {
		return err
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.outJSON, append(b, '\n'), 0o644)
}

// script is what happens at the start of hour h, beyond traffic.
func (w *world) script(h int, tokyo, osaka *master) error {
	switch h {
	case 3: // a tunnel created while NodePassDash watches
		return w.create(tokyo, "c3c3c3c3", simulator.Counters{300 << 20, 40 << 20, 0, 0})
	case 5: // a counter reset: NodePassDash stores a negative increment
		return w.reset(tokyo, "a2a2a2a2")
	case 7: // a deleted tunnel
		return w.remove(tokyo, "c3c3c3c3")
	case 8: // the same instance id on another master
		return w.create(osaka, "c3c3c3c3", simulator.Counters{5 << 20, 0, 1 << 20, 0})
	}
	return nil
}

// drain waits until NodePassDash has read every event sent so far.
func (w *world) drain(ctx context.Context) error {
	if !w.watching {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for {
		busy := false
		for _, m := range w.masters {
			st := m.sim.SubscriberStats()
			if len(st) == 0 {
				return fmt.Errorf("master %s: NodePassDash is not connected", m.name)
			}
			for _, s := range st {
				if s.Dropped > 0 {
					return fmt.Errorf("master %s: %d events dropped for NodePassDash", m.name, s.Dropped)
				}
				busy = busy || s.Queued > 0
			}
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("NodePassDash does not read its streams")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitRows waits until NodePassDash has written the service_history row of
// the last interval of hour h for every live tunnel: NodePassDash reads its
// streams much faster than it processes them, and drops what it has not
// processed when it stops.
func (w *world) waitRows(ctx context.Context, nd *nodePassDash, h int) error {
	db, err := sql.Open("sqlite", "file:"+nd.dbPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	last := timeString(w.start.Add(time.Duration(h+1)*time.Hour-time.Minute), w.loc)
	deadline := time.Now().Add(5 * time.Minute)
	for _, k := range w.order {
		if l := w.ledger[k]; l.Created > h || (l.Deleted > 0 && l.Deleted <= h) {
			continue
		}
		for {
			var n int
			err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM service_history sh JOIN endpoints e ON e.id = sh.endpoint_id
				WHERE e.name = ? AND sh.instance_id = ? AND sh.record_time = ?`, k.master, k.id, last).Scan(&n)
			if err != nil {
				return fmt.Errorf("wait for NodePassDash: %w", err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("NodePassDash wrote no service_history row at %s for %s/%s (log: %s)", last, k.master, k.id, nd.log.Name())
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func startMaster(name string, seed uint64, clock func() time.Time) (*master, error) {
	sim := simulator.New(simulator.Options{
		Seed: seed, Manual: true, Clock: clock, Alias: name,
		LogRate: -1, SubscriberBuffer: 1 << 16,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &master{name: name, sim: sim, srv: srv, url: "http://" + ln.Addr().String()}, nil
}

// checkDatabase fails unless NodePassDash's hourly rows of the simulated
// hours hold the simulator's raw counters at each hour's end.
func checkDatabase(path string, l *Ledger, loc *time.Location) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	ids := map[string]int64{}
	rows, err := db.Query("SELECT id, name FROM endpoints")
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return err
		}
		ids[name] = id
	}
	rows.Close()
	checked := 0
	for _, t := range l.Tunnels {
		for h, s := range t.Sent {
			if h < t.Created || (t.Deleted > 0 && h >= t.Deleted) || l.Hours[h].Add(time.Hour).Before(l.WatchStart) {
				continue
			}
			var got [4]uint64
			var n int
			err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(tcp_rx_total),0), COALESCE(SUM(tcp_tx_total),0), COALESCE(SUM(udp_rx_total),0), COALESCE(SUM(udp_tx_total),0)
				FROM traffic_hourly_summary WHERE endpoint_id = ? AND instance_id = ? AND hour_time >= ? AND hour_time < ?`,
				ids[t.Endpoint], t.ID, timeString(l.Hours[h], loc), timeString(l.Hours[h].Add(time.Hour), loc)).Scan(&n, &got[0], &got[1], &got[2], &got[3])
			if err != nil {
				return err
			}
			if n != 1 || got != s.Raw {
				return fmt.Errorf("%s/%s hour %s: NodePassDash has %d rows, totals %v; the master reported %v", t.Endpoint, t.ID, l.Hours[h].Format(time.RFC3339), n, got, s.Raw)
			}
			checked++
		}
	}
	fmt.Fprintf(os.Stderr, "%d hourly rows hold the master's counters at the hour's end\n", checked)
	return nil
}

// timeString is how NodePassDash's SQLite driver (glebarez/go-sqlite)
// stores a time.Time in loc: a time from NodePassDash's clock or from an
// event of a master in the same zone.
func timeString(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05.999999999-07:00")
}

func vacuumInto(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.Remove(dst)
	db, err := sql.Open("sqlite", "file:"+src)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// waitAggregation waits for the log line NodePassDash writes once the
// aggregation it runs ten seconds after it starts is done (the log from
// offset off on).
func (n *nodePassDash) waitAggregation(ctx context.Context, off int64) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := os.ReadFile(n.log.Name())
		if err != nil {
			return err
		}
		tail := string(b[off:])
		if strings.Contains(tail, "启动时常规数据聚合完成") {
			return nil
		}
		if strings.Contains(tail, "最终失败") {
			return fmt.Errorf("aggregation failed (log: %s)", n.log.Name())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no aggregation after start (log: %s)", n.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nodePassDash runs the NodePassDash binary in its own directory and zone.
type nodePassDash struct {
	bin, dir string
	tz       string
	port     string
	cmd      *exec.Cmd
	log      *os.File
	token    string
}

func (n *nodePassDash) dbPath() string { return filepath.Join(n.dir, "db", "database.db") }

func (n *nodePassDash) start() error {
	if n.port == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		n.port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	if n.log == nil {
		f, err := os.Create(filepath.Join(n.dir, "nodepassdash.log"))
		if err != nil {
			return err
		}
		n.log = f
	}
	cmd := exec.Command(n.bin, "--port", n.port, "--disable-sse-log")
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), "TZ="+n.tz)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	return nil
}

func (n *nodePassDash) stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	n.cmd = nil
}

func (n *nodePassDash) url(path string) string { return "http://127.0.0.1:" + n.port + path }

func (n *nodePassDash) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.url(path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, b)
		}
	}
	return nil
}

// waitUp waits until path answers 2xx.
func (n *nodePassDash) waitUp(ctx context.Context, path string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := n.call(ctx, http.MethodGet, path, nil, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not up: %w (log: %s)", err, n.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setUp runs the first-start wizard (SQLite in db/database.db, WAL as
// NodePassDash defaults), starts NodePassDash for real, logs in and adds
// the masters as endpoints; it returns once NodePassDash follows every
// master's event stream.
func (n *nodePassDash) setUp(ctx context.Context, masters []*master) error {
	if err := n.start(); err != nil {
		return err
	}
	if err := n.waitUp(ctx, "/api/setup/status"); err != nil {
		return err
	}
	var comp struct {
		Version string `json:"version"`
	}
	if err := n.call(ctx, http.MethodGet, "/api/setup/compliance?lang=en-US", nil, &comp); err != nil {
		return err
	}
	const user, password = "admin", "fixture-Passw0rd"
	req := map[string]any{
		"driver":     "sqlite",
		"sqlite":     map[string]any{"path": "db/database.db", "wal_mode": true},
		"admin":      map[string]string{"username": user, "password": password},
		"compliance": map[string]string{"accepted_version": comp.Version},
	}
	if err := n.call(ctx, http.MethodPost, "/api/setup/initialize", req, nil); err != nil {
		return err
	}
	// Setup mode exits for its supervisor to restart it.
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return errors.New("setup mode did not exit")
	}
	n.cmd = nil
	off, _ := n.log.Seek(0, io.SeekEnd)
	if err := n.start(); err != nil {
		return err
	}
	if err := n.waitUp(ctx, "/api/auth/check-default-credentials"); err != nil {
		return err
	}
	var login struct {
		Token string `json:"token"`
	}
	if err := n.call(ctx, http.MethodPost, "/api/auth/login", map[string]string{"username": user, "password": password}, &login); err != nil {
		return err
	}
	n.token = login.Token
	for _, m := range masters {
		ep := map[string]string{"name": m.name, "url": m.url, "apiPath": m.sim.BasePath() + "/v1", "apiKey": m.sim.APIKey()}
		if err := n.call(ctx, http.MethodPost, "/api/endpoints", ep, nil); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, m := range masters {
		for m.sim.Subscribers() == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("NodePassDash did not subscribe to %s (log: %s)", m.name, n.log.Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Two seconds after it starts, NodePassDash's SSE daemon closes and
	// reopens every stream; events sent meanwhile would be lost. Ten
	// seconds after, it aggregates the last 24 hours, carrying totals
	// forward to hours without service_history rows, and it never
	// refreshes a carried-forward row: run now, that would carry the
	// first minutes' totals into the hours the accelerated clock is about
	// to fill, something a NodePassDash on the same clock as its masters
	// never does. Wait for both.
	if err := n.waitAggregation(ctx, off); err != nil {
		return err
	}
	for _, m := range masters {
		if n := m.sim.Subscribers(); n != 1 {
			return fmt.Errorf("master %s has %d subscribers, want NodePassDash alone", m.name, n)
		}
	}
	return nil
}

// reaggregate restarts NodePassDash, which aggregates the last 24 hours of
// service_history into traffic_hourly_summary ten seconds after it starts,
// waits for that and stops it.
func (n *nodePassDash) reaggregate(ctx context.Context) error {
	n.stop()
	off, _ := n.log.Seek(0, io.SeekEnd)
	if err := n.start(); err != nil {
		return err
	}
	if err := n.waitAggregation(ctx, off); err != nil {
		return err
	}
	n.stop()
	return nil
}
