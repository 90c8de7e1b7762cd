#!/usr/bin/python3
"""oms-bench, the load generator, against a real omsd over TLS and h2c.

For each transport, one omsd (harness: omsd.py) and, per --call type, a short
run (--duration 1 --warmup 0, 2 connections, 4 in flight) with --json; the
JSON is parsed and checked: exit status 0, calls > 0, errors = 0, latency
samples with ordered percentiles, messages counted as the call type says.

The order system (oms.v1), per transport, against an omsd with a temp --store:
  order_create       --call order-create: durable CreateOrders, zero errors, the
                     setup's stock top-up reported
  order_watch        --call order-watch with 200 subscribers: every subscriber
                     live, every order delivered to each exactly once (missing
                     and duplicates 0), delivery latencies ordered

Also, on h2c only (the transport changes nothing there):
  open_loop          --rate 300: about 300 calls in the second, queue fields
  payload            --payload N packs CreateOrder/StreamingInputCall/Track to N
  bidi_stream_limit  --messages 5: Track streams end (OK) and new ones start
  server_stream_n    --messages 10: WatchOrders of 10 events each
and without a server:
  usage.*            bad flags exit 2 with a message; --help documents every flag
  unreachable        a port nobody listens on: exit 1, "cannot reach"

Usage:
  run_bench_tool.py --oms-bench build/oms-bench --omsd build/omsd [--transport tls,h2c]
"""

import json
import os
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

CALLS = ["unary", "server-stream", "client-stream", "bidi"]
FLAGS = ["--target", "--ca", "--h2c", "--server-name", "--call", "--connections",
         "--concurrency", "--duration", "--count", "--warmup", "--rate", "--payload", "--messages",
         "--json", "--help", "--customer", "--sku", "--quantity", "--no-key", "--stock",
         "--drain", "--open-timeout", "--producer-target", "order-create", "order-watch"]
BENCH_TIMEOUT = float(os.environ.get("OMS_IT_BENCH_TIMEOUT", "60"))


class BenchRun:
    """One oms-bench process; .json holds the parsed --json output (or None)."""

    def __init__(self, bench, args, workdir, name):
        self.json_path = os.path.join(workdir, name + ".json")
        if os.path.exists(self.json_path):
            os.unlink(self.json_path)
        self.argv = [bench] + list(args) + ["--json", self.json_path]
        p = subprocess.run(h.wrap_argv(self.argv), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=BENCH_TIMEOUT, **h.popen_kwargs())
        self.rc = p.returncode
        self.stdout = p.stdout.decode(errors="replace")
        self.stderr = p.stderr.decode(errors="replace")
        self.json = None
        if os.path.exists(self.json_path):
            with open(self.json_path) as f:
                self.json = json.load(f)

    def describe(self):
        return "$ %s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.argv), self.rc, self.stdout, self.stderr)


def target_args(server):
    if server.h2c:
        return ["--target", "127.0.0.1:%d" % server.port, "--h2c"]
    # the certificate names localhost (and 127.0.0.1)
    return ["--target", "localhost:%d" % server.port, "--ca", server.ca_path()]


def short_run(env, server, call, extra=(), name=None):
    args = target_args(server) + ["--call", call, "--duration", "1", "--warmup", "0",
                                  "--connections", "2", "--concurrency", "4"] + list(extra)
    r = BenchRun(env.args.oms_bench, args, env.workdir,
                 name or "%s-%s" % (server.transport, call))
    check(r.rc == 0, "oms-bench failed:\n%s", r.describe())
    check(r.json is not None, "no JSON written:\n%s", r.describe())
    check(not any(m in r.stderr for m in h.SANITIZER_MARKERS), "sanitizer report:\n%s",
          r.stderr)
    return r


