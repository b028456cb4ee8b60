package remotewrite

import (
	"fmt"
	"net/http"
	"sync/atomic"
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
	case t.bearerFile != "":
		token, err := readSecret(t.bearerFile)
		if err != nil {
			return nil, fmt.Errorf("bearer token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.lastStatus.Store(int64(resp.StatusCode))
	return resp, nil
}
