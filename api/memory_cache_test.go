package api

import (
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// TestRenderedBody: an answer is rendered again only when the state or the
// clock moved, and within the gap a changed state is served from the last
// rendering.
func TestRenderedBody(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	m := f.srv.memory
	var c renderedBody
	renders := 0
	render := func() any {
		renders++
		return map[string]int{"n": renders}
	}
	get := func() string { return string(c.get(m, render)) }

	m.caches.gap = time.Hour
	if got := get(); got != "{\"n\":1}\n" {
		t.Fatalf("first answer %q", got)
	}
	if get(); renders != 1 {
		t.Fatalf("unchanged state rendered %d times", renders)
	}
	f.apply("tokyo-1", wire.EventUpdate, inst{id: "aaaaaaa1", alias: "web", status: "running"})
	if got := get(); got != "{\"n\":1}\n" || renders != 1 {
		t.Fatalf("within the gap: %q after %d renderings, want the last answer", got, renders)
	}

	m.caches.gap = 0
	if got := get(); got != "{\"n\":2}\n" {
		t.Fatalf("after the gap: %q, want a new rendering", got)
	}
	get()
	f.store.SetConn("osaka", collector.StateDown, "refused")
	if get(); renders != 3 {
		t.Fatalf("a connection change rendered %d times in all, want 3", renders)
	}
	f.clock.Add(renderMaxAge)
	if get(); renders != 4 {
		t.Fatalf("the clock moved %v: rendered %d times in all, want 4", renderMaxAge, renders)
	}
}

// TestRenderedBodyCrowd: while one request renders, the others get the
// last answer at once instead of rendering too.
func TestRenderedBodyCrowd(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	m := f.srv.memory
	m.caches.gap = 0
	var c renderedBody
	c.get(m, func() any { return "old" })
	f.apply("tokyo-1", wire.EventUpdate, inst{id: "aaaaaaa1", alias: "web", status: "running"})

	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.get(m, func() any { close(started); <-release; return "new" })
	}()
	<-started
	for range 10 {
		if got := string(c.get(m, func() any { t.Error("rendered while another rendering was under way"); return "" })); got != "\"old\"\n" {
			t.Errorf("during the rendering: %q", got)
		}
	}
	close(release)
	wg.Wait()
	if got := string(c.get(m, func() any { return "newer" })); got != "\"new\"\n" {
		t.Errorf("after the rendering: %q", got)
	}
}
