package nodepassdash

// A NodePassDash transcribed for tests: its SQLite schema (as GORM's
// AutoMigrate creates it from the models of v3.0.0..v3.3.1 and
// v4.0.0..v4.0.5), its HistoryWorker (internal/sse/history_worker.go: one
// service_history row per 12 updates of an instance, holding the raw
// cumulative counters of the last) and its hourly aggregation
// (internal/dashboard/traffic_service.go), whose SQL is run here verbatim.

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// ndSchema returns the CREATE statements of the tables the import reads, as
// GORM's SQLite migrator writes them for the version's models.
func ndSchema(version string) []string {
	endpoints := "CREATE TABLE `endpoints` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`url` text NOT NULL,`ip` text,`api_path` text NOT NULL,`api_key` text NOT NULL,`status` text DEFAULT 'OFFLINE',`color` text,`os` text,`arch` text,`ver` text,`log` text,`tls` text,`crt` text,`tunnel_count` integer DEFAULT 0,`key_path` text,`uptime` integer,`last_check` datetime,`created_at` datetime,`updated_at` datetime)"
	tunnels := "CREATE TABLE `tunnels` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`endpoint_id` integer NOT NULL,`type` text NOT NULL,`status` text DEFAULT 'stopped',`tunnel_address` text NOT NULL,`tunnel_port` text NOT NULL,`target_address` text NOT NULL,`target_port` text NOT NULL,`tls_mode` text,`cert_path` text,`key_path` text,`log_level` text DEFAULT 'inherit',`command_line` text NOT NULL,`password` text,`instance_id` text,`restart` numeric,`mode` text,`rate` text,`read` text,`enable_log_store` numeric DEFAULT true,`tcp_rx` integer DEFAULT 0,`tcp_tx` integer DEFAULT 0,`udp_rx` integer DEFAULT 0,`udp_tx` integer DEFAULT 0,`tcps` integer,`udps` integer,`pool` integer,`ping` integer,`min` integer,`max` integer,`slot` integer,`created_at` datetime,`updated_at` datetime,`last_event_time` datetime,CONSTRAINT `fk_endpoints_tunnels` FOREIGN KEY (`endpoint_id`) REFERENCES `endpoints`(`id`))"
	if version == "4.x" {
		endpoints = "CREATE TABLE `endpoints` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`url` text NOT NULL,`hostname` text,`api_path` text NOT NULL,`api_key` text NOT NULL,`status` text DEFAULT 'OFFLINE',`os` text,`arch` text,`ver` text,`log` text,`tls` text,`crt` text,`tunnel_count` integer DEFAULT 0,`key_path` text,`uptime` integer,`last_check` datetime,`created_at` datetime,`updated_at` datetime)"
		tunnels = "CREATE TABLE `tunnels` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`endpoint_id` integer NOT NULL,`type` text NOT NULL,`status` text DEFAULT 'stopped',`tunnel_address` text NOT NULL,`tunnel_port` text NOT NULL,`target_address` text NOT NULL,`target_port` text NOT NULL,`listen_type` text,`extend_target_address` text,`tls_mode` text,`cert_path` text,`key_path` text,`log_level` text DEFAULT 'inherit',`command_line` text NOT NULL,`password` text,`instance_id` text,`restart` numeric,`mode` int,`rate` int,`read` text,`enable_log_store` numeric DEFAULT true,`tcp_rx` integer DEFAULT 0,`tcp_tx` integer DEFAULT 0,`udp_rx` integer DEFAULT 0,`udp_tx` integer DEFAULT 0,`tcps` integer,`udps` integer,`pool` integer,`ping` integer,`min` integer,`max` integer,`slot` integer,`proxy_protocol` numeric,`tags` text,`config_line` text,`peer` text,`dial` text,`pool_type` int,`dns` text,`sni` text,`block` int,`lbs` int,`sorts` int DEFAULT 0,`service_sid` text,`created_at` datetime,`updated_at` datetime,`last_event_time` datetime,CONSTRAINT `fk_endpoints_tunnels` FOREIGN KEY (`endpoint_id`) REFERENCES `endpoints`(`id`))"
	}
	out := []string{
		endpoints,
		"CREATE UNIQUE INDEX `idx_endpoints_url` ON `endpoints`(`url`)",
		"CREATE UNIQUE INDEX `idx_endpoints_name` ON `endpoints`(`name`)",
		tunnels,
		"CREATE UNIQUE INDEX `idx_tunnel_unique` ON `tunnels`(`endpoint_id`,`instance_id`)",
		"CREATE TABLE `service_history` (`id` integer PRIMARY KEY AUTOINCREMENT,`endpoint_id` integer NOT NULL,`instance_id` text NOT NULL,`delta_tcp_in` integer DEFAULT 0,`delta_tcp_out` integer DEFAULT 0,`delta_udp_in` integer DEFAULT 0,`delta_udp_out` integer DEFAULT 0,`avg_ping` real DEFAULT 0,`avg_pool` integer DEFAULT 0,`avg_tcps` integer DEFAULT 0,`avg_udps` integer DEFAULT 0,`avg_speed_in` real DEFAULT 0,`avg_speed_out` real DEFAULT 0,`record_count` integer DEFAULT 0,`up_count` integer DEFAULT 0,`record_time` datetime NOT NULL,`created_at` datetime,CONSTRAINT `fk_service_history_endpoint` FOREIGN KEY (`endpoint_id`) REFERENCES `endpoints`(`id`))",
		"CREATE INDEX `idx_service_history_record_time` ON `service_history`(`record_time`)",
		"CREATE INDEX `idx_service_history_instance_id` ON `service_history`(`instance_id`)",
		"CREATE INDEX `idx_service_history_endpoint_id` ON `service_history`(`endpoint_id`)",
		"CREATE TABLE `traffic_hourly_summary` (`id` integer PRIMARY KEY AUTOINCREMENT,`hour_time` datetime,`instance_id` text,`endpoint_id` integer,`tcp_rx_total` integer DEFAULT 0,`tcp_tx_total` integer DEFAULT 0,`udp_rx_total` integer DEFAULT 0,`udp_tx_total` integer DEFAULT 0,`tcp_rx_increment` integer DEFAULT 0,`tcp_tx_increment` integer DEFAULT 0,`udp_rx_increment` integer DEFAULT 0,`udp_tx_increment` integer DEFAULT 0,`record_count` integer DEFAULT 0,`created_at` datetime,`updated_at` datetime)",
		"CREATE INDEX `idx_traffic_hour_time` ON `traffic_hourly_summary`(`hour_time`)",
	}
	if version == "4.x" {
		// internal/db/db.go ensureOptimizedIndexes (4.x).
		out = append(out,
			"CREATE INDEX IF NOT EXISTS idx_service_history_instance_time ON service_history(instance_id, record_time)",
			"CREATE INDEX IF NOT EXISTS idx_service_history_endpoint_instance_time ON service_history(endpoint_id, instance_id, record_time)",
			"CREATE INDEX IF NOT EXISTS idx_traffic_hourly_summary_hour_time ON traffic_hourly_summary(hour_time)",
			"CREATE UNIQUE INDEX IF NOT EXISTS "+uniqueIndex4x+" ON traffic_hourly_summary(hour_time, endpoint_id, instance_id)")
	}
	return out
}

