// Package dashboards holds what an operator puts around nodepass-exporter:
// Grafana dashboards (*.json: overview, master, tunnel, plans), Grafana
// provisioning files (provisioning/), and Prometheus recording rules,
// alerts and runbook (rules/) with their promtool unit tests
// (rules/tests/). The files are compiled into the binary and served under
// /dashboards/ by [Handler], so
// `curl http://exporter:9834/dashboards/nodepass-overview.json` fetches the
// dashboard that matches the running version.
//
// Every dashboard picks its data sources through two template variables:
// ${datasource}, a Prometheus that scrapes the exporter's /metrics (live
// state, rates), and ${history}, the exporter's own query API over its
// embedded TSDB, or the remote_write target it forwards history to (the
// nodepass_tunnel_hourly_* and nodepass_tunnel_window_* series).
//
// Two query variables, job and instance, pick the exporter(s) among all the
// live Prometheus scrapes: every live query filters on
// {job=~"$job", instance=~"$instance"}. History queries do not, because
// the exporter's own TSDB has neither label; ${history} names the exporter
// there.
package dashboards

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// files are the dashboards, provisioning files and rules. An embed.FS is
// read-only, so this package-level variable is no mutable state.
//
//go:embed *.json provisioning rules
var files embed.FS

// Prefix is the URL path under which [Handler] serves the files.
const Prefix = "/dashboards/"

// FS returns the embedded files: the dashboards at the root (*.json),
// provisioning/datasources/*.yml, provisioning/dashboards/*.yml and
// rules/* (recording rules, alerts, their promtool tests, the runbook).
func FS() fs.FS { return files }

// IndexEntry describes one served file in the index at [Prefix].
type IndexEntry struct {
	// Path is the URL path of the file, under [Prefix].
	Path string `json:"path"`
	// UID and Title are set for Grafana dashboards.
	UID   string `json:"uid,omitempty"`
	Title string `json:"title,omitempty"`
}

// Index is the JSON answer of GET /dashboards/.
type Index struct {
	Dashboards []IndexEntry `json:"dashboards"`
	Files      []IndexEntry `json:"files"`
}

// file is one served file, read once when the handler is built.
type file struct {
	body        []byte
	contentType string
	etag        string
}

type handler struct {
	files map[string]file // by path relative to Prefix
	index []byte
}

// Handler returns an http.Handler that serves [FS] under [Prefix]: GET or
// HEAD of /dashboards/ answers an [Index] as JSON, /dashboards/NAME a file
// (with an ETag, so Grafana or a script can poll cheaply). Other paths get
// 404 and other methods 405, both as JSON {"error": "..."}. The handler
// expects the full request path (mount it on a path prefix, without
// stripping it) and is safe for concurrent use.
func Handler() http.Handler {
	h := &handler{files: map[string]file{}}
	var idx Index
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.files[p] = file{body: body, contentType: contentType(p), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		entry := IndexEntry{Path: Prefix + p}
		if path.Dir(p) == "." && path.Ext(p) == ".json" {
			var d struct {
				UID   string `json:"uid"`
				Title string `json:"title"`
			}
			if json.Unmarshal(body, &d) == nil {
				entry.UID, entry.Title = d.UID, d.Title
			}
			idx.Dashboards = append(idx.Dashboards, entry)
			return nil
		}
		idx.Files = append(idx.Files, entry)
		return nil
	})
	sort.Slice(idx.Dashboards, func(i, j int) bool { return idx.Dashboards[i].Path < idx.Dashboards[j].Path })
	sort.Slice(idx.Files, func(i, j int) bool { return idx.Files[i].Path < idx.Files[j].Path })
	h.index, _ = json.MarshalIndent(idx, "", "  ")
	h.index = append(h.index, '\n')
	return h
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".json":
		return "application/json"
	case ".yml", ".yaml":
		return "application/yaml; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	default:
		return "text/plain; charset=utf-8"
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	if name == "" {
		w.Header().Set("Content-Type", "application/json")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.index))
		return
	}
	f, ok := h.files[name]
	if !ok {
		writeError(w, http.StatusNotFound, "no such file: "+Prefix+name)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// writeError answers {"error": msg} as the rest of the exporter does.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
