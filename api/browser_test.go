package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

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
		Tunnels: 30, Seed: 7, ReportInterval: 500 * time.Millisecond, Alias: "demo", Hostile: true, LogRate: 0.3,
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
	// Plans and alerts are mounted by cmd beside the API; here the page
	// reads fixtures of the same shapes (browser_fixtures_test.go).
	srv := api.New(api.Options{Store: store, Logger: logger, QueueUse: conn.QueueUse, Version: "test", Mount: mountPageFixtures})
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

// browser is one headless Chromium with the helpers the page tests use.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
	dir      string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	// Debian's headless-capable chromium; skipped under -short, required in CI.
	chromium := testutil.NeedTool(t, "chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")
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
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 150*time.Second)
	b := &browser{t: t, ctx: ctx, dir: artifactDir(t)}
	// Every console message, exception and browser log entry, read in the
	// background so that the page never waits on the test.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if !(m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning) {
				continue
			}
			// A 404 is an answer the page handles (a route not merged yet,
			// a tunnel that does not exist); Chromium logs it all the same.
			if strings.Contains(m.String(), "status of 404") {
				continue
			}
			b.mu.Lock()
			b.problems = append(b.problems, m.String()+" "+m.URL)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		<-done
		cancelCtx()
		cancelAlloc()
	})
	return b
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return b.eval(`(document.querySelector(` + strconv.Quote(sel) + `) || {}).textContent || ""`)
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	return s
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
	if err != nil {
		b.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// waitFor polls a JavaScript condition (the page re-renders on every push,
// so chromedp's node waits can hold a node that is gone a moment later).
func (b *browser) waitFor(what, cond string, d time.Duration) {
	b.t.Helper()
	for deadline := time.Now().Add(d); ; {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failed-"+regexp.MustCompile(`[^a-zA-Z0-9-]+`).ReplaceAllString(what, "-")+".png", true)
			b.t.Fatalf("%s: %s still false after %v (err %v)", what, cond, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) shot(name string, full bool) {
	b.t.Helper()
	action := chromedp.CaptureScreenshot()
	if full {
		action = chromedp.FullScreenshot(100) // PNG of the whole page
	}
	png, err := chromedp.Run(b.ctx, action)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	fmt.Fprintln(os.Stderr, "screenshot:", path)
}

// click clicks the element now matching sel (in the page, so a row or a
// pager redrawn by a push between finding and clicking does not matter).
func (b *browser) click(what, sel string) {
	b.t.Helper()
	if got := b.eval(`(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); if (!e) return "missing"; e.click(); return "" })()`); got != "" {
		b.t.Fatalf("%s: %s is %s", what, sel, got)
	}
}

// hash navigates within the page (hash routes) and lets it settle.
func (b *browser) hash(h string) {
	b.t.Helper()
	b.eval(`location.hash = ` + strconv.Quote(h) + `; ""`)
}

// rowKeys lists the keys of the rows a table shows, in order.
func (b *browser) rowKeys(table string) []string {
	b.t.Helper()
	s := b.eval(`JSON.stringify([...document.querySelectorAll("#` + table + ` tbody tr")].map((r) => r.dataset.key))`)
	var keys []string
	if err := json.Unmarshal([]byte(s), &keys); err != nil {
		b.t.Fatal(err)
	}
	return keys
}

// noInjected fails when a master's (or a fixture's) markup became elements.
func (b *browser) noInjected(where string) {
	b.t.Helper()
	if n := b.count(`main b, main i, main img, main script, main iframe, #drawer b, #drawer img, #drawer script, #drawer iframe`); n != 0 {
		b.t.Errorf("%s: %d elements made from untrusted strings", where, n)
	}
}

func (b *browser) consoleClean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("browser console:\n%s", strings.Join(b.problems, "\n"))
	}
	b.problems = nil
}

// TestBrowserDashboard drives headless Chromium through the built-in page
// against a live simulated master: every view in both languages, sorting
// and paging, the not-found states, hostile strings, the live log.
func TestBrowserDashboard(t *testing.T) {
	b := newBrowser(t)
	stack := startStack(t)
	const tunnels = 30

	b.do("load", chromedp.Navigate(stack.api.URL+"/"))
	b.waitFor("tunnel rows", `document.querySelectorAll("#tunnels tbody tr").length > 0`, 20*time.Second)
	b.waitFor("live", `document.querySelector("#conn.live")`, 10*time.Second)

	// Paging: 25 rows a page; the second page holds the rest, and the two
	// pages together are every tunnel once (the API-key pseudo-instance is
	// not one).
	b.waitFor("page 1 full", `document.querySelectorAll("#tunnels tbody tr").length === 25`, 10*time.Second)
	if got := b.text(`#tunnels .count`); !strings.Contains(got, strconv.Itoa(tunnels)) {
		t.Errorf("count %q does not say %d tunnels", got, tunnels)
	}
	page1 := b.rowKeys("tunnels")
	b.click("next page", `#tunnels .pager .next`)
	b.waitFor("page 2", `document.querySelectorAll("#tunnels tbody tr").length === 5`, 10*time.Second)
	page2 := b.rowKeys("tunnels")
	seen := map[string]bool{}
	for _, k := range append(page1, page2...) {
		if seen[k] {
			t.Errorf("tunnel %s on both pages", k)
		}
		seen[k] = true
	}
	for _, id := range stack.sim.IDs() {
		if !seen["tokyo-1/"+id] {
			t.Errorf("tunnel %s on no page", id)
		}
	}
	b.click("previous page", `#tunnels .pager .prev`)
	b.waitFor("page 1 again", `document.querySelectorAll("#tunnels tbody tr").length === 25`, 10*time.Second)

	// Sorting by alias, then the other way: the aliases come in byte order
	// (as the API sorts), then in reverse.
	aliases := map[string]string{}
	stack.store.View(func(v collector.StoreView) {
		e := v.Endpoint("tokyo-1")
		for _, id := range e.TunnelIDs() {
			aliases["tokyo-1/"+id] = e.Tunnel(id).Alias
		}
	})
	sorted := func(desc bool) {
		t.Helper()
		b.waitFor("sorted", `document.querySelector('#tunnels th[data-col="tunnel"]').getAttribute("aria-sort") === "`+map[bool]string{false: "ascending", true: "descending"}[desc]+`"`, 5*time.Second)
		// The sorted page replaces the old one a moment after the header
		// changes: poll the rows until they are in order or 5 s pass.
		var got []string
		inOrder := func() bool {
			got = got[:0]
			for _, k := range b.rowKeys("tunnels") {
				got = append(got, aliases[k])
			}
			want := slices.Clone(got)
			slices.Sort(want)
			if desc {
				slices.Reverse(want)
			}
			return slices.Equal(got, want) && len(got) == 25
		}
		ok := inOrder()
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); ok = inOrder() {
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			t.Errorf("sorted by alias (desc %v): %q", desc, got)
		}
	}
	b.click("sort by alias", `#tunnels th[data-col="tunnel"] button`)
	sorted(false)
	b.click("sort by alias, descending", `#tunnels th[data-col="tunnel"] button`)
	sorted(true)

	// Searching narrows the list.
	target := stack.sim.IDs()[7]
	b.do("search", chromedp.SendKeys(chromedp.CSS(`#tunnels .search`), target))
	b.waitFor("search result", `document.querySelectorAll("#tunnels tbody tr").length === 1 && document.querySelector('#tunnels tbody tr[data-key="tokyo-1/`+target+`"]')`, 10*time.Second)
	b.eval(`const s = document.querySelector("#tunnels .search"); s.value = ""; s.dispatchEvent(new Event("input")); ""`)

	// A live number changes within a few seconds, pushed over SSE.
	before := b.text(`#sum-total`)
	after := before
	for deadline := time.Now().Add(10 * time.Second); after == before && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		after = b.text(`#sum-total`)
	}
	if after == before {
		t.Errorf("total traffic stayed at %q for 10 s", before)
	}
	// The hostile aliases are there, as text.
	b.waitFor("hostile alias shown", `document.querySelector("#tunnels tbody").textContent.includes("</script><img src=x onerror=alert(1)>")`, 10*time.Second)
	b.noInjected("tunnels")
	time.Sleep(time.Second) // let the charts settle
	b.shot("nodepass-exporter-dashboard.png", true)

	// The tunnel drawer: live figures, the explanation of the totals, the
	// history charts (or the message saying why there are none), the log.
	id := stack.sim.IDs()[0]
	b.hash("#/tunnel/tokyo-1/" + id)
	b.waitFor("tunnel drawer", `!document.querySelector("#drawer").hidden && document.querySelectorAll("#dr-stats .card").length === 8`, 10*time.Second)
	b.waitFor("speed chart drawn", `document.querySelector('[data-chart="speed"] svg, [data-chart="speed"] .none')`, 10*time.Second)
	const line = "browser test <b>line</b> "
	logs := ""
	// Like NodePass, the simulator drops events for a reader that falls 10
	// behind, which a loaded machine can make happen while Chromium starts:
	// a line is sent again, under a new name, until one arrives.
	for deadline, n := time.Now().Add(15*time.Second), 0; !strings.Contains(logs, line) && time.Now().Before(deadline); n++ {
		if n%10 == 0 {
			if err := stack.sim.Log(id, "\x1b[32mINFO\x1b[0m "+line+strconv.Itoa(n/10)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		logs = b.text(`#dr-logs`)
	}
	if !strings.Contains(logs, line) {
		t.Errorf("log line not shown; the log view holds %q; simulator drops %d", logs, stack.sim.Snapshot().Drops)
	}
	b.noInjected("tunnel drawer")
	b.shot("nodepass-exporter-tunnel.png", false)

	// A tunnel that does not exist says so, instead of waiting forever.
	b.hash("#/tunnel/tokyo-1/deadbeef")
	b.waitFor("tunnel not found", `document.querySelector("#dr-notfound strong")`, 10*time.Second)
	if got := b.text(`#dr-notfound strong`); got != "Tunnel not found" {
		t.Errorf("not-found state %q", got)
	}
	b.shot("nodepass-exporter-tunnel-not-found.png", false)
	b.hash("#/master/no-such-master")
	b.waitFor("master not found", `document.querySelector("#dr-notfound strong")`, 10*time.Second)
	if got := b.text(`#dr-notfound strong`); got != "Master not found" {
		t.Errorf("master not-found state %q", got)
	}

	// Every view, in both languages: no key shows instead of a text, no
	// English text is left in the Chinese page, no untrusted markup runs.
	strs := map[string]map[string]string{}
	for _, lang := range []string{"en", "zh-CN"} {
		var table map[string]string
		if err := json.Unmarshal([]byte(b.eval(`(async () => JSON.stringify((await import("/assets/strings/`+lang+`.js")).default))()`)), &table); err != nil {
			t.Fatalf("strings %s: %v", lang, err)
		}
		strs[lang] = table
	}
	views := []struct{ hash, ready string }{
		{"#/tunnels", `#tunnels tbody tr`},
		{"#/masters", `#masters tbody tr`},
		{"#/services", `#services tbody tr`},
		{"#/plans", `#plans tbody tr`},
		{"#/alerts", `#alerts tbody tr`},
		{"#/master/tokyo-1", `#dr-stats .card`},
		{"#/tunnel/tokyo-1/" + id, `#dr-stats .card`},
		{"#/plan/tokyo-monthly", `[data-chart="cycles"] svg`},
	}
	svcs := serviceSIDs(t, stack.api.URL)
	if len(svcs) > 0 {
		views = append(views, struct{ hash, ready string }{"#/service/" + url.PathEscape(svcs[0]), `#dr-stats .card`})
	}
	for _, lang := range []string{"en", "zh-CN"} {
		b.eval(`localStorage.setItem("nodepass-exporter.lang", "` + lang + `"); ""`)
		b.do("reload", chromedp.Navigate(stack.api.URL+"/#/tunnels"), chromedp.Reload())
		b.waitFor("language "+lang, `document.documentElement.lang === "`+lang+`"`, 10*time.Second)
		for _, v := range views {
			b.hash(v.hash)
			b.waitFor(lang+" "+v.hash, `document.querySelector(`+strconv.Quote(v.ready)+`)`, 15*time.Second)
			time.Sleep(300 * time.Millisecond)
			body := b.eval(`document.body.innerText`)
			for key, en := range strs["en"] {
				if strings.Contains(body, key) {
					t.Errorf("%s %s: the key %q shows instead of a text", lang, v.hash, key)
				}
				if lang == "zh-CN" && len(en) >= 6 && strings.Contains(en, " ") && !strings.Contains(en, "{") && en != strs["zh-CN"][key] && strings.Contains(body, en) {
					t.Errorf("%s %s: English %q left in the Chinese page", lang, v.hash, en)
				}
			}
			b.noInjected(lang + " " + v.hash)
			if tab := b.text(`#tab-tunnels`); tab != strs[lang]["nav.tunnels"] {
				t.Errorf("%s: tab %q, want %q", lang, tab, strs[lang]["nav.tunnels"])
			}
		}
		b.hash("#/plans")
		b.waitFor("plans", `document.querySelector("#plans tbody tr")`, 10*time.Second)
		b.shot("nodepass-exporter-plans-"+lang+".png", true)
	}
	b.eval(`localStorage.setItem("nodepass-exporter.lang", "en"); ""`)
	b.do("reload", chromedp.Reload())
	b.waitFor("english again", `document.documentElement.lang === "en"`, 10*time.Second)

	// Services: every sid the API serves is in the table, as text; the
	// traffic is counted once.
	b.hash("#/services")
	b.waitFor("services", `document.querySelector("#services tbody tr")`, 10*time.Second)
	table := b.text(`#services tbody`)
	for _, sid := range svcs {
		if !strings.Contains(table, sid) {
			t.Errorf("service %q not in the table %q", sid, table)
		}
	}
	b.noInjected("services")
	b.shot("nodepass-exporter-services.png", true)
	// Plans: the hostile name as text, a use bar, the CSV link.
	b.hash("#/plans")
	b.waitFor("plans", `document.querySelectorAll("#plans tbody tr").length === 2`, 10*time.Second)
	if !strings.Contains(b.text(`#plans tbody`), hostileText) {
		t.Errorf("plans table %q lacks the hostile plan name as text", b.text(`#plans tbody`))
	}
	if n := b.count(`#plans .usebar svg .forecast`); n != 1 {
		t.Errorf("%d forecast markers, want 1 (the plan with a forecast)", n)
	}
	if href := b.eval(`document.querySelector('#plans a[href$="format=csv"]').getAttribute("href")`); !strings.HasPrefix(href, "/api/memory/plans/") {
		t.Errorf("CSV link %q", href)
	}
	b.hash("#/plan/tokyo-monthly")
	b.waitFor("plan drawer", `document.querySelector('[data-chart="cycles"] svg')`, 10*time.Second)
	if pts := b.eval(`document.querySelector('[data-chart="cycles"] svg').dataset.points`); pts == "0" {
		t.Error("the past cycles chart has no bars")
	}
	b.shot("nodepass-exporter-plan.png", false)
	// Alerts: firing and pending, labels as text.
	b.hash("#/alerts")
	b.waitFor("alerts", `document.querySelectorAll("#alerts tbody tr").length === 2`, 10*time.Second)
	if b.count(`#alerts .pill.firing`) != 1 || b.count(`#alerts .pill.pending`) != 1 {
		t.Errorf("alerts: want one firing and one pending, have %q", b.text(`#alerts tbody`))
	}
	b.noInjected("alerts")
	b.shot("nodepass-exporter-alerts.png", true)

	// A phone-sized window.
	b.hash("#/tunnels")
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile), chromedp.Sleep(time.Second))
	b.shot("nodepass-exporter-phone.png", true)
	b.do("desktop", chromedp.EmulateReset())

	// Everything so far must have run without a console error or warning.
	b.consoleClean()

	// Losing the exporter shows as disconnected, not as stale live data.
	stack.api.CloseClientConnections()
	stack.api.Listener.Close()
	b.waitFor("banner", `!document.querySelector("#banner").hidden`, 15*time.Second)
	if got := b.text(`#conn-text`); got != "Disconnected" {
		t.Errorf("connection state %q, want Disconnected", got)
	}
	b.shot("nodepass-exporter-disconnected.png", false)

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
	b.do("empty exporter", chromedp.Navigate(empty.URL+"/"))
	b.waitFor("empty state", `!document.querySelector("#empty").hidden`, 15*time.Second)
	if got := b.text(`#empty strong`); got != "No NodePass masters configured" {
		t.Errorf("empty state %q", got)
	}
	b.shot("nodepass-exporter-empty.png", false)
}

