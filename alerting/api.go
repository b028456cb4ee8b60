package alerting

import (
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/nodepass-exporter/nodepass-exporter/promapi"
)

var _ promapi.RuleSource = (*Manager)(nil)

// RuleGroups returns the loaded groups with their rules' state, for
// /api/v1/rules.
func (m *Manager) RuleGroups() []promapi.RuleGroup {
	groups := m.rules.RuleGroups()
	out := make([]promapi.RuleGroup, 0, len(groups))
	for _, g := range groups {
		rg := promapi.RuleGroup{
			Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation(),
		}
		for _, r := range g.Rules() {
			lastErr := ""
			if err := r.LastError(); err != nil {
				lastErr = err.Error()
			}
			switch r := r.(type) {
			case *rules.AlertingRule:
				rg.Rules = append(rg.Rules, &promapi.AlertingRule{
					State: r.State().String(), Name: r.Name(), Query: r.Query().String(),
					Duration: r.HoldDuration().Seconds(), KeepFiringFor: r.KeepFiringFor().Seconds(),
					Labels: r.Labels().Map(), Annotations: r.Annotations().Map(), Alerts: alerts(r),
					Health: string(r.Health()), LastError: lastErr,
					EvaluationTime: r.GetEvaluationDuration().Seconds(), LastEvaluation: r.GetEvaluationTimestamp(),
				})
			case *rules.RecordingRule:
				rg.Rules = append(rg.Rules, &promapi.RecordingRule{
					Name: r.Name(), Query: r.Query().String(), Labels: r.Labels().Map(),
					Health: string(r.Health()), LastError: lastErr,
					EvaluationTime: r.GetEvaluationDuration().Seconds(), LastEvaluation: r.GetEvaluationTimestamp(),
				})
			}
		}
		out = append(out, rg)
	}
	return out
}

// Alerts returns the pending and firing alerts, for /api/v1/alerts.
func (m *Manager) Alerts() []promapi.Alert {
	var out []promapi.Alert
	for _, r := range m.rules.AlertingRules() {
		out = append(out, alerts(r)...)
	}
	return out
}

func alerts(r *rules.AlertingRule) []promapi.Alert {
	active := r.ActiveAlerts()
	out := make([]promapi.Alert, 0, len(active))
	for _, a := range active {
		al := promapi.Alert{
			Labels: labelsMap(a.Labels), Annotations: labelsMap(a.Annotations), State: a.State.String(),
			Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		activeAt := a.ActiveAt
		al.ActiveAt = &activeAt
		if !a.KeepFiringSince.IsZero() {
			k := a.KeepFiringSince
			al.KeepFiringSince = &k
		}
		out = append(out, al)
	}
	return out
}

func labelsMap(l labels.Labels) map[string]string { return l.Map() }
