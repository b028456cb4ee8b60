package remotewrite

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/nodepass-exporter/nodepass-exporter/config"
)

// Defaults applied by New to zero-valued Options fields. Timeout, BatchSize,
// BatchDeadline and the backoffs are Prometheus' own remote_write defaults.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultQueueSize     = 100_000
	DefaultBatchSize     = 2_000
	DefaultBatchDeadline = 5 * time.Second
	DefaultMinBackoff    = 30 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultShutdownGrace = 5 * time.Second
	DefaultUserAgent     = "nodepass-exporter"
)

// BasicAuth is HTTP basic authentication. The password is read from
// PasswordFile (less one trailing newline; see config.ReadSecretFile)
// before every request, so the file can be rotated without a restart; it
// is never logged.
type BasicAuth struct {
	Username     string
	PasswordFile string
}

// Options configures a Client. Only URL is required; every zero value means
// the matching Default constant.
type Options struct {
	// URL is the full write endpoint, for example
	// http://victoria:8428/api/v1/write or http://mimir/api/v1/push. It must
	// be http or https, have a host and a path, and carry no user:password
	// (use BasicAuth).
	URL string

	// BasicAuth and BearerTokenFile are mutually exclusive. Both files are
	// re-read before every request.
	BasicAuth       BasicAuth
	BearerTokenFile string

	// Headers are extra request headers, for example X-Scope-OrgID for
	// Mimir. Headers the protocol or the authentication options own
	// (Authorization, Content-Type, Content-Encoding, User-Agent,
	// X-Prometheus-Remote-Write-Version, ...) are rejected. Values are never
	// logged.
	Headers map[string]string

	// TLSConfig, when set, is used for https URLs.
	TLSConfig *tls.Config

	// Timeout bounds one HTTP request, including reading the response.
	Timeout time.Duration

	// QueueSize is the most samples held in memory while waiting to be
	// sent. When full, Enqueue drops the oldest samples and counts them.
	QueueSize int

	// BatchSize is the most samples in one request.
	BatchSize int

	// BatchDeadline is how long a partial batch may wait for more samples
	// before it is sent anyway.
	BatchDeadline time.Duration

	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between retries of a failed request.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// ShutdownGrace is how long Run keeps sending after its context ends.
	ShutdownGrace time.Duration

	// ExternalLabels are added to every series, for example cluster or
	// replica. They must not use the names the exporter's series carry
	// (ReservedLabelNames) nor a reserved "__" prefix, names must be legacy
	// Prometheus label names, and values must be non-empty. See
	// CheckExternalLabels.
	ExternalLabels map[string]string

	// UserAgent is sent with every request.
	UserAgent string
}

