#!/usr/bin/env bash
# What an unprivileged shmwho sees with each capability of the packaged units removed.
# Run as root: sudo bash packaging/caps-matrix.sh [path/to/shmwho]
# Starts a lab (anonymous shared, SysV, memfd, POSIX shm objects of known size) as another user
# and a SysV segment nobody attaches in a new IPC namespace, then scans as uid 61000 with the
# unit's capability set, and with each capability dropped in turn. Prints one line per set:
# lab objects measured exactly, other users' processes unreadable, IPC namespaces not entered.
set -euo pipefail
bin=${1:-target/release/shmwho}
bin=$(readlink -f "$bin")
[ "$(id -u)" = 0 ] || { echo "caps-matrix: run as root" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "caps-matrix: needs setpriv (util-linux)" >&2; exit 2; }

tmp=$(mktemp -d)
cp "$bin" "$tmp/shmwho" && chmod 755 "$tmp" "$tmp/shmwho"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# The lab as nobody: another user's processes.
setpriv --reuid 65534 --regid 65534 --clear-groups "$tmp/shmwho" lab --all --size 8M --for 120 --json >"$tmp/lab.json" &
pids+=($!)
# A SysV segment in its own IPC namespace, held by a sleeping process that never attaches it.
unshare --ipc sh -c 'ipcmk -M 4194304 >/dev/null && exec sleep 120' &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/lab.json" ] && break; sleep 0.1; done
sleep 0.5

scan() {
  local label=$1 caps=$2
  local set="-all" run=()
  [ -n "$caps" ] && set="-all,$caps"
  if [ "$caps" = root ]; then
    run=("$tmp/shmwho")
  else
    run=(setpriv --reuid 61000 --regid 61000 --clear-groups
      --inh-caps="$set" --ambient-caps="$set" --bounding-set="$set" "$tmp/shmwho")
  fi
  "${run[@]}" --json >"$tmp/scan.json" 2>"$tmp/scan.err" || { echo "$label: scan failed: $(cat "$tmp/scan.err")"; return; }
  python3 - "$label" "$tmp/lab.json" "$tmp/scan.json" <<'PY'
import json, sys
label, lab, scan = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
pids = {lab["master_pid"]} | {c["pid"] for c in lab["children"]}
def mine(o):
    return any(h["pid"] in pids for h in o["holders"]) or (o.get("owner") or {}).get("pid") in pids
objs = [o for o in scan["objects"] if mine(o)]
exact = sum(1 for o in objs if o["exact"])
n = scan["notes"]
print(f"{label:<34} lab objects exact {exact}/{len(objs)}  unreadable processes {n['unreadable_processes']:>3}  "
      f"IPC namespaces not entered {n['foreign_ipc_ns_unreadable']}")
PY
}

# setpriv spells capabilities without the cap_ prefix.
unit="checkpoint_restore,sys_ptrace,dac_read_search,fowner"
scan "root" root
scan "unit + sys_admin" "+${unit//,/,+},+sys_admin"
scan "unit" "+${unit//,/,+}"
for drop in ${unit//,/ }; do
  rest=$(echo ",$unit," | sed "s/,$drop,/,/; s/^,//; s/,$//")
  scan "unit - $drop" "+${rest//,/,+}"
done
scan "no capabilities" ""
