#!/usr/bin/env bash
# The ratios of issue 14: shmwho's CPU time against ps and the kernel's smaps_rollup on a
# PHP-FPM-like pool, and wall time at larger process counts.
#
#   sudo bash bench/ratios.sh [WORKERS] [SHARED] [ROUNDS] [COUNTS]
#        (defaults: 300 64M 7 "1000 10000"; COUNTS "" skips the scale part)
#
# CPU time is user+sys of whole runs (wait4 rusage), the median of ROUNDS alternated rounds
# (bench/cpu.py). Printed ratios, with the issue's goals:
#   shmwho --json            / ps -eo pid,rss,comm                  (goal <= 1.0)
#   shmwho procs --json      / ps -eo pid,rss,comm                  (goal <= 1.2)
#   shmwho procs --pss --json / cat /proc/[0-9]*/smaps_rollup       (goal <= 1.0)
#   shmwho --json wall       / cat /proc/[0-9]*/smaps wall
# then, for each of COUNTS, a `lab pool` of that many workers x 4 MiB (as bench/scale.sh makes
# them) and the median wall and CPU time of `shmwho --json` and `shmwho procs --json`
# (goal: 10,000 processes in <= 0.3 s wall), and the CPU time of one `shmwho export` scrape.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-300}
shared=${2:-64M}
rounds=${3:-7}
counts=${4-"1000 10000"}
[ "$(id -u)" = 0 ] || { echo "bench/ratios.sh: run as root" >&2; exit 1; }

cargo build --release --quiet
bin=$PWD/target/release/shmwho
work=$(mktemp -d)
lab=""
restore=()
cleanup() {
  [ -n "$lab" ] && { kill -TERM "$lab" 2>/dev/null || true; wait "$lab" 2>/dev/null || true; }
  for r in "${restore[@]}"; do sysctl -q -w "$r" >/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_pool WORKERS SHARED: a `shmwho lab pool`, waited for until ready.
start_pool() {
  : > "$work/ready"
  "$bin" lab pool --workers "$1" --shared "$2" --json > "$work/ready" 2>"$work/pool.err" &
  lab=$!
  for _ in $(seq 6000); do
    [ -s "$work/ready" ] && return 0
    kill -0 "$lab" 2>/dev/null || { echo "lab pool failed: $(cat "$work/pool.err")" >&2; exit 1; }
    sleep 0.1
  done
  echo "lab pool --workers $1 not ready" >&2
  exit 1
}
stop_pool() { kill -TERM "$lab"; wait "$lab" 2>/dev/null || true; lab=""; }
raise() { # raise KEY VALUE: a sysctl to at least VALUE, restored on exit
  local now
  now=$(sysctl -n "$1")
  if [ "$now" -lt "$2" ]; then
    restore+=("$1=$now")
    sysctl -q -w "$1=$2" >/dev/null
  fi
}
# scrape_cpu: CPU time of one scan of a running `shmwho export --listen` (utime+stime of the
# exporter over 5 scrapes, --min-interval 0s so each scrape scans), in ms.
scrape_cpu() {
  local exp addr t0 t1 tick
  "$bin" export --listen 127.0.0.1:0 --min-interval 0s > "$work/export.out" 2>/dev/null &
  exp=$!
  for _ in $(seq 100); do grep -q http:// "$work/export.out" 2>/dev/null && break; sleep 0.1; done
  addr=$(grep -o 'http://[^ ]*/metrics' "$work/export.out" | head -1)
  tick=$(getconf CLK_TCK)
  curl -s "$addr" > /dev/null # first scrape: warm
  t0=$(awk '{print $14 + $15}' "/proc/$exp/stat")
  for _ in 1 2 3 4 5; do curl -s "$addr" > /dev/null; done
  t1=$(awk '{print $14 + $15}' "/proc/$exp/stat")
  kill -TERM "$exp"; wait "$exp" 2>/dev/null || true
  awk -v a="$t0" -v b="$t1" -v t="$tick" 'BEGIN{printf "%.0f", (b - a) * 1000 / t / 5}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
field() { awk -v n="$1" -v f="$2" '$1==n {print $f}' "$work/out"; }

start_pool "$workers" "$shared"
echo "pool: $workers workers x $shared shared, $(ls /proc | grep -c '^[0-9]') processes, $(nproc) cores, kernel $(uname -r), $rounds rounds"
python3 bench/cpu.py "$rounds" \
  "ps=ps -eo pid,rss,comm" \
  "objects=$bin --json" \
  "procs=$bin procs --json" \
  "rollup=cat /proc/[0-9]*/smaps_rollup" \
  "pss=$bin procs --pss --json" \
  "smaps=cat /proc/[0-9]*/smaps" > "$work/out"
printf '%-40s %9s %9s\n' command "cpu ms" "wall ms"
while read -r n c w; do
  case $n in
    ps) l="ps -eo pid,rss,comm" ;; objects) l="shmwho --json" ;; procs) l="shmwho procs --json" ;;
    rollup) l="cat /proc/[0-9]*/smaps_rollup" ;; pss) l="shmwho procs --pss --json" ;;
    smaps) l="cat /proc/[0-9]*/smaps" ;;
  esac
  printf '%-40s %9s %9s\n' "$l" "$c" "$w"
done < "$work/out"
echo "shmwho --json / ps CPU:                 $(ratio "$(field objects 2)" "$(field ps 2)")   (goal <= 1.0)"
echo "shmwho procs --json / ps CPU:           $(ratio "$(field procs 2)" "$(field ps 2)")   (goal <= 1.2)"
echo "shmwho procs --pss --json / rollup CPU: $(ratio "$(field pss 2)" "$(field rollup 2)")   (goal <= 1.0)"
echo "shmwho --json / cat smaps wall:         $(ratio "$(field objects 3)" "$(field smaps 3)")"
stop_pool

for n in $counts; do
  others=$(ls /proc | grep -c '^[0-9]')
  raise kernel.pid_max $(( (n + others) * 2 + 1000 ))
  raise kernel.threads-max $(( (n + others) * 4 + 1000 ))
  ulimit -u unlimited 2>/dev/null || ulimit -u "$(ulimit -Hu)"
  start_pool "$n" 4M
  python3 bench/cpu.py 3 "ps=ps -eo pid,rss,comm" "objects=$bin --json" "procs=$bin procs --json" > "$work/out"
  echo "$n workers x 4M ($(ls /proc | grep -c '^[0-9]') processes), median of 3:" \
    "shmwho --json $(field objects 3) ms wall, $(field objects 2) ms CPU;" \
    "shmwho procs --json $(field procs 3) ms wall, $(field procs 2) ms CPU;" \
    "ps $(field ps 3) ms wall, $(field ps 2) ms CPU (goal at 10000: <= 300 ms wall);" \
    "export: $(scrape_cpu) ms CPU per scrape"
  stop_pool
done
