package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Plan is one billing plan of the config file's `plans:` list: a reset day,
// a time zone, a quota and which direction counts, for one master, one
// service or one tunnel (docs/design.md, "Plans").
type Plan struct {
	// Name is the `plan` label and the REST {name}.
	Name string `yaml:"name"`
	// Match selects the traffic: {endpoint}, {service} or {endpoint, tunnel}.
	Match PlanMatch `yaml:"match"`
	// CycleStartDay is the day of month (1..28) each cycle starts, at
	// 00:00 in Timezone. Zero in the file means 1.
	CycleStartDay int `yaml:"cycle_start_day"`
	// Timezone is an IANA zone name; empty means --web.timezone.
	Timezone string `yaml:"timezone"`
	// Quota is the traffic allowed per cycle in bytes; zero means none.
	Quota Size `yaml:"quota"`
	// Count is which traffic counts against the quota; empty means sum.
	Count Count `yaml:"count"`

	// Line is the plan's line in the file, for messages.
	Line int `yaml:"-"`
}

// PlanMatch is what a plan counts. Exactly one of the shapes {Endpoint},
// {Service} and {Endpoint, Tunnel} is valid.
type PlanMatch struct {
	Endpoint string `yaml:"endpoint"`
	Service  string `yaml:"service"`
	Tunnel   string `yaml:"tunnel"`
}

// Count says which traffic of a plan counts against its quota.
type Count string

// The values of count: received bytes, sent bytes, both, or the larger of
// the cycle's received and sent totals (as providers that bill the busier
// direction do).
const (
	CountRx  Count = "rx"
	CountTx  Count = "tx"
	CountSum Count = "sum"
	CountMax Count = "max"
)

// Size is a byte count read from "1TiB", "500GB", "750GiB" or a plain
// number of bytes. SI units are powers of 1000 and IEC units powers of
// 1024, exactly; a fraction ("1.5TiB") must come to whole bytes.
type Size uint64

var planKeys = map[string]bool{
	"name": true, "match": true, "cycle_start_day": true, "timezone": true, "quota": true, "count": true,
}

// UnmarshalYAML decodes one plan strictly and remembers its line.
func (p *Plan) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a plan must be a mapping", n.Line)
	}
	if err := knownKeys(n, planKeys, "plan"); err != nil {
		return err
	}
	type plain Plan
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.Line = n.Line
	return nil
}

// UnmarshalYAML decodes the match block strictly.
func (m *PlanMatch) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: match must be a mapping: {endpoint: NAME}, {service: SID} or {endpoint: NAME, tunnel: ID}", n.Line)
	}
	if err := knownKeys(n, map[string]bool{"endpoint": true, "service": true, "tunnel": true}, "match"); err != nil {
		return err
	}
	type plain PlanMatch
	return n.Decode((*plain)(m))
}

// UnmarshalYAML reads a size: an integer of bytes or a number with a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: quota must be a size such as 1TiB, 500GB, 750GiB or a number of bytes", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: quota: %w", n.Line, err)
	}
	*s = v
	return nil
}

// UnmarshalYAML reads rx, tx, sum or max.
func (c *Count) UnmarshalYAML(n *yaml.Node) error {
	switch v := Count(n.Value); v {
	case CountRx, CountTx, CountSum, CountMax:
		*c = v
		return nil
	}
	return fmt.Errorf("line %d: count %q: want rx, tx, sum or max", n.Line, n.Value)
}

func knownKeys(n *yaml.Node, known map[string]bool, what string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q in %s", k.Line, k.Value, what)
		}
	}
	return nil
}

var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15, "EB": 1e18,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50, "EiB": 1 << 60,
}

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$`)

// ParseSize reads "1TiB", "500GB", "750GiB", "1.5TiB" or "1099511627776".
// Units are case-sensitive (KB is 1000 bytes, KiB 1024); "T" or "Tb" alone
// are refused rather than guessed.
func ParseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 1TiB, 500GB, 750GiB or a number of bytes", s)
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)", s, m[2])
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("%q is not a number", m[1])
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(unit)))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	if !r.Num().IsUint64() || r.Num().Uint64() > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(r.Num().Uint64()), nil
}

// checkPlans checks the plans after decoding and fills their defaults
// (cycle_start_day 1, count sum). A plan's timezone must load; its match
// need not name anything configured (such a plan is reported, not refused).
func checkPlans(plans []Plan) error {
	seen := map[string]int{}
	for i := range plans {
		p := &plans[i]
		if err := p.check(); err != nil {
			return fmt.Errorf("line %d: plan %q: %w", p.Line, p.Name, err)
		}
		if prev, ok := seen[p.Name]; ok {
			return fmt.Errorf("line %d: plan name %q already used at line %d", p.Line, p.Name, prev)
		}
		seen[p.Name] = p.Line
	}
	return nil
}

func (p *Plan) check() error {
	if !nameRE.MatchString(p.Name) {
		return errors.New("name must be 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	m := p.Match
	switch {
	case m.Endpoint != "" && m.Service == "":
	case m.Service != "" && m.Endpoint == "" && m.Tunnel == "":
	default:
		return errors.New("match must be {endpoint: NAME}, {service: SID} or {endpoint: NAME, tunnel: ID}")
	}
	if p.CycleStartDay == 0 {
		p.CycleStartDay = 1
	}
	if p.CycleStartDay < 1 || p.CycleStartDay > 28 {
		return fmt.Errorf("cycle_start_day %d: must be 1..28 (a day every month has)", p.CycleStartDay)
	}
	if p.Timezone != "" {
		if _, err := time.LoadLocation(p.Timezone); err != nil {
			return fmt.Errorf("timezone %q: unknown time zone", p.Timezone)
		}
	}
	if p.Count == "" {
		p.Count = CountSum
	}
	return nil
}
