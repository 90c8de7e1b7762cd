#!/bin/sh
# loop_watch_slow.sh - runs integration.orders.watch's slow-subscriber case
# N times on each transport, every run on a fresh omsd, and prints how many
# passed. A stall (a subscriber without progress for OMS_IT_WATCH_STALL_S,
# default 15 s) fails its run and the runner prints omsd's SIGUSR1 state dump.
#
#   tests/integration/loop_watch_slow.sh [N [TRANSPORTS [BUILD_DIR]]]
#     N           runs per transport (default 50)
#     TRANSPORTS  comma list (default tls,h2c)
#     BUILD_DIR   holds omsd and tests/integration/pygen (default ./build)
# Output of every run goes to $OMS_LOOP_LOG (default /tmp/loop_watch_slow.log).
set -eu
n=${1:-50}
tr=${2:-tls,h2c}
build=$(cd "${3:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
log=${OMS_LOOP_LOG:-/tmp/loop_watch_slow.log}
rc=0
/usr/bin/python3 "$here/run_orders_watch.py" --omsd "$build/omsd" \
    --gen "$build/tests/integration/pygen" --transport "$tr" --repeat "$n" \
    --timeout $((n * 300)) >"$log" 2>&1 || rc=$?
grep -E '^(PASS|FAIL) .*slow_subscriber' "$log" |
    awk '{split($2, p, "."); k = p[1]; t[k]++; if ($1 == "PASS") ok[k]++}
         END {for (k in t) printf "%s: %d of %d runs passed\n", k, ok[k], t[k]}'
grep -E '^FAIL ' "$log" | cut -c1-400 || true
tail -1 "$log"
exit $rc
