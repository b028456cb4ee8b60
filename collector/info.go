package collector

import (
	"context"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

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
	defer drainClose(resp.Body)
	info, err := wire.DecodeInfo(resp.Body)
	if err != nil {
		return err
	}
	c.store.setInfo(c.cfg.Name, info)
	c.store.recordHost(c.cfg.Name)
	return nil
}
