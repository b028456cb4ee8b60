package dashboards

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestHandler serves the index, every embedded file byte for byte with its
// content type, answers a matching If-None-Match with 304, and refuses
// unknown paths and other methods with JSON errors.
func TestHandler(t *testing.T) {
	h := Handler()

	resp, body := serve(t, h, http.MethodGet, "/dashboards/", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("index: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var idx Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("index: %v\n%s", err, body)
	}
	uids := map[string]string{}
	for _, d := range idx.Dashboards {
		uids[d.UID] = d.Path
		if d.Title == "" {
			t.Errorf("index entry %s has no title", d.Path)
		}
	}
	for _, uid := range []string{"nodepass-overview", "nodepass-endpoint", "nodepass-tunnel"} {
		if uids[uid] == "" {
			t.Errorf("index lacks dashboard %s: %s", uid, body)
		}
	}

	served := 0
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := fs.ReadFile(FS(), p)
		resp, got := serve(t, h, http.MethodGet, Prefix+p, nil)
		if resp.StatusCode != http.StatusOK || string(got) != string(want) {
			t.Errorf("GET %s: %d, %d bytes, want the file's %d", Prefix+p, resp.StatusCode, len(got), len(want))
		}
		ct := resp.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(p, ".json") && ct != "application/json",
			strings.HasSuffix(p, ".yml") && !strings.HasPrefix(ct, "application/yaml"):
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", p)
		}
		resp, got = serve(t, h, http.MethodGet, Prefix+p, http.Header{"If-None-Match": {etag}})
		if resp.StatusCode != http.StatusNotModified || len(got) != 0 {
			t.Errorf("GET %s with its ETag: %d, %d bytes; want 304", p, resp.StatusCode, len(got))
		}
		resp, got = serve(t, h, http.MethodHead, Prefix+p, nil)
		if resp.StatusCode != http.StatusOK || len(got) != 0 {
			t.Errorf("HEAD %s: %d, %d bytes", p, resp.StatusCode, len(got))
		}
		served++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if served != len(idx.Dashboards)+len(idx.Files) || served < 8 {
		t.Errorf("served %d files, the index lists %d + %d", served, len(idx.Dashboards), len(idx.Files))
	}

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/dashboards/nope.json", http.StatusNotFound},
		{http.MethodGet, "/dashboards/../dashboards.go", http.StatusNotFound},
		{http.MethodGet, "/dashboards/rules", http.StatusNotFound},
		{http.MethodGet, "/dashboards/dashboards.go", http.StatusNotFound},
		{http.MethodGet, "/elsewhere/nodepass-overview.json", http.StatusNotFound},
		{http.MethodPost, "/dashboards/nodepass-overview.json", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/dashboards/", http.StatusMethodNotAllowed},
	} {
		resp, body := serve(t, h, c.method, c.path, nil)
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s; want %d with a JSON error", c.method, c.path, resp.StatusCode, body, c.status)
		}
	}
}

// ExampleHandler shows the mount in a router: the handler wants the full
// path, so it is mounted on the prefix without stripping it.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.Handle(Prefix, Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dashboards/nodepass-overview.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var d struct {
		UID string `json:"uid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Status, d.UID)
	// Output: 200 OK nodepass-overview
}
