#!/usr/bin/env bash
# The ratios of bench/ratios.sh on real PHP-FPM (Debian's php8.2-fpm): a static pool of
# WORKERS workers with a 64 MiB opcache, warmed by REQUESTS FastCGI requests of a generated
# script. Its workers have ~155 mappings each (the lab pool's have 36) and two shared objects
# (the opcache and the scoreboard), mostly not resident.
#
#   bash bench/fpm.sh [WORKERS] [ROUNDS] [REQUESTS]      (defaults: 300 9 600; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-300}
rounds=${2:-9}
requests=${3:-600}
[ "$(id -u)" = 0 ] || { echo "bench/fpm.sh: run as root" >&2; exit 1; }
fpm=/usr/sbin/php-fpm8.2
opcache=$(ls /usr/lib/php/*/opcache.so 2>/dev/null | head -1 || true)
[ -x "$fpm" ] && [ -n "$opcache" ] && command -v cgi-fcgi >/dev/null ||
  { echo "bench/fpm.sh: needs php8.2-fpm, php8.2-opcache and libfcgi-bin" >&2; exit 1; }

cargo build --release --quiet
bin=$PWD/target/release/shmwho
work=$(mktemp -d)
chmod 755 "$work"
pid=""
cleanup() {
  [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

printf 'zend_extension=%s\nopcache.enable=1\nopcache.memory_consumption=64\nopcache.huge_code_pages=0\n' \
  "$opcache" > "$work/php.ini"
printf '[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\ndaemonize = no\n[pool]\nuser = nobody\ngroup = nogroup\nlisten = %s/fpm.sock\npm = static\npm.max_children = %s\n' \
  "$work" "$work" "$work" "$workers" > "$work/fpm.conf"
python3 - "$work/app.php" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("<?php\n")
    for i in range(3000):
        f.write(f"function f{i}($a) {{ $s = 0; for ($j = 0; $j < $a; $j++) {{ $s += $j * {i}; }} return $s . 'x{i}'; }}\n")
    f.write("$t = 0; for ($i = 0; $i < 3000; $i += 97) { $t += strlen(call_user_func('f' . $i, 3)); } echo $t;\n")
PY
chmod 644 "$work/app.php"
"$fpm" -n -c "$work/php.ini" -y "$work/fpm.conf" -R > "$work/out" 2>&1 &
pid=$!
for _ in $(seq 300); do [ -S "$work/fpm.sock" ] && break; sleep 0.1; done
[ -S "$work/fpm.sock" ] || { echo "php-fpm did not start: $(cat "$work/out")" >&2; exit 1; }
for _ in $(seq "$requests"); do
  SCRIPT_FILENAME=$work/app.php REQUEST_METHOD=GET cgi-fcgi -bind -connect "$work/fpm.sock" >/dev/null
done
w=$(pgrep -f '^php-fpm: pool' | head -1)
echo "php-fpm: $workers workers, $(grep -c '' "/proc/$w/maps") mappings in a worker, $(ls /proc | grep -c '^[0-9]') processes, $rounds rounds"
python3 bench/cpu.py "$rounds" \
  "ps=ps -eo pid,rss,comm" \
  "objects=$bin --json" \
  "procs=$bin procs --json" \
  "rollup=cat /proc/[0-9]*/smaps_rollup" \
  "pss=$bin procs --pss --json" > "$work/res"
cat "$work/res"
field() { awk -v n="$1" '$1==n {print $2}' "$work/res"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "shmwho --json / ps CPU:                 $(ratio "$(field objects)" "$(field ps)")"
echo "shmwho procs --json / ps CPU:           $(ratio "$(field procs)" "$(field ps)")"
echo "shmwho procs --pss --json / rollup CPU: $(ratio "$(field pss)" "$(field rollup)")"
