package simulator

import "fmt"

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
		srv.rate = Counters{TCPRx: 16 << 10, TCPTx: 256 << 10, UDPRx: 8 << 10, UDPTx: 8 << 10}
	}
	cli.rate = srv.rate.mirrored()
	cli.mirrorOf = srv
	sid := showcaseSID(m.opts.Seed)
	for _, t := range []*tunnel{srv, cli} {
		t.peerSID, t.peerType, t.peerAlias = sid, "2", "demo-web"
		t.alias = "demo-web-" + t.typ
		t.status = StatusRunning
		t.setURLs()
		t.handshakeDone()
	}
	cli.c = srv.c.mirrored()
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
func (c Counters) mirrored() Counters {
	return Counters{TCPRx: c.TCPTx, TCPTx: c.TCPRx, UDPRx: c.UDPTx, UDPTx: c.UDPRx}
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
