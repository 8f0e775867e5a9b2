#!/usr/bin/env bash
# Prints a process's resident memory each time its peak grows: seconds since the process
# appeared, VmRSS and VmHWM in MB. Start it beside a benchmark to see *when* the peak is
# reached (a collection, an encoding, the end of the first sweep), e.g.:
#   cargo bench --bench scrape -- --sweeps --sizes 500/50000 --seconds 150 &
#   benches/watch-rss.sh "target/release/proxmox-exporter --proxmox-endpoints"
# It waits for the first process whose command line matches the pattern, samples every
# 0.2 s and stops when that process exits.
set -euo pipefail
pattern=${1:-"target/release/proxmox-exporter --proxmox-endpoints"}
pid=""
while [ -z "$pid" ]; do
  # Not this script itself, whose own command line holds the pattern.
  pid=$(pgrep -f -- "$pattern" | grep -v -x "$$" | head -n 1 || true)
  sleep 0.1
done
start=$(date +%s.%N)
last=0
while kill -0 "$pid" 2>/dev/null; do
  read -r rss hwm < <(awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{print r+0, h+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
  if [ "$hwm" -gt "$last" ]; then
    awk -v t="$(date +%s.%N)" -v s="$start" -v r="$rss" -v h="$hwm" \
      'BEGIN{printf "%7.2f s  rss %6.1f MB  peak %6.1f MB\n", t - s, r / 1024, h / 1024}'
    last=$hwm
  fi
  sleep 0.2
done
echo "process $pid exited"
