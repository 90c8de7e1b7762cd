#!/usr/bin/python3
"""oms.bench.v1.OrderBench: the exact semantics in proto/oms/bench/v1/bench.proto.

CreateOrder: ids "o-1", "o-2", ... (process-wide counter; the runner's first
call on a fresh server is o-1), total = sum(quantity * unit_price), PENDING,
created_at = wall clock; empty customer_id or quantity <= 0 -> INVALID_ARGUMENT.
GetOrder: the stored order; unknown -> NOT_FOUND. WatchOrders: count events
{order_id "watch", status 1+(k-1)%5, seq k}; count < 0 -> INVALID_ARGUMENT.
Track: one event per request, in order, status of the stored order or
UNSPECIFIED, seq 1, 2, ... per stream; OK after half-close.
"""

import os
import queue
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

T = h.RPC_TIMEOUT


class Ctx:
    def __init__(self, env, server):
        self.S = env.stubs
        self.grpc = self.S.grpc
        self.b = self.S.bench_pb2
        self.channel = server.channel()
        self.stub = self.S.bench_pb2_grpc.OrderBenchStub(self.channel)
        self.created = []   # orders created so far, in order

    def expect_code(self, fn, code, what):
        try:
            r = fn()
        except self.grpc.RpcError as e:
            eq(e.code(), code, what + " status")
            return e
        raise h.Failure("%s: expected %s, call succeeded: %r" % (what, code, r))

    def create(self, customer, items):
        b = self.b
        req = b.CreateOrderRequest(customer_id=customer,
                                   items=[b.LineItem(sku=s, quantity=q, unit_price_cents=p)
                                          for s, q, p in items])
        return self.stub.CreateOrder(req, timeout=T)


def _id_num(oid):
    check(oid.startswith("o-") and oid[2:].isdigit() and not oid[2:].startswith("0"),
          "order id %r is not o-<decimal>", oid)
    return int(oid[2:])


def create_first(c):
    b = c.b
    t0 = int(time.time() * 1000)
    o = c.create("cust-1", [("sku-a", 2, 150), ("sku-b", 1, 1000)])
    t1 = int(time.time() * 1000)
    eq(o.id, "o-1", "first order id on a fresh server")
    eq(o.customer_id, "cust-1", "customer_id")
    eq(o.total_cents, 1300, "total_cents")
    eq(o.status, b.ORDER_STATUS_PENDING, "status")
    eq([(i.sku, i.quantity, i.unit_price_cents) for i in o.items],
       [("sku-a", 2, 150), ("sku-b", 1, 1000)], "items")
    check(t0 - 2000 <= o.created_at_unix_ms <= t1 + 2000,
          "created_at_unix_ms %d not within [%d, %d] (+-2s)", o.created_at_unix_ms, t0, t1)
    c.created.append(o)


def create_sequential_ids(c):
    last = _id_num(c.created[-1].id) if c.created else 0
    for i in range(5):
        o = c.create("cust-2", [("x", i + 1, 7)])
        eq(_id_num(o.id), last + 1, "id after o-%d" % last)
        eq(o.total_cents, (i + 1) * 7, "total")
        last += 1
        c.created.append(o)


def create_totals(c):
    cases = [
        ([], 0),                                          # no items is valid: total 0
        ([("a", 1, 0)], 0),
        ([("a", 3, 333), ("b", 7, 1), ("c", 1, 99999)], 3 * 333 + 7 + 99999),
        ([("big", 2147483647, 4294967296)], 2147483647 * 4294967296),  # int32 qty * int64 price
        ([("neg-price", 2, -50)], -100),                  # prices are not validated
    ]
    for items, want in cases:
        o = c.create("cust-t", items)
        eq(o.total_cents, want, "total for %r" % (items,))
        eq(len(o.items), len(items), "item count for %r" % (items,))
        c.created.append(o)


def create_total_overflow(c):
    """A total that does not fit int64 must be an error, never a wrapped value
    (and never signed-overflow UB in the server: UBSan builds abort on it)."""
    for items in ([("a", 2147483647, 9223372036854775807)],
                  [("a", 2, 4611686018427387904)],
                  [("a", 1, 9223372036854775807), ("b", 1, 1)],
                  [("a", 1, -9223372036854775808), ("b", 1, -1)]):
        try:
            o = c.create("cust-o", items)
        except c.grpc.RpcError as e:
            check(e.code() in (c.grpc.StatusCode.INVALID_ARGUMENT, c.grpc.StatusCode.OUT_OF_RANGE),
                  "overflowing total %r: status %s", items, e.code())
            continue
        raise h.Failure("overflowing total %r accepted with total_cents=%d" % (items, o.total_cents))


