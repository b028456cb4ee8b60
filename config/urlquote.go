package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseURL is url.Parse with an error that names the problem and quotes
// the URL only as RedactURL shows it: url.Parse's own errors repeat the
// whole URL and the offending part, which may be a key typed into the port.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url %s: %s", RedactURL(raw), parseProblem(err))
	}
	return u, nil
}

// maxQuotedURL bounds a URL quoted in an error.
const maxQuotedURL = 256

// RedactURL returns raw fit to quote in an error or a log line: the user
// info, a port that is not a number (a key pasted into the wrong place),
// the query and the fragment are replaced by "****". It never fails, even
// on text that is not a URL.
func RedactURL(raw string) string {
	if len(raw) > maxQuotedURL {
		raw = strings.ToValidUTF8(raw[:maxQuotedURL], "") + "..."
	}
	rest, tail := raw, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, tail = rest[:i], rest[i:i+1]+"****"
	}
	scheme := ""
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme, rest = rest[:i+3], rest[i+3:]
	}
	host, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = "****@" + host[i+1:]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		if port := host[i+1:]; strings.Trim(port, "0123456789") != "" {
			host = host[:i+1] + "****"
		}
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, scheme+host+path+tail)
}

// parseProblem words a url.Parse error without quoting any part of the
// URL: its messages repeat the URL and the offending text.
func parseProblem(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var escErr url.EscapeError
	var hostErr url.InvalidHostError
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "invalid port"):
		return "invalid port (not a number)"
	case errors.As(err, &escErr):
		return "invalid %-escape"
	case errors.As(err, &hostErr):
		return "invalid character in the host"
	case strings.Contains(msg, "control character"):
		return "invalid control character in the URL"
	case strings.Contains(msg, "missing protocol scheme"), strings.Contains(msg, "first path segment"):
		return "no scheme (http:// or https://)"
	default:
		return "cannot be parsed"
	}
}
