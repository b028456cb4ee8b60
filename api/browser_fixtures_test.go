package api_test

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// hostileText is what an untrusted master (or a config file written from
// one) may put in any name: the page must show it as text.
const hostileText = "evil\"name</script><img src=x onerror=alert(1)><b>bold</b>"

// hostileSID is a service id with markup but no slash (a router decodes
// %2F before matching, so a sid with a slash has no detail route at all).
const hostileSID = "sid-\"<img src=x onerror=alert(1)>&amp;'"

// mountPageFixtures serves, for the browser test, the routes that cmd
// mounts beside the API (plans, alerts) and the services routes, in the
// shapes of plans/http.go, Prometheus's /api/v1/alerts and docs/design.md.
// Routes the API itself registers are matched first, so once the real
// services routes are merged these fixtures are never reached and the
// page is tested against the real answers.
func mountPageFixtures(r *mux.Router) {
	js := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	now := time.Now()
	plan := map[string]any{
		"name": "tokyo-monthly", "match": map[string]any{"endpoint": "tokyo-1"}, "matched": true,
		"timezone": "Asia/Shanghai", "cycleStartDay": 15, "count": "sum", "quotaBytes": 1 << 40,
		"cycle": map[string]any{"start": now.AddDate(0, 0, -10).Format(time.RFC3339), "end": now.AddDate(0, 0, 20).Format(time.RFC3339),
			"rxBytes": 4e11, "txBytes": 3e11, "usedBytes": 7e11, "usedRatio": 7e11 / float64(1<<40)},
		"forecast":       map[string]any{"bytes": 1.2e12, "method": "median of 7 days", "paceDays": 7, "bytesPerDay": 4e10},
		"quotaExhausted": false, "quotaRunsOutAt": now.AddDate(0, 0, 8).Format(time.RFC3339),
	}
	hostilePlan := map[string]any{
		"name": hostileText, "match": map[string]any{"service": hostileText}, "matched": false, "timezone": "UTC", "count": "rx",
		"cycle": map[string]any{"start": now.AddDate(0, 0, -1).Format(time.RFC3339), "end": now.AddDate(0, 1, 0).Format(time.RFC3339)},
	}
	r.HandleFunc("/api/memory/plans", func(w http.ResponseWriter, _ *http.Request) {
		js(w, map[string]any{"source": "memory", "total": 2, "unmatched": 1, "items": []any{plan, hostilePlan}})
	})
	r.HandleFunc("/api/memory/plans/{name}", func(w http.ResponseWriter, r *http.Request) {
		if mux.Vars(r)["name"] != "tokyo-monthly" {
			w.WriteHeader(http.StatusNotFound)
			js(w, map[string]string{"error": "unknown plan"})
			return
		}
		past := []any{}
		for i := 6; i > 0; i-- {
			past = append(past, map[string]any{"start": now.AddDate(0, -i, -10).Format(time.RFC3339), "end": now.AddDate(0, 1-i, -10).Format(time.RFC3339),
				"usedBytes": 5e11 + float64(i)*1e10, "quotaBytes": 1 << 40, "usedRatio": 0.5, "retained": true})
		}
		out := map[string]any{"source": "memory", "pastCycles": past}
		for k, v := range plan {
			out[k] = v
		}
		js(w, out)
	})
	r.HandleFunc("/api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) {
		js(w, map[string]any{"status": "success", "data": map[string]any{"alerts": []any{
			map[string]any{"labels": map[string]any{"alertname": "NodePassPlanQuotaForecast", "plan": "tokyo-monthly", "severity": "warning"},
				"annotations": map[string]any{"summary": "Plan tokyo-monthly runs out before its cycle ends"}, "state": "firing",
				"activeAt": now.Add(-40 * time.Minute).Format(time.RFC3339), "value": "1.2e+12"},
			map[string]any{"labels": map[string]any{"alertname": "NodePassTunnelError", "endpoint": "tokyo-1", "alias": hostileText},
				"annotations": map[string]any{"summary": hostileText}, "state": "pending",
				"activeAt": now.Add(-2 * time.Minute).Format(time.RFC3339), "value": "1"},
		}}})
	})
	service := map[string]any{
		"sid": hostileSID, "alias": hostileText, "type": "1", "mirrored": true,
		"traffic":  map[string]any{"tcpRx": 1e9, "tcpTx": 2e9, "udpRx": 0, "udpTx": 0, "rx": 1e9, "tx": 2e9, "total": 3e9},
		"mismatch": map[string]any{"tcpRx": 0, "tcpTx": 2048, "udpRx": 0, "udpTx": 0, "total": 2048},
		"clients":  []any{map[string]any{"endpointId": "tokyo-1", "instanceId": "0000aaaa", "alias": hostileText, "type": "client", "status": "running", "traffic": map[string]any{"total": 3e9}}},
		"servers":  []any{map[string]any{"endpointId": "osaka-2", "instanceId": "0000bbbb", "alias": "server side", "type": "server", "status": "error", "traffic": map[string]any{"total": 3e9}}},
	}
	r.HandleFunc("/api/memory/services", func(w http.ResponseWriter, _ *http.Request) {
		js(w, map[string]any{"source": "memory", "total": 1, "items": []any{service}})
	})
	r.HandleFunc("/api/memory/services/{sid}", func(w http.ResponseWriter, r *http.Request) {
		if mux.Vars(r)["sid"] != service["sid"] {
			w.WriteHeader(http.StatusNotFound)
			js(w, map[string]string{"error": "unknown service"})
			return
		}
		js(w, map[string]any{"source": "memory", "service": service})
	})
}