def create_invalid(c):
    INV = c.grpc.StatusCode.INVALID_ARGUMENT
    c.expect_code(lambda: c.create("", [("a", 1, 1)]), INV, "empty customer_id")
    c.expect_code(lambda: c.create("", []), INV, "empty customer_id, no items")
    c.expect_code(lambda: c.create("c", [("a", 0, 1)]), INV, "quantity 0")
    c.expect_code(lambda: c.create("c", [("a", -3, 1)]), INV, "quantity -3")
    c.expect_code(lambda: c.create("c", [("a", 1, 1), ("b", 0, 1)]), INV, "second item quantity 0")


def get_order(c):
    check(c.created, "no orders were created by earlier cases")
    for o in c.created[:3] + c.created[-2:]:
        g = c.stub.GetOrder(c.b.GetOrderRequest(id=o.id), timeout=T)
        eq(g, o, "GetOrder(%s) equals the created order" % o.id)


def get_order_not_found(c):
    NF = c.grpc.StatusCode.NOT_FOUND
    for oid in ("o-999999999", "", "nope", "o-0"):
        c.expect_code(lambda: c.stub.GetOrder(c.b.GetOrderRequest(id=oid), timeout=T), NF,
                      "GetOrder(%r)" % oid)


def create_concurrent(c):
    """16 threads x 25 creates: ids unique and contiguous (one process-wide counter)."""
    results, errors = [], []
    lock = threading.Lock()

    def worker(k):
        try:
            for i in range(25):
                o = c.create("cc-%d" % k, [("s", 1, i)])
                with lock:
                    results.append(o)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(e)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T * 3)
    check(not errors, "errors: %r", errors[:3])
    nums = sorted(_id_num(o.id) for o in results)
    eq(len(nums), 400, "orders created")
    eq(len(set(nums)), 400, "distinct ids")
    eq(nums[-1] - nums[0], 399, "ids contiguous (max - min)")
    # each is retrievable
    for o in results[::40]:
        eq(c.stub.GetOrder(c.b.GetOrderRequest(id=o.id), timeout=T), o, "GetOrder(%s)" % o.id)


def _watch(c, count, timeout=T):
    return list(c.stub.WatchOrders(c.b.WatchRequest(count=count), timeout=timeout))


def watch_1000(c):
    it = c.stub.WatchOrders(c.b.WatchRequest(count=1000), timeout=T)
    evs = list(it)
    eq(it.code(), c.grpc.StatusCode.OK, "status")
    eq(len(evs), 1000, "event count")
    for k, e in enumerate(evs, 1):
        if (e.order_id, e.status, e.seq) != ("watch", 1 + (k - 1) % 5, k):
            raise h.Failure("event %d: expected ('watch', %d, %d), got (%r, %d, %d)"
                            % (k, 1 + (k - 1) % 5, k, e.order_id, e.status, e.seq))


def watch_zero(c):
    eq(_watch(c, 0), [], "count=0 events")


def watch_negative(c):
    c.expect_code(lambda: _watch(c, -1), c.grpc.StatusCode.INVALID_ARGUMENT, "count=-1")
    c.expect_code(lambda: _watch(c, -2147483648), c.grpc.StatusCode.INVALID_ARGUMENT,
                  "count=INT32_MIN")


def watch_large(c):
    """30k events (~600 KB: many flow-control windows); the last one is checked."""
    n = 30000
    last, cnt = None, 0
    for e in c.stub.WatchOrders(c.b.WatchRequest(count=n), timeout=T * 3):
        cnt += 1
        last = e
    eq(cnt, n, "event count")
    eq((last.order_id, last.status, last.seq), ("watch", 1 + (n - 1) % 5, n), "last event")


def watch_cancel_midway(c):
    """Cancelling a huge watch must stop the server's work (next calls stay fast)."""
    it = c.stub.WatchOrders(c.b.WatchRequest(count=2000000000), timeout=T)
    for _ in range(100):
        next(it)
    it.cancel()
    t0 = time.monotonic()
    eq(len(_watch(c, 10)), 10, "a following small watch")
    check(time.monotonic() - t0 < 5, "following watch took %.1fs", time.monotonic() - t0)


def watch_slow_reader(c):
    """A reader that pauses: the stream resumes and completes in order."""
    it = c.stub.WatchOrders(c.b.WatchRequest(count=20000), timeout=T * 2)
    seqs = []
    for e in it:
        seqs.append(e.seq)
        if len(seqs) == 10:
            time.sleep(1.0)  # server must block on flow control, not drop or buffer wrongly
    eq(len(seqs), 20000, "count")
    check(seqs == list(range(1, 20001)), "seq out of order")


def track(c):
    check(len(c.created) >= 2, "needs created orders")
    known = [c.created[0].id, c.created[1].id]
    reqs = [known[0], "unknown-1", known[1], "", known[0]]
    evs = list(c.stub.Track(iter([c.b.TrackRequest(order_id=x) for x in reqs]), timeout=T))
    want = [(x, c.b.ORDER_STATUS_PENDING if x in known else c.b.ORDER_STATUS_UNSPECIFIED, i)
            for i, x in enumerate(reqs, 1)]
    eq([(e.order_id, e.status, e.seq) for e in evs], want, "Track events")


