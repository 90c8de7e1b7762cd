#!/usr/bin/python3
"""omsd on PostgreSQL when the database misbehaves.

- down_at_start: omsd --store pointing at a port where nothing listens exits
  non-zero before listening, saying which server it could not reach, and never
  prints the URL's password.
- restart_under_load: client threads call CreateOrder (one idempotency key per
  call) while PostgreSQL is stopped (pg_ctl stop -m fast) and started again:
  while it is down calls fail UNAVAILABLE (never INTERNAL or UNKNOWN), reads
  too (GetOrder, and ListOrders / ListProducts / ListCustomers); once it is back omsd serves again by itself (reconnect with backoff);
  every acked order is in the database; every failed call, retried with its
  key, succeeds, and the orders are exactly one per key.
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


def down_at_start(env):
    import pgtmp  # on sys.path since oi.use_pg
    port = pgtmp.free_port()  # nothing listens there
    url = "postgresql://oms:hunter2secret@127.0.0.1:%d/oms?connect_timeout=3" % port
    r = subprocess.run([env.args.omsd, "--listen", "127.0.0.1:0", "--h2c", "--store", url],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                       cwd=env.workdir)
    out = r.stdout.decode(errors="replace")
    check(r.returncode > 0, "omsd must fail to start (exit, not a signal), rc=%d: %s" %
          (r.returncode, out[-800:]))
    check("listening on" not in out, "it must not listen: %s" % out[-800:])
    check("127.0.0.1:%d" % port in out, "the message names the server: %s" % out[-800:])
    check("hunter2secret" not in out, "the password leaked: %s" % out[-800:])
    print("# %s" % [l for l in out.splitlines() if "127.0.0.1" in l][:1], flush=True)


def restart_under_load(env):
    S = env.stubs
    grpc = S.grpc
    SC = grpc.StatusCode
    server = oi.start_server(env, "omsd-pg-restart", h2c=True)
    api = oi.Api(S, server.channel())
    cust = api.new_customer()
    sku = api.new_product(100, 1_000_000)
    lock = threading.Lock()
    acked = {}      # key -> order id
    failed = {}     # key -> code
    codes = {}      # code name -> count
    stop = threading.Event()
    down = threading.Event()   # set while PostgreSQL is stopped
    down_codes = {}

    def worker(i):
        a = oi.Api(S, server.channel())
        n = 0
        try:
            while not stop.is_set():
                n += 1
                key = "w%d-%d" % (i, n)
                was_down = down.is_set()
                try:
                    o = a.create_order(cust.id, [(sku, 1)], key=key, timeout=10)
                    with lock:
                        acked[key] = o.id
                        codes["OK"] = codes.get("OK", 0) + 1
                except grpc.RpcError as e:
                    with lock:
                        failed[key] = e.code()
                        codes[e.code().name] = codes.get(e.code().name, 0) + 1
                        if was_down and down.is_set():
                            down_codes[e.code().name] = down_codes.get(e.code().name, 0) + 1
                    stop.wait(0.02)  # a client backs off after UNAVAILABLE
        finally:
            a.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        # load first: wait until orders are being acked (bounded)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(acked) < 200:
            time.sleep(0.05)
        check(len(acked) >= 200, "load before the restart: %d acked" % len(acked))
        down.set()
        env.pg.server_stop("fast")
        # while down: a read fails UNAVAILABLE too
        try:
            api.get_order(next(iter(acked.values())))
            check(False, "GetOrder must fail while PostgreSQL is down")
        except grpc.RpcError as e:
            eq(e.code(), SC.UNAVAILABLE, "GetOrder while down: %s" % e.details())
        # and so do the server-streaming lists (a page read on the loop)
        lists = [
            ("ListOrders", lambda: api.list_orders()),
            ("ListProducts", lambda: list(api.inv.ListProducts(
                api.ipb.ListProductsRequest(), timeout=T))),
            ("ListCustomers", lambda: list(api.cust.ListCustomers(
                api.cpb.ListCustomersRequest(), timeout=T))),
        ]
        for name, call in lists:
            try:
                call()
                check(False, "%s must fail while PostgreSQL is down" % name)
            except grpc.RpcError as e:
                eq(e.code(), SC.UNAVAILABLE, "%s while down: %s" % (name, e.details()))
        before = len(acked)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(down_codes.values()) < 20:
            time.sleep(0.05)
        check(sum(down_codes.values()) >= 20, "calls while down: %s" % down_codes)
        down.clear()
        env.pg.server_start()
        # back: acks resume by themselves within a bound (reconnect backoff <= 2 s)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(acked) < before + 200:
            time.sleep(0.05)
        check(len(acked) >= before + 200,
              "acks after the restart: %d (before %d)" % (len(acked), before))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    print("# codes %s; while down %s" % (codes, down_codes), flush=True)
    eq(set(down_codes) - {"UNAVAILABLE"}, set(), "codes while PostgreSQL was down")
    eq(set(codes) - {"OK", "UNAVAILABLE"}, set(), "codes overall")
    # every acked order is there
    for key, oid in acked.items():
        o = api.get_order(oid)
        eq(o.id, oid, "acked order %s (key %s)" % (oid, key))
    # every failed call succeeds with its key (it may have committed: same order)
    for key in failed:
        o = api.create_order(cust.id, [(sku, 1)], key=key)
        acked[key] = o.id
    ids = set(acked.values())
    eq(len(ids), len(acked), "one order per key")
    total = sum(1 for _ in api.list_orders(customer_id=cust.id, timeout=60))
    eq(total, len(acked), "orders stored = keys sent")
    eq(api.product(sku).reserved, len(acked), "stock reserved = orders")
    print("# %d orders, %d calls failed during the restart and were retried" %
          (len(acked), len(failed)), flush=True)
    api.close()
    env.suite.stop_server(server)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    args = p.parse_args()
    oi.run_on_pg("pg_faults", args, [("pg.down_at_start", down_at_start),
                                     ("pg.restart_under_load", restart_under_load)])


if __name__ == "__main__":
    main()
