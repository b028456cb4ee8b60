package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// chromiumPath finds Debian's headless-capable chromium.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// artifactDir is where screenshots go: $TEST_ARTIFACTS, else the temp dir.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// liveStack is a simulated master, a collector following it and the API,
// all in process.
type liveStack struct {
	sim    *simulator.Master
	store  *collector.Store
	api    *httptest.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closes []func()
}

func startStack(t *testing.T) *liveStack {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	sim := simulator.New(simulator.Options{
		Tunnels: 8, Seed: 7, ReportInterval: 500 * time.Millisecond, Alias: "demo", Hostile: true, LogRate: 0.3,
	})
	simTS := httptest.NewServer(sim.Handler())
	store := collector.NewStore(collector.Options{})
	conn, err := collector.NewConn(collector.EndpointConfig{
		Name: "tokyo-1", BaseURL: simTS.URL + sim.BasePath(), APIKey: sim.APIKey(), ReportInterval: 500 * time.Millisecond,
	}, store, logger)
	if err != nil {
		t.Fatal(err)
	}
	store.AddEndpoint("osaka-2") // a master that never answers: the page shows it connecting
	srv := api.New(api.Options{Store: store, Logger: logger, QueueUse: conn.QueueUse, Version: "test"})
	apiTS := httptest.NewServer(srv.Handler())

	ctx, cancel := context.WithCancel(context.Background())
	s := &liveStack{sim: sim, store: store, api: apiTS, cancel: cancel}
	for _, run := range []func(context.Context) error{sim.Run, conn.Run, srv.Run} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = run(ctx)
		}()
	}
	s.closes = []func(){apiTS.Close, func() { _ = sim.Close() }, simTS.Close}
	t.Cleanup(s.stop)
	return s
}

func (s *liveStack) stop() {
	s.cancel()
	s.wg.Wait()
	for _, c := range s.closes {
		c()
	}
}

// TestBrowserDashboard drives headless Chromium through the built-in page
// against a live simulated master.
func TestBrowserDashboard(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (apt-get install -y chromium); CI must run the browser test")
		}
		t.Skip("chromium is not installed; CI installs it and runs this test")
	}
	stack := startStack(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	// Every console message, exception and browser log entry, read in the
	// background so that the page never waits on the test.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	}()
	defer func() {
		cancelTimeout()
		<-consoleDone
	}()
	dir := artifactDir(t)
	shot := func(name string, full bool) {
		t.Helper()
		action := chromedp.CaptureScreenshot()
		if full {
			action = chromedp.FullScreenshot(100) // PNG of the whole page
		}
		png, err := chromedp.Run(ctx, action)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
		fmt.Fprintln(os.Stderr, "screenshot:", path)
	}

	// The page loads and lists the master's tunnels.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(stack.api.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#endpoints tbody tr`)),
	); err != nil {
		t.Fatalf("load: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#endpoints tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 8 {
		t.Errorf("%d tunnel rows, want 8 (the API-key pseudo-instance is not a tunnel)", rows)
	}

	// A live number changes within a few seconds, pushed over SSE.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#conn.live`))); err != nil {
		t.Fatalf("live state: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	before := text(`#sum-total`)
	after := before
	for deadline := time.Now().Add(10 * time.Second); after == before && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		after = text(`#sum-total`)
	}
	if after == before {
		t.Errorf("total traffic stayed at %q for 10 s", before)
	}

	// A master's HTML stays text: the hostile aliases made no elements.
	if injected := count(`#endpoints b, #endpoints i, #endpoints img, #endpoints script, #endpoints iframe`); injected != 0 {
		t.Errorf("%d elements made from a master's strings", injected)
	}
	// Let the charts and the second master's empty state settle, then shoot.
	time.Sleep(1500 * time.Millisecond)
	shot("nodepass-exporter-dashboard.png", true)

	// The tunnel detail opens with its live log.
	ids := stack.sim.IDs()
	// The table is re-rendered with every push: a row found just before a
	// push is gone when the click comes ("Could not find node"); then the
	// click is tried again on the new row.
	click := chromedp.Click(chromedp.CSS(`#endpoints tbody tr[data-id="` + ids[0] + `"]`))
	err = chromedp.Do(ctx, click)
	for try := 1; err != nil && strings.Contains(err.Error(), "Could not find node") && try < 5; try++ {
		err = chromedp.Do(ctx, click)
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#detail`)), chromedp.WaitVisible(chromedp.CSS(`#d-stats .card`)))
	}
	if err != nil {
		t.Fatalf("open detail: %v", err)
	}
	// Like NodePass, the simulator drops events for a reader that falls 10
	// behind, which a loaded machine can make happen while Chromium starts:
	// a line is sent again, under a new name, until one arrives.
	const line = "browser test <b>line</b> "
	logs := ""
	for deadline, n := time.Now().Add(15*time.Second), 0; !strings.Contains(logs, line) && time.Now().Before(deadline); n++ {
		if n%10 == 0 {
			if err := stack.sim.Log(ids[0], "\x1b[32mINFO\x1b[0m "+line+strconv.Itoa(n/10)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		logs = text(`#d-logs`)
	}
	if !strings.Contains(logs, line) {
		// Tell a loss on the way in from one on the way out.
		var stored []string
		stack.store.View(func(v collector.StoreView) {
			if tun := v.Endpoint("tokyo-1").Tunnel(ids[0]); tun != nil {
				stored, _ = tun.LogsSince(0)
			}
		})
		t.Errorf("log line not shown; the log view holds %q; the store holds %q; simulator drops %d", logs, stored, stack.sim.Snapshot().Drops)
	}
	if count(`#d-logs b`) != 0 {
		t.Error("a log line was parsed as HTML")
	}
	time.Sleep(500 * time.Millisecond)
	shot("nodepass-exporter-tunnel.png", false)

	// A phone-sized window.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#d-close`)),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Sleep(time.Second),
	); err != nil {
		t.Fatal(err)
	}
	shot("nodepass-exporter-phone.png", true)

	// Everything so far must have run without a console error or warning.
	mu.Lock()
	if len(problems) > 0 {
		t.Errorf("browser console:\n%s", strings.Join(problems, "\n"))
	}
	mu.Unlock()

	// Losing the exporter shows as disconnected, not as stale live data.
	stack.api.CloseClientConnections()
	stack.api.Listener.Close()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#banner`))); err != nil {
		t.Errorf("no disconnected banner: %v", err)
	}
	if got := text(`#conn-text`); got != "Disconnected" {
		t.Errorf("connection state %q, want Disconnected", got)
	}
	shot("nodepass-exporter-disconnected.png", false)

	// An exporter without masters explains what to do.
	emptySrv := api.New(api.Options{Store: collector.NewStore(collector.Options{})})
	empty := httptest.NewServer(emptySrv.Handler())
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = emptySrv.Run(runCtx)
	}()
	defer func() {
		stopRun() // ends the page's streams, so that Close does not wait on them
		<-runDone
		empty.Close()
	}()
	if err := chromedp.Do(ctx,
		chromedp.EmulateReset(),
		chromedp.Navigate(empty.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#empty strong`)),
	); err != nil {
		t.Fatalf("empty state: %v", err)
	}
	if got := text(`#empty strong`); got != "No NodePass masters configured" {
		t.Errorf("empty state %q", got)
	}
	shot("nodepass-exporter-empty.png", false)
}
