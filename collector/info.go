package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// infoJSON is the answer of GET /info (api-info.json in the fixtures).
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

// maxInfoBytes bounds the /info answer.
const maxInfoBytes = 1 << 20

// pollInfo fetches /info at once and then every InfoInterval until ctx ends.
func (c *Conn) pollInfo(ctx context.Context) {
	t := time.NewTicker(c.cfg.InfoInterval)
	defer t.Stop()
	var lastErr string
	for {
		err := c.fetchInfo(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && err.Error() != lastErr:
			c.logger.Warn("cannot read master info", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			c.logger.Info("master info readable again")
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Conn) fetchInfo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.get(ctx, "/v1/info", "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var in infoJSON
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxInfoBytes)).Decode(&in); err != nil {
		return fmt.Errorf("decode /info: %w", err)
	}
	clean := func(s string) string { return string(toValidUTF8([]byte(s))) }
	c.store.SetInfo(c.cfg.Name, Info{
		Version: clean(in.Ver), OS: clean(in.OS), Arch: clean(in.Arch), Name: clean(in.Name), Alias: clean(in.Alias),
		CPUPercent: in.CPU, MemTotal: in.MemTotal, MemUsed: in.MemUsed, SwapTotal: in.SwapTotal, SwapUsed: in.SwapUsed,
		NetRx: in.NetRx, NetTx: in.NetTx, DiskRead: in.DiskR, DiskWrite: in.DiskW, SysUptime: in.SysUp, Uptime: in.Uptime,
	})
	c.store.RecordHost(c.cfg.Name)
	return nil
}
