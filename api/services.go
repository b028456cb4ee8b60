package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// serviceSortKeys are the sort keys of the services list; the first is the
// default.
var serviceSortKeys = []string{"sid", "alias", "type", "traffic", "mismatch"}

// serviceMemberJSON is one instance of a service.
type serviceMemberJSON struct {
	EndpointID string       `json:"endpointId"`
	InstanceID string       `json:"instanceId"`
	Alias      string       `json:"alias"`
	Type       string       `json:"type"`
	Status     string       `json:"status"`
	Role       string       `json:"role"` // "client" or "server"
	Traffic    countersJSON `json:"traffic"`
}

// serviceJSON is one row of the services list. A tunnel without a sid is
// a row of its own: "standalone", sid "", its one member; it is reached
// through its tunnel routes, not /services/{sid}.
type serviceJSON struct {
	SID        string              `json:"sid"`
	Alias      string              `json:"alias"`
	Type       string              `json:"type"`
	Standalone bool                `json:"standalone,omitempty"`
	Endpoints  []string            `json:"endpoints"`
	Members    []serviceMemberJSON `json:"members"`
	// Traffic is counted once: the client side (see collector.Service).
	Traffic countersJSON `json:"traffic"`
	// Mirrored is set when both sides are watched; Mismatch is then the
	// absolute difference per client counter since both were first seen.
	Mirrored bool          `json:"mirrored"`
	Mismatch *countersJSON `json:"mismatch"`
}

// servicesJSON answers GET /api/memory/services.
type servicesJSON struct {
	Source string        `json:"source"`
	Time   time.Time     `json:"time"`
	Total  int           `json:"total"`
	Limit  int           `json:"limit"`
	Offset int           `json:"offset"`
	Sort   string        `json:"sort"`
	Items  []serviceJSON `json:"items"`
}

// serviceDetailJSON answers GET /api/memory/services/{sid}.
type serviceDetailJSON struct {
	Source  string      `json:"source"`
	Time    time.Time   `json:"time"`
	Service serviceJSON `json:"service"`
}

func newService(svc *collector.Service) serviceJSON {
	out := serviceJSON{
		SID: clip(svc.SID, maxTextBytes), Alias: clip(svc.Alias, maxTextBytes), Type: clip(svc.Type, maxTextBytes),
		Traffic: newCounters(svc.Traffic), Mirrored: svc.Mirrored,
		Endpoints: []string{}, Members: []serviceMemberJSON{},
	}
	if svc.Mirrored {
		mm := newCounters(svc.Mismatch)
		out.Mismatch = &mm
	}
	seen := map[string]bool{}
	for _, side := range []struct {
		role string
		ms   []collector.ServiceMember
	}{{"client", svc.Clients}, {"server", svc.Servers}} {
		for _, mb := range side.ms {
			out.Members = append(out.Members, serviceMemberJSON{
				EndpointID: mb.Endpoint, InstanceID: mb.ID, Alias: clip(mb.Alias, maxTextBytes),
				Type: clip(mb.Type, maxTextBytes), Status: clip(mb.Status, maxTextBytes), Role: side.role,
				Traffic: newCounters(mb.Total),
			})
			if !seen[mb.Endpoint] {
				seen[mb.Endpoint] = true
				out.Endpoints = append(out.Endpoints, mb.Endpoint)
			}
		}
	}
	return out
}

// standalone is the row of a tunnel without a sid.
func standalone(endpoint string, t *collector.Tunnel) serviceJSON {
	role := "server"
	if t.Type == "client" {
		role = "client"
	}
	traffic := t.Total
	if role == "server" {
		traffic = collector.Mirror(traffic) // counted as its client would
	}
	return serviceJSON{
		Alias: clip(t.Alias, maxTextBytes), Standalone: true, Endpoints: []string{endpoint},
		Members: []serviceMemberJSON{{
			EndpointID: endpoint, InstanceID: t.ID, Alias: clip(t.Alias, maxTextBytes), Type: clip(t.Type, maxTextBytes),
			Status: clip(t.Status, maxTextBytes), Role: role, Traffic: newCounters(t.Total),
		}},
		Traffic: newCounters(traffic),
	}
}