def track_interleaved(c):
    """Echo comes back before the client half-closes (true bidi)."""
    q = queue.Queue()

    def gen():
        while True:
            x = q.get(timeout=T)
            if x is None:
                return
            yield c.b.TrackRequest(order_id=x)
    it = c.stub.Track(gen(), timeout=T)
    try:
        for i in range(1, 6):
            q.put("o-%d" % i)
            e = next(it)
            eq((e.order_id, e.seq), ("o-%d" % i, i), "event %d" % i)
        q.put(None)
        eq(list(it), [], "events after half-close")
        eq(it.code(), c.grpc.StatusCode.OK, "status")
    finally:
        q.put(None)


def track_empty(c):
    it = c.stub.Track(iter([]), timeout=T)
    eq(list(it), [], "events")
    eq(it.code(), c.grpc.StatusCode.OK, "status")


def track_seq_per_stream(c):
    for _ in range(2):
        evs = list(c.stub.Track(iter([c.b.TrackRequest(order_id="a")] * 3), timeout=T))
        eq([e.seq for e in evs], [1, 2, 3], "seq restarts per stream")


def track_many(c):
    n = 5000
    evs = list(c.stub.Track((c.b.TrackRequest(order_id="t%d" % i) for i in range(n)), timeout=T * 2))
    eq(len(evs), n, "events")
    check(all(e.order_id == "t%d" % i and e.seq == i + 1 for i, e in enumerate(evs)),
          "events out of order")


def create_clears_at_1m(c, server, workdir):
    """The order map is cleared when it holds 1,000,000 orders, before the next insert.
    Drives the creates with h2load (nghttp2-client), then checks the boundary."""
    import shutil
    import subprocess
    import h2raw
    b = c.b
    h2load = shutil.which("h2load")
    check(h2load, "h2load (nghttp2-client) not installed")
    n0 = _id_num(c.create("cust-m", []).id)       # orders stored so far
    need = 1000000 - n0                            # creates until the map holds 1,000,000
    body = os.path.join(workdir, "create.bin")
    with open(body, "wb") as f:
        f.write(h2raw.grpc_frame(b.CreateOrderRequest(
            customer_id="load", items=[b.LineItem(sku="s", quantity=1, unit_price_cents=1)])
            .SerializeToString()))
    scheme = "http" if server.h2c else "https"
    url = "%s://%s:%d/oms.bench.v1.OrderBench/CreateOrder" % (
        scheme, "127.0.0.1" if server.h2c else "localhost", server.port)
    p = subprocess.run([h2load, "-n", str(need), "-c", "4", "-m", "64", "-d", body,
                        "-H", "content-type: application/grpc", "-H", "te: trailers", url],
                       capture_output=True, text=True, timeout=150)
    check("%d succeeded" % need in p.stdout, "h2load: %s", p.stdout[-800:])

    def get(oid):
        try:
            return c.stub.GetOrder(b.GetOrderRequest(id=oid), timeout=T)
        except c.grpc.RpcError as e:
            if e.code() == c.grpc.StatusCode.NOT_FOUND:
                return None
            raise
    check(get("o-1") is not None, "o-1 gone before the map reached 1,000,000 orders")
    check(get("o-1000000") is not None, "o-1000000 not stored")
    o = c.create("cust-m", [])
    eq(o.id, "o-1000001", "id of the 1,000,001st order")
    check(get("o-1") is None, "o-1 still present after the map was full (no clear)")
    check(get("o-1000000") is None, "o-1000000 still present after the clear")
    eq(get("o-1000001"), o, "the order inserted after the clear")
    eq(c.create("cust-m", []).id, "o-1000002", "counter continues after the clear")


CASES = [
    ("create.first_is_o-1", create_first),
    ("create.sequential_ids", create_sequential_ids),
    ("create.totals", create_totals),
    ("create.invalid_argument", create_invalid),
    ("create.total_overflow", create_total_overflow),
    ("get.found", get_order),
    ("get.not_found", get_order_not_found),
    ("create.concurrent_unique_ids", create_concurrent),
    ("watch.count_1000", watch_1000),
    ("watch.count_0", watch_zero),
    ("watch.count_negative", watch_negative),
    ("watch.count_30000", watch_large),
    ("watch.cancel_midway", watch_cancel_midway),
    ("watch.slow_reader", watch_slow_reader),
    ("track.echo_status_seq", track),
    ("track.interleaved", track_interleaved),
    ("track.empty", track_empty),
    ("track.seq_per_stream", track_seq_per_stream),
    ("track.5000", track_many),
]


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("bench", args) as env:
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"))
            c = Ctx(env, server)
            for name, fn in CASES:
                env.suite.run("%s.%s" % (tr, name), fn, c)
            # 1M creates: h2c only (the semantics do not depend on the transport), and
            # not against the python ref server (far too slow)
            if args.server == "omsd" and tr == "h2c":
                env.suite.run("%s.create.clears_at_1M" % tr, create_clears_at_1m, c, server,
                              env.workdir)
            c.channel.close()
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
