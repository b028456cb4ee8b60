package nodepassdash

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	// The pure-Go SQLite driver keeps CGO_ENABLED=0 builds working; it
	// registers the driver name "sqlite".
	_ "modernc.org/sqlite"
)

// uniqueIndex4x is the index NodePassDash 4.x creates on
// traffic_hourly_summary; 3.x databases do not have it.
const uniqueIndex4x = "uniq_traffic_hourly_summary_hour_endpoint_instance"

// Database is what the import reads from a NodePassDash database.
type Database struct {
	// Version is "4.x" when the database has the 4.x unique hourly index,
	// else "3.x".
	Version string
	// Endpoints maps NodePassDash endpoint ids to their names.
	Endpoints map[int64]string
	// Tunnels maps endpoint id and instance id to the tunnel's name.
	Tunnels map[TunnelKey]string
	// Rows are the traffic_hourly_summary rows, in id order.
	Rows []Row
}

// TunnelKey identifies one NodePass instance of one NodePassDash endpoint.
type TunnelKey struct {
	EndpointID int64
	InstanceID string
}

// Row is one traffic_hourly_summary row. Totals and increments are in the
// order tcp rx, tcp tx, udp rx, udp tx (history.Protocols/Directions).
type Row struct {
	ID        int64
	Key       TunnelKey
	Hour      time.Time // hour_time as stored, in UTC
	Totals    [4]int64
	Increment [4]int64
	Records   int64
}

// ReadDatabase opens the SQLite file at path read-only and reads the
// endpoints, tunnels and hourly summary. It fails when the file is not a
// NodePassDash database.
func ReadDatabase(ctx context.Context, path string) (*Database, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("nodepassdash database: %w", err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()

	for _, table := range []string{"endpoints", "tunnels", "traffic_hourly_summary"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?", table).Scan(&n); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no table %q: not a NodePassDash 3.x/4.x database", path, table)
		}
	}
	out := &Database{Version: "3.x", Endpoints: map[int64]string{}, Tunnels: map[TunnelKey]string{}}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type='index' AND name=?", uniqueIndex4x).Scan(&n); err != nil {
		return nil, fmt.Errorf("read indexes: %w", err)
	}
	if n > 0 {
		out.Version = "4.x"
	}
	if err := readEndpoints(ctx, db, out); err != nil {
		return nil, err
	}
	if err := readTunnels(ctx, db, out); err != nil {
		return nil, err
	}
	if err := readRows(ctx, db, out); err != nil {
		return nil, err
	}
	return out, nil
}

func readEndpoints(ctx context.Context, db *sql.DB, out *Database) error {
	rows, err := db.QueryContext(ctx, "SELECT id, name FROM endpoints")
	if err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return fmt.Errorf("read endpoints: %w", err)
		}
		out.Endpoints[id] = name
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	return nil
}

func readTunnels(ctx context.Context, db *sql.DB, out *Database) error {
	rows, err := db.QueryContext(ctx, "SELECT endpoint_id, COALESCE(instance_id, ''), name FROM tunnels")
	if err != nil {
		return fmt.Errorf("read tunnels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k TunnelKey
		var name string
		if err := rows.Scan(&k.EndpointID, &k.InstanceID, &name); err != nil {
			return fmt.Errorf("read tunnels: %w", err)
		}
		if k.InstanceID != "" {
			out.Tunnels[k] = name
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read tunnels: %w", err)
	}
	return nil
}

func readRows(ctx context.Context, db *sql.DB, out *Database) error {
	// hour_time is read as text: the drivers NodePassDash used wrote it in
	// different layouts (parseTime knows them).
	rows, err := db.QueryContext(ctx, `SELECT id, CAST(hour_time AS TEXT), COALESCE(instance_id, ''), COALESCE(endpoint_id, 0),
		COALESCE(tcp_rx_total, 0), COALESCE(tcp_tx_total, 0), COALESCE(udp_rx_total, 0), COALESCE(udp_tx_total, 0),
		COALESCE(tcp_rx_increment, 0), COALESCE(tcp_tx_increment, 0), COALESCE(udp_rx_increment, 0), COALESCE(udp_tx_increment, 0),
		COALESCE(record_count, 0)
		FROM traffic_hourly_summary ORDER BY id`)
	if err != nil {
		return fmt.Errorf("read traffic_hourly_summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Row
		var hour string
		if err := rows.Scan(&r.ID, &hour, &r.Key.InstanceID, &r.Key.EndpointID,
			&r.Totals[0], &r.Totals[1], &r.Totals[2], &r.Totals[3],
			&r.Increment[0], &r.Increment[1], &r.Increment[2], &r.Increment[3], &r.Records); err != nil {
			return fmt.Errorf("read traffic_hourly_summary: %w", err)
		}
		t, err := parseTime(hour)
		if err != nil {
			return fmt.Errorf("traffic_hourly_summary row %d: %w", r.ID, err)
		}
		r.Hour = t.UTC()
		out.Rows = append(out.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read traffic_hourly_summary: %w", err)
	}
	return nil
}

// errTimeLayout is returned for a time in none of the known layouts.
var errTimeLayout = errors.New("unknown time layout")

// parseTime parses a time as NodePassDash's drivers stored it. A time
// without a zone is taken as UTC; a Unix time in seconds is accepted too.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	// time.Time.String appends the monotonic clock reading: " m=+1.234".
	if i := strings.Index(s, " m="); i >= 0 {
		s = s[:i]
	}
	// The layouts in which NodePassDash's SQLite drivers wrote a time.Time:
	// mattn/go-sqlite3 (3.x) and modernc's "sqlite" layout, RFC 3339, and
	// time.Time.String (the modernc/glebarez default, 4.x).
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999-07:00",
		"2006-01-02T15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999 -0700 MST",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999Z07:00",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("hour_time %q: %w", s, errTimeLayout)
}
