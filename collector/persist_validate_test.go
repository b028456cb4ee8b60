package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreRefusesDuplicates: a state file that lists a tunnel (or an
// endpoint) twice would print the tunnel's series twice on /metrics; it is
// refused with a message that names the duplicate and says how to recover.
func TestRestoreRefusesDuplicates(t *testing.T) {
	tunnel := func(id string, total int) string {
		return fmt.Sprintf(`{"id":%q,"raw":[%d,0,0,0],"total":[%d,0,0,0]}`, id, total, total)
	}
	tests := []struct {
		name, endpoints, wantErr string
	}{
		{"valid", `[{"name":"m","tunnels":[` + tunnel("0a93e346", 5) + `,` + tunnel("0a93e347", 7) + `]}]`, ""},
		{"tunnel twice", `[{"name":"m","tunnels":[` + tunnel("0a93e346", 5) + `,` + tunnel("0a93e346", 9) + `]}]`,
			`lists tunnel "0a93e346" of endpoint "m" twice`},
		{"endpoint twice", `[{"name":"m","tunnels":[` + tunnel("0a93e346", 5) + `]},{"name":"m","tunnels":[` + tunnel("0a93e346", 9) + `]}]`,
			`lists endpoint "m" twice`},
		{"same id on two endpoints", `[{"name":"m","tunnels":[` + tunnel("0a93e346", 5) + `]},{"name":"n","tunnels":[` + tunnel("0a93e346", 9) + `]}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), StateFileName)
			body := fmt.Sprintf(`{"format":%d,"savedAt":"2026-01-01T00:00:00Z","endpoints":%s}`, stateFormat, tt.endpoints)
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			s := NewStore(Options{})
			err := s.Restore(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Restore = %v, want an error naming %s and %q", err, path, tt.wantErr)
			}
			if page := string(s.AppendMetrics(nil)); strings.Count(page, `tunnel="0a93e346"`) > 0 {
				t.Fatalf("a refused file left tunnels in the Store:\n%s", page)
			}
		})
	}
}

func TestRestoreHintSaysHowAndWhatIsLost(t *testing.T) {
	hint := RestoreHint("/data/nodepass-state.json")
	for _, want := range []string{"mv /data/nodepass-state.json /data/nodepass-state.json.bad", "totals restart from zero", "closed hours"} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q lacks %q", hint, want)
		}
	}
}