// withDefaults validates o and returns a copy with defaults filled in,
// together with the parsed URL.
func (o Options) withDefaults() (Options, *url.URL, error) {
	u, err := parseURL(o.URL)
	if err != nil {
		return o, nil, err
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"timeout", &o.Timeout, DefaultTimeout},
		{"batch deadline", &o.BatchDeadline, DefaultBatchDeadline},
		{"min backoff", &o.MinBackoff, DefaultMinBackoff},
		{"max backoff", &o.MaxBackoff, DefaultMaxBackoff},
		{"shutdown grace", &o.ShutdownGrace, DefaultShutdownGrace},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return o, nil, fmt.Errorf("%s %v: must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxBackoff < o.MinBackoff {
		return o, nil, fmt.Errorf("max backoff %v is below min backoff %v", o.MaxBackoff, o.MinBackoff)
	}
	if o.QueueSize < 0 || o.BatchSize < 0 {
		return o, nil, fmt.Errorf("queue size %d and batch size %d must not be negative", o.QueueSize, o.BatchSize)
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchSize == 0 {
		o.BatchSize = min(DefaultBatchSize, o.QueueSize)
	}
	if o.BatchSize > o.QueueSize {
		return o, nil, fmt.Errorf("batch size %d is larger than queue size %d", o.BatchSize, o.QueueSize)
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if err := o.checkAuth(); err != nil {
		return o, nil, err
	}
	if err := checkHeaders(o.Headers); err != nil {
		return o, nil, err
	}
	if err := CheckExternalLabels(o.ExternalLabels); err != nil {
		return o, nil, err
	}
	return o, u, nil
}

// parseURL checks a remote write URL. Its errors never echo a password that
// may have been written into the URL by mistake.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("remote write URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL and its cause may quote part of it:
		// keep neither when the URL may hold user:password.
		if strings.Contains(raw, "@") {
			return nil, errors.New("remote write URL: cannot be parsed (and user info in the URL is not allowed; use the basic auth options)")
		}
		// Its causes quote the offending part (a password typed into the
		// port): config.ParseURL words it without.
		_, err = config.ParseURL(raw)
		return nil, fmt.Errorf("remote write URL: %w", err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("remote write URL %s: user info in the URL is not allowed; use the basic auth username and password file", u.Redacted())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("remote write URL %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("remote write URL %s: no host", u.Redacted())
	}
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("remote write URL %s: no path; the write endpoint is usually /api/v1/write (VictoriaMetrics, Prometheus, Thanos Receive: /api/v1/receive) or /api/v1/push (Mimir)", u.Redacted())
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("remote write URL %s: a fragment is not allowed", u.Redacted())
	}
	return u, nil
}

func (o Options) checkAuth() error {
	basic := o.BasicAuth.Username != "" || o.BasicAuth.PasswordFile != ""
	if basic && o.BearerTokenFile != "" {
		return errors.New("basic auth and bearer token file are mutually exclusive")
	}
	if o.BasicAuth.PasswordFile != "" && o.BasicAuth.Username == "" {
		return errors.New("basic auth password file given without a username")
	}
	if o.BasicAuth.PasswordFile != "" {
		if _, err := readSecret(o.BasicAuth.PasswordFile); err != nil {
			return fmt.Errorf("basic auth password file: %w", err)
		}
	}
	if o.BearerTokenFile != "" {
		if _, err := readSecret(o.BearerTokenFile); err != nil {
			return fmt.Errorf("bearer token file: %w", err)
		}
	}
	return nil
}

// readSecret reads a credential file with the one secret-file reader
// (config.ReadSecretFile). The error names the file, never its content.
func readSecret(path string) (string, error) {
	return config.ReadSecretFile(path, "secret")
}

func checkHeaders(h map[string]string) error {
	// Set by the client itself; users may not override them.
	reserved := []string{
		"Authorization", "Connection", "Content-Encoding", "Content-Length",
		"Content-Type", "Host", "Proxy-Authorization", "Retry-Attempt",
		"Transfer-Encoding", "User-Agent", "X-Prometheus-Remote-Write-Version",
	}
	for name, value := range h {
		if !validHeaderName(name) {
			return fmt.Errorf("header %q: invalid name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if slices.Contains(reserved, canon) {
			return fmt.Errorf("header %s: set by the client itself; use the authentication options instead of an Authorization header", canon)
		}
		// The value is not quoted in the error: it may be a secret.
		if strings.ContainsAny(value, "\r\n\x00") || !utf8.ValidString(value) {
			return fmt.Errorf("header %s: value holds a line break, NUL or invalid UTF-8", canon)
		}
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ReservedLabelNames are the label names of the exporter's own series, in
// the TSDB and on /metrics (service and plan included: the service and plan
// aggregates carry them). An external label with one of these names would
// overwrite or shadow a series' own label, so it is refused.
var ReservedLabelNames = []string{model.MetricNameLabel, "endpoint", "tunnel", "protocol", "direction", "service", "plan"}

// CheckExternalLabels reports the first external label that Options would
// refuse: a name that is not a legacy Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*), one of ReservedLabelNames or "__"-prefixed,
// or an empty or invalid UTF-8 value. The flag parser calls it to fail at
// start-up with the flag's own name.
func CheckExternalLabels(ext map[string]string) error {
	names := make([]string, 0, len(ext))
	for name := range ext {
		names = append(names, name)
	}
	slices.Sort(names) // the same error for the same input
	for _, name := range names {
		if !model.LegacyValidation.IsValidLabelName(name) {
			return fmt.Errorf("external label %q: invalid name (want [a-zA-Z_][a-zA-Z0-9_]*)", name)
		}
		if strings.HasPrefix(name, "__") || slices.Contains(ReservedLabelNames, name) {
			return fmt.Errorf("external label %q: name is reserved for the exporter's own labels (%s, and any __ prefix)",
				name, strings.Join(ReservedLabelNames, ", "))
		}
		if value := ext[name]; value == "" || !utf8.ValidString(value) {
			return fmt.Errorf("external label %q: value must be non-empty UTF-8", name)
		}
	}
	return nil
}
