package push

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// appendFrameHead starts an SSE event: its name, id and the data prefix.
func appendFrameHead(b []byte, event string, id uint64) []byte {
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\nid: "...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, "\ndata: "...)
}

// frame wraps encoded JSON (no raw newline) as an SSE event with the next
// id.
func (h *Hub) frame(event string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(event)+32)
	b = appendFrameHead(b, event, h.nextID.Add(1))
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// appendLogFrame appends a "log" event.
func (h *Hub) appendLogFrame(b []byte, key Key, seq uint64, initial bool, lines []string) []byte {
	b = appendFrameHead(b, "log", h.nextID.Add(1))
	b = h.cfg.Tunnels.AppendLog(b, key, seq, initial, lines)
	return append(b, '\n', '\n')
}

// logFrameSize is about the size of a "log" frame of lines.
func logFrameSize(lines []string) int {
	n := 160
	for _, l := range lines {
		n += len(l) + 8
	}
	return n
}

// appendGoneFrame appends a "gone" event.
func (h *Hub) appendGoneFrame(b []byte, now time.Time, key Key) []byte {
	b = appendFrameHead(b, "gone", h.nextID.Add(1))
	b = h.cfg.Tunnels.AppendGone(b, now, key)
	return append(b, '\n', '\n')
}

// appendTunnelFrame appends key's "tunnel" event, as appendTunnel does,
// or leaves b as it is when the tunnel is gone. The caller is in
// Tunnels.View.
func (h *Hub) appendTunnelFrame(b []byte, r Reader, now time.Time, key Key, from uint64) (_ []byte, lines []string, seq uint64, found bool) {
	start := len(b)
	b = appendFrameHead(b, "tunnel", h.nextID.Add(1))
	b, lines, seq, found = r.AppendTunnel(b, now, key, from)
	if !found {
		return b[:start], nil, 0, false
	}
	return append(b, '\n', '\n'), lines, seq, true
}

// TickDashboard renders the dashboard once and queues it for every client.
// Run calls it every DashboardInterval; a benchmark that runs the hub with
// hour-long intervals calls it itself.
func (h *Hub) TickDashboard(ctx context.Context) {
	h.mu.Lock()
	n := len(h.dash)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	f := h.frame("dashboard", h.cfg.Dashboard.Fresh(ctx))
	h.mu.Lock()
	out := make([]delivery, 0, len(h.dash))
	h.lastDash, h.lastDashAt = f, time.Now()
	for c := range h.dash {
		h.queueLocked(c, &out, f, nil)
	}
	h.mu.Unlock()
	parallel(len(out), 64, func(lo, hi int) { h.pushAll(out[lo:hi]) })
}

// dashboardFrame returns a dashboard frame for a new subscriber: the last
// one pushed while it is fresh, so that a crowd reconnecting at once costs
// one rendering.
func (h *Hub) dashboardFrame(ctx context.Context) []byte {
	h.mu.Lock()
	if h.lastDash != nil && time.Since(h.lastDashAt) < h.cfg.DashboardInterval {
		f := h.lastDash
		h.mu.Unlock()
		return f
	}
	h.mu.Unlock()
	f := h.frame("dashboard", h.cfg.Dashboard.Latest(ctx))
	h.mu.Lock()
	h.lastDash, h.lastDashAt = f, time.Now()
	h.mu.Unlock()
	return f
}

// tunnelJob is one watched tunnel during a tick.
type tunnelJob struct {
	tp    *topic
	from  uint64 // log lines after this were asked for
	found bool
	lines []string
	seq   uint64 // sequence number of the last line
	reset bool   // the log restarted (tunnel deleted and created again)
	// The frames, and while they are rendered their ends in the buffer.
	state, logs, goneMsg []byte
	stateEnd, logsEnd    int
}