def check_figures(r, call, transport):
    j = r.json
    ctx = "\n" + r.describe()
    eq(j["config"]["call"], call, "config.call")
    eq(j["config"]["transport"], transport, "config.transport")
    eq(j["config"]["connections"], 2, "config.connections")
    eq(j["config"]["concurrency"], 4, "config.concurrency")
    check(j["calls"] > 0, "calls = %s, want > 0%s", j["calls"], ctx)
    check(j["errors"] == 0, "errors = %s (%s), want 0%s", j["errors"], j["errors_by_code"], ctx)
    eq(j["calls_ok"], j["calls"], "calls_ok")
    eq(j["errors_by_code"], {}, "errors_by_code")
    check(0.9 <= j["duration_s"] <= 1.5, "duration_s %s, want about 1", j["duration_s"])
    lat = j["latency_us"]
    check(lat["count"] > 0 and lat["count"] == j["ops"], "latency count %s vs ops %s",
          lat["count"], j["ops"])
    order = [lat[k] for k in ("min", "p50", "p90", "p99", "p99.9", "max")]
    check(all(a <= b for a, b in zip(order, order[1:])), "percentiles out of order: %s", lat)
    check(0 < lat["min"] <= lat["mean"] <= lat["max"], "min/mean/max: %s", lat)
    check(j["messages"] > 0, "messages = %s", j["messages"])
    check(j["rate"] > 0, "rate = %s", j["rate"])
    if call == "unary":
        eq(j["rate_unit"], "calls/s", "rate_unit")
        check(abs(j["messages"] - j["calls"]) <= 4, "unary: messages %s vs calls %s",
              j["messages"], j["calls"])
    elif call == "server-stream":
        eq(j["config"]["messages_per_stream"], 1000, "default events per stream")
        check(j["messages"] >= 1000 * j["calls"] - 4000,
              "server-stream: %s events for %s streams", j["messages"], j["calls"])
    elif call == "client-stream":
        eq(j["config"]["method"], "/grpc.testing.TestService/StreamingInputCall", "method")
        check(j["messages"] >= 1000 * j["calls"] - 4000,
              "client-stream: %s requests for %s streams", j["messages"], j["calls"])
    elif call == "bidi":
        eq(j["op_unit"], "round trip", "op_unit")
        # one stream per slot for the whole run, half-closed (OK) at its end
        eq(j["calls"], 4, "bidi streams ended")
        check(j["ops"] >= 100, "bidi: only %s round trips in a second", j["ops"])
    check("latency" in r.stdout and "throughput" in r.stdout,
          "no summary table on stdout:%s", ctx)


def check_order_common(r, call, transport):
    j = r.json
    ctx = "\n" + r.describe()
    eq(j["config"]["call"], call, "config.call")
    eq(j["config"]["transport"], transport, "config.transport")
    check(j["errors"] == 0, "errors = %s (%s, %s), want 0%s", j["errors"], j["errors_by_code"],
          j["error_messages"], ctx)
    eq(j["calls_ok"], j["calls"], "calls_ok")
    o = j["order"]
    eq(o["sku"], "SKU-001", "order.sku")
    eq(o["quantity"], 1, "order.quantity")
    check(o["customer"], "no customer in %s", o)
    # the demo catalog has a few hundred units; the setup tops them up
    check(o["stock_before"] >= 0, "stock_before %s", o)
    check(o["stock_before"] + o["stock_added"] >= 100000000, "stock not topped up: %s", o)
    lat = j["latency_us"]
    order = [lat[k] for k in ("min", "p50", "p90", "p99", "p99.9", "max")]
    check(all(a <= b for a, b in zip(order, order[1:])), "percentiles out of order: %s", lat)
    check(lat["count"] > 0 and lat["count"] == j["ops"], "latency count %s vs ops %s%s",
          lat["count"], j["ops"], ctx)
    check(j["rate"] > 0, "rate = %s", j["rate"])


def case_order_create(env, server):
    r = short_run(env, server, "order-create", name="%s-order-create" % server.transport)
    j = r.json
    check_order_common(r, "order-create", server.transport)
    check(j["calls"] > 0, "calls = %s", j["calls"])
    eq(j["rate_unit"], "calls/s", "rate_unit")
    eq(j["config"]["method"], "/oms.v1.OrderService/CreateOrder", "method")
    eq(j["order"]["idempotency_keys"], True, "idempotency keys by default")
    check("orders" in r.stdout and "stock" in r.stdout, "no order lines in the table")
    # again without keys, open loop: the stock is already there
    r = short_run(env, server, "order-create", ["--no-key", "--rate", "200", "--concurrency", "50"],
                  name="%s-order-create-nokey" % server.transport)
    check_order_common(r, "order-create", server.transport)
    eq(r.json["order"]["idempotency_keys"], False, "--no-key")
    # the first run's orders are all the top-up has to make good
    check(0 <= r.json["order"]["stock_added"] <= j["calls"] + 1000,
          "the later bench topped up %s after %s orders", r.json["order"]["stock_added"], j["calls"])
    # at most the rate (calls still in flight when the second ends are not
    # counted, which on a loaded machine or a sanitizer build can be many)
    check(50 <= r.json["calls"] <= 230, "200 calls/s for 1 s gave %s", r.json["calls"])


