package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" with missing: no file at all
		missing bool
		want    string
		wantErr string
	}{
		{name: "one line with newline", content: "23c532afc995d2cb90b22b2846c7c300\n", want: "23c532afc995d2cb90b22b2846c7c300"},
		{name: "no trailing newline", content: "s3cret", want: "s3cret"},
		{name: "CRLF written by a Windows editor", content: "s3cret\r\n", want: "s3cret"},
		{name: "spaces are part of a password", content: " pass word \n", want: " pass word "},
		{name: "exactly 64 KiB", content: strings.Repeat("k", MaxSecretFileBytes), want: strings.Repeat("k", MaxSecretFileBytes)},
		{name: "empty file", content: "", wantErr: "is empty"},
		{name: "only a newline", content: "\n", wantErr: "is empty"},
		{name: "two lines", content: "key\nother\n", wantErr: "more than one line"},
		{name: "two trailing newlines", content: "key\n\n", wantErr: "more than one line"},
		{name: "a CR inside", content: "ke\ry", wantErr: "more than one line"},
		{name: "larger than 64 KiB", content: strings.Repeat("k", MaxSecretFileBytes+1), wantErr: "larger than 64 KiB"},
		{name: "missing file", missing: true, wantErr: "no such file"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "secret"+string(rune('a'+i)))
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadSecretFile(path, "bearer token")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "bearer token file") {
					t.Errorf("error %q does not say which secret", err)
				}
				if first, _, _ := strings.Cut(tc.content, "\n"); len(first) > 2 && strings.Contains(err.Error(), first) {
					t.Errorf("error %q quotes the file's content", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadSecretFile = %.40q, %v; want %.40q", got, err, tc.want)
			}
		})
	}
}
