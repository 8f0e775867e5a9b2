#!/usr/bin/env bash
# Runs the scrape benchmark, with prometheus-pve-exporter (from PyPI, in a venv under target/)
# measured against the same simulated cluster. Extra arguments go to the benchmark
# (--quick, --sizes 50/5000,200/20000). Output: a Markdown table on stdout.
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
cargo bench --bench scrape -- --pve-exporter "$venv/bin/pve_exporter" "$@"
