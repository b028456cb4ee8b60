#!/usr/bin/env bash
# Installs what the test suite uses from Debian's packages, when missing:
#   promtool and prometheus (package prometheus) - rules, metrics checks, a real scrape
#   victoria-metrics                              - a real remote_write receiver
#   chromium                                      - the browser test of the web page
#   wrk                                           - loopback load for benchmarks
#   prometheus-alertmanager                       - a real Alertmanager for the in-process rules
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian prometheus package starts a service on install on some systems;
# the tests start their own servers on free loopback ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $sudo systemctl stop prometheus || true
fi
