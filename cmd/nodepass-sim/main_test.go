package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.listen != "127.0.0.1:9090" || c.basePath != "/api" || c.interval != 5*time.Second || c.buffer != 10 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "all", args: []string{"--listen", ":0", "--base-path", "/np", "--api-key", "k", "--tunnels", "10000", "--report-interval", "1s", "--seed", "7"},
			check: func(t *testing.T, c config) {
				if c.listen != ":0" || c.basePath != "/np" || c.apiKey != "k" || c.tunnels != 10000 || c.interval != time.Second || c.seed != 7 {
					t.Errorf("%+v", c)
				}
			}},
		{name: "both keys", args: []string{"--api-key", "k", "--api-key-file", "f"}, wantErr: true},
		{name: "negative tunnels", args: []string{"--tunnels", "-1"}, wantErr: true},
		{name: "stray argument", args: []string{"x"}, wantErr: true},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseFlags(c.args, io.Discard)
			if (err != nil) != c.wantErr {
				t.Fatalf("err %v, want error %v", err, c.wantErr)
			}
			if c.check != nil {
				c.check(t, cfg)
			}
		})
	}
}

func TestLoadKeyWritesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	key, generated, err := loadKey(config{apiKeyFile: path})
	if err != nil || !generated || len(key) != 32 {
		t.Fatalf("%q %v %v", key, generated, err)
	}
	again, generated, err := loadKey(config{apiKeyFile: path})
	if err != nil || generated || again != key {
		t.Fatalf("second load: %q %v %v", again, generated, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", st, err)
	}
}

func request(t *testing.T, method, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const key = "0123456789abcdef0123456789abcdef"
	cfg := config{basePath: "/api", tunnels: 3, interval: 0, seed: 1, buffer: 100}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serve(ctx, cfg, key, ln, slog.New(slog.DiscardHandler)) }()
	base := "http://" + ln.Addr().String()

	if code, _ := request(t, http.MethodGet, base+"/api/v1/info", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", code)
	}
	if code, _ := request(t, http.MethodPost, base+"/sim/tick", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("control API without the key: %d", code)
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/events", nil)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- data
			}
		}
	}()
	eventType := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				return "end"
			}
			var e struct{ Type string }
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			return e.Type
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return ""
		}
	}
	for range 4 {
		if typ := eventType(); typ != "initial" {
			t.Fatalf("want initial, got %s", typ)
		}
	}

	var truth struct {
		Tunnels []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"tunnels"`
	}
	code, body := request(t, http.MethodGet, base+"/sim/truth", key)
	if code != 200 || json.Unmarshal([]byte(body), &truth) != nil || len(truth.Tunnels) != 3 {
		t.Fatalf("truth: %d %s", code, body)
	}
	id := truth.Tunnels[0].ID
	if code, body := request(t, http.MethodPost, base+"/sim/tunnels/"+id+"/reset", key); code != 200 {
		t.Fatalf("reset: %d %s", code, body)
	}
	if typ := eventType(); typ != "update" {
		t.Errorf("after reset: %s", typ)
	}
	if code, _ := request(t, http.MethodPost, base+"/sim/tunnels/ffffffff/reset", key); code != http.StatusNotFound {
		t.Errorf("reset of an unknown tunnel: %d", code)
	}
	if code, body := request(t, http.MethodPost, base+"/sim/tunnels/"+id+"/traffic?tcprx=5&udptx=7", key); code != 200 {
		t.Fatalf("traffic: %d %s", code, body)
	}
	if typ := eventType(); typ != "update" {
		t.Errorf("after traffic: %s", typ)
	}
	if code, body := request(t, http.MethodPost, base+"/sim/stall?d=bogus", key); code != http.StatusBadRequest {
		t.Errorf("bad stall: %d %s", code, body)
	}

	cancel() // a stopping master says shutdown and ends the stream
	if typ := eventType(); typ != "shutdown" {
		t.Errorf("at stop: %s", typ)
	}
	if typ := eventType(); typ != "end" {
		t.Errorf("after shutdown: %s", typ)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunWithBadFlags(t *testing.T) {
	var stderr strings.Builder
	if code := runWith(context.Background(), []string{"--tunnels", "x"}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit code %d", code)
	}
	if code := runWith(context.Background(), []string{"-h"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("-h exit code %d", code)
	}
}
