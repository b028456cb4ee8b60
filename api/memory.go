package api

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// sourceMemory marks every body of the memory API, so a front end that also
// reads a database-backed API can tell the two apart.
const sourceMemory = "memory"

// Bounds on what a master's strings may put into one answer. The collector
// already bounds a whole event, but a single alias could still be megabytes;
// a dashboard needs the first few hundred bytes at most.
const (
	maxTextBytes = 256  // alias, type, status, peer fields, tag keys and values
	maxURLBytes  = 1024 // tunnel URL
	maxTags      = 32   // tags per tunnel
	maxLogBytes  = 4096 // one log line
)

// countersJSON is a set of the four traffic figures (bytes, or bytes/s for
// rates) with their sums per direction and in all.
type countersJSON struct {
	TCPRx uint64 `json:"tcpRx"`
	TCPTx uint64 `json:"tcpTx"`
	UDPRx uint64 `json:"udpRx"`
	UDPTx uint64 `json:"udpTx"`
	Rx    uint64 `json:"rx"`
	Tx    uint64 `json:"tx"`
	Total uint64 `json:"total"`
}

func newCounters(c history.Counters) countersJSON {
	return countersJSON{
		TCPRx: c[history.TCPRx], TCPTx: c[history.TCPTx],
		UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx],
		Rx:    c[history.TCPRx] + c[history.UDPRx],
		Tx:    c[history.TCPTx] + c[history.UDPTx],
		Total: c.Sum(),
	}
}

// tunnelJSON is one tunnel in lists: what a row of a dashboard shows.
type tunnelJSON struct {
	EndpointID string       `json:"endpointId"`
	InstanceID string       `json:"instanceId"`
	Alias      string       `json:"alias"`
	Type       string       `json:"type"`
	Status     string       `json:"status"`
	Mode       int64        `json:"mode"`
	Ping       int64        `json:"ping"`
	Pool       int64        `json:"pool"`
	TCPs       int64        `json:"tcps"`
	UDPs       int64        `json:"udps"`
	Traffic    countersJSON `json:"traffic"`
	Rate       countersJSON `json:"rate"`
	Stale      bool         `json:"stale,omitempty"`
	LastEvent  time.Time    `json:"lastEvent,omitzero"`
}

// peerJSON is the tunnel's peer as NodePass's meta.peer reports it.
type peerJSON struct {
	SID   string `json:"sid"`
	Type  string `json:"type"`
	Alias string `json:"alias"`
}

// hourJSON is the open hourly bucket of a tunnel.
type hourJSON struct {
	HourTime time.Time    `json:"hourTime,omitzero"`
	Traffic  countersJSON `json:"traffic"`
	Points   uint64       `json:"points"`
}

