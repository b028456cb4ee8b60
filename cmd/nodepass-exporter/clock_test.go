package main

import (
	"testing"
	"time"
)

// TestHeaderTimeoutFromEnv: the test hook is off when unset, takes a
// positive Go duration, and refuses anything else rather than run with a
// timeout nobody asked for.
func TestHeaderTimeoutFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"3s", 3 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"3", 0, true},
		{"0s", 0, true},
		{"-1s", 0, true},
	} {
		t.Setenv(testHeaderTimeoutEnv, tc.value)
		got, err := headerTimeoutFromEnv()
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s=%q: %v, %v; want %v, error %v", testHeaderTimeoutEnv, tc.value, got, err, tc.want, tc.wantErr)
		}
	}
}