// TickTunnels renders each watched tunnel's state and new log lines once
// and queues them for its clients. One goroutine per processor takes
// chunks of tunnels in turn, renders a chunk under the read lock, and
// delivers it; taking chunks rather than a fixed share keeps both busy to
// the end when one of them is held up (by the read lock, or by the system
// running something else on its processor). A chunk's frames share one
// buffer, which later ticks reuse unless a client kept a frame of it: so a
// tick allocates next to nothing, and the collector, which would take a
// processor from the tick, runs far less often. Run calls it every
// TunnelInterval; a benchmark that runs the hub with hour-long intervals
// calls it itself. It must not run twice at once.
func (h *Hub) TickTunnels() {
	h.mu.Lock()
	jobs := h.jobs[:0]
	for _, tp := range h.topics {
		jobs = append(jobs, tunnelJob{tp: tp, from: tp.logSeq})
	}
	h.mu.Unlock()
	defer func() {
		clear(jobs) // no topic or frame is kept for the next tick
		h.jobs = jobs[:0]
	}()
	if len(jobs) == 0 {
		return
	}
	now := h.cfg.Now()
	var next atomic.Int64
	chunks := (len(jobs) + tickChunk - 1) / tickChunk
	parallel(chunks, 2, func(int, int) {
		var out []delivery
		for {
			lo := int(next.Add(tickChunk)) - tickChunk
			if lo >= len(jobs) {
				return
			}
			part := jobs[lo:min(lo+tickChunk, len(jobs))]
			buf := h.tickBuf()
			h.renderTunnels(part, now, buf)
			out = out[:0]
			kept := false
			h.mu.Lock()
			for i := range part {
				kept = h.deliverLocked(&part[i], &out) || kept
			}
			h.mu.Unlock()
			kept = h.pushAll(out) || kept
			clear(out)
			if !kept {
				h.bufs.Put(buf)
			}
		}
	})
}

// tickBuf returns an empty buffer for a chunk's frames.
func (h *Hub) tickBuf() *[]byte {
	if b, ok := h.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, tickChunk*int(h.frameSize.Load())*5/4)
	return &b
}

// renderTunnels renders the frames of jobs into *buf: the states under the
// read lock, the log lines and "gone" events after it.
func (h *Hub) renderTunnels(jobs []tunnelJob, now time.Time, bp *[]byte) {
	buf := *bp
	h.cfg.Tunnels.View(func(r Reader) {
		for i := range jobs {
			j := &jobs[i]
			buf, j.lines, j.seq, j.found = h.appendTunnelFrame(buf, r, now, j.tp.key, j.from)
			if j.found && j.seq < j.from {
				j.reset, j.from = true, 0
			}
			j.stateEnd = len(buf)
		}
	})
	h.frameSize.Store(int64(max(len(buf)/len(jobs), 256)))
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.found && len(j.lines) > 0:
			buf = h.appendLogFrame(buf, j.tp.key, j.seq, false, j.lines)
		case !j.found && !j.tp.gone:
			buf = h.appendGoneFrame(buf, now, j.tp.key)
		}
		j.logsEnd = len(buf)
	}
	*bp = buf
	// The frames share buf; capacity is cut so that none can grow into
	// the next.
	start, logStart := 0, jobs[len(jobs)-1].stateEnd
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.found:
			j.state = buf[start:j.stateEnd:j.stateEnd]
			if j.logsEnd > logStart {
				j.logs = buf[logStart:j.logsEnd:j.logsEnd]
			}
		case j.logsEnd > logStart:
			j.goneMsg = buf[logStart:j.logsEnd:j.logsEnd]
		}
		start, logStart = j.stateEnd, j.logsEnd
	}
}

// deliverLocked queues one tunnel's frames to its clients. A client that
// subscribed after the lines were read already has some of them; it gets
// its own, shorter frame. It reports whether a client keeps the frames
// beyond the tick (see queueLocked).
func (h *Hub) deliverLocked(j *tunnelJob, out *[]delivery) (kept bool) {
	tp := j.tp
	if h.topics[tp.key] != tp {
		return false // every client left meanwhile
	}
	tp.gone = !j.found
	if !j.found {
		if j.goneMsg != nil {
			for c := range tp.clients {
				kept = h.queueLocked(c, out, j.goneMsg, nil) || kept
			}
		}
		return kept
	}
	first := j.seq - uint64(len(j.lines)) // the lines are first+1 .. seq
	for c := range tp.clients {
		cur := c.logSeq
		if j.reset {
			cur = 0
		}
		var logs []byte
		switch {
		case j.logs == nil || cur >= j.seq:
		case cur <= first:
			logs = j.logs
		default:
			rest := j.lines[cur-first:]
			logs = h.appendLogFrame(make([]byte, 0, logFrameSize(rest)), tp.key, j.seq, false, rest)
		}
		kept = h.queueLocked(c, out, j.state, logs) || kept
		c.logSeq = max(c.logSeq, j.seq)
		if j.reset {
			c.logSeq = j.seq
		}
	}
	tp.logSeq = j.seq
	return kept
}