// tunnelDetailJSON is the full state of one tunnel: the realtime answer and
// the payload of the SSE "tunnel" event.
type tunnelDetailJSON struct {
	tunnelJSON
	URL        string            `json:"url"`
	Restart    bool              `json:"restart"`
	Peer       *peerJSON         `json:"peer,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Raw        countersJSON      `json:"raw"`
	Hour       hourJSON          `json:"hour"`
	LastPoint  time.Time         `json:"lastPoint,omitzero"`
	MasterTime string            `json:"masterTime,omitempty"`
}

// clip cuts s to at most n bytes on a rune boundary. Strings in the Store
// are valid UTF-8 already.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// redactURL hides the user part of a tunnel URL. NodePass takes a tunnel's
// shared key from it, and the page is for people who may watch a tunnel
// but not join it. The rest of the URL is kept byte for byte.
func redactURL(raw string) string {
	raw = clip(raw, maxURLBytes)
	start := strings.Index(raw, "://")
	if start < 0 {
		start = 0
	} else {
		start += len("://")
	}
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(raw[start:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:start] + "****" + raw[start+at:]
}

// newTunnel copies a tunnel's list figures. The caller holds the read lock.
func newTunnel(endpoint string, t *collector.Tunnel) tunnelJSON {
	return tunnelJSON{
		EndpointID: endpoint,
		InstanceID: t.ID,
		Alias:      clip(t.Alias, maxTextBytes),
		Type:       clip(t.Type, maxTextBytes),
		Status:     clip(t.Status, maxTextBytes),
		Mode:       t.Mode, Ping: t.Ping, Pool: t.Pool, TCPs: t.TCPs, UDPs: t.UDPs,
		Traffic:   newCounters(t.Total),
		Rate:      newCounters(t.Rate),
		Stale:     t.Stale(),
		LastEvent: utc(t.LastEvent),
	}
}

// newTunnelDetail copies a tunnel's full state. The caller holds the read
// lock.
func newTunnelDetail(endpoint string, t *collector.Tunnel) tunnelDetailJSON {
	d := tunnelDetailJSON{
		tunnelJSON: newTunnel(endpoint, t),
		URL:        redactURL(t.URL),
		Restart:    t.Restart,
		Raw:        newCounters(t.Raw),
		Hour:       newHour(&t.Hour),
		LastPoint:  utc(t.LastPoint),
		MasterTime: clip(t.MasterTime(), maxTextBytes),
	}
	if t.PeerSID != "" || t.PeerType != "" || t.PeerAlias != "" {
		d.Peer = &peerJSON{
			SID:   clip(t.PeerSID, maxTextBytes),
			Type:  clip(t.PeerType, maxTextBytes),
			Alias: clip(t.PeerAlias, maxTextBytes),
		}
	}
	if len(t.Tags) > 0 {
		d.Tags = make(map[string]string, min(len(t.Tags), maxTags))
		for _, tag := range t.Tags[:min(len(t.Tags), maxTags)] {
			d.Tags[clip(tag.Key, maxTextBytes)] = clip(tag.Value, maxTextBytes)
		}
	}
	return d
}

func newHour(h *history.Hour) hourJSON {
	if !h.Open() {
		return hourJSON{}
	}
	return hourJSON{
		HourTime: time.UnixMilli(h.Start).UTC(),
		Traffic:  newCounters(history.Counters(h.Traffic)),
		Points:   h.Points,
	}
}

// utc returns t in UTC, keeping the zero time zero (omitted by omitzero).
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// clipLogs bounds each log line of a tunnel.
func clipLogs(lines []string) []string {
	for i, l := range lines {
		lines[i] = clip(l, maxLogBytes)
	}
	return lines
}

// tunnelCounts counts tunnels by status.
type tunnelCounts struct {
	Total   int `json:"total"`
	Running int `json:"running"`
	Stopped int `json:"stopped"`
	Error   int `json:"error"`
	Other   int `json:"other"`
}

func (c *tunnelCounts) add(status string) {
	c.Total++
	switch status {
	case "running":
		c.Running++
	case "stopped":
		c.Stopped++
	case "error":
		c.Error++
	default:
		c.Other++
	}
}

// infoJSON is a master's host figures from its /info.
type infoJSON struct {
	Version       string    `json:"version"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	Name          string    `json:"name"`
	Alias         string    `json:"alias"`
	CPUPercent    float64   `json:"cpuPercent"`
	MemUsed       uint64    `json:"memUsed"`
	MemTotal      uint64    `json:"memTotal"`
	NetRx         uint64    `json:"netRx"`
	NetTx         uint64    `json:"netTx"`
	UptimeSeconds uint64    `json:"uptimeSeconds"`
	Updated       time.Time `json:"updated"`
}

// endpointJSON is one master with its summary; Tunnels is filled by the
// realtime answers and left out of the dashboard.
type endpointJSON struct {
	ID         string       `json:"id"`
	State      string       `json:"state"`
	Since      time.Time    `json:"since,omitzero"`
	LastError  string       `json:"lastError,omitempty"`
	LastEvent  time.Time    `json:"lastEvent,omitzero"`
	Reconnects uint64       `json:"reconnects"`
	Info       *infoJSON    `json:"info,omitempty"`
	Counts     tunnelCounts `json:"tunnelCounts"`
	Traffic    countersJSON `json:"traffic"`
	Rate       countersJSON `json:"rate"`
	Tunnels    []tunnelJSON `json:"tunnels,omitzero"` // [] in realtime answers, absent in the dashboard
}

// newEndpoint summarises an endpoint, and lists its tunnels when withTunnels
// is set. The caller holds the read lock.
func newEndpoint(e *collector.Endpoint, withTunnels bool) endpointJSON {
	out := endpointJSON{
		ID:         e.Name,
		State:      string(e.Conn.State),
		Since:      utc(e.Conn.Since),
		LastError:  clip(e.Conn.LastError, maxURLBytes),
		LastEvent:  utc(e.Conn.LastEvent),
		Reconnects: e.Reconnects,
	}
	if e.Info.Valid {
		i := &e.Info
		out.Info = &infoJSON{
			Version: clip(i.Version, maxTextBytes), OS: clip(i.OS, maxTextBytes), Arch: clip(i.Arch, maxTextBytes),
			Name: clip(i.Name, maxTextBytes), Alias: clip(i.Alias, maxTextBytes),
			CPUPercent: i.CPUPercent, MemUsed: i.MemUsed, MemTotal: i.MemTotal, NetRx: i.NetRx, NetTx: i.NetTx,
			UptimeSeconds: i.Uptime, Updated: utc(i.LastUpdated),
		}
	}
	ids := e.TunnelIDs()
	if withTunnels {
		out.Tunnels = make([]tunnelJSON, 0, len(ids))
	}
	var total, rate history.Counters
	for _, id := range ids {
		t := e.Tunnel(id)
		out.Counts.add(t.Status)
		for i := range total {
			total[i] += t.Total[i]
			rate[i] += t.Rate[i]
		}
		if withTunnels {
			out.Tunnels = append(out.Tunnels, newTunnel(e.Name, t))
		}
	}
	out.Traffic, out.Rate = newCounters(total), newCounters(rate)
	return out
}

