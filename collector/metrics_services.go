package collector

import "github.com/nodepass-exporter/nodepass-exporter/history"

// The service families (docs/design.md, "Services"). Tunnels without a sid are
// not services; their traffic is on the tunnel series already.
var (
	famServiceInfo     = family{name: "nodepass_service_info", typ: "gauge", help: "A service: the instances sharing a meta.peer.sid, with its name and type as NodePassDash set them; always 1."}
	famServiceTraffic  = family{name: "nodepass_service_traffic_bytes_total", typ: "counter", help: "Traffic of a service in bytes, counted once (its client side; the server side mirrored when the client is not watched)."}
	famServiceMismatch = family{name: "nodepass_service_mirror_mismatch_bytes", typ: "gauge", help: "Absolute difference between a service's client side and its server side mirrored (server rx = client tx), since both sides were first seen, by the client's protocol and direction."}
)

// services writes the service families. The caller holds the read lock.
func (w *textWriter) services(svcs []Service) {
	w.header(&famServiceInfo)
	for i := range svcs {
		w.service(famServiceInfo.name, svcs[i].SID)
		w.label("alias", svcs[i].Alias)
		w.label("type", svcs[i].Type)
		w.end()
		w.uint(1)
	}
	w.header(&famServiceTraffic)
	for i := range svcs {
		w.serviceCounters(famServiceTraffic.name, svcs[i].SID, svcs[i].Traffic)
	}
	w.header(&famServiceMismatch)
	for i := range svcs {
		if svcs[i].Mirrored {
			w.serviceCounters(famServiceMismatch.name, svcs[i].SID, svcs[i].Mismatch)
		}
	}
}

// service opens a sample with its service label; sids are the master's
// strings and are escaped.
func (w *textWriter) service(name, sid string) {
	w.b = append(w.b, name...)
	w.b = append(w.b, `{service="`...)
	w.b = appendEscaped(w.b, sid)
	w.b = append(w.b, '"')
}

func (w *textWriter) serviceCounters(name, sid string, c history.Counters) {
	for i, l := range history.CounterLabels {
		w.service(name, sid)
		w.label("protocol", l.Protocol)
		w.label("direction", l.Direction)
		w.end()
		w.uint(c[i])
	}
}
