#!/usr/bin/python3
"""Soak: a mixed load for OMS_IT_SOAK_SECONDS (default 60; the report's run
uses 600) against one omsd (TLS), with its RSS and open descriptors sampled
every second.

Eight client threads, each on its own channel that it drops and reopens every
few dozen calls (connections churn), loop over: CreateOrder (with keys, some
replayed), GetOrder, UpdateOrderStatus/CancelOrder, ListOrders read whole or
cancelled midway, ImportOrders (client stream), WatchOrders and TrackOrders
subscribers that join from a recent seq, read a few events and leave, the
TestService's unary, server-, client- and bidi-streaming calls, and calls
whose deadline expires (1 ms) or that the client cancels.

Passes when no call fails beyond what the load provokes (DEADLINE_EXCEEDED
for the 1 ms deadlines, CANCELLED for cancelled calls, FAILED_PRECONDITION
for racing status changes), RSS does not grow after the warm-up (the last
third's peak within 10% + 16 MB of the first third's; skipped under
sanitizers, whose quarantine grows by design), and descriptors return to
where they started once the clients are gone.
"""

import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check  # noqa: E402

SECONDS = float(os.environ.get("OMS_IT_SOAK_SECONDS", "60"))
THREADS = 8
T = 10.0


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


class Load:
    def __init__(self, env, server, customers, skus):
        self.env, self.server, self.S = env, server, env.stubs
        self.grpc = env.stubs.grpc
        self.SC = self.grpc.StatusCode
        self.customers, self.skus = customers, skus
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls = 0
        self.provoked = 0
        self.errors = []
        self.recent = []  # ids of orders created lately

    def unexpected(self, what, e):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append("%s: %s" % (what, h.rpc_error_str(e)))

    def run(self, seed):
        rnd = random.Random(seed)
        ch = None
        n = 0
        while not self.stop.is_set():
            if ch is None or n % rnd.randint(20, 60) == 0:
                if ch:
                    ch.close()
                ch = self.server.channel()
                a = oi.Api(self.S, ch)
                ts = self.S.test_pb2_grpc.TestServiceStub(ch)
            n += 1
            op = rnd.choice(OPS)
            try:
                op(self, rnd, a, ts)
            except self.grpc.RpcError as e:
                self.unexpected(op.__name__, e)
            with self.lock:
                self.calls += 1
        if ch:
            ch.close()


def create(ld, rnd, a, ts):
    cid = rnd.choice(ld.customers)
    key = "soak-%d" % rnd.randint(0, 5000)  # some keys come back: replays
    lines = [(rnd.choice(ld.skus), 1)]
    try:
        o = a.create_order(cid, lines, key=key, timeout=T)
        with ld.lock:
            ld.recent.append(o.id)
            del ld.recent[:-500]
            ld.env.last_seq = max(ld.env.last_seq, 1)
    except ld.grpc.RpcError as e:
        # a replayed key with other lines is refused, as it must be
        if e.code() != ld.SC.INVALID_ARGUMENT or "idempotency key" not in (e.details() or ""):
            raise
        ld.provoked += 1


def get_and_change(ld, rnd, a, ts):
    with ld.lock:
        if not ld.recent:
            return
        oid = rnd.choice(ld.recent)
    a.get_order(oid)
    try:
        if rnd.random() < 0.5:
            a.cancel(oid, reason="soak")
        else:
            a.update(oid, a.opb.ORDER_STATUS_CONFIRMED)
    except ld.grpc.RpcError as e:
        if e.code() not in (ld.SC.FAILED_PRECONDITION, ld.SC.ABORTED):
            raise
        ld.provoked += 1


def list_cancelled(ld, rnd, a, ts):
    it = a.ord.ListOrders(a.opb.ListOrdersRequest(), timeout=T)
    for i, _ in enumerate(it):
        if i >= rnd.randint(0, 5):
            it.cancel()
            ld.provoked += 1
            return


def import_rows(ld, rnd, a, ts):
    rows = [a.opb.ImportOrderRow(row_id="r%d" % i, order=a.order_req(
        rnd.choice(ld.customers), [(rnd.choice(ld.skus), 1)])) for i in range(rnd.randint(1, 5))]
    a.ord.ImportOrders(iter(rows), timeout=T)


