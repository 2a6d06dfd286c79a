#!/usr/bin/env bash
# Soak: SCRAPES scrapes of `shmwho export` while processes come and go; the exporter's memory
# must stay flat.
#
#   bash bench/soak.sh [SCRAPES] [MIN_INTERVAL]      (defaults: 10000 0; run as root)
#
# MIN_INTERVAL 0 makes every scrape a full scan (the worst case). Meanwhile a churn loop keeps
# starting and ending `shmwho lab pool` (a master and 8 workers on a shared region) and short
# `sleep`s, so pids, objects and cgroup rows change between scans. Prints the exporter's VmRSS
# after a warm-up of 200 scrapes, every 1000 scrapes, and at the end, plus VmHWM. Bounded in count
# and in time: stops after SOAK_TIMEOUT seconds (default 1800) whatever the count.
# SHMWHO_BIN overrides the binary (default: target/release/shmwho, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scrapes=${1:-10000}
min_interval=${2:-0}
limit=${SOAK_TIMEOUT:-1800}
bin=${SHMWHO_BIN:-target/release/shmwho}
if [ -z "${SHMWHO_BIN:-}" ] && [ ! -x "$bin" ]; then
  cargo build --release --quiet
fi

work=$(mktemp -d)
exporter=
churn=
cleanup() {
  local rc=$?
  set +e
  [ -n "$churn" ] && kill -TERM "$churn" 2>/dev/null && wait "$churn" 2>/dev/null
  [ -n "$exporter" ] && kill -TERM "$exporter" 2>/dev/null && wait "$exporter" 2>/dev/null
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

"$bin" export --listen 127.0.0.1:0 --min-interval "$min_interval" >"$work/out" 2>"$work/err" &
exporter=$!
for _ in $(seq 300); do
  grep -q serving "$work/out" 2>/dev/null && break
  kill -0 "$exporter" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^shmwho: serving //p' "$work/out")
[ -n "$url" ] || { echo "exporter did not start" >&2; exit 1; }

# Processes that come and go: a pool for ~1 s at a time, and bursts of sleeps.
(
  trap 'kill -TERM $(jobs -p) 2>/dev/null; wait; exit 0' TERM
  while true; do
    "$bin" lab pool --workers 8 --shared 2M --for 1 >/dev/null 2>&1 &
    for _ in $(seq 20); do sleep 0.3 & done
    wait
  done
) &
churn=$!

rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$exporter/status"; }
echo "soak: $scrapes scrapes of $url, --min-interval $min_interval, $(nproc) cores, kernel $(uname -r)"
start=$(date +%s)
failed=0
rss_start=
done_count=0
for i in $(seq 1 "$scrapes"); do
  curl -sf -o /dev/null --max-time 30 "$url" || failed=$((failed + 1))
  done_count=$i
  if [ "$i" -eq 200 ]; then
    rss_start=$(rss VmRSS)
    echo "after $i scrapes (warm-up): VmRSS ${rss_start} kB"
  elif [ $((i % 1000)) -eq 0 ]; then
    echo "after $i scrapes: VmRSS $(rss VmRSS) kB  ($(($(date +%s) - start)) s)"
  fi
  if [ $(($(date +%s) - start)) -ge "$limit" ]; then
    echo "stopped at the ${limit} s limit"
    break
  fi
done
elapsed=$(($(date +%s) - start))
kill -0 "$exporter" 2>/dev/null || { echo "the exporter died" >&2; cat "$work/err" >&2; exit 1; }
rss_end=$(rss VmRSS)
echo "scrapes: $done_count in ${elapsed} s, failed: $failed"
echo "VmRSS after warm-up: ${rss_start:-?} kB, at the end: ${rss_end} kB, peak (VmHWM): $(rss VmHWM) kB"
scan=$(curl -sf "$url" | awk '$1 == "shmwho_scan_duration_seconds" { print $2 }')
echo "last scan: ${scan} s; processes listed: $(curl -sf "$url" | awk '$1 == "shmwho_processes" { print $2 }')"
[ "$failed" -eq 0 ]
