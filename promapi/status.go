package promapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// buildInfo serves /api/v1/status/buildinfo.
func (a *API) buildInfo(*http.Request) apiResult {
	return apiResult{data: a.opts.BuildInfo}
}

// runtimeInfo is the data of /api/v1/status/runtimeinfo, in Prometheus'
// field names.
type runtimeInfo struct {
	StartTime           time.Time `json:"startTime"`
	CWD                 string    `json:"CWD"`
	Hostname            string    `json:"hostname"`
	ServerTime          time.Time `json:"serverTime"`
	ReloadConfigSuccess bool      `json:"reloadConfigSuccess"`
	LastConfigTime      time.Time `json:"lastConfigTime"`
	CorruptionCount     int64     `json:"corruptionCount"`
	GoroutineCount      int       `json:"goroutineCount"`
	GOMAXPROCS          int       `json:"GOMAXPROCS"`
	GOMEMLIMIT          int64     `json:"GOMEMLIMIT"`
	GOGC                string    `json:"GOGC"`
	GODEBUG             string    `json:"GODEBUG"`
	StorageRetention    string    `json:"storageRetention"`
}

// runtimeInfo serves /api/v1/status/runtimeinfo.
func (a *API) runtimeInfo(*http.Request) apiResult {
	ok, at := true, a.opts.StartTime
	if a.opts.ConfigStatus != nil {
		ok, at = a.opts.ConfigStatus()
	}
	cwd, err := os.Getwd()
	if err != nil {
		cwd = err.Error()
	}
	host, err := os.Hostname()
	if err != nil {
		host = err.Error()
	}
	return apiResult{data: runtimeInfo{
		StartTime:           a.opts.StartTime.UTC(),
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          a.opts.Now().UTC(),
		ReloadConfigSuccess: ok,
		LastConfigTime:      at.UTC(),
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    retentionString(a.db.Retention()),
	}}
}

// retentionString writes a retention as Prometheus does: "30d".
func retentionString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return model.Duration(d).String()
}

// flags serves /api/v1/status/flags: an object of flag names and values.
func (a *API) flags(*http.Request) apiResult {
	out := map[string]string{}
	if a.opts.Flags != nil {
		for k, v := range a.opts.Flags() {
			out[k] = v
		}
	}
	return apiResult{data: out}
}

// tsdbStat is one entry of a cardinality list of /api/v1/status/tsdb.
type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// headStats are the head figures of /api/v1/status/tsdb.
type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

// tsdbStatus is the data of /api/v1/status/tsdb, as Prometheus shapes it.
type tsdbStatus struct {
	HeadStats                   headStats  `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
}

// maxTSDBStatusLimit is Prometheus' bound on the limit of
// /api/v1/status/tsdb.
const maxTSDBStatusLimit = 10000

// headChunksMetric is the TSDB's gauge of the chunks in its head, under
// the exporter's prefix.
const headChunksMetric = tsdb.MetricsPrefix + "prometheus_tsdb_head_chunks"

// tsdbStatus serves /api/v1/status/tsdb: limit (default 10).
func (a *API) tsdbStatus(r *http.Request) apiResult {
	limit := 10
	if s := r.Form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return badData(errors.New("limit must be a positive number"))
		}
		if n > maxTSDBStatusLimit {
			return badData(fmt.Errorf("limit must not exceed %d", maxTSDBStatusLimit))
		}
		limit = n
	}
	s := a.db.HeadStats(limit)
	out := tsdbStatus{HeadStats: headStats{NumSeries: s.NumSeries, MinTime: s.MinTime, MaxTime: s.MaxTime}}
	if s.MinTime == math.MaxInt64 { // the empty head's marker
		out.HeadStats.MinTime, out.HeadStats.MaxTime = 0, 0
	}
	if p := s.IndexPostingStats; p != nil {
		out.HeadStats.NumLabelPairs = p.NumLabelPairs
		out.SeriesCountByMetricName = tsdbStats(p.CardinalityMetricsStats)
		out.LabelValueCountByLabelName = tsdbStats(p.CardinalityLabelStats)
		out.MemoryInBytesByLabelName = tsdbStats(p.LabelValueStats)
		out.SeriesCountByLabelValuePair = tsdbStats(p.LabelValuePairsStats)
	} else {
		out.SeriesCountByMetricName, out.LabelValueCountByLabelName = []tsdbStat{}, []tsdbStat{}
		out.MemoryInBytesByLabelName, out.SeriesCountByLabelValuePair = []tsdbStat{}, []tsdbStat{}
	}
	if a.opts.Gatherer != nil {
		mfs, err := a.opts.Gatherer.Gather()
		if err != nil {
			a.logger.Debug("gather for the head's chunk count", "err", err)
		}
		for _, mf := range mfs {
			if mf.GetName() == headChunksMetric && len(mf.GetMetric()) > 0 {
				out.HeadStats.ChunkCount = int64(mf.GetMetric()[0].GetGauge().GetValue())
			}
		}
	}
	return apiResult{data: out}
}

func tsdbStats(in []index.Stat) []tsdbStat {
	out := make([]tsdbStat, 0, len(in))
	for _, s := range in {
		out = append(out, tsdbStat{Name: s.Name, Value: s.Count})
	}
	return out
}

// queryExemplars serves /api/v1/query_exemplars: query, start, end. The
// exporter stores no exemplars, so a valid request gets [].
func (a *API) queryExemplars(r *http.Request) apiResult {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return badData(errors.New("end timestamp must not be before start timestamp"))
	}
	if _, res, ok := a.parseBounded(r.Form.Get("query")); !ok {
		return res
	}
	return apiResult{data: []struct{}{}}
}

// formatQuery serves /api/v1/format_query: the query, pretty-printed.
func (a *API) formatQuery(r *http.Request) apiResult {
	expr, res, ok := a.parseBounded(r.Form.Get("query"))
	if !ok {
		return res
	}
	return apiResult{data: expr.Pretty(0)}
}