// ndPoint is one SSE update as NodePassDash's HistoryWorker keeps it.
type ndPoint struct {
	t        time.Time
	counters [4]int64
}

// nodePassDash is the transcribed NodePassDash of one version, writing
// into db in one transaction (thousands of autocommitted inserts take
// seconds) until commit.
type nodePassDash struct {
	t       testing.TB
	db      *sql.Conn
	version string
	buffers map[TunnelKey][]ndPoint
}

func newNodePassDash(t testing.TB, path, version string) *nodePassDash {
	t.Helper()
	// 3.x used mattn/go-sqlite3, which writes times as
	// "2006-01-02 15:04:05.999999999-07:00" (modernc's "sqlite" layout);
	// 4.x uses glebarez/sqlite (modernc), whose default is time.Time.String.
	dsn := "file:" + path + "?_pragma=synchronous(OFF)&_pragma=journal_mode(MEMORY)"
	if version == "3.x" {
		dsn += "&_time_format=sqlite"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &nodePassDash{t: t, db: conn, version: version, buffers: map[TunnelKey][]ndPoint{}}
	for _, stmt := range ndSchema(version) {
		n.exec(stmt)
	}
	n.exec("BEGIN")
	return n
}

// commit ends the transaction: what was written becomes visible to the
// import's connection.
func (n *nodePassDash) commit() { n.exec("COMMIT") }

func (n *nodePassDash) exec(query string, args ...any) {
	n.t.Helper()
	if _, err := n.db.ExecContext(context.Background(), query, args...); err != nil {
		n.t.Fatalf("%v\n%s", err, query)
	}
}

func (n *nodePassDash) addEndpoint(id int64, name string) {
	n.exec("INSERT INTO endpoints (id, name, url, api_path, api_key) VALUES (?, ?, ?, '/api', 'secret')", id, name, "http://"+name)
}

func (n *nodePassDash) addTunnel(endpoint int64, instance, name string) {
	n.exec("INSERT INTO tunnels (name, endpoint_id, type, tunnel_address, tunnel_port, target_address, target_port, command_line, instance_id) VALUES (?, ?, 'server', '', '10101', '127.0.0.1', '8080', 'server://:10101/127.0.0.1:8080', ?)",
		name, endpoint, instance)
}

// observe is HistoryWorker.processMonitoringData and
// aggregateAndEnqueueWrite: every 12 points of an instance become one
// service_history row with the last point's cumulative counters, at its
// minute.
func (n *nodePassDash) observe(k TunnelKey, at time.Time, c [4]int64) {
	buf := append(n.buffers[k], ndPoint{at, c})
	if len(buf) < 12 {
		n.buffers[k] = buf
		return
	}
	last := buf[len(buf)-1]
	n.exec(`INSERT INTO service_history (endpoint_id, instance_id, delta_tcp_in, delta_tcp_out, delta_udp_in, delta_udp_out, record_count, up_count, record_time, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.EndpointID, k.InstanceID, last.counters[0], last.counters[1], last.counters[2], last.counters[3], len(buf), len(buf), last.t.Truncate(time.Minute), last.t)
	n.buffers[k] = buf[:0]
}

// restart drops the HistoryWorker's in-memory buffers, as a stop does.
func (n *nodePassDash) restart() { n.buffers = map[TunnelKey][]ndPoint{} }

// aggregateHour is TrafficService.AggregateTrafficDataForHour (also
// initializeTrafficDataForHour, the same SQL) of the version.
func (n *nodePassDash) aggregateHour(hourStart time.Time) {
	n.t.Helper()
	if n.version == "3.x" {
		target := hourStart.Add(59 * time.Minute)
		n.exec(`
			INSERT OR REPLACE INTO traffic_hourly_summary (
				hour_time, instance_id, endpoint_id,
				tcp_rx_total, tcp_tx_total, udp_rx_total, udp_tx_total,
				tcp_rx_increment, tcp_tx_increment, udp_rx_increment, udp_tx_increment,
				record_count, created_at, updated_at
			)
			SELECT
				?, sh.instance_id, sh.endpoint_id,
				sh.delta_tcp_in as tcp_rx_total, sh.delta_tcp_out as tcp_tx_total,
				sh.delta_udp_in as udp_rx_total, sh.delta_udp_out as udp_tx_total,
				sh.delta_tcp_in as tcp_rx_increment, sh.delta_tcp_out as tcp_tx_increment,
				sh.delta_udp_in as udp_rx_increment, sh.delta_udp_out as udp_tx_increment,
				1 as record_count, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
			FROM service_history sh
			INNER JOIN (
				SELECT endpoint_id, instance_id, MAX(record_time) as max_record_time
				FROM service_history
				WHERE record_time <= ?
				GROUP BY endpoint_id, instance_id
			) latest ON sh.endpoint_id = latest.endpoint_id
				AND sh.instance_id = latest.instance_id
				AND sh.record_time = latest.max_record_time
			WHERE sh.record_time <= ?`, hourStart, target, target)
		prev := hourStart.Add(-time.Hour)
		n.exec(`
			UPDATE traffic_hourly_summary
			SET
				tcp_rx_increment = tcp_rx_total - COALESCE((
					SELECT tcp_rx_total FROM traffic_hourly_summary
					WHERE hour_time = ? AND instance_id = traffic_hourly_summary.instance_id), 0),
				tcp_tx_increment = tcp_tx_total - COALESCE((
					SELECT tcp_tx_total FROM traffic_hourly_summary
					WHERE hour_time = ? AND instance_id = traffic_hourly_summary.instance_id), 0),
				udp_rx_increment = udp_rx_total - COALESCE((
					SELECT udp_rx_total FROM traffic_hourly_summary
					WHERE hour_time = ? AND instance_id = traffic_hourly_summary.instance_id), 0),
				udp_tx_increment = udp_tx_total - COALESCE((
					SELECT udp_tx_total FROM traffic_hourly_summary
					WHERE hour_time = ? AND instance_id = traffic_hourly_summary.instance_id), 0)
			WHERE hour_time = ?`, prev, prev, prev, prev, hourStart)
		return
	}
	hourEnd := hourStart.Add(time.Hour)
	const upsert = `
			ON CONFLICT(hour_time, endpoint_id, instance_id) DO UPDATE SET
				tcp_rx_total = excluded.tcp_rx_total, tcp_tx_total = excluded.tcp_tx_total,
				udp_rx_total = excluded.udp_rx_total, udp_tx_total = excluded.udp_tx_total,
				tcp_rx_increment = excluded.tcp_rx_increment, tcp_tx_increment = excluded.tcp_tx_increment,
				udp_rx_increment = excluded.udp_rx_increment, udp_tx_increment = excluded.udp_tx_increment,
				record_count = excluded.record_count, updated_at = CURRENT_TIMESTAMP`
	n.exec(`
			INSERT INTO traffic_hourly_summary (
				hour_time, instance_id, endpoint_id,
				tcp_rx_total, tcp_tx_total, udp_rx_total, udp_tx_total,
				tcp_rx_increment, tcp_tx_increment, udp_rx_increment, udp_tx_increment,
				record_count, created_at, updated_at
			)
			SELECT
				?, sh.instance_id, sh.endpoint_id,
				sh.delta_tcp_in as tcp_rx_total, sh.delta_tcp_out as tcp_tx_total,
				sh.delta_udp_in as udp_rx_total, sh.delta_udp_out as udp_tx_total,
				sh.delta_tcp_in as tcp_rx_increment, sh.delta_tcp_out as tcp_tx_increment,
				sh.delta_udp_in as udp_rx_increment, sh.delta_udp_out as udp_tx_increment,
				1 as record_count, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
			FROM service_history sh
			INNER JOIN (
				SELECT endpoint_id, instance_id, MAX(record_time) as max_record_time
				FROM service_history
				WHERE record_time >= ? AND record_time < ?
				GROUP BY endpoint_id, instance_id
			) latest ON sh.endpoint_id = latest.endpoint_id
				AND sh.instance_id = latest.instance_id
				AND sh.record_time = latest.max_record_time
			WHERE sh.record_time >= ? AND sh.record_time < ?`+upsert,
		hourStart, hourStart, hourEnd, hourStart, hourEnd)
	prev := hourStart.Add(-time.Hour)
	n.exec(`
			INSERT INTO traffic_hourly_summary (
				hour_time, instance_id, endpoint_id,
				tcp_rx_total, tcp_tx_total, udp_rx_total, udp_tx_total,
				tcp_rx_increment, tcp_tx_increment, udp_rx_increment, udp_tx_increment,
				record_count, created_at, updated_at
			)
			SELECT
				?, prev.instance_id, prev.endpoint_id,
				prev.tcp_rx_total, prev.tcp_tx_total, prev.udp_rx_total, prev.udp_tx_total,
				0, 0, 0, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
			FROM traffic_hourly_summary prev
			WHERE prev.hour_time = ?
				AND NOT EXISTS (
					SELECT 1 FROM traffic_hourly_summary cur
					WHERE cur.hour_time = ?
						AND cur.endpoint_id = prev.endpoint_id
						AND cur.instance_id = prev.instance_id
				)`+upsert, hourStart, prev, hourStart)
	var sets string
	for i, col := range []string{"tcp_rx", "tcp_tx", "udp_rx", "udp_tx"} {
		if i > 0 {
			sets += ",\n"
		}
		sets += fmt.Sprintf(`%[1]s_increment = cur.%[1]s_total - COALESCE((
				SELECT %[1]s_total FROM traffic_hourly_summary
				WHERE hour_time = ? AND instance_id = cur.instance_id AND endpoint_id = cur.endpoint_id), 0)`, col)
	}
	n.exec("UPDATE traffic_hourly_summary AS cur SET "+sets+" WHERE cur.hour_time = ?", prev, prev, prev, prev, hourStart)
}

// initializeRecent is TrafficService.InitializeRecentTrafficData, run at
// every start: it aggregates again the 24 hours before now.
func (n *nodePassDash) initializeRecent(now time.Time) {
	for hour := now.Add(-24 * time.Hour).Truncate(time.Hour); hour.Before(now); hour = hour.Add(time.Hour) {
		n.aggregateHour(hour)
	}
}
