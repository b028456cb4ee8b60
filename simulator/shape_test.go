package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// shapeOf lists every value of a JSON document as "path:kind", in document
// order, so two documents with the same keys in the same order and the same
// value types have the same shape. Children of meta.tags are left out:
// tags are data, not shape.
func shapeOf(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []string
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		kind := ""
		switch v := tok.(type) {
		case json.Delim:
			if v != '{' {
				return fmt.Errorf("unexpected %v at %s", v, path)
			}
			out = append(out, path+":object")
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				n := len(out)
				if err := walk(path + "." + k.(string)); err != nil {
					return err
				}
				if strings.HasSuffix(path, ".meta.tags") {
					out = out[:n]
				}
			}
			_, err = dec.Token()
			return err
		case string:
			kind = "string"
		case json.Number:
			kind = "number"
		case bool:
			kind = "bool"
		case nil:
			kind = "null"
		}
		out = append(out, path+":"+kind)
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data: %v", err)
	}
	return out, nil
}

// recordedEvents returns the data lines of a recording.
func recordedEvents(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(string(wiretest.Capture(t, name)), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}

// firstRecorded returns the first recorded data line with the given type
// and instance id ("" for any tunnel, i.e. not "********").
func firstRecorded(t *testing.T, events []string, typ, id string) string {
	t.Helper()
	for _, d := range events {
		var e wireEvent
		if err := json.Unmarshal([]byte(d), &e); err != nil {
			t.Fatal(err)
		}
		if e.Type != typ {
			continue
		}
		if e.Instance == nil || (id == "" && e.Instance.ID != wire.PseudoInstanceID) || (id != "" && e.Instance.ID == id) {
			return d
		}
	}
	t.Fatalf("no recorded %s event for %q", typ, id)
	return ""
}

func TestEventsMatchRecordingShape(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 3, Seed: 1})
	first := recordedEvents(t, wiretest.CaptureOne)
	second := recordedEvents(t, wiretest.CaptureAfterRestart)

	s := openStream(t, srv.URL, "/api", m.APIKey())
	if s.first != "retry: 3000\n\n" {
		t.Fatalf("stream starts with %q", s.first)
	}
	initial := s.skipInitial(3)
	id := m.CreateTunnel(TunnelSpec{Alias: "x"})
	if err := m.AddTraffic(id, 1, 2, 3, 4); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTunnel(id); err != nil {
		t.Fatal(err)
	}
	m.StopStream()
	var got []wireEvent
	for e := range s.events {
		got = append(got, e)
	}
	find := func(typ string) string {
		for _, e := range got {
			if e.Type == typ {
				return e.Raw
			}
		}
		t.Fatalf("simulator sent no %s event", typ)
		return ""
	}

	cases := []struct{ name, sim, recorded string }{
		{"initial ********", initial[0].Raw, firstRecorded(t, first, "initial", wire.PseudoInstanceID)},
		{"initial tunnel", initial[1].Raw, firstRecorded(t, second, "initial", "")},
		{"create", find("create"), firstRecorded(t, first, "create", "")},
		{"update", find("update"), firstRecorded(t, first, "update", "")},
		{"log", find("log"), firstRecorded(t, first, "log", "")},
		{"delete", find("delete"), firstRecorded(t, first, "delete", "")},
		{"shutdown", find("shutdown"), firstRecorded(t, first, "shutdown", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := shapeOf([]byte(c.recorded))
			if err != nil {
				t.Fatalf("recorded: %v", err)
			}
			gotShape, err := shapeOf([]byte(c.sim))
			if err != nil {
				t.Fatalf("simulated %s: %v", c.sim, err)
			}
			if !slices.Equal(gotShape, want) {
				t.Errorf("shape differs\n got %v\nwant %v\nsimulated: %s\n recorded: %s", gotShape, want, c.sim, c.recorded)
			}
		})
	}

	// The pseudo-instance carries the key, and URLs and log lines are
	// escaped the way NodePass's encoding/json escapes them.
	if initial[0].Instance.ID != wire.PseudoInstanceID || initial[0].Instance.URL != m.APIKey() {
		t.Errorf("first initial event is not the key pseudo-instance: %s", initial[0].Raw)
	}
	if !strings.Contains(initial[1].Raw, `\u0026mode=`) || strings.Contains(initial[1].Raw, "&") {
		t.Errorf("url not escaped like encoding/json: %s", initial[1].Raw)
	}
	if l := find("log"); !strings.Contains(l, `\u001b[`) {
		t.Errorf("log line without escaped colour codes: %s", l)
	}
}

func TestInfoMatchesRecordedKeys(t *testing.T) {
	m, srv := newTestMaster(t, Options{})
	body := get(t, srv.URL+"/api/v1/info", m.APIKey(), 200)
	var got, want map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wiretest.Recording(t, wiretest.InfoAnswer), &want); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("info lacks %q", k)
			continue
		}
		if fmt.Sprintf("%T", g) != fmt.Sprintf("%T", v) {
			t.Errorf("info %q is %T, recorded %T", k, g, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("info has %d keys, recorded %d", len(got), len(want))
	}
	if got["ver"] != Version || got["name"] != "127.0.0.1" {
		t.Errorf("ver/name = %v/%v", got["ver"], got["name"])
	}
}
