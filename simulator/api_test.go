package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// do sends a request with key (none if empty) and returns the body,
// failing unless the status is want.
func do(t *testing.T, method, url, key, body string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	return string(b)
}

func get(t *testing.T, url, key string, want int) string {
	t.Helper()
	return do(t, http.MethodGet, url, key, "", want)
}

func TestAuth(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 2, APIKey: "0123456789abcdef0123456789abcdef"})
	id := m.IDs()[0]
	paths := []string{"/api/v1/events", "/api/v1/info", "/api/v1/instances", "/api/v1/instances/" + id}
	keys := []struct {
		name, key, want string
	}{
		{"missing", "", `{"error":"Unauthorized: API key required"}` + "\n"},
		{"wrong", "ffffffffffffffffffffffffffffffff", `{"error":"Unauthorized: Invalid API key"}` + "\n"},
	}
	for _, p := range paths {
		for _, k := range keys {
			t.Run(p+"/"+k.name, func(t *testing.T) {
				if got := get(t, srv.URL+p, k.key, http.StatusUnauthorized); got != k.want {
					t.Errorf("body %q, want %q", got, k.want)
				}
			})
		}
	}
	t.Run("right key", func(t *testing.T) {
		get(t, srv.URL+"/api/v1/info", m.APIKey(), http.StatusOK)
	})
}

func TestInstances(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 5, Seed: 3, BasePath: "/np/"})
	key := m.APIKey()
	get(t, srv.URL+"/api/v1/instances", key, http.StatusNotFound) // only the configured base

	var list []wiretest.Instance
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/np/v1/instances", key, 200)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 || list[0].ID != wire.PseudoInstanceID || list[0].URL != key {
		t.Fatalf("list: %+v", list)
	}
	for i, id := range m.IDs() {
		if list[i+1].ID != id {
			t.Errorf("list[%d] = %s, want %s", i+1, list[i+1].ID, id)
		}
	}
	id := list[3].ID
	var one wiretest.Instance
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/np/v1/instances/"+id, key, 200)), &one); err != nil {
		t.Fatal(err)
	}
	if one.ID != id || counters(&one) != counters(&list[3]) {
		t.Errorf("get %s = %+v", id, one)
	}
	if got := get(t, srv.URL+"/np/v1/instances/deadbeef", key, 404); got != `{"error":"Instance not found"}`+"\n" {
		t.Errorf("404 body %q", got)
	}

	// PATCH and DELETE go through the same paths as the control methods.
	do(t, http.MethodPatch, srv.URL+"/np/v1/instances/"+id, key, `{"action":"reset"}`, 200)
	if c, _ := m.Counters(id); c != (Counters{}) {
		t.Errorf("after PATCH reset: %+v", c)
	}
	do(t, http.MethodDelete, srv.URL+"/np/v1/instances/"+wire.PseudoInstanceID, key, "", http.StatusForbidden)
	do(t, http.MethodDelete, srv.URL+"/np/v1/instances/"+id, key, "", http.StatusNoContent)
	if _, ok := m.Counters(id); ok {
		t.Error("tunnel still there after DELETE")
	}
	body := do(t, http.MethodPatch, srv.URL+"/np/v1/instances/"+wire.PseudoInstanceID, key, `{"action":"restart"}`, 200)
	if m.APIKey() == key || !strings.Contains(body, m.APIKey()) {
		t.Errorf("key not rotated: %s", body)
	}
}

// TestVersions: the simulator speaks either NodePass version's wire shapes
// (issue 14, item 8): /info's ver and noc, the instance config's lbs, and
// v2's update of ******** with the new key before a rotation's shutdown.
func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		version, wantVer string
		noc, lbs         bool
		keyUpdate        bool
	}{
		{"", VersionV1, false, false, false},
		{VersionV1, VersionV1, false, false, false},
		{VersionV2, VersionV2, true, true, true},
	} {
		t.Run(tc.wantVer+"/"+tc.version, func(t *testing.T) {
			m, srv := newTestMaster(t, Options{Version: tc.version, Tunnels: 1})
			info := get(t, srv.URL+"/api/v1/info", m.APIKey(), http.StatusOK)
			if !strings.Contains(info, `"ver":"`+tc.wantVer+`"`) || strings.Contains(info, `"noc":`) != tc.noc {
				t.Errorf("/info = %s", info)
			}
			list := get(t, srv.URL+"/api/v1/instances", m.APIKey(), http.StatusOK)
			if strings.Contains(list, "lbs=0") != tc.lbs {
				t.Errorf("/instances config lbs: %s", list)
			}
			s := openStream(t, srv.URL, "/api", m.APIKey())
			defer s.close()
			s.skipInitial(1)
			newKey := m.RotateKey()
			e := s.next()
			if tc.keyUpdate {
				if e.Type != "update" || e.Instance == nil || e.Instance.ID != wire.PseudoInstanceID || e.Instance.URL != newKey {
					t.Fatalf("want the update of ******** with the new key, got %s", e.Raw)
				}
				e = s.next()
			}
			if e.Type != "shutdown" {
				t.Fatalf("want shutdown, got %s", e.Raw)
			}
		})
	}
}