// endpointsRealtimeJSON answers GET /api/memory/endpoints/realtime?limit=all
// (the whole list; realtime_page.go pages it by default).
type endpointsRealtimeJSON struct {
	Source    string         `json:"source"`
	Time      time.Time      `json:"time"`
	Total     int            `json:"total"` // tunnels
	Endpoints []endpointJSON `json:"endpoints"`
}

// endpointRealtimeJSON answers GET /api/memory/endpoints/{id}/realtime.
type endpointRealtimeJSON struct {
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	endpointJSON
}

// tunnelRealtimeJSON answers GET .../tunnels/{instanceId}/realtime.
type tunnelRealtimeJSON struct {
	Source string           `json:"source"`
	Time   time.Time        `json:"time"`
	Tunnel tunnelDetailJSON `json:"tunnel"`
	Logs   []string         `json:"logs"`
}

// endpointsRealtime lists a page of tunnels (realtime_page.go), or with
// limit=all every tunnel, rendered at most once per renderGap
// (memory_cache.go): at 10,000 tunnels that answer is megabytes.
func (m *memoryAPI) endpointsRealtime(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, tunnelSortKeys)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !p.all {
		m.endpointsPage(w, p)
		return
	}
	body := m.caches.endpoints.get(m, m.endpointsRealtimeAnswer)
	m.hit()
	writeBody(w, body)
}

func (m *memoryAPI) endpointsRealtimeAnswer() any {
	out := endpointsRealtimeJSON{Source: sourceMemory, Time: m.now()}
	m.store.View(func(v collector.StoreView) {
		names := v.EndpointNames()
		out.Endpoints = make([]endpointJSON, 0, len(names))
		for _, name := range names {
			out.Endpoints = append(out.Endpoints, newEndpoint(v.Endpoint(name), true))
			out.Total += len(out.Endpoints[len(out.Endpoints)-1].Tunnels)
		}
	})
	return out
}

func (m *memoryAPI) endpointRealtime(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["id"]
	p, err := parsePage(r, tunnelSortKeys)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !p.all {
		m.endpointPage(w, p, name)
		return
	}
	out := endpointRealtimeJSON{Source: sourceMemory, Time: m.now()}
	found := false
	m.store.View(func(v collector.StoreView) {
		if e := v.Endpoint(name); e != nil {
			found = true
			out.endpointJSON = newEndpoint(e, true)
		}
	})
	if !found {
		m.miss()
		writeError(w, http.StatusNotFound, "unknown endpoint "+quote(name))
		return
	}
	m.hit()
	writeJSON(w, http.StatusOK, out)
}

func (m *memoryAPI) tunnelRealtime(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	name, id := vars["id"], vars["instanceId"]
	out := tunnelRealtimeJSON{Source: sourceMemory, Time: m.now()}
	var err error
	m.store.View(func(v collector.StoreView) {
		var t *collector.Tunnel
		if _, t, err = findTunnel(v, name, id); err == nil {
			out.Tunnel = newTunnelDetail(name, t)
			out.Logs, _ = t.LogsSince(0)
		}
	})
	if err != nil {
		m.miss()
		writeError(w, http.StatusNotFound, notFoundMessage(err, name, id))
		return
	}
	out.Logs = clipLogs(out.Logs)
	if out.Logs == nil {
		out.Logs = []string{}
	}
	m.hit()
	writeJSON(w, http.StatusOK, out)
}

// notFoundMessage words a lookup error of findTunnel.
func notFoundMessage(err error, endpoint, id string) string {
	if errors.Is(err, errNoEndpoint) {
		return "unknown endpoint " + quote(endpoint)
	}
	if endpoint == "" {
		return "unknown tunnel " + quote(id)
	}
	return "unknown tunnel " + quote(id) + " on endpoint " + quote(endpoint)
}

// quote quotes an untrusted path value for an error message, bounded so an
// error body stays small.
func quote(s string) string {
	return `"` + strings.ToValidUTF8(clip(s, 64), "\uFFFD") + `"`
}
