package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/netutil"
	"gopkg.in/yaml.v3"
)

// reservedFiles are the file descriptors kept for everything but client
// connections: the TSDB's blocks, WAL segments and compactions, the state
// file, the masters' streams and remote write. Without a reserve, a flood of
// slow clients takes the last descriptor and the state save or a compaction
// fails with "too many open files".
const reservedFiles = 256

// minConnections is the floor of the connection cap when the descriptor
// limit is too low for the reserve: a page, a scrape and a few SSE clients.
const minConnections = 16

// maxHeaderWait bounds reading a request's headers, however long
// --web.read-timeout allows for bodies: headers are small, and a client
// that drips them (slowloris) must not hold a connection for minutes.
const maxHeaderWait = 10 * time.Second

// webLimits are the HTTP server's bounds, as shown in /api/status.
type webLimits struct {
	// MaxConnections is the number of client connections served at once;
	// more wait in the kernel's accept queue.
	MaxConnections int `json:"maxConnections"`
	// MaxConnectionsFlag is --web.max-connections, before the descriptor
	// cap.
	MaxConnectionsFlag int `json:"maxConnectionsFlag"`
	// ReadTimeoutSeconds bounds reading a request (headers and body).
	ReadTimeoutSeconds float64 `json:"readTimeoutSeconds"`
	// OpenFilesLimit is the process's descriptor limit (RLIMIT_NOFILE), 0
	// when unknown; ReservedFiles of them are kept from client connections.
	OpenFilesLimit uint64 `json:"openFilesLimit"`
	ReservedFiles  int    `json:"reservedFiles"`
}

// connectionLimit caps the wanted connection count so that reservedFiles
// descriptors stay free for storage; fileLimit 0 means unknown (no cap).
func connectionLimit(want int, fileLimit uint64) webLimits {
	l := webLimits{MaxConnections: want, MaxConnectionsFlag: want, OpenFilesLimit: fileLimit, ReservedFiles: reservedFiles}
	if fileLimit == 0 {
		l.ReservedFiles = 0
		return l
	}
	room := minConnections
	if fileLimit > reservedFiles+minConnections {
		room = int(min(fileLimit-reservedFiles, uint64(1<<30)))
	}
	l.MaxConnections = min(want, room)
	return l
}

// listen opens the listening socket, serving at most maxConns connections
// at once (netutil.LimitListener: the next Accept waits until one closes).
func listen(addr string, maxConns int) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return netutil.LimitListener(l, maxConns), nil
}

// newHTTPServer is the exporter's http.Server: readTimeout bounds reading
// each request (headers within maxHeaderWait), idle keep-alive connections
// close after two minutes.
//
// ReadTimeout does not cut long-lived SSE streams (TestReadTimeoutSparesStreams):
// HTTP/1.1 lifts the read deadline once a request's body is read (a GET's at
// once) before its background read of the idle connection, HTTP/2 only
// closes an unfinished body, and the SSE transport's hijacked connections
// clear their deadlines.
func newHTTPServer(h http.Handler, readTimeout time.Duration, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readTimeout, maxHeaderWait),
		ReadTimeout:       readTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// pageURL is where the web page answers, for the start-up log: the bound
// address (a wildcard shown as localhost) and https when webConfigFile
// turns TLS on.
func pageURL(addr net.Addr, webConfigFile string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if tlsEnabled(webConfigFile) {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// tlsEnabled reports whether an exporter-toolkit web config turns TLS on:
// a certificate or key under tls_server_config. The file was validated at
// start; an unreadable one counts as no TLS.
func tlsEnabled(webConfigFile string) bool {
	if webConfigFile == "" {
		return false
	}
	b, err := os.ReadFile(webConfigFile)
	if err != nil {
		return false
	}
	var c struct {
		TLS map[string]any `yaml:"tls_server_config"`
	}
	if yaml.Unmarshal(b, &c) != nil {
		return false
	}
	for _, k := range []string{"cert", "cert_file", "key", "key_file"} {
		if v, ok := c.TLS[k].(string); ok && v != "" {
			return true
		}
	}
	return false
}
