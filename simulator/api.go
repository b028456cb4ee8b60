package simulator

import (
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// The NodePass versions the simulator imitates (Options.Version; the "ver"
// of /info). Version is the default.
const (
	VersionV1 = "v1.14.0"
	VersionV2 = "v2.0.0-b10"
	Version   = VersionV1
)

// Handler returns the master's API: under BasePath()+"/v1", GET /events,
// GET and POST /info, GET /instances, and GET, PATCH and DELETE
// /instances/{id}, each guarded by the X-API-Key header as in NodePass.
// Answers are compact JSON with a trailing newline (json.Encoder), errors
// {"error":"..."}. Other paths get net/http's 404.
func (m *Master) Handler() http.Handler {
	mux := http.NewServeMux()
	p := m.basePath + "/v1"
	mux.HandleFunc(p+"/events", m.guard(m.serveEvents))
	mux.HandleFunc(p+"/info", m.guard(m.serveInfo))
	mux.HandleFunc(p+"/instances", m.guard(m.serveInstances))
	mux.HandleFunc(p+"/instances/", m.guard(m.serveInstance))
	return mux
}

func setCORSHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, PATCH, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-API-Key, Cache-Control")
}

// httpError writes {"error": msg} the way NodePass's httpError does.
func httpError(w http.ResponseWriter, msg string, code int) {
	body, _ := json.Marshal(map[string]string{"error": msg}) // cannot fail
	writeJSON(w, code, append(body, '\n'))
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	setCORSHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

// checkKey returns the error NodePass answers for the request's X-API-Key,
// or "" when the key is right.
func checkKey(r *http.Request, key string) string {
	got := r.Header.Get("X-API-Key")
	switch {
	case got == "":
		return "Unauthorized: API key required"
	case got != key:
		return "Unauthorized: Invalid API key"
	}
	return ""
}

// guard wraps an endpoint with what every NodePass API call goes through:
// a stall holds it, CORS preflight, then the API key.
func (m *Master) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !m.waitStall(r.Context(), m.done) && r.Context().Err() != nil {
			return // the client left during a stall; else Close ended it: 503 below
		}
		setCORSHeaders(w)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		m.mu.Lock()
		closed, key := m.closed, m.apiKey
		m.mu.Unlock()
		if closed {
			httpError(w, "Service unavailable", http.StatusServiceUnavailable)
			return
		}
		if msg := checkKey(r, key); msg != "" {
			httpError(w, msg, http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

// serveInfo is GET /info (host figures) and POST /info {"alias": ...}.
func (m *Master) serveInfo(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var req struct {
			Alias string `json:"alias"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			httpError(w, "Invalid request body", http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		m.alias = req.Alias
		m.mu.Unlock()
	default:
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	body, err := json.Marshal(m.Info(name))
	if err != nil {
		httpError(w, "Internal server error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, append(body, '\n'))
}

// Info returns the master's /info answer as NodePass builds it (a map, so
// encoding/json sorts the keys), with name as the "name" field.
func (m *Master) Info(name string) map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	info := map[string]any{
		"alias":      m.alias,
		"os":         runtime.GOOS,
		"arch":       runtime.GOARCH,
		"cpu":        m.info.cpu,
		"mem_total":  m.info.memTotal,
		"mem_used":   m.info.memUsed,
		"swap_total": uint64(0),
		"swap_used":  uint64(0),
		"netrx":      m.info.netRx,
		"nettx":      m.info.netTx,
		"diskr":      m.info.diskR,
		"diskw":      m.info.diskW,
		"sysup":      m.info.sysUp + seconds(now.Sub(m.born)),
		"ver":        m.version,
		"name":       name,
		"uptime":     seconds(now.Sub(m.started)),
		"log":        "info",
		"tls":        "0",
		"crt":        "",
		"key":        "",
		"mid":        m.masterID,
	}
	if m.version == VersionV2 {
		info["noc"] = runtime.NumCPU()
	}
	return info
}

func seconds(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Second)
}

// serveInstances is GET /instances: every instance, "********" first.
func (m *Master) serveInstances(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	body := make([]byte, 0, 64+(len(m.tunnels)+1)*700)
	body = append(body, '[')
	body = appendInstance(body, m.keyInstance())
	for _, t := range m.tunnels {
		body = append(body, ',')
		body = appendInstance(body, &t.instance)
	}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, append(body, "]\n"...))
}

// serveInstance is GET, PATCH and DELETE /instances/{id}. PATCH takes
// NodePass's {"alias": ..., "action": "start|stop|restart|reset"}; on
// "********" only {"action":"restart"} (a new API key).
func (m *Master) serveInstance(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, m.basePath+"/v1/instances/")
	if id == "" || id == "/" {
		httpError(w, "Instance ID is required", http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	_, ok := m.byID[id]
	m.mu.Unlock()
	if !ok && id != wire.PseudoInstanceID {
		httpError(w, "Instance not found", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		var req struct {
			Alias  string `json:"alias,omitempty"`
			Action string `json:"action,omitempty"`
		}
		if json.NewDecoder(r.Body).Decode(&req) == nil { // NodePass ignores a bad body
			m.patch(id, req.Alias, req.Action)
		}
	case http.MethodDelete:
		if id == wire.PseudoInstanceID {
			httpError(w, "Forbidden: API Key", http.StatusForbidden)
			return
		}
		if err := m.DeleteTunnel(id); err != nil {
			httpError(w, "Instance not found", http.StatusNotFound)
			return
		}
		setCORSHeaders(w)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	var in *instance
	if id == wire.PseudoInstanceID {
		in = m.keyInstance()
	} else if t, ok := m.byID[id]; ok {
		in = &t.instance
	}
	var body []byte
	if in != nil {
		body = append(appendInstance(nil, in), '\n')
	}
	m.mu.Unlock()
	if body == nil {
		httpError(w, "Instance not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (m *Master) patch(id, alias, action string) {
	if id == wire.PseudoInstanceID {
		if action == "restart" {
			m.RotateKey()
		}
		return
	}
	if alias != "" {
		_ = m.SetAlias(id, alias) // a concurrent delete makes this a no-op
	}
	switch action {
	case "reset":
		_ = m.ResetTunnel(id)
	case "start":
		_ = m.StartTunnel(id)
	case "stop":
		_ = m.StopTunnel(id)
	case "restart":
		_ = m.RestartTunnel(id)
	}
}
