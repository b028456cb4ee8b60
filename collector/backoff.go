package collector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// errHTTPStatus marks an answer with an HTTP status other than 200 (and
// other than 401/403, which are errAuth).
var errHTTPStatus = errors.New("unexpected HTTP status")

// statusError is an answer with an unexpected HTTP status; it is
// errHTTPStatus for errors.Is.
type statusError struct {
	code int
	body string // the status line only (redact.StatusLine): never the body
}

func (e *statusError) Error() string { return e.body }

// Is makes a statusError match errHTTPStatus.
func (e *statusError) Is(target error) bool { return target == errHTTPStatus }

// The reconnect policy (docs/design.md, "Counter rules, amended"): after a
// master crash NodePass restores older counters, so every second between
// the master listening again and the exporter's reconnect is traffic that
// counter rule 2 cannot recover.
const (
	// fastPeriod is how long after a stream ended the master is tried at
	// least once a second.
	fastPeriod = 5 * time.Minute
	// fastInterval is the most time between two tries in fastPeriod.
	fastInterval = time.Second
	// slowCap bounds the delay after fastPeriod for a master that is
	// merely unreachable.
	slowCap = 30 * time.Second
)

// reconnectPolicy chooses the delay before each reconnect. Not
// goroutine-safe: one Conn's Run uses it.
//
// A stream that ended by the network (refused, reset, timeout, closed, a
// shutdown event, a stalled stream) is retried within fastInterval for the
// first fastPeriod of the absence, then with a doubling delay up to
// min(MaxBackoff, slowCap). A master that answers but misbehaves (401,
// another HTTP error, not an event stream, a frame over the bounds, a TLS
// failure) backs off from its retry: value (at least MinBackoff), doubling
// up to MaxBackoff; events before the misbehaviour do not reset that, so
// "one good event, then garbage" backs off too instead of re-downloading
// the garbage every second.
type reconnectPolicy struct {
	minBackoff, maxBackoff time.Duration
	attempt                int       // failed tries since the last healthy stream
	downSince              time.Time // start of the current absence
	jitter                 func() float64
}

// misbehaving reports whether err says the master answered but wrongly,
// as opposed to a network failure.
func misbehaving(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
	)
	return errors.Is(err, errAuth) || errors.Is(err, errHTTPStatus) || errors.Is(err, errNotSSE) ||
		errors.Is(err, wire.ErrLineTooLong) || errors.Is(err, wire.ErrEventTooLarge) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header)
}

// next returns the delay before the next connect, given how the last
// stream ended (events: whether it delivered any), the master's retry:
// value (0 when none) and the clock.
func (p *reconnectPolicy) next(now time.Time, events bool, err error, retry time.Duration) time.Duration {
	bad := misbehaving(err)
	if events && !bad {
		p.attempt = 0
		p.downSince = now
	}
	if p.downSince.IsZero() {
		p.downSince = now
	}
	attempt := p.attempt
	p.attempt++
	r := 0.5
	if p.jitter != nil {
		r = p.jitter()
	} else {
		r = rand.Float64() //nolint:gosec // jitter needs no crypto
	}
	if !bad {
		if now.Sub(p.downSince) < fastPeriod {
			// Between half and all of the interval: at least once a second.
			return time.Duration(float64(min(p.minBackoff, fastInterval)) * (0.5 + 0.5*r))
		}
		return doubled(p.minBackoff, min(p.maxBackoff, slowCap), attempt, r)
	}
	base := min(max(retry, p.minBackoff), p.maxBackoff)
	return doubled(base, p.maxBackoff, attempt, r)
}

// doubled returns base doubled attempt times, capped at limit, with ±20 %
// jitter (r in [0,1)), never above limit.
func doubled(base, limit time.Duration, attempt int, r float64) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return min(time.Duration(float64(d)*(0.8+0.4*r)), limit)
}
