package wire

import (
	"encoding/json"
	"fmt"
	"io"
)

// MaxInfoBytes bounds the /info answer DecodeInfo reads.
const MaxInfoBytes = 1 << 20

// Info holds a master's host figures, as GET /info answers them
// (api-info.json in the recordings).
type Info struct {
	Version    string // ver
	OS         string // os
	Arch       string // arch
	Name       string // name
	Alias      string // alias
	CPUPercent float64
	MemTotal   uint64 // mem_total, bytes
	MemUsed    uint64 // mem_used, bytes
	SwapTotal  uint64 // swap_total, bytes
	SwapUsed   uint64 // swap_used, bytes
	NetRx      uint64 // netrx, bytes since boot
	NetTx      uint64 // nettx, bytes since boot
	DiskRead   uint64 // diskr, bytes since boot
	DiskWrite  uint64 // diskw, bytes since boot
	SysUptime  uint64 // sysup, seconds since the host booted
	Uptime     uint64 // uptime, seconds since the master started
}

// infoJSON is the wire shape of the /info answer.
type infoJSON struct {
	Alias     string  `json:"alias"`
	Arch      string  `json:"arch"`
	CPU       float64 `json:"cpu"`
	DiskR     uint64  `json:"diskr"`
	DiskW     uint64  `json:"diskw"`
	MemTotal  uint64  `json:"mem_total"`
	MemUsed   uint64  `json:"mem_used"`
	Name      string  `json:"name"`
	NetRx     uint64  `json:"netrx"`
	NetTx     uint64  `json:"nettx"`
	OS        string  `json:"os"`
	SwapTotal uint64  `json:"swap_total"`
	SwapUsed  uint64  `json:"swap_used"`
	SysUp     uint64  `json:"sysup"`
	Uptime    uint64  `json:"uptime"`
	Ver       string  `json:"ver"`
}

// DecodeInfo reads one /info answer from r, at most MaxInfoBytes of it.
// Unknown fields are ignored and missing ones are zero. The strings are
// valid UTF-8: encoding/json replaces each invalid byte with U+FFFD.
func DecodeInfo(r io.Reader) (Info, error) {
	var in infoJSON
	if err := json.NewDecoder(io.LimitReader(r, MaxInfoBytes)).Decode(&in); err != nil {
		return Info{}, fmt.Errorf("decode /info: %w", err)
	}
	return Info{
		Version: in.Ver, OS: in.OS, Arch: in.Arch, Name: in.Name, Alias: in.Alias,
		CPUPercent: in.CPU, MemTotal: in.MemTotal, MemUsed: in.MemUsed, SwapTotal: in.SwapTotal, SwapUsed: in.SwapUsed,
		NetRx: in.NetRx, NetTx: in.NetTx, DiskRead: in.DiskR, DiskWrite: in.DiskW, SysUptime: in.SysUp, Uptime: in.Uptime,
	}, nil
}
