package plans

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/config"
)

func serve(t *testing.T, m *Manager, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := mux.NewRouter()
	m.Register(r)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestPlansREST(t *testing.T) {
	hours := newFakeHours()
	hours.set(tokyo, "2026-02-20T10:00:00Z", rx(300)) // the previous cycle
	hours.set(tokyo, "2026-03-16T10:00:00Z", rx(40))
	hours.set(tokyo, "2026-03-20T05:00:00Z", rx(10)) // the open hour
	clk := &clock{}
	clk.set("2026-03-20T05:30:00Z")
	m, _ := newTestManager(t, hours, clk, Options{Known: func(s Selection) bool { return s == tokyo }},
		mkPlan("tokyo-monthly", config.PlanMatch{Endpoint: "tokyo-1"}, 15, "Asia/Shanghai", 100),
		mkPlan("nothing", config.PlanMatch{Endpoint: "osaka"}, 1, "", 0))

	t.Run("list", func(t *testing.T) {
		rec := serve(t, m, "/api/memory/plans")
		var body struct {
			Source    string     `json:"source"`
			Total     int        `json:"total"`
			Unmatched int        `json:"unmatched"`
			Items     []planJSON `json:"items"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		if body.Source != "memory" || body.Total != 2 || body.Unmatched != 1 || len(body.Items) != 2 {
			t.Fatalf("body %+v", body)
		}
		p := body.Items[0]
		if p.Name != "tokyo-monthly" || !p.Matched || p.Cycle.UsedBytes != 50 || p.Cycle.UsedRatio == nil || *p.Cycle.UsedRatio != 0.5 ||
			!p.Cycle.Start.Equal(utc("2026-03-14T16:00:00Z")) || !strings.HasSuffix(p.Cycle.Start.Format(time.RFC3339), "+08:00") || p.Timezone != "Asia/Shanghai" || p.Forecast.Method == "" {
			t.Fatalf("plan %+v", p)
		}
		if body.Items[1].Matched || body.Items[1].Cycle.UsedRatio != nil {
			t.Fatalf("unmatched plan %+v", body.Items[1])
		}
		for _, key := range []string{`"quotaRunsOutAt":`, `"hoursFrom":"2026-03-14T16:00:00Z"`, `"cycleStartDay":15`, `"usedBytes":50`} {
			if !strings.Contains(rec.Body.String(), key) {
				t.Errorf("no %s in %s", key, rec.Body)
			}
		}
	})

	t.Run("one plan with its past cycles", func(t *testing.T) {
		rec := serve(t, m, "/api/memory/plans/tokyo-monthly")
		var body struct {
			Source string `json:"source"`
			planJSON
			PastCycles []pastJSON `json:"pastCycles"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		if body.Source != "memory" || body.Name != "tokyo-monthly" || len(body.PastCycles) != 12 {
			t.Fatalf("body %+v", body)
		}
		last := body.PastCycles[11]
		if last.UsedBytes != 300 || !last.Start.Equal(utc("2026-02-14T16:00:00Z")) || !last.End.Equal(utc("2026-03-14T16:00:00Z")) {
			t.Fatalf("last past cycle %+v", last)
		}
		if first := body.PastCycles[0]; !first.Start.Equal(utc("2025-03-14T16:00:00Z")) || first.UsedBytes != 0 || first.DataFrom != nil {
			t.Fatalf("oldest past cycle %+v", first)
		}
	})

	t.Run("csv of one plan", func(t *testing.T) {
		rec := serve(t, m, "/api/memory/plans/tokyo-monthly?format=csv")
		rows, err := csv.NewReader(rec.Body).ReadAll()
		if err != nil || rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
			t.Fatalf("%d %v", rec.Code, err)
		}
		if len(rows) != 14 || rows[0][0] != "plan" {
			t.Fatalf("%d rows: %v", len(rows), rows)
		}
		want := []string{"tokyo-monthly", "2026-03-15 00:00", "2026-04-15 00:00", "Asia/Shanghai", "sum", "50", "0", "50", "0.000", "100", "50.00"}
		for i, w := range want {
			if rows[13][i] != w {
				t.Errorf("current row column %s = %q, want %q", rows[0][i], rows[13][i], w)
			}
		}
		if rows[13][13] != "current" || rows[12][7] != "300" || !strings.HasPrefix(rows[12][13], "closed") {
			t.Errorf("rows %v", rows[12:])
		}
	})

	t.Run("csv of all plans", func(t *testing.T) {
		rows, err := csv.NewReader(serve(t, m, "/api/memory/plans?format=csv").Body).ReadAll()
		if err != nil || len(rows) != 3 || rows[2][0] != "nothing" || rows[2][7] != "" {
			t.Fatalf("rows %v, %v", rows, err)
		}
	})

	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/api/memory/plans/nope", http.StatusNotFound, `{"error":"unknown plan \"nope\""}`},
		{"/api/memory/plans?format=xls", http.StatusBadRequest, `format`},
		{"/api/memory/plans/tokyo-monthly?format=pdf", http.StatusBadRequest, `format`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := serve(t, m, tc.path)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}
