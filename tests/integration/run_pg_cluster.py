#!/usr/bin/python3
"""Two omsd instances on one PostgreSQL database behave as one system.

- watch_across: a WatchOrders subscriber on B sees every order made on A (and
  on B), in seq order, gap-free, with no duplicate; the delivery latency from
  A's commit (the event's `at`) to B's stream is printed (p50/p99); resuming
  with since_seq on A gives the same events. Run with --event-poll-ms too
  (--poll), the path for engines without LISTEN/NOTIFY.
- last_units: 40 clients, half on A and half on B, race for 10 units: exactly
  10 orders, reserved = 10.
- same_key: the same idempotency key sent to A and B at once, 20 times: one
  order each time, both answers carry its id.
- killed_holds: a third instance C holds a public Reserve and is killed -9;
  the live instances' orphan sweep (--orphan-sweep-ms 200 on all) releases
  C's hold once C's run lock has been free for the grace (2 x 200 ms + 2 s),
  and leaves B's live hold alone. Bad --orphan-sweep-ms values are usage
  errors (exit 2).
- bench_across (with --oms-bench): `oms-bench --call order-watch` with its
  subscribers on B and --producer-target A (bench/compare's cross-instance
  delivery figure): every subscriber gets every order once, no seq gap.
"""

import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402
from orders_it import T  # noqa: E402
from run_orders import Collector  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0


def watch_across(env, a, b):
    opb = a.opb
    cust = a.new_customer()
    sku = a.new_product(100, 10000)
    col = Collector(b.grpc, b.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cust.id,
                                                                     since_seq=1)))
    made = []
    recv = {}  # seq -> receive time (ms)

    def stamp(evs):
        now = time.time() * 1000
        for e in evs:
            recv.setdefault(e.seq, now)
        return len(evs) >= len(made)

    for i in range(60):
        api = a if i % 3 else b  # mostly A, some on B itself
        made.append(api.create_order(cust.id, [(sku, 1)], key="k%d" % i).id)
        col.wait(stamp, timeout=0.001)
    check(col.wait_n(len(made), timeout=20), "B's watch got %d of %d" % (len(col.events), len(made)))
    col.wait(stamp, timeout=0.001)
    evs = list(col.events)
    seqs = [e.seq for e in evs]
    eq(seqs, sorted(set(seqs)), "seq order, no duplicate")
    eq(sorted(e.order_id for e in evs), sorted(made), "every order once")
    lat = [recv[e.seq] - e.at for e in evs if e.seq in recv]
    print("# delivery A commit -> B stream: p50 %.1f ms, p99 %.1f ms (%d events)" %
          (pct(lat, 0.5), pct(lat, 0.99), len(lat)), flush=True)
    col.it.cancel()
    # the same events resumed on A from the first seq
    got = []
    for e in a.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cust.id, since_seq=seqs[0]),
                               timeout=T):
        got.append(e.seq)
        if len(got) == len(seqs):
            break
    eq(got, seqs, "since_seq on the other instance")


def last_units(env, a, b):
    cust = a.new_customer()
    sku = a.new_product(100, 10)
    ok, codes = [], []
    lock = threading.Lock()

    def one(i):
        api = oi.Api(env.stubs, (env.srv_a if i % 2 else env.srv_b).channel())
        try:
            o = api.create_order(cust.id, [(sku, 1)])
            with lock:
                ok.append(o.id)
        except api.grpc.RpcError as e:
            with lock:
                codes.append(e.code())
        finally:
            api.close()

    oi.threads_run(40, one)
    eq(len(ok), 10, "orders for the last 10 units (others: %s)" % set(codes))
    eq(set(codes), {a.grpc.StatusCode.FAILED_PRECONDITION}, "the rest")
    p = b.product(sku)
    eq((p.on_hand, p.reserved), (10, 10), "stock")


def same_key(env, a, b):
    cust = a.new_customer()
    sku = a.new_product(100, 1000)
    for i in range(20):
        res = [None, None]

        def one(j, key="same-%d" % i):
            res[j] = (a if j == 0 else b).create_order(cust.id, [(sku, 1)], key=key).id

        oi.threads_run(2, one)
        eq(res[0], res[1], "round %d: one order for the key" % i)
    eq(a.product(sku).reserved, 20, "one reservation per key")


