package collector

import "github.com/nodepass-exporter/nodepass-exporter/history"

// The service families (docs/design.md, "Services"). Tunnels without a sid are
// not services; their traffic is on the tunnel series already.
var (
	famServiceInfo = family{name: "nodepass_service_info", typ: "gauge", help: "A service: the instances sharing a meta.peer.sid, with its name and type as NodePassDash set them; always 1.",
		services: func(b []byte, name string, svcs []Service) []byte {
			w := textWriter{b: b}
			for i := range svcs {
				w.service(name, svcs[i].SID)
				w.label("alias", svcs[i].Alias)
				w.label("type", svcs[i].Type)
				w.end()
				w.uint(1)
			}
			return w.b
		}}
	famServiceTraffic = family{name: "nodepass_service_traffic_bytes_total", typ: "counter", help: "Traffic of a service in bytes, counted once (its client side; the server side mirrored when the client is not watched).",
		services: func(b []byte, name string, svcs []Service) []byte {
			w := textWriter{b: b}
			for i := range svcs {
				w.serviceCounters(name, svcs[i].SID, svcs[i].Traffic)
			}
			return w.b
		}}
	famServiceMismatch = family{name: "nodepass_service_mirror_mismatch_bytes", typ: "gauge", help: "Absolute difference between a service's client side and its server side mirrored (server rx = client tx), since both sides were first seen, by the client's protocol and direction.",
		services: func(b []byte, name string, svcs []Service) []byte {
			w := textWriter{b: b}
			for i := range svcs {
				if svcs[i].Mirrored {
					w.serviceCounters(name, svcs[i].SID, svcs[i].Mismatch)
				}
			}
			return w.b
		}}
)

// serviceFamilies are the service families in page order.
var serviceFamilies = [...]*family{&famServiceInfo, &famServiceTraffic, &famServiceMismatch}

// services writes the service families of svcs.
func (w *textWriter) services(svcs []Service) {
	for _, f := range serviceFamilies {
		w.header(f)
		w.b = f.services(w.b, f.name, svcs)
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
