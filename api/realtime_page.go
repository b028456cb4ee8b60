package api

import (
	"net/http"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// tunnelSortKeys are the sort keys of the realtime tunnel lists; the first
// is the default (endpoint name, then tunnel id). Numbers sort by their
// value: traffic and rate by the sum of the four counters.
var tunnelSortKeys = []string{"endpoint", "id", "alias", "type", "status", "traffic", "rate", "ping", "pool", "tcps", "udps"}

// tunnelPageJSON is a page of GET /api/memory/endpoints/realtime: every
// endpoint's summary with the page's tunnels of that endpoint (so a reader
// of the whole-list form keeps working), and the page itself in "items".
type tunnelPageJSON struct {
	Source    string         `json:"source"`
	Time      time.Time      `json:"time"`
	Total     int            `json:"total"`
	Limit     int            `json:"limit"`
	Offset    int            `json:"offset"`
	Sort      string         `json:"sort"`
	Endpoints []endpointJSON `json:"endpoints"`
	Items     []tunnelJSON   `json:"items"`
}

// endpointPageJSON is a page of GET /api/memory/endpoints/{id}/realtime.
type endpointPageJSON struct {
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	endpointJSON
	Total  int          `json:"total"`
	Limit  int          `json:"limit"`
	Offset int          `json:"offset"`
	Sort   string       `json:"sort"`
	Items  []tunnelJSON `json:"items"`
}

// tunnelRef names a tunnel between two holds of the read lock.
type tunnelRef struct{ endpoint, id string }

// tunnelPage selects, sorts and cuts the tunnels of all endpoints (endpoint
// "") or of one, in three steps, so the read lock is never held while
// sorting: copy the sort keys of the matching tunnels, sort them, then copy
// the page's tunnels. A tunnel deleted in between is left out of the page.
// found is false for an unknown endpoint.
func (m *memoryAPI) tunnelPage(p page, endpoint string) (eps []endpointJSON, items []tunnelJSON, total int, found bool) {
	var refs []tunnelRef
	var rows []sortRow
	m.store.View(func(v collector.StoreView) {
		names := v.EndpointNames()
		if endpoint != "" {
			names = []string{endpoint}
		}
		for _, name := range names {
			e := v.Endpoint(name)
			if e == nil {
				return
			}
			found = true
			eps = append(eps, newEndpoint(e, false))
			for _, id := range e.TunnelIDs() {
				t := e.Tunnel(id)
				if !p.matches(name, id, t.Alias, t.Type, t.Status, t.PeerSID, t.PeerAlias) {
					continue
				}
				rows = append(rows, tunnelSortRow(p.sort, name, t, len(refs)))
				refs = append(refs, tunnelRef{name, id})
			}
		}
	})
	if !found {
		return nil, nil, 0, false
	}
	if p.sort != tunnelSortKeys[0] || p.desc {
		sortRows(rows, textSortKey(p.sort), p.desc)
	}
	from, to := p.window(len(rows))
	items = make([]tunnelJSON, 0, to-from)
	byEndpoint := map[string][]tunnelJSON{}
	m.store.View(func(v collector.StoreView) {
		for _, row := range rows[from:to] {
			ref := refs[row.index]
			e := v.Endpoint(ref.endpoint)
			if e == nil {
				continue
			}
			if t := e.Tunnel(ref.id); t != nil {
				tj := newTunnel(ref.endpoint, t)
				items = append(items, tj)
				byEndpoint[ref.endpoint] = append(byEndpoint[ref.endpoint], tj)
			}
		}
	})
	for i := range eps {
		eps[i].Tunnels = byEndpoint[eps[i].ID]
		if eps[i].Tunnels == nil {
			eps[i].Tunnels = []tunnelJSON{}
		}
	}
	return eps, items, len(rows), true
}

func textSortKey(key string) bool {
	switch key {
	case "endpoint", "id", "alias", "type", "status":
		return true
	}
	return false
}

// tunnelSortRow copies the sort key of a tunnel; the caller holds the read
// lock. The natural order (endpoint, then id) is the index.
func tunnelSortRow(key, endpoint string, t *collector.Tunnel, index int) sortRow {
	r := sortRow{index: index}
	switch key {
	case "endpoint":
		r.text = endpoint
	case "id":
		r.text = t.ID
	case "alias":
		r.text = t.Alias
	case "type":
		r.text = t.Type
	case "status":
		r.text = t.Status
	case "traffic":
		r.num = float64(t.Total.Sum())
	case "rate":
		r.num = float64(t.Rate.Sum())
	case "ping":
		r.num = float64(t.Ping)
	case "pool":
		r.num = float64(t.Pool)
	case "tcps":
		r.num = float64(t.TCPs)
	case "udps":
		r.num = float64(t.UDPs)
	}
	return r
}

// pageFields fills the paging fields of an answer.
func pageFields(p page) (limit, offset int, sort string) {
	sort = p.sort
	if p.desc {
		sort = "-" + sort
	}
	return p.limit, p.offset, sort
}

// endpointsPage answers a paged GET /api/memory/endpoints/realtime.
func (m *memoryAPI) endpointsPage(w http.ResponseWriter, p page) {
	out := tunnelPageJSON{Source: sourceMemory, Time: m.now()}
	out.Endpoints, out.Items, out.Total, _ = m.tunnelPage(p, "")
	if out.Endpoints == nil {
		out.Endpoints = []endpointJSON{}
	}
	out.Limit, out.Offset, out.Sort = pageFields(p)
	m.hit()
	writeJSON(w, http.StatusOK, out)
}

// endpointPage answers a paged GET /api/memory/endpoints/{id}/realtime.
func (m *memoryAPI) endpointPage(w http.ResponseWriter, p page, name string) {
	out := endpointPageJSON{Source: sourceMemory, Time: m.now()}
	eps, items, total, found := m.tunnelPage(p, name)
	if !found {
		m.miss()
		writeError(w, http.StatusNotFound, "unknown endpoint "+quote(name))
		return
	}
	out.endpointJSON, out.Items, out.Total = eps[0], items, total
	out.Limit, out.Offset, out.Sort = pageFields(p)
	m.hit()
	writeJSON(w, http.StatusOK, out)
}
