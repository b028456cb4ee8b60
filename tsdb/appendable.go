package tsdb

import (
	"context"

	"github.com/prometheus/prometheus/storage"
)

var _ storage.Appendable = (*DB)(nil)

// Appender returns an appender of arbitrary series, for the in-process
// rules manager (ALERTS, ALERTS_FOR_STATE and recording rule results).
// It bypasses [DB.Append]'s checks, which are for the exporter's own
// history series; each appender is used by one goroutine, as the TSDB
// allows any number of them at once.
func (db *DB) Appender(ctx context.Context) storage.Appender { return db.db.Appender(ctx) }
