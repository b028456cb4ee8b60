package collector

import (
	"fmt"
)

// RestoreHint says how to start again from a state file that Restore
// refuses (corrupt, unknown format, inconsistent), and what that costs;
// README, "Recovering from a bad state file", says the same.
func RestoreHint(path string) string {
	return fmt.Sprintf(restoreHint, path)
}

const restoreHint = "to recover, move the file aside (mv %[1]s %[1]s.bad) and start again: what is lost is the totals " +
	"(each tunnel's first value after the start becomes its baseline, counter rule 3, so totals restart from zero) " +
	"the open hour and the samples waiting in the outbox; closed hours and windows in the TSDB are kept"

// validateState refuses a state file whose content would make the Store
// inconsistent: an endpoint listed twice, or a tunnel listed twice under
// one endpoint (its series would be printed twice on /metrics). The file
// was written by a faulty version or edited by hand; which of the copies
// holds the right totals cannot be told, so the start stops (the caller
// adds RestoreHint).
func validateState(f *stateFile, path string) error {
	endpoints := make(map[string]bool, len(f.Endpoints))
	for _, se := range f.Endpoints {
		if endpoints[se.Name] {
			return fmt.Errorf("state %s lists endpoint %q twice", path, se.Name)
		}
		endpoints[se.Name] = true
		if sortedIDs(se.Tunnels) {
			continue // as every file this exporter writes: no id twice
		}
		ids := make(map[string]bool, len(se.Tunnels))
		for _, st := range se.Tunnels {
			if ids[st.ID] {
				return fmt.Errorf("state %s lists tunnel %q of endpoint %q twice", path, st.ID, se.Name)
			}
			ids[st.ID] = true
		}
	}
	return nil
}

// sortedIDs reports whether the tunnels are in strictly increasing id order.
func sortedIDs(tunnels []stateTunnel) bool {
	for i := 1; i < len(tunnels); i++ {
		if tunnels[i-1].ID >= tunnels[i].ID {
			return false
		}
	}
	return true
}
