// Package redact keeps the exporter's secrets (API keys, passwords, bearer
// tokens, custom header values) out of every text that leaves the process:
// logs, /api/status, REST and SSE answers, error messages.
//
// A Redactor is built from the configured secrets and replaces each of them
// wherever it appears, in any letter case and in the encodings a peer's
// error page or a proxy's debug page is likely to echo: as is, base64
// (standard and URL alphabets, padded or not, and embedded in a longer
// base64 text such as the basic-auth "user:password" form), hex,
// URL-encoded (query, path and every-byte %XX forms) and with whitespace or
// NUL bytes between its characters. The exporter holds one Redactor, whose
// set of secrets is replaced at every configuration reload.
//
// It is the exporter's one redactor: do not add another. What it cannot
// know (a key typed into a URL's port) is the caller's to leave out of its
// messages; StatusLine is the one way to describe a peer's answer.
package redact

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
)

// Mask replaces every secret found.
const Mask = "<redacted>"

// MinSecretLen is the shortest secret that is redacted. Shorter ones would
// mask ordinary words all over the logs, and a secret of one to three
// bytes protects nothing anyway.
const MinSecretLen = 4

// Redactor replaces configured secrets in text. The zero value and a nil
// *Redactor redact nothing. All methods are safe for concurrent use; Set
// may be called at any time (a reload) and takes effect for the next call.
type Redactor struct {
	re atomic.Pointer[regexp.Regexp]
}

// New returns a Redactor for secrets (see Set).
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Set(secrets...)
	return r
}

// Set replaces the redacted secrets. Empty secrets and those shorter than
// MinSecretLen are ignored; duplicates are fine.
func (r *Redactor) Set(secrets ...string) {
	var alts []string
	for _, s := range secrets {
		if len(s) >= MinSecretLen {
			alts = append(alts, patterns(s)...)
		}
	}
	if len(alts) == 0 {
		r.re.Store(nil)
		return
	}
	// Longer alternatives first: Go's alternation is leftmost-first, and
	// a padded encoding must win over its unpadded prefix.
	slices.SortFunc(alts, func(a, b string) int { return len(b) - len(a) })
	alts = slices.Compact(alts)
	r.re.Store(regexp.MustCompile("(?i:" + strings.Join(alts, "|") + ")"))
}

// String returns s with every secret replaced by Mask.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	re := r.re.Load()
	if re == nil {
		return s
	}
	return re.ReplaceAllLiteralString(s, Mask)
}

// Error returns err's message, redacted; "" for nil.
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}

// Active reports whether any secret is redacted.
func (r *Redactor) Active() bool { return r != nil && r.re.Load() != nil }

// patterns returns the regular expressions (without case flag) that match
// s in each supported form.
func patterns(s string) []string {
	b := []byte(s)
	out := []string{
		spaced(s),
		regexp.QuoteMeta(url.QueryEscape(s)),
		regexp.QuoteMeta(url.PathEscape(s)),
		regexp.QuoteMeta(percentAll(b)),
		regexp.QuoteMeta(hex.EncodeToString(b)),
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		out = append(out, regexp.QuoteMeta(enc.EncodeToString(b)))
		raw := enc.WithPadding(base64.NoPadding)
		for shift := range 3 {
			if p := embedded(raw, b, shift); p != "" {
				out = append(out, regexp.QuoteMeta(p))
			}
		}
	}
	return out
}

// spaced matches s with any run of whitespace or NUL bytes between its
// characters (a page that spaces out or UTF-16-encodes what it echoes).
func spaced(s string) string {
	var sb strings.Builder
	for i, c := range s {
		if i > 0 {
			sb.WriteString(`[\s\x00]*`)
		}
		sb.WriteString(regexp.QuoteMeta(string(c)))
	}
	return sb.String()
}

// percentAll is s with every byte percent-encoded.
func percentAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// embedded returns the base64 characters that depend on b alone when b
// starts shift bytes into a 3-byte group of a longer encoded text: the
// form a secret takes inside "user:password" or any other base64 blob.
// Characters that mix bits of b with bits of its neighbours are left out,
// so at most 4 bits of the secret on each side stay visible.
func embedded(enc *base64.Encoding, b []byte, shift int) string {
	full := enc.EncodeToString(append(make([]byte, shift), b...))
	first := (8*shift + 5) / 6       // first character with no bit of the prefix
	last := 8 * (shift + len(b)) / 6 // characters before it hold bits of b only
	if last-first < 4 || last > len(full) {
		return ""
	}
	return full[first:last]
}

// StatusLine describes a peer's HTTP answer for logs and status pages:
// "HTTP 502 Bad Gateway". It is built from the status code and Go's own
// status text, never from the peer's reason phrase or body, which may
// echo the request's credentials.
func StatusLine(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	if text := http.StatusText(resp.StatusCode); text != "" {
		return fmt.Sprintf("HTTP %d %s", resp.StatusCode, text)
	}
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}
