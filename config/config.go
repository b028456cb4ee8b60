// Package config reads the exporter's YAML list of NodePass masters and
// its secret files, and resolves both into the Master values the collector
// connects with.
//
// Parsing is strict: unknown keys, duplicate names, a missing URL or key are
// errors that name the file and line, so a bad config is refused at start
// and a bad reload leaves the running config in force.
//
// config is a leaf: it imports nothing of this module, so every package
// (collector, remote write, cmd) can use its types and its one secret-file
// reader.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// File is the content of --config.file.
type File struct {
	Endpoints []Endpoint `yaml:"endpoints"`
	Plans     []Plan     `yaml:"plans"` // plans.go
}

// Endpoint is one master in the config file.
type Endpoint struct {
	Name           string        `yaml:"name"`
	URL            string        `yaml:"url"`
	APIKey         string        `yaml:"api_key"`
	APIKeyFile     string        `yaml:"api_key_file"`
	TLS            TLS           `yaml:"tls"`
	ReportInterval time.Duration `yaml:"report_interval"`

	line int
}

// TLS configures the connection to a master over https.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

var endpointKeys = map[string]bool{
	"name": true, "url": true, "api_key": true, "api_key_file": true, "tls": true, "report_interval": true,
}

// UnmarshalYAML decodes one endpoint strictly and remembers its line.
func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: an endpoint must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !endpointKeys[k.Value] {
			return fmt.Errorf("line %d: unknown field %q in endpoint", k.Line, k.Value)
		}
	}
	type plain Endpoint
	if err := n.Decode((*plain)(e)); err != nil {
		return err
	}
	e.line = n.Line
	return nil
}

// UnmarshalYAML decodes the tls block strictly.
func (t *TLS) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: tls must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value != "ca_file" && k.Value != "insecure_skip_verify" {
			return fmt.Errorf("line %d: unknown field %q in tls", k.Line, k.Value)
		}
	}
	type plain TLS
	return n.Decode((*plain)(t))
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// Load reads and checks a config file. Relative key and CA file paths are
// taken relative to the config file's directory.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Parse parses and checks config text.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config: it needs an endpoints list")
		}
		return nil, err
	}
	if len(f.Endpoints) == 0 {
		return nil, errors.New("no endpoints configured")
	}
	seen := map[string]int{}
	for i := range f.Endpoints {
		e := &f.Endpoints[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("line %d: endpoint %q: %w", e.line, e.Name, err)
		}
		if prev, ok := seen[e.Name]; ok {
			return nil, fmt.Errorf("line %d: endpoint name %q already used at line %d", e.line, e.Name, prev)
		}
		seen[e.Name] = e.line
	}
	if err := checkPlans(f.Plans); err != nil {
		return nil, err
	}
	return &f, nil
}

func (e *Endpoint) check() error {
	if !nameRE.MatchString(e.Name) {
		return errors.New("name must be 1 to 64 letters, digits, '.', '_', ':' or '-'")
	}
	if err := CheckURL(e.URL); err != nil {
		return err
	}
	if (e.APIKey == "") == (e.APIKeyFile == "") {
		return errors.New("set exactly one of api_key and api_key_file")
	}
	if e.APIKey != "" {
		if err := CheckSecret(e.APIKey); err != nil {
			return fmt.Errorf("api_key %w", err)
		}
	}
	if e.ReportInterval < 0 {
		return errors.New("report_interval must not be negative")
	}
	return nil
}

// CheckURL checks a master's API base URL.
func CheckURL(raw string) error {
	if raw == "" {
		return errors.New("url is required (the master's API base, e.g. http://10.0.0.1:9090/api)")
	}
	u, err := ParseURL(raw)
	if err != nil {
		return err
	}
	if u.Scheme == "master" {
		return errors.New("url: give the API base over http or https (for master://HOST:PORT/api use http://HOST:PORT/api)")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url: scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("url: no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("url: no user info, query or fragment allowed (the key goes in api_key_file)")
	}
	return nil
}

// Master is one NodePass master, resolved: its key read, its paths made
// absolute, ready to connect to. The collector takes it as is
// (collector.EndpointConfig); a zero duration or size takes the
// collector's default.
type Master struct {
	// Name is the `endpoint` label and the REST {id}.
	Name string
	// BaseURL is the master's API base up to its path, e.g.
	// http://10.0.0.1:9090/api; the collector adds /v1.
	BaseURL string
	// APIKey is sent as X-API-Key. It is never logged or exported.
	APIKey string
	// CAFile and InsecureSkipVerify configure TLS to the master.
	CAFile             string
	InsecureSkipVerify bool
	// ReportInterval is the master's update interval (default 5 s): a
	// stream with running tunnels that stays silent for 3 intervals is
	// reconnected.
	ReportInterval time.Duration
	// InfoInterval is how often GET /info is polled (default 15 s).
	InfoInterval time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 1 s and
	// 60 s). The master's retry: value is honoured within these bounds.
	MinBackoff, MaxBackoff time.Duration
	// MaxLine bounds one SSE line, MaxEvent one event (defaults 4 MiB, 8 MiB).
	MaxLine, MaxEvent int
	// QueueSize is the number of events read ahead of the applier (1024).
	QueueSize int
}

// Resolve turns the file's endpoints into masters, reading key files. base
// is the directory relative paths are taken from.
func (f *File) Resolve(base string) ([]Master, error) {
	out := make([]Master, 0, len(f.Endpoints))
	for _, e := range f.Endpoints {
		key := e.APIKey
		if e.APIKeyFile != "" {
			k, err := ReadSecretFile(resolvePath(base, e.APIKeyFile), "API key")
			if err != nil {
				return nil, fmt.Errorf("endpoint %q: %w", e.Name, err)
			}
			key = k
		}
		ca := e.TLS.CAFile
		if ca != "" {
			ca = resolvePath(base, ca)
		}
		out = append(out, Master{
			Name: e.Name, BaseURL: e.URL, APIKey: key,
			CAFile: ca, InsecureSkipVerify: e.TLS.InsecureSkipVerify,
			ReportInterval: e.ReportInterval,
		})
	}
	return out, nil
}

func resolvePath(base, p string) string {
	if p == "" || base == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return base + "/" + p
}

// DefaultName is the endpoint name for --nodepass.url without
// --nodepass.name: the URL's host:port.
func DefaultName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "nodepass"
	}
	return u.Host
}
