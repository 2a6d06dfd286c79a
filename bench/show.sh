#!/usr/bin/env bash
# Benchmark: `shmwho show` on a big object with many holders, and `procs --exact` on a pool.
#
#   sudo bash bench/show.sh [ROUNDS]        (default 5; needs ~2.5 GiB free RAM)
#
# 1. `shmwho show INODE` (text and --json) on `shmwho lab pool --workers 100 --shared 2G`: the
#    goal is under 2 s. Then how it grows: 100 workers x 512M, 1G, 2G (object size) and
#    25, 50, 100 workers x 2G (holder count). Every worker has every page in its page tables,
#    the worst case for the per-holder pagemap walk.
# 2. `procs --by tree --exact` next to `procs` and `procs --by tree` on the core issue's pool
#    (300 workers x 64M).
# Prints the median wall time of ROUNDS runs of each; runs alternate so a noisy shared machine
# is fair to all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

cargo build --release --quiet
bin=$PWD/target/release/shmwho

lab=""
ready=$(mktemp)
stop_lab() {
  if [ -n "$lab" ]; then
    kill -TERM "$lab" 2>/dev/null || true
    wait "$lab" 2>/dev/null || true
    lab=""
  fi
}
trap 'stop_lab; rm -f "$ready"' EXIT

start_pool() { # WORKERS SHARED
  stop_lab
  : >"$ready"
  "$bin" lab pool --workers "$1" --shared "$2" --json >"$ready" &
  lab=$!
  for _ in $(seq 1200); do
    [ -s "$ready" ] && return 0
    kill -0 "$lab" 2>/dev/null || { echo "lab pool failed" >&2; exit 1; }
    sleep 0.1
  done
  echo "lab pool did not become ready" >&2
  exit 1
}

# inode:MAJ:MIN:INO of the pool's region, from the lab's JSON line.
object() {
  local dev ino
  dev=$(sed -n 's/.*"dev":"\([0-9:]*\)".*/\1/p' "$ready")
  ino=$(sed -n 's/.*"inode":\([0-9]*\).*/\1/p' "$ready")
  echo "inode:$dev:$ino"
}
now() { date +%s%N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v v="$1" 'BEGIN{printf "%.0f", v/1000}'; }

# time_cmds LABEL CMD... : alternates the commands ROUNDS times, prints each median.
time_cmds() {
  local label=$1
  shift
  local -a cmds=("$@")
  local -A t=()
  for _ in $(seq "$rounds"); do
    for i in "${!cmds[@]}"; do
      local t0 t1
      t0=$(now)
      bash -c "${cmds[$i]}" >/dev/null
      t1=$(now)
      t[$i]+="$(((t1 - t0) / 1000)) "
    done
  done
  for i in "${!cmds[@]}"; do
    printf '%-24s %-44s median %6s ms  (runs ms: %s)\n' "$label" "${cmds[$i]#"$bin" }" \
      "$(ms "$(echo "${t[$i]}" | median)")" \
      "$(for v in ${t[$i]}; do printf '%s ' "$(ms "$v")"; done)"
  done
}

echo "$(nproc) cores, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== show: object size (100 holders, every page mapped by each)"
for size in 512M 1G 2G; do
  start_pool 100 "$size"
  o=$(object)
  time_cmds "100 x $size" "$bin show $o" "$bin show $o --json"
done
echo "== show: holder count (2G object)"
for w in 25 50; do
  start_pool "$w" 2G
  o=$(object)
  time_cmds "$w x 2G" "$bin show $o"
done
stop_lab

echo "== procs --exact (300 workers x 64M)"
start_pool 300 64M
time_cmds "300 x 64M" "$bin procs" "$bin procs --by tree" "$bin procs --by tree --exact" \
  "$bin procs --by command --exact"
