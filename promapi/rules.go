package promapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// RuleSource fills /api/v1/rules and /api/v1/alerts; the rules manager
// implements it. Its methods must be goroutine-safe and quick (they return
// a snapshot); the API turns nil lists and maps into [] and {}.
type RuleSource interface {
	// RuleGroups returns the rule groups with their rules' current state.
	RuleGroups() []RuleGroup
	// Alerts returns the active (pending and firing) alerts.
	Alerts() []Alert
}

// RuleGroup is one rule group of /api/v1/rules, in Prometheus' shape.
type RuleGroup struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Rules holds *AlertingRule and *RecordingRule values.
	Rules          []Rule    `json:"rules"`
	Interval       float64   `json:"interval"` // seconds
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"` // seconds
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// Rule is an [*AlertingRule] or a [*RecordingRule].
type Rule interface {
	// ruleType is "alerting" or "recording", the rule's "type" field and
	// the value ?type=alert|record filters on.
	ruleType() string
}

// AlertingRule is an alerting rule of /api/v1/rules.
type AlertingRule struct {
	State          string            `json:"state"` // inactive, pending, firing
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Duration       float64           `json:"duration"`      // seconds
	KeepFiringFor  float64           `json:"keepFiringFor"` // seconds
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations"`
	Alerts         []Alert           `json:"alerts"`
	Health         string            `json:"health"` // ok, err, unknown
	LastError      string            `json:"lastError,omitempty"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
}

func (*AlertingRule) ruleType() string { return "alerting" }

// MarshalJSON adds "type":"alerting" and writes nil lists and maps as
// [] and {}.
func (r *AlertingRule) MarshalJSON() ([]byte, error) {
	type plain AlertingRule
	c := plain(*r)
	c.Labels, c.Annotations, c.Alerts = nonNilMap(c.Labels), nonNilMap(c.Annotations), nonNilAlerts(c.Alerts)
	return marshalTyped(c, "alerting")
}

// RecordingRule is a recording rule of /api/v1/rules.
type RecordingRule struct {
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Labels         map[string]string `json:"labels"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
}

func (*RecordingRule) ruleType() string { return "recording" }

// MarshalJSON adds "type":"recording" and writes nil labels as {}.
func (r *RecordingRule) MarshalJSON() ([]byte, error) {
	type plain RecordingRule
	c := plain(*r)
	c.Labels = nonNilMap(c.Labels)
	return marshalTyped(c, "recording")
}

// Alert is one active alert of /api/v1/alerts (and of an alerting rule).
type Alert struct {
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	State           string            `json:"state"` // pending, firing
	ActiveAt        *time.Time        `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time        `json:"keepFiringSince,omitempty"`
	Value           string            `json:"value"`
}

// marshalTyped encodes v (a struct) with a "type" field added at its end.
func marshalTyped(v any, typ string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s rule: %w", typ, err)
	}
	return append(append(b[:len(b)-1], `,"type":"`...), typ+`"}`...), nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilAlerts(as []Alert) []Alert {
	out := make([]Alert, len(as)) // a copy: the source's snapshot stays as it is
	for i, al := range as {
		al.Labels, al.Annotations = nonNilMap(al.Labels), nonNilMap(al.Annotations)
		out[i] = al
	}
	return out
}

// rules serves /api/v1/rules: type=alert|record filters the rules.
func (a *API) rules(r *http.Request) apiResult {
	var want string
	switch t := r.Form.Get("type"); t {
	case "":
	case "alert":
		want = "alerting"
	case "record":
		want = "recording"
	default:
		return invalidParam(fmt.Errorf("not supported value %q", t), "type")
	}
	groups := []RuleGroup{}
	if a.opts.Rules != nil {
		for _, g := range a.opts.Rules.RuleGroups() {
			rules := make([]Rule, 0, len(g.Rules))
			for _, rule := range g.Rules {
				if rule != nil && (want == "" || rule.ruleType() == want) {
					rules = append(rules, rule)
				}
			}
			if want != "" && len(rules) == 0 {
				continue // as Prometheus: a filter drops groups left empty
			}
			g.Rules = rules
			groups = append(groups, g)
		}
	}
	return apiResult{data: struct {
		Groups []RuleGroup `json:"groups"`
	}{groups}}
}

// alerts serves /api/v1/alerts.
func (a *API) alerts(*http.Request) apiResult {
	alerts := []Alert{}
	if a.opts.Rules != nil {
		alerts = nonNilAlerts(a.opts.Rules.Alerts())
	}
	return apiResult{data: struct {
		Alerts []Alert `json:"alerts"`
	}{alerts}}
}
