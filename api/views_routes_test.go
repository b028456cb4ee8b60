package api

import "net/http"

// viewRouteCases are the route table's cases of the history, daily traffic,
// services and realtime paging routes: every bad input answers 400 naming
// the accepted values, every unknown name 404.
func viewRouteCases() []routeCase {
	const (
		hist      = "/api/memory/endpoints/{id}/tunnels/{instanceId}/history"
		system    = "/api/memory/endpoints/{id}/system"
		dailyAll  = "/api/memory/traffic/daily"
		dailyEp   = "/api/memory/endpoints/{id}/traffic/daily"
		dailyTun  = "/api/memory/endpoints/{id}/tunnels/{instanceId}/traffic/daily"
		svcs      = "/api/memory/services"
		svc       = "/api/memory/services/{sid}"
		svcTrend  = "/api/memory/services/{sid}/traffic/trend"
		svcDaily  = "/api/memory/services/{sid}/traffic/daily"
		eps       = "/api/memory/endpoints/realtime"
		ep        = "/api/memory/endpoints/{id}/realtime"
		get, post = http.MethodGet, http.MethodPost
		ok, bad   = http.StatusOK, http.StatusBadRequest
		notFound  = http.StatusNotFound
		ranges    = `must be one of 1h, 6h, 24h, 7d, 30d`
		sorts     = `must be one of endpoint, id, alias, type, status, traffic, rate, ping, pool, tcps, udps`
	)
	tun := "/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1"
	return []routeCase{
		{get, tun + "/history", hist, ok, "", ""},
		{get, tun + "/history?range=1h", hist, ok, "", ""},
		{get, tun + "/history?range=30d", hist, ok, "", ""},
		{get, tun + "/history?range=2h", hist, bad, "", ranges},
		{get, tun + "/history?range=", hist, bad, "", ranges},
		{get, tun + "/history?range=1h&range=6h", hist, bad, "", ranges},
		{get, tun + "/history?range=%zz", hist, bad, "", ranges},
		{post, tun + "/history", hist, http.StatusMethodNotAllowed, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/ffffffff/history", hist, notFound, "", `unknown tunnel \"ffffffff\"`},
		{get, "/api/memory/endpoints/nope/tunnels/aaaaaaa1/history", hist, notFound, "", `unknown endpoint \"nope\"`},

		{get, "/api/memory/endpoints/tokyo-1/system", system, ok, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/system?range=7d", system, ok, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/system?range=1w", system, bad, "", ranges},
		{get, "/api/memory/endpoints/%3Cb%3E/system", system, notFound, "", `unknown endpoint \"\u003cb\u003e\"`},

		{get, dailyAll, dailyAll, ok, "", ""},
		{get, dailyAll + "?days=30", dailyAll, ok, "", ""},
		{get, dailyAll + "?days=1", dailyAll, ok, "", ""},
		{get, dailyAll + "?days=0", dailyAll, bad, "", `\"days\": must be one integer from 1 to 31`},
		{get, dailyAll + "?days=32", dailyAll, bad, "", `from 1 to 31`},
		{get, dailyAll + "?days=x", dailyAll, bad, "", `\"days\"`},
		{get, dailyAll + "?days=%zz", dailyAll, bad, "", `\"days\"`},
		{get, "/api/memory/endpoints/tokyo-1/traffic/daily?days=7", dailyEp, ok, "", ""},
		{get, "/api/memory/endpoints/nope/traffic/daily", dailyEp, notFound, "", "unknown endpoint"},
		{get, tun + "/traffic/daily", dailyTun, ok, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/ffffffff/traffic/daily", dailyTun, notFound, "", "unknown tunnel"},

		{get, svcs, svcs, ok, "", ""},
		{get, svcs + "?limit=all", svcs, ok, "", ""},
		{get, svcs + "?sort=-traffic&limit=1&offset=1&q=web", svcs, ok, "", ""},
		{get, svcs + "?sort=bogus", svcs, bad, "", `must be one of sid, alias, type, traffic, mismatch`},
		{get, svcs + "?limit=10001", svcs, bad, "", `\"limit\"`},
		{get, "/api/memory/services/nope", svc, notFound, "", `unknown service \"nope\"`},
		{get, "/api/memory/services/%22%3E%3Cscript%3E", svc, notFound, "", `unknown service \"\"\u003e\u003cscript\u003e\"`},
		{get, "/api/memory/services/nope/traffic/trend", svcTrend, notFound, "", "unknown service"},
		{get, "/api/memory/services/nope/traffic/daily", svcDaily, notFound, "", "unknown service"},

		{get, eps + "?limit=all", eps, ok, "", ""},
		{get, eps + "?limit=0", eps, ok, "", ""},
		{get, eps + "?limit=2&offset=1&sort=-traffic&q=WEB", eps, ok, "", ""},
		{get, eps + "?sort=bogus", eps, bad, "", sorts},
		{get, eps + "?limit=-1", eps, bad, "", `\"limit\": must be an integer from 1 to 10000, or 0 or \"all\"`},
		{get, eps + "?offset=x", eps, bad, "", `\"offset\"`},
		{get, eps + "?q=" + "%ff", eps, bad, "", `\"q\"`},
		{get, "/api/memory/endpoints/tokyo-1/realtime?sort=-alias", ep, ok, "", ""},
		{get, "/api/memory/endpoints/nope/realtime?limit=5", ep, notFound, "", "unknown endpoint"},
		{get, "/api/memory/endpoints/tokyo-1/realtime?sort=x", ep, bad, "", sorts},
	}
}
