package remotewrite

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
)

// maxExcerpt bounds the part of a receiver's error body that is kept, and
// maxExcerptRead how much of it is read to redact it first: a secret longer
// than (maxExcerptRead-maxExcerpt)/3 bytes could straddle the read bound in
// its widest encoding (every byte %XX).
const (
	maxExcerpt     = 200
	maxExcerptRead = 4 << 10
)

// authTransport adds the configured headers and credentials to every request
// and remembers the status of the last response, so that Client can tell a
// receiver's 4xx verdict apart from a local failure. The remote API client
// sends one request at a time per Write, and Client runs one Write at a time.
type authTransport struct {
	next         http.RoundTripper
	headers      http.Header
	userAgent    string
	username     string
	passwordFile string
	bearerFile   string

	lastStatus atomic.Int64 // 0: no response (network error or not sent)

	// redactor holds the credentials of the last request (the files are
	// re-read every time) so that no error text shows them.
	redactor   redact.Redactor
	secretsMu  sync.Mutex
	lastSecret string
}

// setSecrets makes the redactor hide the values just sent: the password,
// the token and every custom header value.
func (t *authTransport) setSecrets(secrets ...string) {
	for _, values := range t.headers {
		secrets = append(secrets, values...)
	}
	joined := strings.Join(secrets, "\x00")
	t.secretsMu.Lock()
	defer t.secretsMu.Unlock()
	if joined != t.lastSecret || !t.redactor.Active() {
		t.redactor.Set(secrets...)
		t.lastSecret = joined
	}
}

// sanitize replaces an error answer's reason phrase and body, which the
// remote API client quotes in its error, by Go's status text and a short,
// redacted, printable excerpt: a receiver or a proxy may echo the request's
// Authorization and custom headers back.
func (t *authTransport) sanitize(resp *http.Response) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxExcerptRead))
	_ = resp.Body.Close()
	text := t.redactor.String(string(bytes.ToValidUTF8(body, nil)))
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > maxExcerpt {
		text = strings.ToValidUTF8(text[:maxExcerpt], "") + "..."
	}
	resp.Status = strings.TrimPrefix(redact.StatusLine(resp), "HTTP ")
	resp.Body = io.NopCloser(strings.NewReader(text))
	resp.ContentLength = int64(len(text))
}

// RoundTrip implements http.RoundTripper.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.lastStatus.Store(0)
	// A RoundTripper must not modify the caller's request.
	req = req.Clone(req.Context())
	for name, values := range t.headers {
		req.Header[name] = values
	}
	req.Header.Set("User-Agent", t.userAgent)
	var secret string
	switch {
	case t.username != "":
		var password string
		if t.passwordFile != "" {
			p, err := readSecret(t.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("basic auth password file: %w", err)
			}
			password = p
		}
		req.SetBasicAuth(t.username, password)
		secret = password
	case t.bearerFile != "":
		token, err := readSecret(t.bearerFile)
		if err != nil {
			return nil, fmt.Errorf("bearer token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		secret = token
	}
	t.setSecrets(secret)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.lastStatus.Store(int64(resp.StatusCode))
	if resp.StatusCode >= http.StatusMultipleChoices {
		t.sanitize(resp)
	}
	return resp, nil
}
