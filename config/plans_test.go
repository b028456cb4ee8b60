package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const planEndpoints = "endpoints:\n  - {name: tokyo-1, url: 'http://h:1/api', api_key: k}\nplans:\n"

func TestPlansParse(t *testing.T) {
	text := planEndpoints +
		"  - name: tokyo-monthly\n" +
		"    match: {endpoint: tokyo-1}\n" +
		"    cycle_start_day: 15\n" +
		"    timezone: Asia/Shanghai\n" +
		"    quota: 1TiB\n" +
		"    count: max\n" +
		"  - name: svc\n" +
		"    match: {service: svc-1}\n" +
		"  - name: one-tunnel\n" +
		"    match: {endpoint: nowhere, tunnel: 0a93e346}\n" +
		"    quota: 500GB\n"
	f, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Plan{
		{Name: "tokyo-monthly", Match: PlanMatch{Endpoint: "tokyo-1"}, CycleStartDay: 15, Timezone: "Asia/Shanghai", Quota: 1 << 40, Count: CountMax, Line: 4},
		{Name: "svc", Match: PlanMatch{Service: "svc-1"}, CycleStartDay: 1, Count: CountSum, Line: 10},
		{Name: "one-tunnel", Match: PlanMatch{Endpoint: "nowhere", Tunnel: "0a93e346"}, CycleStartDay: 1, Quota: 500e9, Count: CountSum, Line: 12},
	}
	if len(f.Plans) != len(want) {
		t.Fatalf("plans %+v", f.Plans)
	}
	for i := range want {
		if f.Plans[i] != want[i] {
			t.Errorf("plan %d = %+v, want %+v", i, f.Plans[i], want[i])
		}
	}
}

func TestPlansRefusedWithTheLine(t *testing.T) {
	plan := func(body string) string {
		return planEndpoints + "  - name: p\n    match: {endpoint: tokyo-1}\n" + body
	}
	tests := []struct {
		name, text, want string
	}{
		{"unknown key", plan("    reset_day: 3\n"), `line 6: unknown field "reset_day" in plan`},
		{"unknown match key", planEndpoints + "  - name: p\n    match: {master: tokyo-1}\n", `line 5: unknown field "master" in match`},
		{"day 31", plan("    cycle_start_day: 31\n"), `line 4: plan "p": cycle_start_day 31: must be 1..28`},
		{"day 29", plan("    cycle_start_day: 29\n"), "must be 1..28"},
		{"day -1", plan("    cycle_start_day: -1\n"), "must be 1..28"},
		{"day not a number", plan("    cycle_start_day: first\n"), "line 6"},
		{"unknown zone", plan("    timezone: Mars/Olympus\n"), `line 4: plan "p": timezone "Mars/Olympus": unknown time zone`},
		{"size unit lower case", plan("    quota: 1tib\n"), `line 6: quota: "1tib": unknown unit "tib"`},
		{"size unit ambiguous", plan("    quota: 1T\n"), `unknown unit "T"`},
		{"size negative", plan("    quota: -5GB\n"), "line 6: quota"},
		{"size fraction of a byte", plan("    quota: 1.5B\n"), "not a whole number of bytes"},
		{"size too large", plan("    quota: 100EiB\n"), "too large"},
		{"size list", plan("    quota: [1]\n"), "line 6: quota must be a size"},
		{"bad count", plan("    count: both\n"), `line 6: count "both": want rx, tx, sum or max`},
		{"no match", planEndpoints + "  - name: p\n", `line 4: plan "p": match must be`},
		{"tunnel without endpoint", planEndpoints + "  - name: p\n    match: {tunnel: 0a93e346}\n", "match must be"},
		{"service and endpoint", planEndpoints + "  - name: p\n    match: {service: s, endpoint: tokyo-1}\n", "match must be"},
		{"service and tunnel", planEndpoints + "  - name: p\n    match: {service: s, tunnel: t}\n", "match must be"},
		{"bad name", planEndpoints + "  - name: '=SUM(A1)'\n    match: {endpoint: tokyo-1}\n", "name must be"},
		{"duplicate", plan("  - name: p\n    match: {endpoint: tokyo-1}\n"), `line 6: plan name "p" already used at line 4`},
		{"not a mapping", planEndpoints + "  - p\n", "line 4: a plan must be a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPlansLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(path, []byte(planEndpoints+"  - {name: p, match: {endpoint: a}, cycle_start_day: 31}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path+": line 4") || !strings.Contains(err.Error(), "1..28") {
		t.Fatalf("error %v, want the file, the line and 1..28", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
	}{
		{"1TiB", 1 << 40},
		{"1TB", 1_000_000_000_000},
		{"500GB", 500_000_000_000},
		{"750GiB", 750 << 30},
		{"1.5TiB", 3 << 39},
		{"0.5KB", 500},
		{"1099511627776", 1 << 40},
		{"42B", 42},
		{"10 MiB", 10 << 20},
		{"0", 0},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}