// services lists the services and, as rows of their own, the tunnels
// without a sid; paged, sorted and searched like the realtime lists.
func (m *memoryAPI) services(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, serviceSortKeys)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var rows []serviceJSON
	for _, svc := range m.store.Services() {
		row := newService(&svc)
		if serviceMatches(p, &row) {
			rows = append(rows, row)
		}
	}
	m.store.View(func(v collector.StoreView) {
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			for _, id := range e.TunnelIDs() {
				t := e.Tunnel(id)
				if t.PeerSID == "" && p.matches(name, id, t.Alias, t.Type, t.Status) {
					rows = append(rows, standalone(name, t))
				}
			}
		}
	})
	keys := make([]sortRow, len(rows))
	for i := range rows {
		keys[i] = serviceSortRow(p.sort, &rows[i], i)
	}
	sortRows(keys, p.sort == "sid" || p.sort == "alias" || p.sort == "type", p.desc)
	from, to := p.window(len(rows))
	out := servicesJSON{Source: sourceMemory, Time: m.now(), Total: len(rows), Items: make([]serviceJSON, 0, to-from)}
	for _, k := range keys[from:to] {
		out.Items = append(out.Items, rows[k.index])
	}
	out.Limit, out.Offset, out.Sort = pageFields(p)
	m.hit()
	writeJSON(w, http.StatusOK, out)
}

func serviceMatches(p page, row *serviceJSON) bool {
	if p.matches(row.SID, row.Alias, row.Type) {
		return true
	}
	for _, mb := range row.Members {
		if p.matches(mb.EndpointID, mb.InstanceID, mb.Alias) {
			return true
		}
	}
	return false
}

func serviceSortRow(key string, row *serviceJSON, index int) sortRow {
	r := sortRow{index: index}
	switch key {
	case "sid":
		r.text = row.SID
	case "alias":
		r.text = row.Alias
	case "type":
		r.text = row.Type
	case "traffic":
		r.num = float64(row.Traffic.Total)
	case "mismatch":
		if row.Mismatch != nil {
			r.num = float64(row.Mismatch.Total)
		}
	}
	return r
}

// lookupService finds the service of the {sid} path variable, answering
// 404 itself when there is none.
func (m *memoryAPI) lookupService(w http.ResponseWriter, r *http.Request) (collector.Service, bool) {
	sid := mux.Vars(r)["sid"]
	svc, ok := m.store.Service(sid)
	if !ok {
		m.miss()
		writeError(w, http.StatusNotFound, "unknown service "+quote(sid))
	}
	return svc, ok
}

// service answers GET /api/memory/services/{sid}: both sides, their
// endpoints, the traffic counted once and the mirror mismatch.
func (m *memoryAPI) service(w http.ResponseWriter, r *http.Request) {
	svc, ok := m.lookupService(w, r)
	if !ok {
		return
	}
	m.hit()
	writeJSON(w, http.StatusOK, serviceDetailJSON{Source: sourceMemory, Time: m.now(), Service: newService(&svc)})
}

// serviceHours is a service's traffic in the last `hours` hours, counted
// once: from its hourly series (nodepass_service_hourly_traffic_bytes)
// where the hour was aggregated, and for the later hours its clients'
// hours, or its servers' mirrored when no client is watched. No hour
// carries points (collector.Hours.ServiceTraffic).
func (m *memoryAPI) serviceHours(r *http.Request, svc *collector.Service, hours int) ([]history.HourTraffic, error) {
	openMs := history.HourStart(m.now().UnixMilli())
	from := time.UnixMilli(openMs - int64(hours-1)*hourMs)
	members, mirrored := svc.Clients, false
	if len(members) == 0 {
		members, mirrored = svc.Servers, true
	}
	recent := func(from, to time.Time) ([]history.HourTraffic, error) {
		var sum []history.HourTraffic
		for _, mb := range members {
			hs, stored, err := m.hours.Traffic(r.Context(), collector.Selection{Endpoint: mb.Endpoint, Tunnel: mb.ID}, from, to)
			if stored {
				m.storageReads.Add(1)
			}
			if err != nil {
				return nil, err
			}
			if sum == nil {
				sum = make([]history.HourTraffic, len(hs))
				for i := range hs {
					sum[i].Hour = hs[i].Hour
				}
			}
			addHours(sum, hs, mirrored)
		}
		return sum, nil
	}
	hs, stored, err := m.hours.ServiceTraffic(r.Context(), svc.SID, from, time.UnixMilli(openMs+hourMs), recent)
	if stored {
		m.storageReads.Add(1)
	}
	return hs, err
}

// serviceTrend answers GET /api/memory/services/{sid}/traffic/trend.
func (m *memoryAPI) serviceTrend(w http.ResponseWriter, r *http.Request) {
	svc, ok := m.lookupService(w, r)
	if !ok {
		return
	}
	hours, err := m.parseHours(r)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	m.miss()
	hs, err := m.serviceHours(r, &svc, hours)
	if err != nil {
		m.logger.Warn("reading hourly traffic from storage", "err", err)
		writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
		return
	}
	writeTrend(w, hs)
}

// serviceDaily answers GET /api/memory/services/{sid}/traffic/daily.
func (m *memoryAPI) serviceDaily(w http.ResponseWriter, r *http.Request) {
	svc, ok := m.lookupService(w, r)
	if !ok {
		return
	}
	m.serveDaily(w, r, func(hours int) ([]history.HourTraffic, error) { return m.serviceHours(r, &svc, hours) })
}
