package simulator

import (
	"fmt"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// showcaseSID is the meta.peer.sid of the showcase service pair, derived
// from the seed so two masters of different seeds do not share it.
func showcaseSID(seed uint64) string {
	return fmt.Sprintf("5eed%04x-0000-4000-a000-%012x", seed&0xffff, seed&(1<<48-1))
}

// showcase turns the generated tunnels into Options.Showcase's set (m.mu
// not needed: called from New). Tunnels are in generation order here.
func (m *Master) showcase() {
	n := len(m.tunnels)
	if n < 4 {
		return
	}
	srv, cli := m.tunnels[0], m.tunnels[1]
	srv.typ, cli.typ = "server", "client"
	srv.runMode, cli.runMode = 1, 2
	srv.pooled, cli.pooled = true, true
	if srv.rate == (Counters{}) {
		srv.rate = Counters{history.TCPRx: 16 << 10, history.TCPTx: 256 << 10, history.UDPRx: 8 << 10, history.UDPTx: 8 << 10}
	}
	cli.rate = mirrored(srv.rate)
	cli.mirrorOf = srv
	sid := showcaseSID(m.opts.Seed)
	for _, t := range []*tunnel{srv, cli} {
		t.peerSID, t.peerType, t.peerAlias = sid, "2", "demo-web"
		t.alias = "demo-web-" + t.typ
		t.status = StatusRunning
		t.setURLs()
		t.handshakeDone()
	}
	cli.c = mirrored(srv.c)
	cli.initial, cli.saved = cli.c, cli.c
	for _, st := range []struct {
		t      *tunnel
		status string
	}{{m.tunnels[n-1], StatusStopped}, {m.tunnels[n-2], StatusError}} {
		st.t.setStatus(st.status)
		st.t.mode = st.t.runMode
	}
}

// mirrored returns c as the other side of a tunnel counts it.
func mirrored(c Counters) Counters {
	return Counters{history.TCPRx: c[history.TCPTx], history.TCPTx: c[history.TCPRx], history.UDPRx: c[history.UDPTx], history.UDPTx: c[history.UDPRx]}
}

// ServicePair returns the service of the showcase (Options.Showcase): its
// sid and the id of its client side, whose counters are the service's
// traffic. ok is false without a showcase pair.
func (m *Master) ServicePair() (sid, clientID string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.opts.Showcase || len(m.tunnels) < 4 {
		return "", "", false
	}
	cli := m.tunnels[1]
	return cli.peerSID, cli.id, cli.peerSID != ""
}
