package dashboards

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// The rule files, relative to the package directory. The promtool unit
// tests live in rules/tests/, so that `promtool check rules
// dashboards/rules/*.yml` sees rule files only.
const (
	ruleGlob     = "rules/*.yml"
	ruleTestGlob = "rules/tests/*.yml"
	ruleTests    = "rules/tests/nodepass_test.yml" // the file TestPromtoolCatchesAWrongExpectation edits
	runbook      = "rules/RUNBOOK.md"
)

// ruleFiles returns the files matched by [ruleGlob], as a user's
// `promtool check rules dashboards/rules/*.yml` or rule_files glob would
// load them.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(FS(), ruleGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 2 {
		t.Fatalf("%s matches %v; want the recording and alerting rules", ruleGlob, names)
	}
	return names
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// recordName is level:metric:operations.
var recordName = regexp.MustCompile(`^[a-z_]+:nodepass_[a-z_]+:[a-z0-9_]+$`)

// TestRulesAreDocumentedAndTested checks the rule files without promtool:
// every expression parses; recording rules are named level:metric:ops and
// have a promql_expr_test; every alert has a severity, a summary, a
// description and a runbook_url whose anchor is a section of RUNBOOK.md,
// and at least one promtool test case in which it fires.
func TestRulesAreDocumentedAndTested(t *testing.T) {
	fires, exprTests := map[string]int{}, map[string]bool{}
	// The unit tests load every rule file of the folder (paths relative
	// to the test file), so a new rule file cannot go untested.
	var want []string
	for _, f := range ruleFiles(t) {
		want = append(want, "../"+path.Base(f))
	}
	sort.Strings(want)
	for _, file := range ruleTestFiles(t) {
		var tests ruleTestFile
		readYAML(t, file, &tests)
		for _, tc := range tests.Tests {
			for _, a := range tc.AlertRuleTest {
				fires[a.Alertname] += len(a.ExpAlerts)
			}
			for _, e := range tc.PromQLExprTest {
				exprTests[e.Expr] = true
			}
		}
		got := append([]string(nil), tests.RuleFiles...)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s tests %v, want every rule file of %s: %v", file, tests.RuleFiles, ruleGlob, want)
		}
	}
	records := map[string]bool{}
	for _, file := range ruleFiles(t) {
		var rf ruleFile
		readYAML(t, file, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				records[r.Record] = r.Record != ""
			}
		}
	}
	book, err := fs.ReadFile(FS(), runbook)
	if err != nil {
		t.Fatal(err)
	}
	alerts, nrecords := 0, 0
	for _, file := range ruleFiles(t) {
		var rf ruleFile
		readYAML(t, file, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				name := r.Record + r.Alert
				expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
				if err != nil {
					t.Errorf("%s: %s: %v", file, name, err)
					continue
				}
				for _, series := range unknownSeries(expr, records) {
					t.Errorf("%s: %s reads %s, which is neither the exporter's (nodepass_*) nor Prometheus's up nor a recording rule of these files", file, name, series)
				}
				if r.Record != "" {
					nrecords++
					if !recordName.MatchString(r.Record) {
						t.Errorf("%s: %s is not named level:metric:operations", file, r.Record)
					}
					if !exprTests[r.Record] {
						t.Errorf("%s: recording rule %s has no promql_expr_test in %s", file, r.Record, ruleTestGlob)
					}
					continue
				}
				alerts++
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("%s: %s: severity %q, want critical or warning", file, name, s)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: %s has no %s", file, name, a)
					}
				}
				anchor := "#" + strings.ToLower(name)
				if !strings.HasSuffix(r.Annotations["runbook_url"], "/dashboards/rules/RUNBOOK.md"+anchor) {
					t.Errorf("%s: %s: runbook_url %q does not end in /dashboards/rules/RUNBOOK.md%s", file, name, r.Annotations["runbook_url"], anchor)
				}
				if !strings.Contains(string(book), "\n## "+name+"\n") {
					t.Errorf("%s: %s has no section in %s", file, name, runbook)
				}
				if fires[name] == 0 {
					t.Errorf("%s: alert %s never fires in %s", file, name, ruleTestGlob)
				}
			}
		}
	}
	if nrecords < 4 || alerts < 10 {
		t.Errorf("found %d recording rules and %d alerts; the files were not read right", nrecords, alerts)
	}
}

// ruleTestFiles returns the promtool unit test files.
func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(FS(), ruleTestGlob)
	if err != nil || len(names) == 0 {
		t.Fatalf("%s: %v %v", ruleTestGlob, names, err)
	}
	return names
}

// unknownSeries returns the metric names expr selects that the rules may
// not read: they run in the exporter (over its /metrics and its TSDB) and
// in a Prometheus that scrapes it, so they read the exporter's nodepass_*
// series, Prometheus's up and their own recording rules, and never a
// Prometheus server's own prometheus_* metrics (the exporter's embedded
// TSDB and engine report as nodepass_exporter_prometheus_*).
func unknownSeries(expr parser.Expr, records map[string]bool) []string {
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if !strings.HasPrefix(vs.Name, "nodepass_") && vs.Name != "up" && !records[vs.Name] {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}

// TestPromtool runs promtool check rules on rules/*.yml, as the README
// tells users to, and promtool test rules on every unit test file of
// rules/tests/, with Debian's promtool.
func TestPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	promtool := testutil.NeedTool(t, "promtool")
	out, err := exec.Command(promtool, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", ruleGlob, err, out)
	}
	cmd := exec.Command(promtool, append([]string{"test", "rules"}, ruleTestFiles(t)...)...)
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestPromtoolCatchesAWrongExpectation proves the unit tests can fail: the
// same tests with one expected label changed must make promtool fail.
func TestPromtoolCatchesAWrongExpectation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	promtool := testutil.NeedTool(t, "promtool")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(ruleFiles(t), ruleTests) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == ruleTests {
			const from, to = "alias: web\n", "alias: not-web\n"
			if !strings.Contains(string(b), from) {
				t.Fatalf("%s no longer holds %q", f, from)
			}
			b = []byte(strings.Replace(string(b), from, to, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(f, "rules/")), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "test", "rules", strings.TrimPrefix(ruleTests, "rules/"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("promtool test rules passed with a wrong expectation:\n%s", out)
	}
	if !strings.Contains(string(out), "NodePassTunnelError") {
		t.Errorf("promtool failed, but not on the changed alert:\n%s", out)
	}
}
