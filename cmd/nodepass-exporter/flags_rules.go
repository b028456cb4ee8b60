package main

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/alerting"
)

// ruleFlags are the in-process rule evaluation's flags (package alerting).
type ruleFlags struct {
	files              listFlag
	evaluationInterval time.Duration
	alertmanagers      listFlag
}

// listFlag collects a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}

// bind adds --rules.file, --rules.evaluation-interval and
// --alertmanager.url to fs.
func (r *ruleFlags) bind(fs *flag.FlagSet) {
	fs.Var(&r.files, "rules.file", "Prometheus rule file (recording and alerting rules) to evaluate in the process; a glob is allowed (repeatable).")
	fs.DurationVar(&r.evaluationInterval, "rules.evaluation-interval", alerting.DefaultEvaluationInterval, "How often rule groups without their own interval are evaluated.")
	fs.Var(&r.alertmanagers, "alertmanager.url", "Alertmanager to send firing alerts to, e.g. http://127.0.0.1:9093 (repeatable).")
}

// check validates the rule flags.
func (r *ruleFlags) check() error {
	if r.evaluationInterval < time.Second {
		return errors.New("--rules.evaluation-interval must be at least 1s")
	}
	if len(r.alertmanagers) > 0 && len(r.files) == 0 {
		return errors.New("--alertmanager.url needs --rules.file: without rules no alert is sent")
	}
	return nil
}

// options returns the alerting options the flags set; the lead's wiring
// adds Storage, Appendable, Live, ExternalURL, the query limits and the
// logger.
func (r *ruleFlags) options() alerting.Options {
	return alerting.Options{
		RuleFiles:          r.files,
		EvaluationInterval: r.evaluationInterval,
		AlertmanagerURLs:   r.alertmanagers,
	}
}
