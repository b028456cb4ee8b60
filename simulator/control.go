package simulator

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// ControlHandler returns a small HTTP API for driving the master by hand or
// from scripts, meant to be mounted at "/sim/" beside Handler. Every call
// needs the master's current X-API-Key. Routes:
//
//	POST /sim/tunnels                     create; JSON body {"id","alias","type","mode","tags","stopped","traffic":{"tcprx",...}} (all optional); answers {"id":...}
//	POST /sim/tunnels/{id}/reset          also restart, stop, start, delete
//	POST /sim/tunnels/{id}/traffic?tcprx=&tcptx=&udprx=&udptx=
//	POST /sim/tunnels/{id}/status?status=error
//	POST /sim/tunnels/{id}/alias?alias=new-name
//	POST /sim/tunnels/{id}/log            body: one raw log line
//	POST /sim/stream/stop                 shutdown event, streams end
//	POST /sim/restart?stale=1             master restart (stale: older counters come back)
//	POST /sim/rotate-key                  answers {"apiKey":...}
//	POST /sim/stall?d=10s                 silence for d (d=0 ends a stall)
//	POST /sim/tick                        one report interval now
//	POST /sim/save                        persist counters (the point a stale restart returns to)
//	GET  /sim/truth                       Snapshot as JSON
//	GET  /sim/subscribers                 SubscriberStats as JSON
//
// Successful calls without a body of their own answer {"ok":true}.
func (m *Master) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/tunnels", m.ctlCreate)
	mux.HandleFunc("POST /sim/tunnels/{id}/{action}", m.ctlTunnel)
	mux.HandleFunc("POST /sim/stream/stop", func(w http.ResponseWriter, _ *http.Request) {
		m.StopStream()
		writeOK(w)
	})
	mux.HandleFunc("POST /sim/restart", func(w http.ResponseWriter, r *http.Request) {
		stale, _ := strconv.ParseBool(r.URL.Query().Get("stale")) // absent or bad: a clean restart
		m.Restart(stale)
		writeOK(w)
	})
	mux.HandleFunc("POST /sim/rotate-key", func(w http.ResponseWriter, _ *http.Request) {
		writeValue(w, http.StatusOK, map[string]string{"apiKey": m.RotateKey()})
	})
	mux.HandleFunc("POST /sim/stall", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			httpError(w, "bad duration d: "+err.Error(), http.StatusBadRequest)
			return
		}
		m.Stall(d)
		writeOK(w)
	})
	mux.HandleFunc("POST /sim/tick", func(w http.ResponseWriter, _ *http.Request) {
		m.Tick()
		writeOK(w)
	})
	mux.HandleFunc("POST /sim/save", func(w http.ResponseWriter, _ *http.Request) {
		m.Save()
		writeOK(w)
	})
	mux.HandleFunc("GET /sim/truth", func(w http.ResponseWriter, _ *http.Request) {
		writeValue(w, http.StatusOK, m.Snapshot())
	})
	mux.HandleFunc("GET /sim/subscribers", func(w http.ResponseWriter, _ *http.Request) {
		writeValue(w, http.StatusOK, m.SubscriberStats())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		key := m.apiKey
		m.mu.Unlock()
		if msg := checkKey(r, key); msg != "" {
			httpError(w, msg, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeOK(w http.ResponseWriter) { writeJSON(w, http.StatusOK, []byte("{\"ok\":true}\n")) }

func writeValue(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		httpError(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, code, append(body, '\n'))
}

// createRequest is the body of POST /sim/tunnels: the fields of
// TunnelSpec; a field added to TunnelSpec must be added here and in spec.
type createRequest struct {
	ID      string            `json:"id"`
	Alias   string            `json:"alias"`
	Type    string            `json:"type"`
	Mode    int32             `json:"mode"`
	Tags    map[string]string `json:"tags"`
	Stopped bool              `json:"stopped"`
	Traffic counterFields     `json:"traffic"`
}

func (r *createRequest) spec() TunnelSpec {
	return TunnelSpec{ID: r.ID, Alias: r.Alias, Type: r.Type, Mode: r.Mode, Tags: r.Tags, Stopped: r.Stopped, Traffic: r.Traffic.counters()}
}

// counterFields is how the control API spells Counters: an object with
// NodePass's names for them.
type counterFields struct {
	TCPRx uint64 `json:"tcprx"`
	TCPTx uint64 `json:"tcptx"`
	UDPRx uint64 `json:"udprx"`
	UDPTx uint64 `json:"udptx"`
}

func fieldsOf(c Counters) counterFields {
	return counterFields{TCPRx: c[history.TCPRx], TCPTx: c[history.TCPTx], UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx]}
}

func (f counterFields) counters() Counters {
	return Counters{history.TCPRx: f.TCPRx, history.TCPTx: f.TCPTx, history.UDPRx: f.UDPRx, history.UDPTx: f.UDPTx}
}

// MarshalJSON writes t as GET /sim/truth answers it: the counters as
// objects (counterFields), the fields in the order of TunnelTruth.
func (t TunnelTruth) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID         string        `json:"id"`
		Alias      string        `json:"alias"`
		Type       string        `json:"type"`
		Status     string        `json:"status"`
		Raw        counterFields `json:"raw"`
		Initial    counterFields `json:"initial"`
		Generated  counterFields `json:"generated"`
		RolledBack counterFields `json:"rolledBack"`
		Resets     int           `json:"resets"`
		Deleted    bool          `json:"deleted"`
	}{t.ID, t.Alias, t.Type, t.Status, fieldsOf(t.Raw), fieldsOf(t.Initial), fieldsOf(t.Generated), fieldsOf(t.RolledBack), t.Resets, t.Deleted})
}

func (m *Master) ctlCreate(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		httpError(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := m.CreateTunnel(req.spec())
	if id == "" {
		httpError(w, "Instance ID already exists", http.StatusConflict)
		return
	}
	writeValue(w, http.StatusCreated, map[string]string{"id": id})
}

func (m *Master) ctlTunnel(w http.ResponseWriter, r *http.Request) {
	id, q := r.PathValue("id"), r.URL.Query()
	var err error
	switch r.PathValue("action") {
	case "reset":
		err = m.ResetTunnel(id)
	case "restart":
		err = m.RestartTunnel(id)
	case "stop":
		err = m.StopTunnel(id)
	case "start":
		err = m.StartTunnel(id)
	case "delete":
		err = m.DeleteTunnel(id)
	case "status":
		err = m.SetStatus(id, q.Get("status"))
	case "alias":
		err = m.SetAlias(id, q.Get("alias"))
	case "traffic":
		var v [4]uint64
		for i, k := range [4]string{"tcprx", "tcptx", "udprx", "udptx"} {
			if s := q.Get(k); s != "" {
				if v[i], err = strconv.ParseUint(s, 10, 64); err != nil {
					httpError(w, "bad "+k+": "+err.Error(), http.StatusBadRequest)
					return
				}
			}
		}
		err = m.AddTraffic(id, v[0], v[1], v[2], v[3])
	case "log":
		line, rerr := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if rerr != nil {
			httpError(w, "read body: "+rerr.Error(), http.StatusBadRequest)
			return
		}
		err = m.Log(id, string(line))
	default:
		httpError(w, "unknown action", http.StatusNotFound)
		return
	}
	switch {
	case errors.Is(err, ErrUnknownTunnel):
		httpError(w, "Instance not found", http.StatusNotFound)
	case err != nil:
		httpError(w, err.Error(), http.StatusServiceUnavailable)
	default:
		writeOK(w)
	}
}
