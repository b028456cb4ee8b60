package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// key is a secret with characters that every encoding treats differently:
// letters of both cases, digits, '+', '/', '=', '-', '_' and a space.
const key = "Np-3x+Key/9Q= z_AB"

// spread puts sep between the characters of s.
func spread(s, sep string) string { return strings.Join(strings.Split(s, ""), sep) }

// forms are the ways a peer's error page may echo the key.
func forms() map[string]string {
	basic := func(user string) string { return base64.StdEncoding.EncodeToString([]byte(user + ":" + key)) }
	utf16 := spread(key, "\x00")
	return map[string]string{
		"as is":            key,
		"upper":            strings.ToUpper(key),
		"lower":            strings.ToLower(key),
		"base64":           base64.StdEncoding.EncodeToString([]byte(key)),
		"base64 raw":       base64.RawStdEncoding.EncodeToString([]byte(key)),
		"base64 url":       base64.URLEncoding.EncodeToString([]byte(key)),
		"base64 url raw":   base64.RawURLEncoding.EncodeToString([]byte(key)),
		"base64 upper":     strings.ToUpper(base64.StdEncoding.EncodeToString([]byte(key))),
		"basic auth a":     "Basic " + basic("a"),
		"basic auth ab":    "Basic " + basic("ab"),
		"basic auth alice": "Basic " + basic("alice"),
		"hex":              hex.EncodeToString([]byte(key)),
		"hex upper":        strings.ToUpper(hex.EncodeToString([]byte(key))),
		"query escaped":    url.QueryEscape(key),
		"path escaped":     url.PathEscape(key),
		"every byte %XX":   percentAll([]byte(key)),
		"spaced":           spread(key, " "),
		"tabbed upper":     strings.ToUpper(spread(key, "\t ")),
		"utf-16":           utf16,
	}
}

// leaks reports whether text still holds the key, or a run of 8 of its
// characters, in any form.
func leaks(text string) bool {
	for _, f := range forms() {
		if strings.Contains(text, f) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(text), strings.ToLower(key[2:10]))
}

func TestRedactorEveryForm(t *testing.T) {
	r := New("other-secret", key)
	for name, form := range forms() {
		t.Run(name, func(t *testing.T) {
			in := "502 Bad Gateway: request had X-API-Key=" + form + "; bye"
			got := r.String(in)
			if leaks(got) {
				t.Fatalf("key left in %q", got)
			}
			if !strings.Contains(got, Mask) || !strings.HasPrefix(got, "502 Bad Gateway: request had X-API-Key=") || !strings.HasSuffix(got, "; bye") {
				t.Fatalf("want only the key masked, got %q", got)
			}
		})
	}
}

func TestRedactorLeavesOtherTextAlone(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
	}{
		{"no secrets", nil, "HTTP 500 " + key},
		{"too short", []string{"abc"}, "abc abcabc ABC"},
		{"unrelated text", []string{key}, "GET /api/v1/events: dial tcp 10.0.0.1:9090: connection refused"},
		{"nil redactor", nil, key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.secrets...)
			if tt.name == "nil redactor" {
				r = nil
			}
			if got := r.String(tt.in); got != tt.in {
				t.Fatalf("String(%q) = %q, want it unchanged", tt.in, got)
			}
		})
	}
}

func TestRedactorSetReplacesTheSecrets(t *testing.T) {
	r := New("first-secret")
	r.Set("second-secret")
	if got := r.String("first-secret second-secret"); got != "first-secret "+Mask {
		t.Fatalf("got %q", got)
	}
	r.Set()
	if r.Active() {
		t.Fatal("active with no secrets")
	}
}

func TestStatusLine(t *testing.T) {
	tests := []struct {
		code   int
		status string
		want   string
	}{
		{502, "502 " + key, "HTTP 502 Bad Gateway"},
		{401, "401 Unauthorized", "HTTP 401 Unauthorized"},
		{599, "599 " + key, "HTTP 599"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.code, Status: tt.status, Body: http.NoBody}
		if got := StatusLine(resp); got != tt.want {
			t.Errorf("StatusLine(%d %q) = %q, want %q", tt.code, tt.status, got, tt.want)
		}
	}
	if got := StatusLine(nil); got != "no response" {
		t.Errorf("StatusLine(nil) = %q", got)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestHandlerRedactsEveryStringValue(t *testing.T) {
	r := New(key)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var next slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
			if format == "json" {
				next = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
			}
			base64Key := base64.StdEncoding.EncodeToString([]byte("u:" + key))
			logger := slog.New(r.Handler(next)).With("bound", "Basic "+base64Key)
			logger.WithGroup("g").Error("failed with "+strings.ToUpper(key),
				"err", errors.New("HTTP 500: "+spread(key, " ")),
				"wrapped", fmt.Errorf("get: %w", errors.New(key)),
				"stringer", stringer(hex.EncodeToString([]byte(key))),
				"bytes", []byte(url.QueryEscape(key)),
				slog.Group("nested", "v", key),
				"count", 3)
			out := buf.String()
			if leaks(out) {
				t.Fatalf("key in the log:\n%s", out)
			}
			if strings.Count(out, Mask) != 7 || !strings.Contains(out, "3") {
				t.Fatalf("want 7 masks and the other values kept:\n%s", out)
			}
		})
	}
}
