package wire

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

func TestDecodeInfo(t *testing.T) {
	recorded := string(wiretest.Recording(t, wiretest.InfoAnswer))
	tests := []struct {
		name    string
		in      string
		want    Info
		wantErr bool
	}{
		{"recorded", recorded, Info{
			Version: "v1.14.0", OS: "linux", Arch: "amd64", Name: "127.0.0.1", CPUPercent: 68,
			MemTotal: 25276502016, MemUsed: 591691776, NetRx: 616945432, NetTx: 2471057,
			DiskRead: 1023292416, DiskWrite: 4128038912, SysUptime: 254, Uptime: 23,
		}, false},
		{"missing fields are zero", `{"ver":"v1.15.0","new_field":[1,2]}`, Info{Version: "v1.15.0"}, false},
		{"invalid utf-8 replaced", "{\"alias\":\"a\xffb\",\"name\":\"\\ud800\"}", Info{Alias: "a\uFFFDb", Name: "\uFFFD"}, false},
		{"not json", `<html>502</html>`, Info{}, true},
		{"wrong kind", `{"cpu":"high"}`, Info{}, true},
		{"empty", ``, Info{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeInfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestDecodeInfoBounded: an endless answer is cut at MaxInfoBytes, not
// read to the end.
func TestDecodeInfoBounded(t *testing.T) {
	endless := io.MultiReader(strings.NewReader(`{"alias":"`), infiniteA{})
	_, err := DecodeInfo(endless)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want the bound to end the string early", err)
	}
}

type infiniteA struct{}

func (infiniteA) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}