def subscriber(ld, rnd, a, ts):
    """Joins from a seq already seen (replayed from the store, so the events
    are there), reads a few, leaves."""
    back = rnd.randint(1, 200)
    seq = max(1, ld.env.last_seq - back)
    want = min(rnd.randint(1, 4), ld.env.last_seq - seq + 1)
    if rnd.random() < 0.5:
        it = a.ord.WatchOrders(a.opb.WatchOrdersRequest(since_seq=seq), timeout=T)
    else:
        o = a.create_order(rnd.choice(ld.customers), [(rnd.choice(ld.skus), 1)], timeout=T)
        req = a.opb.TrackRequest(subscribe=a.opb.TrackSubscribe(order_ids=[o.id], since_seq=1))
        it = a.ord.TrackOrders(iter([req]), timeout=T)
        want = 1  # its creation
    got = 0
    for ev in it:
        ld.env.last_seq = max(ld.env.last_seq, ev.seq)
        got += 1
        if got >= want:
            break
    it.cancel()
    ld.provoked += 1


def test_calls(ld, rnd, a, ts):
    m = ld.S.messages_pb2
    k = rnd.randint(0, 3)
    if k == 0:
        ts.UnaryCall(m.SimpleRequest(response_size=rnd.randint(0, 65536)), timeout=T)
    elif k == 1:
        for _ in ts.StreamingOutputCall(m.StreamingOutputCallRequest(
                response_parameters=[m.ResponseParameters(size=1000)] * 5), timeout=T):
            pass
    elif k == 2:
        ts.StreamingInputCall(iter([m.StreamingInputCallRequest(
            payload=m.Payload(body=b"x" * 1000))] * 5), timeout=T)
    else:
        reqs = [m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=10)])
                for _ in range(5)]
        for _ in ts.FullDuplexCall(iter(reqs), timeout=T):
            pass


def expiring(ld, rnd, a, ts):
    m = ld.S.messages_pb2
    try:
        for _ in ts.StreamingOutputCall(m.StreamingOutputCallRequest(
                response_parameters=[m.ResponseParameters(size=1000, interval_us=5000)] * 50),
                timeout=0.001 * rnd.randint(1, 20)):
            pass
    except ld.grpc.RpcError as e:
        if e.code() != ld.SC.DEADLINE_EXCEEDED:
            raise
        ld.provoked += 1


OPS = [create, create, create, get_and_change, list_cancelled, import_rows, subscriber,
       test_calls, test_calls, expiring]


def soak(env):
    server = oi.start_server(env, "omsd-soak", h2c=False)
    a = oi.Api(env.stubs, server.channel())
    customers = [a.new_customer().id for _ in range(8)]
    skus = [a.new_product(100, 10 ** 9) for _ in range(8)]
    a.close()
    env.last_seq = 1
    ld = Load(env, server, customers, skus)
    fd0 = fds(server.proc.pid)
    samples = []
    threads = [threading.Thread(target=ld.run, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < SECONDS:
        time.sleep(1.0)  # the sampling period, not a synchronisation
        check(server.alive(), "omsd died under the soak; log:\n%s", server.log_tail(30))
        samples.append((time.monotonic() - t0, server.rss_kb(), fds(server.proc.pid)))
    ld.stop.set()
    for t in threads:
        t.join(T * 2)
    third = max(1, len(samples) // 3)
    first = max(r for _, r, _ in samples[:third])
    last = max(r for _, r, _ in samples[-third:])
    print("# soak %.0fs: %d calls (%.0f/s), %d provoked errors; RSS first third peak %d MB, "
          "last third peak %d MB; fds %d at start, max %d" % (
              SECONDS, ld.calls, ld.calls / SECONDS, ld.provoked, first // 1024, last // 1024,
              fd0, max(f for _, _, f in samples)), flush=True)
    check(not ld.errors, "unexpected errors under the soak:\n  %s", "\n  ".join(ld.errors))
    check(ld.calls > THREADS * 10, "only %d calls in %.0fs", ld.calls, SECONDS)
    if not oi.is_sanitized(env.args.omsd):
        check(last <= first * 1.10 + 16 * 1024, "RSS grew after the warm-up: %d -> %d MB",
              first // 1024, last // 1024)
    # the clients are gone: omsd's descriptors go back (their closes are seen soon)
    deadline = time.monotonic() + 10
    while fds(server.proc.pid) > fd0 + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(fds(server.proc.pid) <= fd0 + 2, "descriptors: %d at start, %d after the load",
          fd0, fds(server.proc.pid))
    env.suite.stop_server(server)


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("soak", args) as env:
        env.suite.run("soak", soak, env)


if __name__ == "__main__":
    main()
