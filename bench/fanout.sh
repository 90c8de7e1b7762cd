#!/bin/bash
# fanout.sh - order-event fan-out (issue 13 §4): one omsd, the subscribers
# spread over several oms-bench processes so that the load generator is not
# the bottleneck.
#
#   bench/fanout.sh [-b BUILD] [-w WORKERS] [-p PROCS] [-s SUBSCRIBERS] [-r RATE] [-d SECONDS]
#
# Starts BUILD/omsd (h2c, --workers WORKERS, default 1 so that CreateOrder
# and the fan-out share one loop; store on /dev/shm so that fsync noise stays
# out), then PROCS `oms-bench --call order-watch` processes at once, each with
# SUBSCRIBERS/PROCS WatchOrders subscribers and CreateOrder at RATE/PROCS per
# second. Every subscriber sees every process's orders; each process measures
# its own (CreateOrder send -> event received, same monotonic clock) and checks
# that every subscriber got each of them exactly once. Prints, per process,
# CreateOrder and delivery percentiles, and the server's CPU time and the load
# average around the run (the machine may be shared: say which runs were noisy).
# Defaults: 4 processes, 10000 subscribers, 50 orders/s, 10 s (+3 s warm-up).
set -euo pipefail
BUILD=build WORKERS=1 PROCS=4 SUBS=10000 RATE=50 DUR=10
while getopts "b:w:p:s:r:d:" o; do
    case $o in
    b) BUILD=$OPTARG ;; w) WORKERS=$OPTARG ;; p) PROCS=$OPTARG ;;
    s) SUBS=$OPTARG ;; r) RATE=$OPTARG ;; d) DUR=$OPTARG ;;
    *) sed -n 2,18p "$0"; exit 2 ;;
    esac
done
OUT=$(mktemp -d /tmp/oms-fanout-XXXXXX)
DB=/dev/shm/$(basename "$OUT").db
"$BUILD/omsd" --h2c --listen 127.0.0.1:0 --workers "$WORKERS" --store "sqlite:$DB" \
    --log-level warn --max-connection-idle 0 >"$OUT/omsd.log" 2>&1 &
SP=$!
trap 'kill -INT $SP 2>/dev/null; wait $SP 2>/dev/null; rm -f "$DB" "$DB"-*' EXIT
PORT=
for _ in $(seq 1 200); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$OUT/omsd.log" | cut -d: -f2 || true)
    [ -n "$PORT" ] && break
    sleep 0.05 # polling the log for the port: omsd has no readiness pipe
done
[ -n "$PORT" ] || { cat "$OUT/omsd.log"; exit 1; }
PER=$((SUBS / PROCS))
CONN=$(((PER + 499) / 500)) # omsd allows 1000 streams per connection
PRATE=$(python3 -c "print($RATE / $PROCS)")
L0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r U0 S0 < <(awk '{print $14, $15}' /proc/$SP/stat)
PIDS=()
for p in $(seq 1 "$PROCS"); do
    "$BUILD/oms-bench" --target "127.0.0.1:$PORT" --h2c --call order-watch --concurrency "$PER" \
        --connections "$CONN" --rate "$PRATE" --duration "$DUR" --warmup 3 --drain 20 \
        --json "$OUT/p$p.json" >"$OUT/p$p.out" 2>&1 &
    PIDS+=($!)
done
RC=0
for pid in "${PIDS[@]}"; do wait "$pid" || RC=1; done
read -r U1 S1 < <(awk '{print $14, $15}' /proc/$SP/stat)
L1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "omsd --workers $WORKERS, $SUBS subscribers over $PROCS oms-bench processes, $RATE orders/s"
HZ=$(getconf CLK_TCK)
echo "load average before: $L0  after: $L1  server CPU: user $(((U1 - U0) * 1000 / HZ)) ms," \
    "system $(((S1 - S0) * 1000 / HZ)) ms"
python3 - "$OUT" "$PROCS" <<'EOF'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
ms = lambda h, k: h[k] / 1000
for p in range(1, n + 1):
    try:
        d = json.load(open(f"{out}/p{p}.json"))
    except Exception:
        print(f"p{p}: no result, see {out}/p{p}.out"); continue
    w = d["watch"]; c = w["create_us"]; dl = w["delivery_us"]; sp = w["spread_us"]
    print(f"p{p}: {w['subscribers']} subs, deliveries {w['deliveries']}/{w['expected']}, "
          f"missing {w['missing']}, duplicates {w['duplicates']}, seq gaps {w['seq_gaps']} | "
          f"CreateOrder p50 {ms(c,'p50'):.2f} p99 {ms(c,'p99'):.2f} ms | "
          f"delivery p50 {ms(dl,'p50'):.2f} p99 {ms(dl,'p99'):.2f} ms | "
          f"spread p99 {ms(sp,'p99'):.2f} ms | client {w['client_us_per_delivery']:.2f} us/delivery")
EOF
exit $RC