def case_order_watch(env, server):
    subs = 200
    r = short_run(env, server, "order-watch",
                  ["--concurrency", str(subs), "--rate", "100", "--drain", "10"],
                  name="%s-order-watch" % server.transport)
    j = r.json
    ctx = "\n" + r.describe()
    check_order_common(r, "order-watch", server.transport)
    w = j["watch"]
    eq(w["subscribers"], subs, "watch.subscribers")
    eq(w["subscribers_live"], subs, "watch.subscribers_live")
    eq(w["subscribers_open"], subs, "watch.subscribers_open")
    check(w["produced_ok"] > 0 and w["produced_window"] > 0, "no orders produced: %s%s", w, ctx)
    eq(w["produced_ok"], w["produced"], "every producer CreateOrder OK")
    eq(w["expected"], w["produced_ok"] * subs, "watch.expected")
    eq(w["missing"], 0, "watch.missing")
    eq(w["duplicates"], 0, "watch.duplicates")
    eq(w["subscribers_missing"], 0, "watch.subscribers_missing")
    eq(w["seq_gaps"], 0, "watch.seq_gaps")
    eq(w["deliveries"], w["expected"], "watch.deliveries")
    eq(w["deliveries_window"], w["produced_window"] * subs, "watch.deliveries_window")
    eq(j["ops"], w["deliveries_window"], "ops = deliveries in the window")
    check(w["deliveries_per_s"] > 0, "deliveries_per_s %s", w["deliveries_per_s"])
    for k in ("delivery_us", "commit_at_us", "spread_us", "create_us"):
        h_ = w[k]
        check(h_["count"] > 0, "watch.%s empty%s", k, ctx)
        seq = [h_[x] for x in ("min", "p50", "p90", "p99", "p99.9", "max")]
        check(all(a <= b for a, b in zip(seq, seq[1:])), "watch.%s out of order: %s", k, h_)
    eq(w["delivery_us"]["count"], w["deliveries_window"], "delivery samples")
    check("deliveries" in r.stdout and "missing 0" in r.stdout, "no watch summary:%s", ctx)


def case_open_loop(env, server):
    r = short_run(env, server, "unary", ["--rate", "300", "--concurrency", "50"],
                  name="open-loop")
    j = r.json
    eq(j["config"]["open_loop"], True, "open_loop")
    eq(j["errors"], 0, "errors")
    check(240 <= j["calls"] <= 330, "300 calls/s for 1 s gave %s calls", j["calls"])
    for k in ("queued", "max_queue", "unstarted"):
        check(k in j, "no %s in the JSON", k)
    check("queued" in r.stdout, "open loop summary lacks the queue line")


def case_count(env, server):
    """--count N: the window ends at the N-th operation, whatever --duration says."""
    for call, n in (("unary", 300), ("bidi", 200)):
        r = short_run(env, server, call, ["--count", str(n), "--duration", "600",
                                          "--concurrency", "8"], name="count-" + call)
        j = r.json
        eq(j["config"]["count"], n, "%s: config.count" % call)
        eq(j["ops"], n, "%s: operations in the window" % call)
        eq(j["errors"], 0, "%s: errors" % call)
        if call == "unary":
            eq(j["calls"], n, "unary: calls counted (the N-th one included)")
        check(j["duration_s"] < 60, "%s: the window lasted %s s", call, j["duration_s"])


def case_payload(env, server):
    for call in ("unary", "client-stream", "bidi"):
        for size in (100, 1000, 5000):
            r = short_run(env, server, call, ["--payload", str(size), "--messages", "10"]
                          if call == "client-stream" else ["--payload", str(size)],
                          name="payload-%s-%d" % (call, size))
            eq(r.json["config"]["request_bytes"], size, "%s --payload %d: request_bytes"
               % (call, size))
            eq(r.json["errors"], 0, "errors")


