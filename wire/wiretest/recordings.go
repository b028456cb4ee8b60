package wiretest

import (
	"bytes"
	"embed"
	"fmt"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The recordings (see nodepass-v1.14.0/README.md).
const (
	// CaptureOne is one SSE stream of about 95 s, ending with the master's
	// shutdown.
	CaptureOne = "capture-sse.txt"
	// CaptureAfterRestart is the stream after the master restarted, with a
	// "HH:MM:SS.mmm " receive time before every line.
	CaptureAfterRestart = "capture-sse-after-master-restart.txt"
	// InfoAnswer is the master's answer to GET /info.
	InfoAnswer = "api-info.json"
)

// APIKey is the recorded master's API key: the url of the "********"
// pseudo-instance in CaptureOne and CaptureAfterRestart's initial bursts.
const APIKey = "23c532afc995d2cb90b22b2846c7c300"

//go:embed nodepass-v1.14.0/*.txt nodepass-v1.14.0/*.json
var recordings embed.FS

// ReadRecording returns a recorded file as it was recorded.
func ReadRecording(name string) ([]byte, error) {
	b, err := recordings.ReadFile("nodepass-v1.14.0/" + name)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	return b, nil
}

// Recording returns a recorded file as it was recorded, failing t if there
// is no such recording.
func Recording(t testing.TB, name string) []byte {
	t.Helper()
	b, err := ReadRecording(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Capture returns a recorded stream as the master sent it: with the
// "HH:MM:SS.mmm " receive-time prefixes of CaptureAfterRestart removed.
// (simulator.StripTimestamps does the same for the simulator's users;
// package wire's tests cannot import the simulator, which imports wire.)
func Capture(t testing.TB, name string) []byte {
	t.Helper()
	b := Recording(t, name)
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[0]) < 13 || lines[0][2] != ':' || lines[0][8] != '.' {
		return b
	}
	out := make([]byte, 0, len(b))
	for _, l := range lines {
		if len(l) >= 13 {
			l = l[13:]
		}
		out = append(out, l...)
	}
	return out
}

// The totals of the fixture README: what a reader that applies the counter
// rules of docs/design.md must hold after replaying the recordings. Each call
// returns a new map.

// TotalsOneStream returns the totals by tunnel after CaptureOne as one
// stream.
func TotalsOneStream() map[string]history.Counters {
	return map[string]history.Counters{
		"0a93e346": {549, 30001230, 300000, 300000},
		"3eac4791": {30001230, 549, 300000, 300000},
	}
}

// TotalsDeleted returns the totals of tunnel 07ae9674 when CaptureOne
// deletes it.
func TotalsDeleted() history.Counters { return history.Counters{89, 5000205, 25000, 25000} }

// TotalsAfterRestart returns the totals by tunnel after CaptureOne and then
// CaptureAfterRestart as a reconnect of the same reader.
func TotalsAfterRestart() map[string]history.Counters {
	return map[string]history.Counters{
		"0a93e346": {638, 35001435, 310000, 310000},
		"3eac4791": {35001435, 638, 310000, 310000},
	}
}
