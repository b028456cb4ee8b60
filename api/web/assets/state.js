// What several views share: the last dashboard push and the live rates.
import { RateWindow } from "./fmt.js";

export const shared = {
  dash: null,               // last "dashboard" event of /api/memory/sse/dashboard
  tunnelRates: new RateWindow(15000), // key endpoint/id, from the polled lists
  endpointRates: new RateWindow(15000), // key endpoint id, from the dashboard push
};

// tunnelRate is a tunnel's rate over the window, or, until the window
// holds enough, the exporter's own last figure.
export function tunnelRate(t) {
  const r = shared.tunnelRates.get(t.endpointId + "/" + t.instanceId);
  return r || { rx: t.rate ? t.rate.rx : 0, tx: t.rate ? t.rate.tx : 0 };
}

// pointTime is when a tunnel's figures were taken (the exporter's clock).
export const pointTime = (t, fallback) => Date.parse(t.lastPoint || t.lastEvent || fallback) || Date.now();

// localDay is the date (YYYY-MM-DD) a server day starts on, for a start
// given as an instant: midnight in --web.timezone plus 12 hours falls on
// that date in UTC for every zone within 12 hours of UTC.
export const localDay = (iso) => new Date(Date.parse(iso) + 12 * 3600e3).toISOString().slice(0, 10);
