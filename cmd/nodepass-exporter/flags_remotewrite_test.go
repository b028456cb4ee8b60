package main

import (
	"io"
	"maps"
	"strings"
	"testing"
)

// TestExternalLabelFlag: --remote-write.external-label is repeatable, keeps
// every NAME=VALUE, and refuses what remote write would refuse, at parse
// time and naming the label.
func TestExternalLabelFlag(t *testing.T) {
	base := []string{"--demo", "--remote-write.url=http://vm:8428/api/v1/write"}
	s, err := parseFlags(append(base, "--remote-write.external-label=replica=a", "--remote-write.external-label", "cluster=eu=1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (externalLabelFlags{"replica": "a", "cluster": "eu=1"}); !maps.Equal(s.remoteWrite.externalLabels, want) {
		t.Errorf("external labels %v, want %v", s.remoteWrite.externalLabels, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--remote-write.external-label=replica"}, "NAME=VALUE"},
		{[]string{"--remote-write.external-label=replica="}, "non-empty"},
		{[]string{"--remote-write.external-label=tunnel=x"}, "reserved"},
		{[]string{"--remote-write.external-label=plan=x"}, "reserved"},
		{[]string{"--remote-write.external-label=__name__=x"}, "reserved"},
		{[]string{"--remote-write.external-label=my-label=x"}, "invalid name"},
		{[]string{"--remote-write.external-label=replica=a", "--remote-write.external-label=replica=b"}, "twice"},
	} {
		if _, err := parseFlags(append(base, tc.args...), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"--demo", "--remote-write.external-label=replica=a"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--remote-write.url") {
		t.Errorf("an external label without --remote-write.url: %v, want an error", err)
	}
}
