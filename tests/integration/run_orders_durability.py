#!/usr/bin/python3
"""Durability of CreateOrder across kill -9, five times.

Each cycle: client threads (one channel each) call CreateOrder in a loop, every
call with its own idempotency key, recording each key whose reply arrived OK
with its order; after 1-2 s of load omsd gets SIGKILL; it is restarted on the
same port and store (the transport alternates between cycles); then:
  - every acked order is there, identical (GetOrder); every 4th order is also
    cancelled during the load (expected_version 1), an acked cancel is there, an
    unanswered one is either not done or done completely;
  - a sample of the acked keys, retried, returns their orders (keys are as
    durable as the orders);
  - every call that failed (in flight at the kill) is retried with its key and
    succeeds; a second retry returns the same order; the orders in the store are
    exactly one per key ever sent (no duplicate, nothing lost, nothing extra);
  - the stock reserved per SKU equals the quantities of the stored non-cancelled
    orders (within 10 s of the restart);
  - a WatchOrders subscriber live during the load got only events that are in
    the store after the restart (none delivered before its commit was
    durable), and resuming from its last seq + 1 yields the rest;
  - WatchOrders from the previous cycle's last seq + 1 yields gap-free seqs and
    exactly one event per stored order version (creation, cancel): no event
    without its change, no change without its event, none twice;
and at the end a replay from since_seq=1 is gap-free over every cycle.
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
from omsd import Failure, check, eq  # noqa: E402
from orders_it import T  # noqa: E402

CYCLES = int(os.environ.get("OMS_IT_DURABILITY_CYCLES", "5"))
NAME = "omsd-durability"


class State:
    def __init__(self, env):
        self.env = env
        self.S = env.stubs
        self.grpc = env.stubs.grpc
        self.server = None
        self.port = 0
        self.incarnation = 0
        self.customers = []
        self.products = {}  # sku -> price
        self.sent = {}      # key -> (customer_id, lines)
        self.orders = {}    # key -> Order (acked, or returned by a retry)
        self.last_seq = 0   # events verified up to here
        self.cancel_unknown = set()  # keys whose CancelOrder got no answer
        self.seen = set()   # (order_id, version) of every event read
        self.figures = []


def start(st, tr):
    st.incarnation += 1
    st.server = oi.start_server(st.env, NAME, h2c=(tr == "h2c"), extra=["--no-demo-data"],
                                port=st.port, incarnation=st.incarnation)
    st.port = st.server.port


def setup(st, tr):
    start(st, tr)
    a = oi.api_for(st.env, st.server)
    try:
        st.customers = [a.new_customer().id for _ in range(4)]
        for price in (199, 250, 1000, 33):
            st.products[a.new_product(price, 10 ** 9)] = price
    finally:
        a.close()


def lines_for(st, n):
    skus = sorted(st.products)
    k = 1 + n % 3
    return [(skus[(n + j) % len(skus)], 1 + (n + j) % 5) for j in range(k)]


def load_and_kill(st, cycle, nthreads, rng):
    killed = threading.Event()
    acked, failed, unexpected = [], [], []
    lock = threading.Lock()
    chans = [st.server.channel() for _ in range(nthreads)]

    def worker(i):
        api = oi.Api(st.S, chans[i])
        n = 0
        while True:
            n += 1
            key = "dur-%s-%d-%d-%d" % (oi.RUN, cycle, i, n)
            cid = st.customers[(i + n) % len(st.customers)]
            lines = lines_for(st, i * 7 + n)
            with lock:
                st.sent[key] = (cid, lines)
            was_killed = killed.is_set()
            try:
                o = api.create_order(cid, lines, key=key, timeout=10)
            except st.grpc.RpcError as e:
                with lock:
                    failed.append(key)
                    if not was_killed and not killed.is_set():
                        unexpected.append((key, e.code().name, e.details()))
                if killed.is_set():
                    return
                time.sleep(0.01)
                continue
            with lock:
                acked.append(key)
                st.orders[key] = o
            if was_killed:
                return
            if n % 4 == 0:  # cancel every 4th order: its stock must come back
                try:
                    o = api.cancel(o.id, "durability", expected_version=1)
                except st.grpc.RpcError as e:
                    with lock:
                        st.cancel_unknown.add(key)
                        if not killed.is_set():
                            unexpected.append((key, "cancel " + e.code().name, e.details()))
                    if killed.is_set():
                        return
                    continue
                with lock:
                    st.orders[key] = o
    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nthreads)]
    for t in ts:
        t.start()
    delay = rng.uniform(1.0, 2.0)
    time.sleep(delay)
    killed.set()
    before = len(acked)
    oi.kill9(st.env, st.server)
    for t in ts:
        t.join(30)
    for ch in chans:
        ch.close()
    check(not any(t.is_alive() for t in ts), "load threads still running after the kill")
    check(not unexpected, "calls failed before the kill: %d, e.g. %s", len(unexpected),
          unexpected[:3])
    return delay, before, acked, failed


def list_all(api):
    return api.list_orders(page_size=500, timeout=T * 3)


def verify(st, cycle, acked, failed):
    a = oi.api_for(st.env, st.server)
    try:
        # 1. every acked order, unchanged
        bad = []
        X = st.S.order_pb2.ORDER_STATUS_CANCELLED
        for key in acked:
            o = st.orders[key]
            try:
                g = a.get_order(o.id)
            except st.grpc.RpcError as e:
                bad.append("%s (key %s): %s %r" % (o.id, key, e.code().name, e.details()))
                continue
            if key in st.cancel_unknown and g != o:
                # the cancel was in flight: either not done, or done completely
                if (g.status, g.version, g.cancel_reason, list(g.lines)) == (
                        X, 2, "durability", list(o.lines)):
                    st.orders[key] = o = g
            if g != o:
                bad.append("%s differs: %s vs acked %s" % (o.id, g, o))
        check(not bad, "cycle %d: %d of %d acked orders lost or changed after kill -9: %s",
              cycle, len(bad), len(acked), bad[:3])
        # 1b. the keys of acked orders survived too: a retry returns the order
        for key in acked[:: max(1, len(acked) // 50)]:
            cid, lines = st.sent[key]
            o = a.create_order(cid, lines, key=key)
            eq(o.id, st.orders[key].id, "cycle %d: retry of acked key %s after the restart"
               % (cycle, key))
        # 2. orders in the store before the retries
        before = {o.id: o for o in list_all(a)}
        known = {o.id for o in st.orders.values()}
        extra_before = set(before) - known  # committed, reply lost
        # 3. retry the failed keys
        existing = new = 0
        for key in failed:
            cid, lines = st.sent[key]
            try:
                o = a.create_order(cid, lines, key=key)
                o2 = a.create_order(cid, lines, key=key)
            except st.grpc.RpcError as e:
                raise Failure("cycle %d: retry of in-flight key %s: %s %r"
                              % (cycle, key, e.code().name, e.details()))
            eq(o2.id, o.id, "cycle %d: second retry of %s" % (cycle, key))
            eq((o.customer_id, [(l.sku, l.quantity) for l in o.lines]), (cid, lines),
               "cycle %d: order of retried key %s" % (cycle, key))
            for l in o.lines:
                eq(l.unit_price_cents, st.products[l.sku], "unit price of %s" % l.sku)
            if key in st.orders:
                eq(o.id, st.orders[key].id, "retry of an acked key")
            if o.id in before:
                existing += 1
            else:
                new += 1
            st.orders[key] = o
        lost_reply = extra_before - {st.orders[k].id for k in failed}
        check(not lost_reply, "cycle %d: orders stored before the retries that no key "
              "claims: %s", cycle, sorted(lost_reply)[:5])
        # 4. exactly one order per key ever sent
        after = list_all(a)
        ids = [o.id for o in after]
        eq(len(ids), len(set(ids)), "cycle %d: ListOrders duplicates" % cycle)
        mine = {st.orders[k].id for k in st.sent}
        eq(len(mine), len(st.sent), "cycle %d: distinct orders for %d keys" % (cycle, len(st.sent)))
        eq(set(ids), mine, "cycle %d: stored orders vs keys sent" % cycle)
        # 4b. prices never change here: every stored order carries them
        wrong = [o.id for o in after
                 if any(l.unit_price_cents != st.products[l.sku] or
                        l.line_total_cents != l.quantity * st.products[l.sku] for l in o.lines)
                 or o.total_cents != sum(l.line_total_cents for l in o.lines)]
        check(not wrong, "cycle %d: %d stored orders with prices/totals not from inventory: %s",
              cycle, len(wrong), [str(o).replace("\n", " ") for o in after if o.id in wrong[:2]])
        # 5. stock reserved == quantities of the stored orders
        want = {s: 0 for s in st.products}
        for o in after:
            if o.status != st.S.order_pb2.ORDER_STATUS_CANCELLED:
                for l in o.lines:
                    want[l.sku] += l.quantity
        deadline = time.monotonic() + 10
        while True:
            got = {s: a.product(s).reserved for s in st.products}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        stock_problem = None
        if got != want:
            # which orders hold stock they should not: Release(order id) of a
            # cancelled order answers released=true only if it was still reserved
            # (this also repairs the stock for the next cycles)
            leaked = []
            for o in after:
                if o.status == X and a.inv.Release(st.S.inventory_pb2.ReleaseRequest(
                        order_id=o.id), timeout=T).released:
                    leaked.append(o.id)
            acked_cancel = {o.id for o in st.orders.values() if o.status == X}
            leaked = ["%s (cancel %s)" % (x, "acked" if x in acked_cancel else "unanswered")
                      for x in leaked]
            stock_problem = ("cycle %d: reserved per SKU %s, stored non-cancelled orders hold %s "
                             "(10 s after the restart); %d CANCELLED orders still had their "
                             "reservation: %s" % (cycle, got, want, len(leaked), leaked[:10]))
        # 6. events: gap-free from last_seq + 1, one creation event per new order
        marker = a.create_order(st.customers[0], lines_for(st, 1), key="marker-%s-%d" % (oi.RUN,
                                                                                          cycle))
        evs = read_events(st, a, st.last_seq + 1, marker.id)
        oi.check_consecutive([e.seq for e in evs], st.last_seq + 1, "cycle %d events" % cycle)
        P = st.S.order_pb2.ORDER_STATUS_PENDING
        wrong = [e for e in evs if (e.version, e.status) not in ((1, P), (2, X))]
        check(not wrong, "cycle %d: unexpected events: %s", cycle, wrong[:2])
        pairs = [(e.order_id, e.version) for e in evs]
        dup = [x for x in pairs if x in st.seen]
        check(len(pairs) == len(set(pairs)) and not dup, "cycle %d: an event seen twice: %s",
              cycle, dup[:3])
        st.seen.update(pairs)
        want = {(o.id, v) for o in after for v in range(1, o.version + 1)} | {(marker.id, 1)}
        eq(len(st.seen), len(want), "cycle %d: events so far vs order versions stored" % cycle)
        check(st.seen == want, "cycle %d: events vs stored orders: %d without an order, %d orders "
              "without their event", cycle, len(st.seen - want), len(want - st.seen))
        st.sent["marker-%s-%d" % (oi.RUN, cycle)] = (st.customers[0], lines_for(st, 1))
        st.orders["marker-%s-%d" % (oi.RUN, cycle)] = marker
        st.last_seq = evs[-1].seq
        st.cycle_evs, st.cycle_marker = evs, marker.id
        if stock_problem:
            raise Failure(stock_problem)
        return existing, new, len(after)
    finally:
        a.close()


def read_events(st, a, since, marker_id, timeout=None):
    it = a.ord.WatchOrders(st.S.order_pb2.WatchOrdersRequest(since_seq=since),
                           timeout=timeout or T * 3)
    evs = []
    try:
        for e in it:
            evs.append(e)
            if e.order_id == marker_id:
                break
    except st.grpc.RpcError as e:
        raise Failure("WatchOrders(since_seq=%d) ended with %s %r after %d events"
                      % (since, e.code().name, e.details(), len(evs)))
    finally:
        it.cancel()
    check(evs and evs[-1].order_id == marker_id, "WatchOrders(since_seq=%d): marker %s not seen",
          since, marker_id)
    return evs


class LiveWatcher:
    """WatchOrders(since_seq) on its own channel during the load, until the kill."""

    def __init__(self, st, since):
        self.st = st
        self.since = since
        self.events = []
        self.error = None
        self.ch = st.server.channel()
        api = oi.Api(st.S, self.ch)
        self.it = api.ord.WatchOrders(st.S.order_pb2.WatchOrdersRequest(since_seq=since),
                                      timeout=120)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for e in self.it:
                self.events.append(e)
        except Exception as e:  # noqa: BLE001
            self.error = e

    def stop(self):
        self.it.cancel()
        self.t.join(10)
        self.ch.close()


def _key(e):
    return (e.seq, e.order_id, e.version, e.status)


def watcher_problem(st, cycle, w):
    """Events a live subscriber got before the kill must all be in the store
    after the restart (never an event whose commit was not durable); resuming
    from its last seq + 1 gives the rest."""
    evs = st.cycle_evs
    got = w.events
    if len(got) > len(evs):
        return "cycle %d: the live subscriber got %d events, the store has %d" % (
            cycle, len(got), len(evs))
    for i, e in enumerate(got):
        if _key(e) != _key(evs[i]):
            return ("cycle %d: live event #%d %s is not the stored event %s (delivered before it "
                    "was durable?)" % (cycle, i, _key(e), _key(evs[i])))
    a = oi.api_for(st.env, st.server)
    try:
        rest = read_events(st, a, got[-1].seq + 1 if got else w.since, st.cycle_marker)
    finally:
        a.close()
    if [_key(e) for e in got + rest] != [_key(e) for e in evs]:
        return "cycle %d: live events + resumed replay differ from the store's events" % cycle
    st.live_seen = getattr(st, "live_seen", 0) + len(got)
    return None


def cycle_case(st, cycle, tr, nthreads, rng):
    t0 = time.monotonic()
    st.cycle_evs = None
    w = LiveWatcher(st, max(1, st.last_seq + 1))
    try:
        delay, before_kill, acked, failed = load_and_kill(st, cycle, nthreads, rng)
    finally:
        w.stop()
    t1 = time.monotonic()
    start(st, tr)
    t2 = time.monotonic()
    problems = []
    try:
        existing, new, total = verify(st, cycle, acked, failed)
    except Failure as e:
        problems.append(str(e))
    if st.cycle_evs is not None:
        p = watcher_problem(st, cycle, w)
        if p:
            problems.append(p)
    if problems:
        raise Failure("; ".join(problems))
    t3 = time.monotonic()
    line = ("cycle %d (%s): kill after %.2fs, %d creates acked (%.0f/s), %d in flight -> retried: %d "
            "existing, %d new; %d orders stored; live subscriber got %d events before the kill; "
            "restart %.2fs, verify %.2fs, last seq %d"
            % (cycle, tr, delay, len(acked), len(acked) / max(delay, 0.001), len(failed), existing,
               new, total, len(w.events), t2 - t1, t3 - t2, st.last_seq))
    print("# " + line, flush=True)
    st.figures.append(line)
    del t0


def full_replay(st):
    a = oi.api_for(st.env, st.server)
    try:
        marker = a.create_order(st.customers[1], lines_for(st, 2), key="final-" + oi.RUN)
        evs = read_events(st, a, 1, marker.id, timeout=T * 6)
        oi.check_consecutive([e.seq for e in evs], 1, "full replay")
        eq(len(evs), len(st.seen) + 1, "events in the full replay vs every event seen")
        eq({(e.order_id, e.version) for e in evs}, st.seen | {(marker.id, 1)},
           "events of the full replay")
    finally:
        a.close()


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--pg", action="store_true",
                   help="omsd --store postgres://... on a throwaway PostgreSQL (scripts/pgtmp.py)")
    args = p.parse_args()
    with h.Env("orders_durability_pg" if args.pg else "orders_durability", args) as env:
        if args.pg:
            oi.use_pg(env)
        try:
            run_all(env, args)
        finally:
            if args.pg:
                env.pg_stop()


def run_all(env, args):
    scale = oi.load_scale(args)
    nthreads = max(4, int(round(16 * min(scale, 1.0))))
    print("# load scale %.2f: %d client threads, %d cycles" % (scale, nthreads, CYCLES),
          flush=True)
    rng = random.Random(int(os.environ.get("OMS_IT_SEED", "0")) or None)
    st = State(env)
    trs = env.transports
    if not env.suite.run("setup", setup, st, trs[0]):
        return
    for cycle in range(1, CYCLES + 1):
        tr = trs[(cycle - 1) % len(trs)]
        if not env.suite.run("cycle%d.%s.kill9_restart" % (cycle, tr), cycle_case, st, cycle,
                             tr, nthreads, rng):
            if st.server is None or not st.server.alive():
                break
    if st.server is not None and st.server.alive():
        env.suite.run("full_replay_gap_free", full_replay, st)
        env.suite.stop_server(st.server)


if __name__ == "__main__":
    main()
