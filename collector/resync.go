package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// What the exporter learns from the master at every connect, and the
// counter rules that depend on it (docs/design.md, "Counter rules, amended"):
//
//   - Resync: the set of a master's tunnels comes from its GET /instances
//     list, read after the stream is open, not from the timing of the
//     initial burst. A tunnel is removed only when the master no longer
//     lists it (and no event of this stream named it) or sends its delete.
//   - Rule 3: once the exporter has read a complete list of a master (the
//     list, and every listed tunnel seen on the stream), the endpoint is
//     known, and stays known across restarts (it is in the snapshot). On a
//     known master a tunnel never seen before was created while the
//     exporter was away: its whole counter is new traffic.
//   - Rule 2: /info is read at every connect before any event is applied.
//     A counter that went backwards at the first observation after the
//     connect is a restored older value only if the master process
//     restarted since the last contact (uptime shorter than the time since
//     then); otherwise the counter was reset while the exporter was away,
//     and everything after the reset is counted.

// restartSlack widens "uptime < time since the last contact" in favour of
// "the master restarted". NodePass truncates uptime to whole seconds and
// the two clocks are read a request apart; a master that did restart but
// is judged running would have its restored (older) counters counted as
// new traffic, possibly its whole history, while the opposite mistake
// loses at most the traffic after a reset that happened in the same
// couple of seconds.
const restartSlack = 2 * time.Second

// maxInstancesBytes bounds the GET /instances answer (about 700 bytes per
// instance: 64 MiB is some 90,000 tunnels).
const maxInstancesBytes = 64 << 20

// listedInstance is the part of a GET /instances entry the resync needs.
type listedInstance struct {
	ID string `json:"id"`
}

// fetchInstanceIDs reads the master's GET /instances list and returns the
// ids of its tunnels. The pseudo-instance that carries the API key is
// dropped before anything else is looked at; ids that NodePass does not
// make are skipped.
func (c *Conn) fetchInstanceIDs(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.get(ctx, "/v1/instances", "application/json")
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	return decodeInstanceIDs(io.LimitReader(resp.Body, maxInstancesBytes))
}

// decodeInstanceIDs decodes a GET /instances answer into tunnel ids.
func decodeInstanceIDs(r io.Reader) ([]string, error) {
	var list []listedInstance
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, fmt.Errorf("decode /instances: %w", err)
	}
	ids := make([]string, 0, len(list))
	for i := range list {
		id := list[i].ID
		if id == wire.PseudoInstanceID || !wire.ValidID([]byte(id)) {
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// connectInfo reads /info once at a connect and judges from its uptime
// whether the master restarted since the last contact (counter rule 2).
// When /info cannot be read the store keeps the safe default (a backwards
// counter is a restored value).
func (c *Conn) connectInfo(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	asked := c.store.Now()
	resp, err := c.get(ctx, "/v1/info", "application/json")
	if err != nil {
		c.logger.Warn("cannot read master info at connect; a backwards counter counts as restored", "err", err)
		return
	}
	defer drainClose(resp.Body)
	in, err := wire.DecodeInfo(resp.Body)
	if err != nil {
		c.logger.Warn("cannot read master info at connect; a backwards counter counts as restored", "err", err)
		return
	}
	restarted, judged := c.store.judgeRestart(c.cfg.Name, time.Duration(in.Uptime)*time.Second, asked)
	if judged {
		c.logger.Debug("master uptime read at connect", "uptime_seconds", in.Uptime, "restarted", restarted)
	}
}

// judgeRestart decides, for the stream that connected last, whether the
// master restarted since the exporter last heard from it: its uptime, read
// at asked, is shorter than the time since the last contact (with
// restartSlack in favour of a restart). The answer selects counter rule 2
// for the first observation of each known tunnel. judged is false when
// there was no earlier contact to compare with (then a backwards counter
// counts as restored, the safe side).
func (s *Store) judgeRestart(name string, uptime time.Duration, asked time.Time) (restarted, judged bool) {
	s.lockForWrite()
	defer s.mu.Unlock()
	e := s.endpointLocked(name)
	if e.prevContact.IsZero() {
		e.restored = true
		return true, false
	}
	e.restored = uptime < asked.Sub(e.prevContact)+restartSlack
	return e.restored, true
}

// Known reports whether the exporter has read a complete tunnel list of the
// endpoint (amended counter rule 3).
func (s *Store) Known(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.endpoints[name]
	return e != nil && e.known
}

// Resync takes the set of the endpoint's tunnels from the master's own
// list, read after the current stream connected: a tunnel neither listed
// nor named by an event of this stream is removed (its open hour kept
// until the hour closes). Listed tunnels not yet seen on the stream are
// awaited; when all of them have been seen, the endpoint is known.
func (s *Store) Resync(name string, ids []string) {
	s.lockForWrite()
	defer s.mu.Unlock()
	s.resyncLocked(s.endpointLocked(name), ids)
}

func (s *Store) resyncLocked(e *Endpoint, ids []string) {
	listed := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		listed[id] = struct{}{}
	}
	out := s.scratch[:0]
	for _, id := range slices.Clone(e.ids) {
		t := e.tunnels[id]
		if _, ok := listed[id]; !ok && t.firstAfterConnect {
			out = s.removeTunnelLocked(e, t, out)
		}
	}
	if len(out) > 0 {
		s.outbox.Write(out)
	}
	s.keepScratch(out)
	pending := map[string]struct{}{}
	for id := range listed {
		if _, deleted := e.deleted[id]; deleted {
			continue
		}
		if t := e.tunnels[id]; t == nil || t.firstAfterConnect {
			pending[id] = struct{}{}
		}
	}
	e.pending, e.deleted, e.awaitList = pending, nil, false
	e.checkKnown()
	s.version++
}

// observed notes that an event of the current stream named id, for the
// wait on a listed tunnel.
func (e *Endpoint) observed(id string, deleted bool) {
	if e.pending != nil {
		delete(e.pending, id)
		e.checkKnown()
		return
	}
	if deleted && e.awaitList {
		// The list is still to come: it may name this id, read before the
		// delete. Remember it so that the list does not wait for it.
		if e.deleted == nil {
			e.deleted = map[string]struct{}{}
		}
		e.deleted[id] = struct{}{}
	}
}

// checkKnown makes the endpoint known once every listed tunnel was seen.
func (e *Endpoint) checkKnown() {
	if e.pending != nil && len(e.pending) == 0 {
		e.known, e.pending, e.awaitList = true, nil, false
	}
}
