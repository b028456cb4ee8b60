package simulator

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

func TestStripTimestamps(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"retry: 3000\n\n", "retry: 3000\n\n"},
		{"23:55:01.683 retry: 3000\n23:55:01.685 \n", "retry: 3000\n\n"},
		{"23:55:01.685\n", "\n"},
		{"23:55:01.685 data: {\"a\":1}", "data: {\"a\":1}"},
		{"data: 23:55:01.685 x\n", "data: 23:55:01.685 x\n"},
		{"2x:55:01.685 x\n", "2x:55:01.685 x\n"},
	}
	for _, c := range cases {
		if got := string(StripTimestamps([]byte(c.in))); got != c.want {
			t.Errorf("StripTimestamps(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func readCaptures(t *testing.T) (first, second []byte) {
	t.Helper()
	return wiretest.Recording(t, wiretest.CaptureOne), wiretest.Recording(t, wiretest.CaptureAfterRestart)
}

func fetch(t *testing.T, ctx context.Context, url, key string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestReplayServesCapturesInOrder(t *testing.T) {
	first, second := readCaptures(t)
	for _, chunk := range []int{0, 7} {
		r := NewReplay(first, second)
		r.ChunkSize = chunk
		if r.APIKey != "23c532afc995d2cb90b22b2846c7c300" {
			t.Fatalf("key from the capture: %q", r.APIKey)
		}
		srv := httptest.NewServer(r)
		url := srv.URL + "/api/v1/events"
		ctx := context.Background()

		if code, _, _ := fetch(t, ctx, url, "nope"); code != http.StatusUnauthorized {
			t.Errorf("wrong key: %d", code)
		}
		code, got, err := fetch(t, ctx, url, r.APIKey)
		if err != nil || code != 200 || !bytes.Equal(got, first) {
			t.Fatalf("first connection: %d %v, %d bytes, want the first capture", code, err, len(got))
		}
		code, got, err = fetch(t, ctx, url, r.APIKey)
		if err != nil || code != 200 || !bytes.Equal(got, StripTimestamps(second)) {
			t.Fatalf("second connection: %d %v, %d bytes, want the second capture", code, err, len(got))
		}
		if regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}`).Match(got) || !bytes.HasPrefix(got, []byte("retry: 3000\n\nevent: instance\ndata: ")) {
			t.Errorf("prefixes left in the second capture: %.80q", got)
		}
		select {
		case <-r.Served():
		default:
			t.Error("Served not closed after both captures")
		}

		// After the captures: the retry line, then silence until the
		// client leaves.
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, got, _ = fetch(t, tctx, url, r.APIKey)
		cancel()
		if string(got) != "retry: 3000\n\n" {
			t.Errorf("third connection got %q", got)
		}
		if r.Connections() != 3 {
			t.Errorf("connections %d", r.Connections())
		}
		code, info, _ := fetch(t, ctx, srv.URL+"/api/v1/info", r.APIKey)
		if code != 200 || !bytes.Contains(info, []byte(`"ver":"v1.14.0"`)) {
			t.Errorf("info: %d %s", code, info)
		}
		r.Close()
		srv.Close()
	}
}

func TestReplayHold(t *testing.T) {
	first, _ := readCaptures(t)
	r := NewReplay(first)
	r.Hold = true
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("X-API-Key", r.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("capture: %v", err)
	}
	<-r.Served()
	extra := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 1))
		extra <- err
	}()
	select {
	case err := <-extra:
		t.Fatalf("response ended while held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	r.Close()
	if err := <-extra; err != io.EOF {
		t.Errorf("after Close: %v, want EOF", err)
	}
}
