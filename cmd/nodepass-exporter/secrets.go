package main

import (
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/config"
)

// learnSecrets adds the masters' API keys and remote write's credentials
// (password, bearer token, header values) to the redactor that filters the
// log and /api/status. Keys of earlier configurations stay redacted: a key
// rotated out may still be echoed by a master that was not updated yet.
// Unreadable credential files are skipped here; the component that reads
// them reports the error.
func (a *app) learnSecrets(cfgs []collector.EndpointConfig) {
	a.secretsMu.Lock()
	defer a.secretsMu.Unlock()
	if a.secrets == nil {
		a.secrets = map[string]struct{}{}
	}
	add := func(s string) {
		if s != "" {
			a.secrets[s] = struct{}{}
		}
	}
	for _, c := range cfgs {
		add(c.APIKey)
	}
	rw := a.s.remoteWrite
	for _, f := range []string{rw.basicAuthPassFile, rw.bearerTokenFile} {
		if f == "" {
			continue
		}
		if s, err := config.ReadSecretFile(f, "remote write credential"); err == nil {
			add(s)
		}
	}
	for _, v := range rw.headers {
		add(v)
	}
	list := make([]string, 0, len(a.secrets))
	for s := range a.secrets {
		list = append(list, s)
	}
	a.redactor.Set(list...)
}