def reserve(api, order_id, sku, qty):
    ipb = api.ipb
    return api.inv.Reserve(ipb.ReserveRequest(order_id=order_id, lines=[
        ipb.ReserveLine(sku=sku, quantity=qty)]), timeout=T)


def killed_holds(env, a, b, extra):
    sku = a.new_product(100, 100)
    srv_c = oi.start_server(env, "omsd-c", h2c=True, extra=extra)
    c = oi.Api(env.stubs, srv_c.channel())
    reserve(c, "ext-killed-1", sku, 3)
    reserve(b, "ext-live-1", sku, 2)
    eq(a.product(sku).reserved, 5, "both holds")
    c.close()
    t0 = time.monotonic()
    oi.kill9(env, srv_c)
    # A's and B's sweeps: C's hold goes once C has been gone for the grace
    # (polled, bounded)
    deadline = t0 + 30
    while time.monotonic() < deadline and a.product(sku).reserved != 2:
        time.sleep(0.05)
    took = time.monotonic() - t0
    eq(a.product(sku).reserved, 2, "C's hold released, B's kept")
    check(took >= 2.0, "released %.2f s after the kill, before the grace" % took)
    print("# C's hold released %.1f s after kill -9" % took, flush=True)
    eq(b.inv.Release(b.ipb.ReleaseRequest(order_id="ext-killed-1"), timeout=T).released, False,
       "nothing left to release")


def sweep_flag(env):
    for bad in ["-1", "3600001", "5s", "", "0x10", "99999999999999999999"]:
        r = subprocess.run([env.args.omsd, "--h2c", "--orphan-sweep-ms", bad],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           cwd=env.workdir)
        out = r.stdout.decode(errors="replace")
        eq(r.returncode, 2, "--orphan-sweep-ms %r: %s" % (bad, out[-300:]))
        check("--orphan-sweep-ms wants 0..3600000" in out, "the message: %s" % out[-300:])


def bench_across(env, a, b):
    import json
    import subprocess
    js = os.path.join(env.workdir, "bench-across.json")
    argv = [env.args.oms_bench, "--target", "127.0.0.1:%d" % env.srv_b.port, "--h2c",
            "--producer-target", "127.0.0.1:%d" % env.srv_a.port, "--call", "order-watch",
            "--concurrency", "4", "--rate", "50", "--duration", "1", "--warmup", "0.2",
            "--json", js]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode(errors="replace")
    eq(r.returncode, 0, "oms-bench exit status:\n%s" % out[-2000:])
    with open(js) as f:
        w = json.load(f)["watch"]
    check(w["produced_ok"] > 0, "no orders produced: %s", w)
    eq((w["missing"], w["duplicates"], w["seq_gaps"]), (0, 0, 0), "missing, duplicates, gaps")
    eq(w["deliveries"], w["expected"], "deliveries")
    print("# A -> B delivery p50 %.1f ms, p99 %.1f ms" % (
        w["delivery_us"]["p50"] / 1e3, w["delivery_us"]["p99"] / 1e3), flush=True)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--poll", action="store_true", help="omsd --event-poll-ms 50")
    p.add_argument("--oms-bench", help="oms-bench binary: adds the bench_across case")
    args = p.parse_args()
    with h.Env("pg_cluster", args) as env:
        oi.use_pg(env)
        try:
            url = env.pg.new_db("cluster")
            extra = ["--store", url, "--orphan-sweep-ms", "200"] + (
                ["--event-poll-ms", "50"] if args.poll else [])
            env.srv_a = oi.start_server(env, "omsd-a", h2c=True, extra=extra)
            env.srv_b = oi.start_server(env, "omsd-b", h2c=True, extra=extra)
            a = oi.Api(env.stubs, env.srv_a.channel())
            b = oi.Api(env.stubs, env.srv_b.channel())
            env.suite.run("cluster.watch_across", watch_across, env, a, b)
            env.suite.run("cluster.last_units", last_units, env, a, b)
            env.suite.run("cluster.same_key", same_key, env, a, b)
            env.suite.run("cluster.killed_holds", killed_holds, env, a, b, extra)
            env.suite.run("cluster.sweep_flag", sweep_flag, env)
            if args.oms_bench:
                env.suite.run("cluster.bench_across", bench_across, env, a, b)
            a.close()
            b.close()
            env.suite.stop_server(env.srv_a)
            env.suite.stop_server(env.srv_b)
        finally:
            env.pg_stop()


if __name__ == "__main__":
    main()
