package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRuleFlags(t *testing.T) {
	s, err := parseFlags([]string{"--demo", "--rules.file=a.yml", "--rules.file=rules/*.yml",
		"--alertmanager.url=http://127.0.0.1:9093", "--alertmanager.url=http://am2:9093", "--rules.evaluation-interval=15s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := s.rules.options()
	if !slices.Equal(o.RuleFiles, []string{"a.yml", "rules/*.yml"}) || len(o.AlertmanagerURLs) != 2 || o.EvaluationInterval != 15*time.Second {
		t.Fatalf("options %+v", o)
	}
	if d, _ := parseFlags([]string{"--demo"}, io.Discard); d.rules.evaluationInterval != 30*time.Second {
		t.Fatalf("default interval %s", d.rules.evaluationInterval)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--demo", "--rules.evaluation-interval=0s"}, "at least 1s"},
		{[]string{"--demo", "--alertmanager.url=http://h:9093"}, "needs --rules.file"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
