#!/usr/bin/env bash
# Runs the scrape benchmarks, with prometheus-pve-exporter (from PyPI, in a venv under target/)
# measured against the same simulated cluster: first the cluster's side (a pveproxy-like
# simulator, every scrape starting cold), then the exporter alone. Extra arguments go to both
# (--quick, --cold-runs 5). Output: Markdown tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
# sed reads all of pip's output (grep -q would stop early, and pipefail would see pip's SIGPIPE).
if [ "$("$venv/bin/pip" show prometheus-pve-exporter 2>/dev/null | sed -n 's/^Version: //p')" != 3.10.2 ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet prometheus-pve-exporter==3.10.2
fi
echo "prometheus-pve-exporter $("$venv/bin/pip" show prometheus-pve-exporter | sed -n 's/^Version: //p')," \
  "$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)" >&2
# The headline: the cluster's side, against a pveproxy-like simulator, scrapes 30 s apart.
echo "## The cluster's side (pveproxy-like simulator, 3 endpoints, every scrape cold)"
cargo bench --bench scrape -- --realistic --sizes 3/30,50/5000,200/20000 --latencies 20 \
  --pve-exporter "$venv/bin/pve_exporter" "$@"
echo
echo "## The exporter alone (simulator without pveproxy's limits, one endpoint, no connection limit)"
cargo bench --bench scrape -- --pve-exporter "$venv/bin/pve_exporter" \
  --exporter-args "--max-connections-per-endpoint 0" "$@"
echo
echo "## Scale (500 nodes / 50,000 guests, the exporter alone, every scrape cold)"
cargo bench --bench scrape -- --scale --sizes 500/50000 --latencies 20 --cold-runs 10
