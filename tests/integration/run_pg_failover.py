#!/usr/bin/python3
"""Subscribers and acked orders across PostgreSQL and omsd failures (two omsd on one database).

- watch_across_restart: WatchOrders subscribers on A and on B (from seq 1)
  while clients create orders on both and PostgreSQL is stopped and started
  again. A stream that ends with UNAVAILABLE (a catch-up read while the
  database is down says where to resume) is resumed with since_seq = last
  seen + 1 (what a client does). Afterwards each subscriber has seen exactly
  seq 1..N (no gap, no duplicate, in order), N = the orders in the database =
  the keys sent (failed calls retried with their key).
- kill9_one: clients on A and B, a subscriber on B; A is kill -9ed under load.
  B goes on acking, its subscriber's stream never ends and sees every event
  1..N in order, A's acked orders are all there, A's failed calls retried on B
  give one order per key, stock reserved = orders.
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

BOUND_S = 30


def max_seq(env, db):
    r = subprocess.run([os.path.join(env.pg.bindir, "psql"), "-X", "-h", "127.0.0.1", "-p",
                        str(env.pg.port), "-U", "oms", "-d", db, "-tAc",
                        "SELECT count(*), coalesce(max(seq), 0) FROM events"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    check(r.returncode == 0, "psql: %s", r.stdout)
    n, hi = (int(x) for x in r.stdout.strip().split("|"))
    eq(n, hi, "events in the database are 1..max gap-free")
    return hi


class Watcher:
    """WatchOrders from seq 1 on a thread; on UNAVAILABLE resumes with
    since_seq = last seen + 1 (after a client's backoff), else records the
    error and stops."""

    def __init__(self, api, name):
        self.api = api
        self.name = name
        self.seqs = []
        self.orders = []
        self.resumes = 0
        self.error = None
        self.call = None
        self.stop = threading.Event()
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        SC = self.api.grpc.StatusCode
        while not self.stop.is_set():
            since = self.seqs[-1] + 1 if self.seqs else 1
            self.call = self.api.ord.WatchOrders(self.api.opb.WatchOrdersRequest(since_seq=since))
            try:
                for e in self.call:
                    with self.cv:
                        self.seqs.append(e.seq)
                        self.orders.append(e.order_id)
                        self.cv.notify_all()
            except self.api.grpc.RpcError as e:
                if self.stop.is_set() or e.code() == SC.CANCELLED:
                    return
                if e.code() != SC.UNAVAILABLE:
                    self.error = e
                    with self.cv:
                        self.cv.notify_all()
                    return
                self.resumes += 1
                self.stop.wait(0.2)  # a client's backoff before it resumes

    def wait_seq(self, n, timeout=BOUND_S):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not (self.seqs and self.seqs[-1] >= n) and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(left)
            return bool(self.seqs) and self.seqs[-1] >= n

    def close(self):
        self.stop.set()
        if self.call:
            self.call.cancel()
        self.t.join(10)

    def check_all(self, n, ids):
        check(self.error is None, "%s: stream failed: %s", self.name, self.error)
        check(self.wait_seq(n), "%s: saw up to %s of %d", self.name,
              self.seqs[-1] if self.seqs else None, n)
        oi.check_consecutive(self.seqs, 1, self.name)
        eq(len(self.seqs), n, "%s: events" % self.name)
        eq(set(self.orders), ids, "%s: one event per order" % self.name)


class Load:
    """Threads creating orders (one key per call) on the given servers."""

    def __init__(self, env, servers, cust, sku):
        self.env = env
        self.cust, self.sku = cust, sku
        self.acked, self.failed = {}, {}  # key -> id / StatusCode
        self.by_server = {}
        self.stop = threading.Event()
        self.cv = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=(i, s), daemon=True)
                        for i, s in enumerate(servers)]
        for t in self.threads:
            t.start()

    def _run(self, i, server):
        api = oi.api_for(self.env, server)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key = "t%d-%d" % (i, n)
                try:
                    oid = api.create_order(self.cust.id, [(self.sku, 1)], key=key, timeout=10).id
                    with self.cv:
                        self.acked[key] = oid
                        self.by_server[server.name] = self.by_server.get(server.name, 0) + 1
                        self.cv.notify_all()
                except api.grpc.RpcError as e:
                    with self.cv:
                        self.failed[key] = e.code()
                        self.cv.notify_all()
                    self.stop.wait(0.02)  # a client's backoff after a failure
        finally:
            api.close()

    def wait(self, pred, what):
        deadline = time.monotonic() + BOUND_S
        with self.cv:
            while not pred(self):
                left = deadline - time.monotonic()
                check(left > 0, "%s: not within %ds (acked %d, failed %d)", what, BOUND_S,
                      len(self.acked), len(self.failed))
                self.cv.wait(left)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def settle(env, api, load, db):
    """Retries every failed key; checks orders, stock and events; returns
    (N events, set of order ids)."""
    for key in load.failed:
        load.acked[key] = api.create_order(load.cust.id, [(load.sku, 1)], key=key).id
    ids = set(load.acked.values())
    eq(len(ids), len(load.acked), "one order per key")
    listed = {o.id for o in api.list_orders(customer_id=load.cust.id, timeout=60)}
    eq(listed, ids, "orders stored = keys sent")
    eq(api.product(load.sku).reserved, len(ids), "stock reserved = orders")
    n = max_seq(env, db)
    eq(n, len(ids), "one event per order")
    return n, ids


def two(env, db, tag):
    url = env.pg.new_db(db)
    extra = ["--store", url, "--workers", "1"]
    a = oi.start_server(env, "omsd-%s-a" % tag, h2c=True, extra=extra)
    b = oi.start_server(env, "omsd-%s-b" % tag, h2c=True, extra=extra)
    return a, b


def watch_across_restart(env):
    a, b = two(env, "wr", "wr")
    api_a, api_b = oi.api_for(env, a), oi.api_for(env, b)
    cust = api_a.new_customer()
    sku = api_a.new_product(100, 1_000_000)
    wa, wb = Watcher(api_a, "watch on A"), Watcher(api_b, "watch on B")
    load = Load(env, [a, b, a, b], cust, sku)
    try:
        load.wait(lambda l: len(l.acked) >= 100, "acks before the restart")
        env.pg.server_stop("fast")
        base = len(load.failed)
        load.wait(lambda l: len(l.failed) >= base + 20, "calls failing while down")
        env.pg.server_start()
        acked = len(load.acked)
        load.wait(lambda l: len(l.acked) >= acked + 100, "acks after the restart")
    finally:
        load.finish()
    print("# acked %d, failed %d (%s)" % (len(load.acked), len(load.failed),
                                          sorted({c.name for c in load.failed.values()})),
          flush=True)
    eq({c.name for c in load.failed.values()} - {"UNAVAILABLE"}, set(), "codes of failed calls")
    n, ids = settle(env, api_a, load, "wr")
    for w in (wa, wb):
        w.check_all(n, ids)
    print("# %d events; resumes: A %d, B %d" % (n, wa.resumes, wb.resumes), flush=True)
    for w in (wa, wb):
        w.close()
    api_a.close()
    api_b.close()
    env.suite.stop_server(a)
    env.suite.stop_server(b)


def kill9_one(env):
    a, b = two(env, "k9", "k9")
    api_b = oi.api_for(env, b)
    cust = api_b.new_customer()
    sku = api_b.new_product(100, 1_000_000)
    wb = Watcher(api_b, "watch on B")
    load = Load(env, [a, b, a, b], cust, sku)
    try:
        load.wait(lambda l: l.by_server.get(a.name, 0) >= 100, "acks on A before the kill")
        oi.kill9(env, a)
        on_b = load.by_server.get(b.name, 0)
        load.wait(lambda l: l.by_server.get(b.name, 0) >= on_b + 200, "acks on B after the kill")
    finally:
        load.finish()
    print("# acked %s, failed %d" % (load.by_server, len(load.failed)), flush=True)
    for key, oid in list(load.acked.items()):  # every acked order is there
        eq(api_b.get_order(oid).id, oid, "acked order %s (key %s)" % (oid, key))
    n, ids = settle(env, api_b, load, "k9")
    wb.check_all(n, ids)
    eq(wb.resumes, 0, "B's subscriber carried on without resuming")
    wb.close()
    api_b.close()
    env.suite.stop_server(b)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    args = p.parse_args()
    oi.run_on_pg("pg_failover", args, [("pg.watch_across_restart", watch_across_restart),
                                       ("pg.kill9_one", kill9_one)])


if __name__ == "__main__":
    main()
