#!/usr/bin/env bash
# Benchmark: shmwho's views against the kernel's own page-walk floor on a PHP-FPM-like pool.
#
#   bash bench/pool.sh [WORKERS] [SHARED] [ROUNDS]     (defaults: 300 64M 7; run as root)
#
# Starts `shmwho lab pool`, then alternates, ROUNDS times, each command below and prints the
# median wall time of each and the ratios the core issue sets:
#   objects / cat smaps  <= 0.2,  procs / cat smaps  <= 0.2,  procs --pss / cat smaps_rollup <= 1.3
# plus shmwho's peak RSS (GNU time). Alternating runs keep a noisy shared machine fair to both.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-300}
shared=${2:-64M}
rounds=${3:-7}

cargo build --release --quiet
bin=target/release/shmwho

ready=$(mktemp)
"$bin" lab pool --workers "$workers" --shared "$shared" --json >"$ready" &
lab=$!
trap 'kill -TERM $lab 2>/dev/null; wait $lab 2>/dev/null; rm -f "$ready"' EXIT
for _ in $(seq 600); do
  [ -s "$ready" ] && break
  kill -0 $lab 2>/dev/null || { echo "lab pool failed" >&2; exit 1; }
  sleep 0.1
done
[ -s "$ready" ] || { echo "lab pool did not become ready" >&2; exit 1; }
echo "pool: $workers workers x $shared shared, $(nproc) cores, kernel $(uname -r)"

declare -A cmds=(
  [smaps]="cat /proc/[0-9]*/smaps > /dev/null 2>&1"
  [rollup]="cat /proc/[0-9]*/smaps_rollup > /dev/null 2>&1"
  [objects]="$bin objects > /dev/null"
  [procs]="$bin procs > /dev/null"
  [procs_pss]="$bin procs --pss > /dev/null"
)
order=(smaps objects procs rollup procs_pss)
declare -A times
now() { date +%s%N; }
for _ in $(seq "$rounds"); do
  for k in "${order[@]}"; do
    t0=$(now); bash -c "${cmds[$k]}" || true; t1=$(now)
    times[$k]+="$(( (t1 - t0) / 1000 )) "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for k in "${order[@]}"; do
  med[$k]=$(echo "${times[$k]}" | median)
  printf '%-10s median %8.1f ms   (runs: %s)\n' "$k" "$(awk -v v="${med[$k]}" 'BEGIN{print v/1000}')" "${times[$k]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
echo "objects / smaps        = $(ratio "${med[objects]}" "${med[smaps]}")   (goal <= 0.2)"
echo "procs / smaps          = $(ratio "${med[procs]}" "${med[smaps]}")   (goal <= 0.2)"
echo "procs --pss / rollup   = $(ratio "${med[procs_pss]}" "${med[rollup]}")   (goal <= 1.3)"
if [ -x /usr/bin/time ]; then
  for args in "objects" "procs" "procs --pss"; do
    kb=$( { /usr/bin/time -f '%M' "$bin" $args > /dev/null; } 2>&1 | tail -1)
    echo "peak RSS shmwho $args: $kb KiB (goal < 30720)"
  done
fi
