#!/bin/bash
# bench/unary_pair.sh omsd BIN | nghttpd
#
# One h2c unary throughput figure, pinned the way bench/compare pins it:
# the server on CPU 0, `h2load -t1 -c50 -m20` on CPU 1, a 1-second warm-up,
# then a 5-second run. omsd runs `--workers 1 --bench-only` and gets
# CreateOrder with the gRPC-framed body bench/compare sends; nghttpd serves
# a 60-byte file. Prints calls/s, the server's CPU (user+system from
# /proc/PID/stat over the run, in cores), calls per server CPU-second and
# the load average. Run the two servers one after the other, a few times:
# on a shared machine one pair means little.
set -euo pipefail
kind=$1
bin=${2:-nghttpd}
wd=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$wd"' EXIT
P=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
if [ "$kind" = nghttpd ]; then
    mkdir -p "$wd/docroot"
    printf '%059d\n' 0 | tr 0 x > "$wd/docroot/file60"
    taskset -c 0 nghttpd -a 127.0.0.1 -d "$wd/docroot" --no-tls "$P" >/dev/null 2>&1 &
    PID=$!
    url=http://127.0.0.1:$P/file60
    extra=()
else
    # CreateOrderRequest{customer_id:"c1", items:[{sku:"a", quantity:2, unit_price_cents:150}]}
    printf '\x00\x00\x00\x00\x0e\x0a\x02c1\x12\x08\x0a\x01a\x10\x02\x18\x96\x01' > "$wd/body"
    taskset -c 0 "$bin" --listen "127.0.0.1:$P" --h2c --workers 1 --bench-only \
        --log-level warn >/dev/null 2>&1 &
    PID=$!
    url=http://127.0.0.1:$P/oms.bench.v1.OrderBench/CreateOrder
    extra=(-d "$wd/body" -H "content-type: application/grpc" -H "te: trailers")
fi
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$P") 2>/dev/null && break; sleep 0.1; done
taskset -c 1 h2load -t1 -c50 -m20 -D 1 "${extra[@]}" "$url" >/dev/null
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
out=$(taskset -c 1 h2load -t1 -c50 -m20 -D 5 "${extra[@]}" "$url")
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
hz=$(getconf CLK_TCK)
reqs=$(echo "$out" | sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
cpu=$(echo "scale=3; ($t1-$t0)/$hz/5" | bc)
echo "$kind $(basename "$bin"): $reqs calls/s ($ok succeeded), server CPU $cpu cores," \
     "$(echo "scale=0; $reqs/$cpu" | bc) calls per server CPU-second, load $(cut -d' ' -f1-3 /proc/loadavg)"