def case_bidi_stream_limit(env, server):
    r = short_run(env, server, "bidi", ["--messages", "5"], name="bidi-limit")
    j = r.json
    eq(j["errors"], 0, "errors")
    # every 5 round trips a stream ends and another starts
    check(j["calls"] >= j["ops"] // 5 - 4, "%s streams for %s round trips", j["calls"], j["ops"])
    check(j["calls"] > 4, "streams never ended: calls %s", j["calls"])


def case_server_stream_n(env, server):
    r = short_run(env, server, "server-stream", ["--messages", "10"], name="watch-10")
    j = r.json
    eq(j["errors"], 0, "errors")
    check(abs(j["messages"] - 10 * j["calls"]) <= 40, "%s events for %s streams of 10",
          j["messages"], j["calls"])


def run_plain(bench, args):
    p = subprocess.run(h.wrap_argv([bench] + args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=BENCH_TIMEOUT,
                       **h.popen_kwargs())
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def case_usage(bench, args, want_in_stderr):
    rc, out, err = run_plain(bench, args)
    eq(rc, 2, "exit status of oms-bench %s" % " ".join(args))
    check(want_in_stderr in err, "stderr %r lacks %r", err, want_in_stderr)
    eq(out, "", "stdout")


def case_help(bench):
    rc, out, _ = run_plain(bench, ["--help"])
    eq(rc, 0, "--help exit status")
    for flag in FLAGS:
        check(flag in out, "--help does not document %s", flag)


def case_unreachable(bench):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    rc, _, err = run_plain(bench, ["--target", "127.0.0.1:%d" % port, "--h2c",
                                   "--duration", "1", "--warmup", "0"])
    eq(rc, 1, "exit status against a closed port")
    check("cannot reach" in err and "refused" in err, "stderr: %r", err)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--oms-bench", required=True, help="path to the oms-bench binary")
    args = p.parse_args()
    if not os.access(args.oms_bench, os.X_OK):
        print("oms-bench not found or not executable: %s" % args.oms_bench)
        print("0 passed, 1 failed")
        sys.exit(1)
    bench = args.oms_bench = os.path.abspath(args.oms_bench)
    with h.Env("bench_tool", args) as env:
        run = env.suite.run
        run("usage.no_target", case_usage, bench, ["--h2c"], "--target")
        run("usage.bad_call", case_usage, bench, ["--target", "127.0.0.1:1", "--call", "x"],
            "--call")
        run("usage.bad_number", case_usage, bench,
            ["--target", "127.0.0.1:1", "--concurrency", "many"], "--concurrency")
        run("usage.unknown_flag", case_usage, bench, ["--target", "127.0.0.1:1", "--nope"],
            "unknown option")
        run("usage.ca_with_h2c", case_usage, bench,
            ["--target", "127.0.0.1:1", "--h2c", "--ca", "x.pem"], "--ca")
        run("usage.bad_count", case_usage, bench,
            ["--target", "127.0.0.1:1", "--count", "0"], "--count")
        run("usage.count_open_loop", case_usage, bench,
            ["--target", "127.0.0.1:1", "--count", "10", "--rate", "100"], "--count")
        run("usage.bad_quantity", case_usage, bench,
            ["--target", "127.0.0.1:1", "--call", "order-create", "--quantity", "0"],
            "--quantity")
        run("usage.producer_target_not_watch", case_usage, bench,
            ["--target", "127.0.0.1:1", "--producer-target", "127.0.0.1:2"],
            "--producer-target")
        run("usage.bad_producer_target", case_usage, bench,
            ["--target", "127.0.0.1:1", "--call", "order-watch", "--producer-target", "nope"],
            "--producer-target")
        run("usage.help", case_help, bench)
        run("unreachable", case_unreachable, bench)
        for tr in env.transports:
            # the order system's store in the runner's temp dir
            store = os.path.join(env.workdir, "bench-%s.db" % tr)
            server = env.server(h2c=(tr == "h2c"), extra_args=["--store", "sqlite:" + store])
            for call in CALLS:
                def one(call=call):
                    r = short_run(env, server, call)
                    check_figures(r, call, tr)
                run("%s.%s" % (tr, call), one)
            run("%s.order_create" % tr, case_order_create, env, server)
            run("%s.order_watch" % tr, case_order_watch, env, server)
            if tr == "h2c":
                run("h2c.open_loop", case_open_loop, env, server)
                run("h2c.count", case_count, env, server)
                run("h2c.payload", case_payload, env, server)
                run("h2c.bidi_stream_limit", case_bidi_stream_limit, env, server)
                run("h2c.server_stream_n", case_server_stream_n, env, server)
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
