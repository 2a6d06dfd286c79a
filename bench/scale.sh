#!/usr/bin/env bash
# Scale: shmwho's views on pools of 1k, 5k and 10k processes, and on one process with 100,000
# shared mappings (as root, and as its unprivileged owner, whose lower bounds are computed over
# every mapping). Prints wall time and peak RSS (GNU time) of `shmwho`, `shmwho procs` and
# `shmwho procs --pss` at each size, and the growth from one size to the next: a linear step
# grows like the count (x5, x2), a quadratic one like its square (x25, x4).
#
#   sudo bash bench/scale.sh [COUNTS] [MAPPINGS] [RUNS]   (defaults: "1000 5000 10000" 100000 3)
#
# Raises kernel.pid_max, kernel.threads-max and vm.max_map_count when they are too low, and
# restores them on exit; every run is bounded by `timeout` (TIMEOUT seconds, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
counts=${1:-"1000 5000 10000"}
mappings=${2:-100000}
runs=${3:-3}
limit=${TIMEOUT:-600}
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh: run as root" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/scale.sh: needs GNU time (Debian package time)" >&2; exit 1; }

cargo build --release --quiet
bin=$PWD/target/release/shmwho
# /usr/bin/python3: a pyenv shim under /root is not reachable by the unprivileged user.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

work=$(mktemp -d)
chmod 755 "$work"
restore=()
pool=""
helper=""
cleanup() {
  [ -n "$pool" ] && { kill -TERM "$pool" 2>/dev/null || true; wait "$pool" 2>/dev/null || true; }
  [ -n "$helper" ] && { kill -TERM "$helper" 2>/dev/null || true; wait "$helper" 2>/dev/null || true; }
  for r in "${restore[@]}"; do sysctl -q -w "$r" >/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# raise KEY VALUE: set a sysctl to at least VALUE, restoring it on exit.
raise() {
  local now
  now=$(sysctl -n "$1")
  if [ "$now" -lt "$2" ]; then
    restore+=("$1=$now")
    sysctl -q -w "$1=$2" >/dev/null
    echo "raised $1 from $now to $2 (restored on exit)"
  fi
}

# measure LABEL CMD...: RUNS runs; prints the median wall time and the largest peak RSS.
declare -A med
measure() {
  local label=$1; shift
  local ts=() kb=0 out t m
  for _ in $(seq "$runs"); do
    if ! /usr/bin/time -o "$work/time" -f '%e %M' timeout "$limit" "$@" > /dev/null 2>"$work/err"; then
      echo "  $label: failed or timed out after ${limit}s: $(head -c 300 "$work/err")"
      med[$label]=""
      return
    fi
    out=$(tail -1 "$work/time")
    read -r t m <<<"$out"
    ts+=("$t")
    (( m > kb )) && kb=$m
  done
  t=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  med[$label]=$t
  printf '  %-34s %8.2f s   peak RSS %7.1f MiB   (runs: %s)\n' "$label" "$t" \
    "$(awk -v k="$kb" 'BEGIN{print k/1024}')" "${ts[*]}"
}

growth() { # growth A B: B/A, or "-" when either is missing
  if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "x%.1f", b/a}'; else echo "-"; fi
}

echo "shmwho at scale: $(nproc) CPUs, kernel $(uname -r), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $runs runs each"
views=("objects" "procs" "procs --pss")
prev=""
for n in $counts; do
  others=$(ls /proc | grep -c '^[0-9]')
  raise kernel.pid_max $(( (n + others) * 2 + 1000 ))
  raise kernel.threads-max $(( (n + others) * 4 + 1000 ))
  ulimit -u unlimited 2>/dev/null || ulimit -u "$(ulimit -Hu)"
  ready=$work/pool.json
  : > "$ready"
  t0=$(date +%s.%N)
  "$bin" lab pool --workers "$n" --shared 4M --json > "$ready" 2>"$work/pool.err" &
  pool=$!
  for _ in $(seq $(( limit * 10 ))); do
    [ -s "$ready" ] && break
    kill -0 "$pool" 2>/dev/null || { echo "lab pool --workers $n failed: $(cat "$work/pool.err")" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$ready" ] || { echo "lab pool --workers $n not ready after ${limit}s" >&2; exit 1; }
  echo
  echo "pool of $n workers x 4 MiB (started in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s), $(ls /proc | grep -c '^[0-9]') processes on the host:"
  for v in "${views[@]}"; do
    # shellcheck disable=SC2086
    measure "$n: shmwho $v" "$bin" $v
  done
  measure "$n: cat /proc/[0-9]*/smaps (floor)" bash -c 'cat /proc/[0-9]*/smaps > /dev/null 2>&1; true'
  if [ -n "$prev" ]; then
    for v in "${views[@]}"; do
      echo "  growth $prev -> $n, shmwho $v: $(growth "${med["$prev: shmwho $v"]}" "${med["$n: shmwho $v"]}") for x$(awk -v a="$prev" -v b="$n" 'BEGIN{printf "%.1f", b/a}') processes"
    done
  fi
  prev=$n
  kill -TERM "$pool"; wait "$pool" 2>/dev/null || true; pool=""
done

echo
raise vm.max_map_count $(( mappings + 70000 ))
cat > "$work/maps.py" <<'EOF'
# One process with N one-page shared anonymous mappings (N objects), every 10th written.
import mmap, os, signal, sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    m = mmap.mmap(-1, 4096, flags=mmap.MAP_SHARED)
    if i % 10 == 0:
        m[0:1] = b"x"
    keep.append(m)
print(os.getpid(), flush=True)
signal.pause()
EOF
for who in root nobody; do
  as=()
  [ "$who" = nobody ] && as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  : > "$work/helper.pid"
  "${as[@]}" "$py" "$work/maps.py" "$mappings" > "$work/helper.pid" 2>"$work/helper.err" &
  helper=$!
  for _ in $(seq 600); do
    [ -s "$work/helper.pid" ] && break
    kill -0 "$helper" 2>/dev/null || { echo "mapping helper failed: $(cat "$work/helper.err")" >&2; exit 1; }
    sleep 0.2
  done
  echo "one process ($who) with $(wc -l < "/proc/$(cat "$work/helper.pid")/maps") mappings, $mappings of them shared objects; scanned by $who:"
  for v in "${views[@]}"; do
    # shellcheck disable=SC2086
    measure "$who: shmwho $v" "${as[@]}" "$bin" $v
  done
  kill -TERM "$helper"; wait "$helper" 2>/dev/null || true; helper=""
done