// serviceSIDs lists the sids GET /api/memory/services answers.
func serviceSIDs(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/api/memory/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Items []struct {
			SID string `json:"sid"`
		} `json:"items"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("GET /api/memory/services: %s", resp.Status)
	}
	var sids []string
	for _, it := range body.Items {
		sids = append(sids, it.SID)
	}
	return sids
}

// TestBrowserStrings checks the strings tables: both languages have the
// same keys, and every key the scripts ask for exists.
func TestBrowserStrings(t *testing.T) {
	keys := func(lang string) map[string]bool {
		src, err := os.ReadFile(filepath.Join("web", "assets", "strings", lang+".js"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s*"([a-zA-Z0-9_.]+)":`).FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
		if len(out) < 100 {
			t.Fatalf("%s: only %d keys read", lang, len(out))
		}
		return out
	}
	en, zh := keys("en"), keys("zh-CN")
	for k := range en {
		if !zh[k] {
			t.Errorf("zh-CN lacks %q", k)
		}
	}
	for k := range zh {
		if !en[k] {
			t.Errorf("en lacks %q", k)
		}
	}
	// A key is dotted words; "state." + s and the like are checked in the
	// page, where a missing key would show as itself.
	const key = `([a-zA-Z0-9_]+(?:\.[a-zA-Z0-9_]+)+)`
	used := regexp.MustCompile(`\bt\("` + key + `"|(?:label|emptyKey|searchKey|notFoundKey|titleKey|textKey): "` + key + `"|data-i18n="` + key + `"|:` + key + `[;"]`)
	checked := 0
	err := filepath.WalkDir("web", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "strings") || !(strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".html")) {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(src), -1) {
			k := m[1] + m[2] + m[3] + m[4]
			checked++
			if !en[k] {
				t.Errorf("%s uses %q, which no strings table has", path, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 150 {
		t.Errorf("only %d uses of keys found in the scripts: is the pattern still right?", checked)
	}
}

// TestBrowserDemoCharts runs the real binary with --demo and checks that
// the page's history charts have data points at once (--demo.history
// writes the simulated past first). It is skipped while the history route
// is not routed yet, and starts asserting as soon as it is.
func TestBrowserDemoCharts(t *testing.T) {
	probe := api.New(api.Options{Store: collector.NewStore(collector.Options{})}).Router()
	routed := func(path string) bool {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		var m mux.RouteMatch
		return probe.Match(req, &m) && m.MatchErr == nil
	}
	if !routed("/api/memory/endpoints/demo/tunnels/0a93e346/history?range=24h") {
		t.Skip("GET /api/memory/endpoints/{id}/tunnels/{instanceId}/history is not routed yet (it answers 404): " +
			"this check of the charts after --demo starts asserting once the history route is merged")
	}
	if testing.Short() {
		t.Skip("builds and runs the binary; not in -short")
	}
	b := newBrowser(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodepass-exporter")
	build := exec.Command("go", "build", "-o", bin, "../cmd/nodepass-exporter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out strings.Builder
	cmd := exec.Command(bin, "--demo", "--web.listen-address="+addr, "--storage.tsdb.path="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	var id string
	for deadline := time.Now().Add(60 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(base + "/api/memory/endpoints/demo/realtime?limit=1")
		if err != nil {
			continue
		}
		var body struct {
			Items   []struct{ InstanceID string } `json:"items"`
			Tunnels []struct{ InstanceID string } `json:"tunnels"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		for _, tn := range append(body.Items, body.Tunnels...) {
			id = tn.InstanceID
			break
		}
	}
	if id == "" {
		t.Fatalf("the demo master listed no tunnel within a minute:\n%s", out.String())
	}
	b.do("load", chromedp.Navigate(base+"/#/tunnel/demo/"+id))
	for _, c := range []string{"speed", "ping", "pool", "conns"} {
		b.waitFor("tunnel chart "+c, `Number((document.querySelector('[data-chart="`+c+`"] svg') || {dataset: {}}).dataset.points) > 0`, 30*time.Second)
	}
	b.shot("nodepass-exporter-demo-tunnel.png", false)
	b.hash("#/master/demo")
	for _, c := range []string{"cpu", "mem", "net", "daily"} {
		b.waitFor("master chart "+c, `Number((document.querySelector('[data-chart="`+c+`"] svg') || {dataset: {}}).dataset.points) > 0`, 30*time.Second)
	}
	b.shot("nodepass-exporter-demo-master.png", false)
	b.consoleClean()
}
