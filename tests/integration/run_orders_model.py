#!/usr/bin/python3
"""Model-based test of the order system: random sequences of every oms.v1 call
from several concurrent clients against the real omsd, checked after every
round against a model.

Usage (the seed is printed at start; the same --seed/--steps/--clients replays
the same per-client op sequences; the interleaving may differ, so every check
holds for any interleaving; --clients 1 replays a run exactly; --skip leaves op
variants out to narrow a failure down):

    run_orders_model.py --omsd build/omsd [--mode aio|split] [--seed N]
                        [--steps M] [--clients K] [--runs R]

--mode aio drives one all-in-one omsd; --mode split three processes
(--services customers / inventory / orders). Steps: --steps, else
OMS_IT_MODEL_STEPS, else 1500 x the load scale (0.25 in sanitizer builds), at
least 600.
--runs R runs seeds N..N+R-1, each on fresh servers.

A run is a sequence of rounds: each of K clients (one channel each) makes one
call, all at once; then, with nothing in flight, the round is checked.
  - No call answers INTERNAL, UNKNOWN (or UNAVAILABLE, DEADLINE_EXCEEDED,
    RESOURCE_EXHAUSTED): the run stops at once with the call and the seed.
  - Linearizability against the model: some order of the round's atomic steps
    (one per call; one per row of an ImportOrders) applied to the model gives
    every answer seen (code, order ids, customers, lines, prices, status,
    version, stock figures) and ends in the state read after the round
    (products, customers' statuses, the orders the round named or created).
    Steps that commute are not tried in every order (dead ends are
    remembered). The model's semantics:
      CreateOrder / ImportOrders rows: idempotency keys are scoped to the
        customer (all-in-one: a keyed CreateOrder sometimes first with a 1 ms
        deadline, which may still commit, then retried with the key: the pair
        is one call); same key + same customer + same lines -> the first order;
        different lines -> INVALID_ARGUMENT "idempotency key reused with a
        different request"; another customer's same key -> a separate order.
        Else NOT_FOUND (customer, SKU), FAILED_PRECONDITION (suspended,
        stock), or a new order (fresh id, never one that holds a
        reservation) PENDING v1 with the current prices, its lines reserved.
      Status machine PENDING->CONFIRMED->SHIPPED->DELIVERED,
        PENDING|CONFIRMED->CANCELLED (releases the stock); other moves
        FAILED_PRECONDITION; an expected_version that differs ABORTED.
      Reserve on an id of the form o-<n> (all-in-one): no such order or a
        cancelled one -> FAILED_PRECONDITION, nothing reserved; a live order ->
        its reservation unchanged. Release of a live order's id ->
        FAILED_PRECONDITION, nothing released; of a cancelled or unknown id ->
        OK, released=false. Other ids ("hold-7") are plain reservations:
        reserved once, a repeat returns the first, released once, never again.
      AdjustStock: on_hand never below reserved (FAILED_PRECONDITION).
  - Every order in a response belongs to the customer the request named.
  - Quiescent, after every round: every product's on_hand, reserved,
    available and price equal the model's, 0 <= reserved <= on_hand, and
    reserved == the lines of the orders that are not CANCELLED + the live
    reservations the test made itself; every order the round touched reads
    back (GetOrder) as modelled; every 25 rounds and at the end ListOrders
    returns exactly the model's orders.
  - TrackOrders of one order from seq 1 gives the first events of its history.
  - At the end, one WatchOrders subscriber (from seq 1 for the whole run) has
    seqs 1..N gap-free, no duplicate, and each order's events are exactly its
    modelled history (PENDING v1, then each successful change).
Split mode: the same, with the inventory on its own process. The test never
releases an order's id there (only the orders service may, once Reserve and
Release are the orders service's alone), and a Reserve ahead of CreateOrder
(o-<last+1..last+5>) may be taken over or released by the order that gets the
id: such reservations are probed (Reserve again) when quiescent; at the end
every live order's reservation exists with its lines.
"""

import collections
import concurrent.futures
import os
import random
import re
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import Failure  # noqa: E402
from orders_it import T  # noqa: E402

PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED = 1, 2, 3, 4, 5
SNAME = {0: "UNSPECIFIED", 1: "PENDING", 2: "CONFIRMED", 3: "SHIPPED", 4: "DELIVERED",
         5: "CANCELLED"}
ALLOWED_FROM = {CONFIRMED: {PENDING}, SHIPPED: {CONFIRMED}, DELIVERED: {SHIPPED},
                CANCELLED: {PENDING, CONFIRMED}}
ACTIVE, SUSPENDED = 1, 2
FATAL = ("INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED",
         "UNIMPLEMENTED", "DATA_LOSS")
REUSED = "idempotency key reused with a different request"
OID_RE = re.compile(r"^o-([1-9][0-9]*)$")
FULL_EVERY = 25
CH_OPTS = [("grpc.use_local_subchannel_pool", 1)]  # a connection per channel

# order: lines = ((sku, qty, price), ...); hist = ((status, previous, version), ...)
MOrder = collections.namedtuple("MOrder", "id cust lines status version key hist reason")
MProd = collections.namedtuple("MProd", "price on_hand reserved")


def onum(oid):
    m = OID_RE.match(oid)
    return int(m.group(1)) if m else None


class View:
    """Copy-on-write view of the model for one linearization attempt."""

    def __init__(self, base, ch=None):
        self.base = base
        self.ch = dict(ch) if ch else {}

    def get(self, k, d=None):
        if k in self.ch:
            return self.ch[k]
        return self.base.get(k, d)

    def set(self, k, v):
        self.ch[k] = v

    def child(self):
        return View(self.base, self.ch)


class Mismatch(Exception):
    pass


def want(cond, msg, *a):
    if not cond:
        raise Mismatch(msg % a if a else msg)


def lines_of(msg_lines):
    return tuple((l.sku, l.quantity, l.unit_price_cents) for l in msg_lines)


def short(x, n=400):
    s = re.sub(r"\s+", " ", str(x)).strip()
    return s if len(s) <= n else s[:n] + "..."


class Call:
    """One client call of a round: its request, its answer, and the atomic
    steps (subs) it contributes to the round's linearization."""

    def __init__(self, client, kind, desc):
        self.client = client
        self.kind = kind
        self.desc = desc
        self.code = None
        self.details = ""
        self.resp = None
        self.subs = []  # (label, fn(view)) applied in some order with the round's others
        self.post = None  # fn(states) -> None, checked after the linearization
        self.touch = set()  # order ids to read back

    def answer(self):
        if self.code == "OK":
            return "OK " + short(self.resp, 300)
        return "%s %r" % (self.code, self.details)


class Run:
    def __init__(self, env, mode, seed, steps, clients, skip=(), h2c=False):
        self.env = env
        self.mode = mode
        self.split = mode == "split"
        self.seed = seed
        self.steps = steps
        self.K = clients
        self.skip = set(skip)
        self.h2c = h2c
        self.S = env.stubs
        self.grpc = env.stubs.grpc
        self.cpb = self.S.customer_pb2
        self.ipb = self.S.inventory_pb2
        self.opb = self.S.order_pb2
        self.model = {}
        self.order_ids = []  # in creation order
        self.custs = []
        self.skus = []
        self.holds = []  # hold ids used (non-order form)
        # split: o-<n> ids reserved ahead of CreateOrder; the model holds
        # ("oh", id) -> (lines, alive): alive until an order took it over or a
        # probe found it released (or it became a plain hold, ("h", id))
        self.ohold_ids = set()
        self.hold_n = 0
        self.round = 0
        self.servers = []
        self.stats = collections.Counter()
        self.events = []
        self.ev_cond = threading.Condition()
        self.ev_error = None

    # ---------------------------------------------------------------- servers

    def replay_hint(self):
        return ("replay: run_orders_model.py --mode %s --seed %d --steps %d --clients %d%s%s"
                % (self.mode, self.seed, self.steps, self.K,
                   " --transport h2c" if self.h2c else "",
                   " --skip " + ",".join(sorted(self.skip)) if self.skip else ""))

    def start(self):
        env = self.env
        tag = "%s-%d" % (self.mode, self.seed)
        more = os.environ.get("OMS_IT_MODEL_OMSD_ARGS", "").split()  # e.g. --log-level debug
        if not self.split:
            s = oi.start_server(env, "omsd-" + tag, h2c=self.h2c, extra=["--no-demo-data"] + more)
            self.servers = [s]
            self.cus_srv = self.inv_srv = self.ord_srv = s
        else:
            inv = oi.start_server(env, "inventory-" + tag, h2c=self.h2c,
                                  extra=["--services", "inventory", "--no-demo-data"] + more)
            self.servers.append(inv)
            cus = oi.start_server(env, "customers-" + tag, h2c=self.h2c,
                                  extra=["--services", "customers", "--no-demo-data"] + more)
            self.servers.append(cus)
            peer = ["--peer-h2c"] if self.h2c else ["--peer-ca", os.path.join(env.certs, "ca.pem")]
            ordr = oi.start_server(env, "orders-" + tag, h2c=self.h2c, extra=[
                "--services", "orders", "--no-demo-data",
                "--inventory-target", "127.0.0.1:%d" % inv.port,
                "--customers-target", "127.0.0.1:%d" % cus.port] + peer + more)
            self.servers.append(ordr)
            self.cus_srv, self.inv_srv, self.ord_srv = cus, inv, ordr
        # Each client has its own connection(s) (grpcio would otherwise put every
        # channel to one target on one shared connection), so the clients' calls
        # also run on different omsd workers.
        self.apis = []
        for _ in range(self.K + 1):  # one per client, the last for the checks
            if self.split:
                self.apis.append((oi.Api(self.S, self.cus_srv.channel(CH_OPTS)),
                                  oi.Api(self.S, self.inv_srv.channel(CH_OPTS)),
                                  oi.Api(self.S, self.ord_srv.channel(CH_OPTS))))
            else:
                a = oi.Api(self.S, self.ord_srv.channel(CH_OPTS))
                self.apis.append((a, a, a))
        self.chk = self.apis[-1]
        # The 1 ms CreateOrder tries go on a connection of their own: grpc-core
        # may send RST_STREAM for a stream whose HEADERS it never sent when a call
        # is cancelled at once (grpc/grpc#19655, #38758), which an HTTP/2 server
        # must answer by closing the connection (RFC 9113 6.4: PROTOCOL_ERROR).
        self.hurry = [oi.Api(self.S, self.ord_srv.channel(CH_OPTS)) for _ in range(self.K)]

    def stop(self):
        for t in self.apis if hasattr(self, "apis") else ():
            for a in set(t):
                a.close()
        for a in getattr(self, "hurry", ()):
            a.close()
        if hasattr(self, "watch_ch"):
            self.watch_ch.close()
        for s in reversed(self.servers):
            self.env.suite.stop_server(s)

    # ---------------------------------------------------------------- watch

    def start_watch(self):
        self.watch_ch = self.ord_srv.channel(CH_OPTS)
        stub = self.S.order_pb2_grpc.OrderServiceStub(self.watch_ch)
        self.watch_it = stub.WatchOrders(self.opb.WatchOrdersRequest(since_seq=1))

        def reader():
            try:
                for e in self.watch_it:
                    with self.ev_cond:
                        self.events.append((e.seq, e.order_id, e.customer_id, e.status,
                                            e.previous_status, e.version))
                        self.ev_cond.notify_all()
            except self.grpc.RpcError as e:
                if e.code() != self.grpc.StatusCode.CANCELLED:
                    with self.ev_cond:
                        self.ev_error = "%s %r" % (e.code().name, e.details())
                        self.ev_cond.notify_all()
        self.watch_t = threading.Thread(target=reader, daemon=True)
        self.watch_t.start()

    # ---------------------------------------------------------------- setup

    def setup(self):
        ca, ia, _ = self.chk
        for i in range(5):
            c = ca.cust.CreateCustomer(self.cpb.CreateCustomerRequest(
                name="Model %d" % i, email="m%d-%d-%s@example.com" % (i, self.seed, oi.RUN)),
                timeout=T)
            self.custs.append(c.id)
            self.model[("c", c.id)] = ACTIVE
        for i, price in enumerate((100, 250, 999, 1234)):
            sku = "M-%s" % "ABCD"[i]
            ia.inv.UpsertProduct(self.ipb.UpsertProductRequest(
                sku=sku, name="Model " + sku, unit_price_cents=price), timeout=T)
            ia.adjust(sku, 12)
            self.skus.append(sku)
            self.model[("p", sku)] = MProd(price, 12, 0)

    # ---------------------------------------------------------------- generation

    def pick_order(self, r, live=None):
        """An order id: mostly a recent one (so that clients race on it)."""
        ids = self.order_ids
        if live is not None:
            ids = [i for i in ids[-40:] if (self.model[("o", i)].status not in
                                            (CANCELLED,)) == live]
        if not ids:
            return None
        if r.random() < 0.7:
            return r.choice(ids[-4:])
        return r.choice(ids)

    def rand_lines(self, r, skus=None):
        skus = skus or self.skus
        n = r.choice((1, 1, 1, 2, 2, 3))
        return [(s, r.randint(1, 3)) for s in r.sample(skus, min(n, len(skus)))]

    def odd_id(self, r):
        """An id that looks like a live order's but is not its id ("o-07",
        "O-7", "o-7 "...): a plain reservation id for Reserve/Release, NOT_FOUND
        for the order calls; never the order's stock."""
        n = onum(self.pick_order(r) or "o-1")
        return r.choice(("o-0%d", "o-00%d", "O-%d", "o-%d ", " o-%d", "o-+%d", "o-%d\t",
                         "o--%d", "o-%d.0"))  % n

    def max_onum(self):
        return max((onum(i) for i in self.order_ids), default=0)

    def gen(self, r, client):
        """One call for this client, from the model as it is between rounds."""
        ops = [("create", 24), ("get", 6), ("list", 4), ("cancel", 8), ("update", 14),
               ("adjust", 8), ("upsert", 3), ("reserve", 9), ("release", 7), ("setcust", 4),
               ("import", 4), ("getproduct", 2), ("listproducts", 1), ("getcust", 1),
               ("listcust", 1), ("newcust", 1), ("track", 2)]
        kind = r.choices([k for k, _ in ops], [w for _, w in ops])[0]
        if kind in ("get", "cancel", "update", "track") and not self.order_ids:
            kind = "create"
        return getattr(self, "gen_" + kind)(r, client)

    def create_req(self, r):
        """(customer, lines, key, via_metadata) for a CreateOrder or an import row."""
        binds = sorted(k for k in self.model if k[0] == "k")
        x = r.random()
        cust = r.choice(self.custs)
        lines = self.rand_lines(r)
        key = ""
        if x < 0.03:
            cust = "c-999999"
        elif x < 0.06:
            lines = lines[:1] + [("M-GHOST", 1)]
        elif x < 0.40:
            key = "k-%d" % r.randrange(40)  # shared across customers on purpose
            if "key-other" in self.skip:
                key = "%s-%s" % (key, cust)
            b = self.model.get(("k", cust, key))
            if b and "key-changed" in self.skip:
                lines = [(s, q) for s, q, _ in self.model[("o", b)].lines]
        elif x < 0.70 and binds:
            _, bc, bk = r.choice(binds)
            o = self.model[("o", self.model[("k", bc, bk)])]
            same = [(s, q) for s, q, _ in o.lines]
            y = r.random()
            if y >= 0.45 and (y < 0.75 and "key-changed" in self.skip or
                              y >= 0.75 and "key-other" in self.skip):
                y = 0.0
            if y < 0.45:  # the same request again
                cust, key, lines = bc, bk, same
            elif y < 0.75:  # the same key, other lines
                cust, key = bc, bk
                while sorted(lines) == sorted(same):
                    lines = self.rand_lines(r)
            else:  # another customer's key
                key = bk
                others = [c for c in self.custs if c != bc]
                cust = r.choice(others)
                if r.random() < 0.5:
                    lines = same
        return cust, lines, key, bool(key) and r.random() < 0.25

    def gen_create(self, r, client):
        cust, lines, key, meta = self.create_req(r)
        req = self.chk[2].order_req(cust, lines, "" if meta else key)
        md = (("idempotency-key", key),) if meta else None
        # all-in-one: now and then a 1 ms deadline first, which may still commit;
        # then the retry with the same key (as the proto says) is what counts
        hurry = key and not self.split and r.random() < 0.15
        c = Call(client, "CreateOrder", "CreateOrder(%s%s%s)" % (
            short(req), " md-key=%s" % key if meta else "",
            " [1 ms deadline, then retried]" if hurry else ""))

        def fn(a):
            if hurry:
                try:
                    return self.hurry[client].ord.CreateOrder(req, metadata=md, timeout=0.001)
                except self.grpc.RpcError as e:
                    # UNAVAILABLE: that connection was closed for an earlier try's
                    # RST_STREAM (see start()); the outcome is as unknown either way
                    if e.code() not in (self.grpc.StatusCode.DEADLINE_EXCEEDED,
                                        self.grpc.StatusCode.UNAVAILABLE):
                        raise
                    self.stats[("CreateOrder 1 ms", e.code().name)] += 1
            return a[2].ord.CreateOrder(req, metadata=md, timeout=T)
        c.fn = fn

        def step(v):
            self.m_create(v, c, cust, lines, key, c.code, c.resp, c.details)
        c.subs.append(("create", step))
        c.want_cust = cust
        return c

    def gen_import(self, r, client):
        rows = [self.create_req(r)[:3] for _ in range(r.randint(1, 3))]
        if "key-changed" in self.skip:  # the same key twice in one import may differ
            seen = set()
            for i, (cu, ln, k) in enumerate(rows):
                if (cu, k) in seen:
                    rows[i] = (cu, ln, "")
                seen.add((cu, k))
        api = self.chk[2]
        msgs = [self.opb.ImportOrderRow(row_id="r%d" % i, order=api.order_req(cu, ln, k))
                for i, (cu, ln, k) in enumerate(rows)]
        c = Call(client, "ImportOrders", "ImportOrders(%s)" % "; ".join(
            short(x, 200) for x in msgs))
        c.fn = lambda a: a[2].ord.ImportOrders(iter(msgs), timeout=T)

        def row_step(i):
            cu, ln, k = rows[i]

            def step(v):
                want(c.code == "OK", "ImportOrders: expected OK")
                res = c.resp.results[i]
                code = self.grpc.StatusCode(
                    next(sc for sc in self.grpc.StatusCode if sc.value[0] == res.code)).name
                oid = res.order_id
                self.m_create(v, c, cu, ln, k, code, oid, res.message, row=True)
            return step

        def pre():
            s = c.resp
            if c.code != "OK":
                return
            want(s.received == len(rows) and len(s.results) == len(rows),
                 "summary: %d received, %d results for %d rows", s.received, len(s.results),
                 len(rows))
            want([x.row_id for x in s.results] == ["r%d" % i for i in range(len(rows))],
                 "row ids %s", [x.row_id for x in s.results])
            codes = [self.grpc.StatusCode(next(sc for sc in self.grpc.StatusCode
                                               if sc.value[0] == x.code)).name for x in s.results]
            want(not any(x in FATAL for x in codes), "a row answered %s", codes)
            ok = sum(1 for x in s.results if x.code == 0)
            want(s.created == ok and s.failed == len(rows) - ok, "created %d failed %d, %d OK rows",
                 s.created, s.failed, ok)
        c.pre = pre
        for i in range(len(rows)):
            c.subs.append(("row%d" % i, row_step(i)))
        return c

    def gen_get(self, r, client):
        x = r.random()
        oid = (self.pick_order(r) if x < 0.9 else "o-%d" % (self.max_onum() + 3) if x < 0.95
               else self.odd_id(r))
        req = self.opb.GetOrderRequest(id=oid)
        c = Call(client, "GetOrder", "GetOrder(%s)" % oid)
        c.fn = lambda a: a[2].ord.GetOrder(req, timeout=T)

        def step(v):
            o = v.get(("o", oid))
            if o is None:
                want(c.code == "NOT_FOUND", "expected NOT_FOUND")
                return
            want(c.code == "OK", "expected OK")
            self.check_order_msg(c.resp, o)
        c.subs.append(("get", step))
        c.touch.add(oid)
        return c

    def gen_track(self, r, client):
        """TrackOrders: one order's events from seq 1, read up to its version
        at the start of the round; they must be its history's first ones."""
        oid = self.pick_order(r)
        target = self.model[("o", oid)].version
        done = threading.Event()

        def reqs():
            yield self.opb.TrackRequest(subscribe=self.opb.TrackSubscribe(order_ids=[oid],
                                                                          since_seq=1))
            done.wait(T)

        def fn(a):
            it = a[2].ord.TrackOrders(reqs(), timeout=T)
            evs = []
            try:
                for e in it:
                    evs.append(e)
                    if e.version >= target:
                        break
            finally:
                done.set()
                it.cancel()
            return evs
        c = Call(client, "TrackOrders", "TrackOrders(%s since 1, up to v%d)" % (oid, target))
        c.fn = fn

        def post(states, before, after):
            want(c.code == "OK", "expected OK")
            o = after.get(("o", oid))
            got = [(e.status, e.previous_status, e.version) for e in c.resp]
            want(got and got[-1][2] >= target, "stream ended before v%d: %s", target, got)
            want(all(e.order_id == oid and e.customer_id == o.cust for e in c.resp),
                 "events of other orders or customers: %s", [(e.order_id, e.customer_id)
                                                             for e in c.resp])
            want(tuple(got) == o.hist[:len(got)], "events %s, model history %s", got, o.hist)
            seqs = [e.seq for e in c.resp]
            want(seqs == sorted(set(seqs)), "seqs %s", seqs)
        c.post = post
        return c

    def gen_list(self, r, client):
        cust = r.choice(self.custs)
        st = r.choice((0, 0, 0, PENDING, CONFIRMED, CANCELLED))
        req = self.opb.ListOrdersRequest(customer_id=cust, status=st,
                                         page_size=r.choice((0, 7, 100)))
        c = Call(client, "ListOrders", "ListOrders(%s)" % short(req))
        c.fn = lambda a: list(a[2].ord.ListOrders(req, timeout=T))
        c.want_cust = cust

        def post(states, before, after):
            want(c.code == "OK", "expected OK")
            ids = [o.id for o in c.resp]
            want(ids == sorted(ids, key=onum), "not in id order: %s", ids)
            want(len(set(ids)) == len(ids), "duplicates: %s", ids)
            for o in c.resp:
                mo = after.get(("o", o.id))
                want(mo is not None, "unknown order %s", o.id)
                want(mo.cust == cust, "order %s of %s listed for %s", o.id, mo.cust, cust)
                want(st == 0 or o.status == st, "order %s is %s, filter %s", o.id,
                     SNAME[o.status], SNAME[st])
                want((o.status, o.version) in states.get(o.id, set()),
                     "order %s listed as %s v%d, never so during the round (%s)", o.id,
                     SNAME[o.status], o.version, sorted(states.get(o.id, set())))
                want(lines_of(o.lines) == mo.lines, "order %s lines %s, model %s", o.id,
                     lines_of(o.lines), mo.lines)

            def match(mv, oid):
                mo = mv.get(("o", oid))
                return mo.cust == cust and (st == 0 or mo.status == st)
            # each order that matched before and after the round is listed
            must = [i for i in self.order_ids_before if match(before, i) and match(after, i)]
            missing = [i for i in must if i not in ids]
            want(not missing, "orders missing from the list: %s", missing)
        c.post = post
        return c

    def gen_cancel(self, r, client):
        oid = self.pick_order(r)
        o = self.model[("o", oid)]
        ev = r.choice((0, 0, o.version, o.version, o.version + 1, max(1, o.version - 1)))
        reason = "why-%d" % r.randrange(100)
        if r.random() < 0.05:
            oid = "o-%d" % (self.max_onum() + 7)
        elif r.random() < 0.03:
            oid = self.odd_id(r)
        req = self.opb.CancelOrderRequest(id=oid, reason=reason, expected_version=ev)
        c = Call(client, "CancelOrder", "CancelOrder(%s)" % short(req))
        c.fn = lambda a: a[2].ord.CancelOrder(req, timeout=T)
        c.subs.append(("cancel", lambda v: self.m_status(v, c, oid, CANCELLED, ev, reason)))
        c.touch.add(oid)
        return c

    def gen_update(self, r, client):
        oid = self.pick_order(r)
        o = self.model[("o", oid)]
        nxt = {PENDING: CONFIRMED, CONFIRMED: SHIPPED, SHIPPED: DELIVERED}.get(o.status)
        to = nxt if (nxt and r.random() < 0.7) else r.choice((PENDING, CONFIRMED, SHIPPED,
                                                              DELIVERED, CANCELLED))
        ev = r.choice((0, 0, o.version, o.version, o.version + 1))
        req = self.opb.UpdateOrderStatusRequest(id=oid, status=to, expected_version=ev)
        c = Call(client, "UpdateOrderStatus", "UpdateOrderStatus(%s)" % short(req))
        c.fn = lambda a: a[2].ord.UpdateOrderStatus(req, timeout=T)
        c.subs.append(("update", lambda v: self.m_status(v, c, oid, to, ev, "")))
        c.touch.add(oid)
        return c

    def gen_adjust(self, r, client):
        sku = r.choice(self.skus) if r.random() < 0.97 else "M-GHOST"
        p = self.model.get(("p", sku))
        avail = p.on_hand - p.reserved if p else 0
        x = r.random()
        if x < 0.5 or avail < 3:
            delta = r.randint(1, 10)
        elif x < 0.8:
            delta = -r.randint(1, max(1, avail))
        else:
            delta = -r.randint(avail, avail + 3)  # to the edge and past it
        if delta == 0:
            delta = 1
        req = self.ipb.AdjustStockRequest(sku=sku, delta=delta)
        c = Call(client, "AdjustStock", "AdjustStock(%s %+d)" % (sku, delta))
        c.fn = lambda a: a[1].inv.AdjustStock(req, timeout=T)

        def step(v):
            p = v.get(("p", sku))
            if p is None:
                want(c.code == "NOT_FOUND", "expected NOT_FOUND")
                return
            new = p.on_hand + delta
            lo = p.reserved - self.slack(v, sku)  # split: reservations ahead may be gone
            if new >= p.reserved:
                want(c.code == "OK", "expected OK (on_hand %d%+d, reserved %d)", p.on_hand, delta,
                     p.reserved)
            elif new < lo:
                want(c.code == "FAILED_PRECONDITION",
                     "expected FAILED_PRECONDITION (on_hand %d%+d < reserved %d)", p.on_hand,
                     delta, p.reserved)
            else:
                want(c.code in ("OK", "FAILED_PRECONDITION"), "expected OK or FAILED_PRECONDITION")
            if c.code != "OK":
                return
            self.check_product(c.resp, sku, p._replace(on_hand=new), v)
            v.set(("p", sku), p._replace(on_hand=new))
        c.subs.append(("adjust", step))
        return c

    def gen_upsert(self, r, client):
        sku = r.choice(self.skus)
        price = r.choice((50, 100, 250, 999, 1234, 4321))
        req = self.ipb.UpsertProductRequest(sku=sku, name="Model %s %d" % (sku, price),
                                            unit_price_cents=price)
        c = Call(client, "UpsertProduct", "UpsertProduct(%s, %d)" % (sku, price))
        c.fn = lambda a: a[1].inv.UpsertProduct(req, timeout=T)

        def step(v):
            want(c.code == "OK", "expected OK")
            p = v.get(("p", sku))._replace(price=price)
            self.check_product(c.resp, sku, p, v)
            v.set(("p", sku), p)
        c.subs.append(("upsert", step))
        return c

    def gen_reserve(self, r, client):
        x = r.random()
        lines = self.rand_lines(r)
        if x < 0.25 or not self.holds:
            self.hold_n += 1
            oid = "hold-%d-%d" % (client, self.hold_n)
            if r.random() < 0.15:
                oid = self.odd_id(r)
            self.holds.append(oid)
        elif x < 0.40:
            oid = r.choice(self.holds)  # a repeat, or one released
        elif x < 0.60:
            live = self.pick_order(r, live=True)
            oid = live or "hold-none"
            if live and r.random() < 0.5:
                lines = [(s, q) for s, q, _ in self.model[("o", live)].lines]
        elif "reserve-ahead" in self.skip and not self.split and x >= 0.60:
            oid = r.choice(self.holds)
        elif x < 0.75:
            oid = self.pick_order(r, live=False) or "o-%d" % (self.max_onum() + 1)
        elif x < 0.95:
            oid = "o-%d" % (self.max_onum() + r.randint(1, 5))  # ahead of CreateOrder
        else:
            oid = "o-%d" % r.randint(1, max(1, self.max_onum()))
        req = self.ipb.ReserveRequest(order_id=oid, lines=[
            self.ipb.ReserveLine(sku=s, quantity=q) for s, q in lines])
        c = Call(client, "Reserve", "Reserve(%s)" % short(req))
        c.fn = lambda a: a[1].inv.Reserve(req, timeout=T)
        c.subs.append(("reserve", lambda v: self.m_reserve(v, c, oid, lines)))
        if onum(oid):
            c.touch.add(oid)
        return c

    def gen_release(self, r, client):
        x = r.random()
        if x < 0.35 and self.holds:
            oid = r.choice(self.holds)
        elif x < 0.55 and not self.split and "release-live" not in self.skip:
            oid = self.pick_order(r, live=True) or "hold-none"
        elif x < 0.75:
            oid = self.pick_order(r, live=False) or "hold-none"
        elif x < 0.85 and not self.split and "release-live" not in self.skip:
            oid = "o-%d" % (self.max_onum() + r.randint(1, 5))  # may race its CreateOrder
        else:
            oid = "hold-unknown-%d" % r.randrange(1000)
        req = self.ipb.ReleaseRequest(order_id=oid)
        c = Call(client, "Release", "Release(%s)" % oid)
        c.fn = lambda a: a[1].inv.Release(req, timeout=T)
        c.subs.append(("release", lambda v: self.m_release(v, c, oid)))
        if onum(oid):
            c.touch.add(oid)
        return c

    def gen_setcust(self, r, client):
        cust = r.choice(self.custs) if r.random() < 0.97 else "c-999999"
        cur = self.model.get(("c", cust), ACTIVE)
        st = ACTIVE if (cur == SUSPENDED and r.random() < 0.7) else r.choice((ACTIVE, SUSPENDED))
        req = self.cpb.SetCustomerStatusRequest(id=cust, status=st)
        c = Call(client, "SetCustomerStatus", "SetCustomerStatus(%s, %d)" % (cust, st))
        c.fn = lambda a: a[0].cust.SetCustomerStatus(req, timeout=T)

        def step(v):
            if v.get(("c", cust)) is None:
                want(c.code == "NOT_FOUND", "expected NOT_FOUND")
                return
            want(c.code == "OK", "expected OK")
            want(c.resp.id == cust and c.resp.status == st, "answered %s", short(c.resp))
            v.set(("c", cust), st)
        c.subs.append(("setcust", step))
        return c

    def gen_getproduct(self, r, client):
        sku = r.choice(self.skus)
        c = Call(client, "GetProduct", "GetProduct(%s)" % sku)
        c.fn = lambda a: a[1].inv.GetProduct(self.ipb.GetProductRequest(sku=sku), timeout=T)

        def step(v):
            want(c.code == "OK", "expected OK")
            self.check_product(c.resp, sku, v.get(("p", sku)), v)
        c.subs.append(("getproduct", step))
        return c

    def gen_listproducts(self, r, client):
        c = Call(client, "ListProducts", "ListProducts()")
        c.fn = lambda a: list(a[1].inv.ListProducts(self.ipb.ListProductsRequest(), timeout=T))

        def step(v):
            want(c.code == "OK", "expected OK")
            want([p.sku for p in c.resp] == sorted(self.skus), "skus %s",
                 [p.sku for p in c.resp])
            for p in c.resp:
                self.check_product(p, p.sku, v.get(("p", p.sku)), v)
        c.subs.append(("listproducts", step))
        return c

    def gen_getcust(self, r, client):
        cust = r.choice(self.custs)
        c = Call(client, "GetCustomer", "GetCustomer(%s)" % cust)
        c.fn = lambda a: a[0].cust.GetCustomer(self.cpb.GetCustomerRequest(id=cust), timeout=T)

        def step(v):
            want(c.code == "OK" and c.resp.id == cust and c.resp.status == v.get(("c", cust)),
                 "expected %s %d", cust, v.get(("c", cust)))
        c.subs.append(("getcust", step))
        return c

    def gen_listcust(self, r, client):
        c = Call(client, "ListCustomers", "ListCustomers()")
        c.fn = lambda a: list(a[0].cust.ListCustomers(self.cpb.ListCustomersRequest(), timeout=T))

        def step(v):
            want(c.code == "OK", "expected OK")
            got = {x.id: x.status for x in c.resp}
            exp = {k[1]: v.get(k) for k in list(self.model) + list(v.ch) if k[0] == "c"}
            want(got == exp, "customers %s, model %s", got, exp)
        c.subs.append(("listcust", step))
        return c

    def gen_newcust(self, r, client):
        email = "n%d-%d-%d-%s@example.com" % (self.round, client, self.seed, oi.RUN)
        req = self.cpb.CreateCustomerRequest(name="New %d" % self.round, email=email)
        c = Call(client, "CreateCustomer", "CreateCustomer(%s)" % email)
        c.fn = lambda a: a[0].cust.CreateCustomer(req, timeout=T)

        def step(v):
            want(c.code == "OK", "expected OK")
            want(c.resp.email == email and c.resp.status == ACTIVE and
                 v.get(("c", c.resp.id)) is None, "answered %s", short(c.resp))
            v.set(("c", c.resp.id), ACTIVE)
        c.subs.append(("newcust", step))
        return c

    # ---------------------------------------------------------------- model steps

    def slack(self, v, sku):
        """Split mode: units reserved ahead under o-<n> ids that a CreateOrder
        may have taken over or released since (unknown until probed)."""
        n = 0
        for oid in self.ohold_ids:
            e = v.get(("oh", oid))
            if e and e[1]:
                n += sum(q for s, q, _ in e[0] if s == sku)
        return n

    def check_product(self, p, sku, mp, v):
        want(p.sku == sku, "sku %s, not %s", p.sku, sku)
        want(p.unit_price_cents == mp.price, "%s price %d, model %d", sku, p.unit_price_cents,
             mp.price)
        want(p.on_hand == mp.on_hand, "%s on_hand %d, model %d", sku, p.on_hand, mp.on_hand)
        want(0 <= p.reserved <= p.on_hand and p.available == p.on_hand - p.reserved,
             "%s on_hand %d reserved %d available %d", sku, p.on_hand, p.reserved, p.available)
        if not self.split:
            want(p.reserved == mp.reserved, "%s reserved %d, model %d", sku, p.reserved,
                 mp.reserved)

    def check_order_msg(self, got, o):
        want(got.id == o.id, "order id %s, model %s", got.id, o.id)
        want(got.customer_id == o.cust, "order %s customer %s, model %s", o.id, got.customer_id,
             o.cust)
        want(lines_of(got.lines) == o.lines, "order %s lines %s, model %s", o.id,
             lines_of(got.lines), o.lines)
        want(all(l.line_total_cents == l.quantity * l.unit_price_cents for l in got.lines) and
             got.total_cents == sum(q * p for _, q, p in o.lines), "order %s totals", o.id)
        want((got.status, got.version) == (o.status, o.version),
             "order %s is %s v%d, model %s v%d", o.id, SNAME.get(got.status, got.status),
             got.version, SNAME[o.status], o.version)
        if o.status == CANCELLED:
            want(got.cancel_reason == o.reason, "order %s cancel_reason %r, model %r", o.id,
                 got.cancel_reason, o.reason)

    def add_reserved(self, v, lines, sign):
        for s, q, _ in lines:
            p = v.get(("p", s))
            v.set(("p", s), p._replace(reserved=p.reserved + sign * q))

    def stock_codes(self, v, lines):
        """Codes a reservation of lines may get: must (a set of failure codes, one
        of which is certain) and may (possible in split mode)."""
        must, may = set(), set()
        for s, q in lines:
            p = v.get(("p", s))
            if p is None:
                must.add("NOT_FOUND")
                continue
            avail = p.on_hand - p.reserved
            if q > avail + self.slack(v, s):
                must.add("FAILED_PRECONDITION")
            elif q > avail:
                may.add("FAILED_PRECONDITION")
        return must, may

    def m_create(self, v, c, cust, lines, key, code, resp, details, row=False):
        """CreateOrder (or an import row: resp is then the order id)."""
        lines = list(lines)
        oid = resp if row else (resp.id if code == "OK" else "")
        b = v.get(("k", cust, key)) if key else None
        if b is not None:
            o = v.get(("o", b))
            first = [(s, q) for s, q, _ in o.lines]
            if sorted(first) == sorted(lines) and first != lines and code != "OK":
                # the same lines in another order: the same request or not, both fine
                want(code == "INVALID_ARGUMENT", "same key %r, same customer %s, the first "
                     "order's lines reordered: expected OK or INVALID_ARGUMENT", key, cust)
                return
            if sorted(first) == sorted(lines):
                want(code == "OK", "same key %r, same customer %s, same lines: expected the first "
                     "order %s", key, cust, b)
                want(oid == b, "same key %r, same customer %s, same lines: order %s, not the first "
                     "order %s", key, cust, oid, b)
                if not row:
                    want(resp.customer_id == cust and lines_of(resp.lines) == o.lines,
                         "replay of %s answered %s", b, short(resp))
                return
            ok = {"INVALID_ARGUMENT"}
            if v.get(("c", cust)) == SUSPENDED:
                ok.add("FAILED_PRECONDITION")
            want(code in ok, "same key %r, same customer %s, other lines (first order %s: %s): "
                 "expected INVALID_ARGUMENT %r", key, cust, b, o.lines, REUSED)
            want(code != "INVALID_ARGUMENT" or REUSED in details, "message %r does not say %r",
                 details, REUSED)
            return
        must, may = set(), set()
        cst = v.get(("c", cust))
        if cst is None:
            must.add("NOT_FOUND")
        elif cst == SUSPENDED:
            must.add("FAILED_PRECONDITION")
        else:
            must, may = self.stock_codes(v, lines)
        if must:
            want(code in must | may, "expected %s", "|".join(sorted(must | may)))
            return
        want(code == "OK" or code in may, "expected OK%s" % "".join("|" + x for x in sorted(may)))
        if code != "OK":
            return
        n = onum(oid)
        want(n is not None, "order id %r is not o-<n>", oid)
        other = v.get(("o", oid))
        want(other is None or other.cust == cust, "answered %s, an order of customer %s, to "
             "customer %s: another customer's data", oid, other and other.cust, cust)
        want(other is None, "order id %s given twice", oid)
        h_ = v.get(("h", oid))
        adopted = False
        e = v.get(("oh", oid))
        if e and e[1]:
            # split: an order took an id reserved ahead; only identical lines may be
            # taken over (a different reservation is released and the id skipped)
            want([(s, q) for s, q, _ in e[0]] == lines,
                 "order %s took an id reserved ahead with other lines %s", oid, e[0])
            v.set(("oh", oid), (e[0], False))
            adopted = True
        else:
            want(h_ is None, "order %s took an id that holds a reservation (%s)", oid, h_)
        if adopted:
            ml = e[0]
        else:
            ml = tuple((s, q, v.get(("p", s)).price) for s, q in lines)
        if not row:
            want(resp.customer_id == cust, "order %s for %s answered to %s: another customer's "
                 "data", oid, resp.customer_id, cust)
            want((resp.status, resp.version) == (PENDING, 1), "new order %s is %s v%d", oid,
                 SNAME.get(resp.status), resp.version)
            want(lines_of(resp.lines) == ml, "new order %s lines %s, model %s", oid,
                 lines_of(resp.lines), ml)
            want(resp.total_cents == sum(q * p for _, q, p in ml), "order %s total", oid)
        o = MOrder(oid, cust, ml, PENDING, 1, key, ((PENDING, 0, 1),), "")
        v.set(("o", oid), o)
        if not adopted:
            self.add_reserved(v, ml, +1)
        if key:
            v.set(("k", cust, key), oid)
        c.touch.add(oid)

    def m_status(self, v, c, oid, to, ev, reason):
        o = v.get(("o", oid))
        if o is None:
            want(c.code == "NOT_FOUND", "expected NOT_FOUND")
            return
        if ev and ev != o.version:
            want(c.code == "ABORTED", "order %s at v%d, expected_version %d: expected ABORTED",
                 oid, o.version, ev)
            return
        if o.status not in ALLOWED_FROM.get(to, ()):
            want(c.code == "FAILED_PRECONDITION", "%s -> %s: expected FAILED_PRECONDITION",
                 SNAME[o.status], SNAME[to])
            return
        want(c.code == "OK", "%s v%d -> %s (expected_version %d): expected OK", SNAME[o.status],
             o.version, SNAME[to], ev)
        n = o._replace(status=to, version=o.version + 1, hist=o.hist + ((to, o.status,
                                                                          o.version + 1),),
                       reason=reason if to == CANCELLED else o.reason)
        self.check_order_msg(c.resp, n)
        v.set(("o", oid), n)
        if to == CANCELLED:
            self.add_reserved(v, o.lines, -1)

    def m_reserve(self, v, c, oid, lines):
        resp = c.resp
        n = onum(oid)
        o = v.get(("o", oid)) if n else None
        if o is not None:
            if o.status == CANCELLED:
                want(c.code == "FAILED_PRECONDITION", "Reserve(%s) of a cancelled order: expected "
                     "FAILED_PRECONDITION", oid)
                return
            want(c.code == "OK", "Reserve(%s) of a live order: expected OK, its reservation", oid)
            want(resp.order_id == oid and lines_of(resp.lines) == o.lines,
                 "Reserve(%s) of a live order answered %s, the order's lines are %s", oid,
                 lines_of(resp.lines), o.lines)
            return
        if n and not self.split:
            want(c.code == "FAILED_PRECONDITION", "Reserve(%s): no such order: expected "
                 "FAILED_PRECONDITION, nothing reserved", oid)
            return
        if n:  # split: the inventory knows no orders (see the docstring)
            hd = v.get(("h", oid))
            if hd is not None:  # found still reserved below the last order id: for good
                want(c.code == "OK" and lines_of(resp.lines) == hd[1],
                     "Reserve(%s) again: expected the first reservation %s", oid, hd[1])
                return
            e = v.get(("oh", oid))
            if e and e[1]:
                want(c.code in ("OK", "FAILED_PRECONDITION"), "Reserve(%s) again", oid)
                want(c.code != "OK" or lines_of(resp.lines) == e[0],
                     "Reserve(%s) again answered %s, first %s", oid, resp and resp.lines, e[0])
                return
            if e:
                want(c.code == "FAILED_PRECONDITION", "Reserve(%s) after a CreateOrder released "
                     "it: expected FAILED_PRECONDITION", oid)
                return
            must, may = self.stock_codes(v, lines)
            want(c.code == "OK" or c.code in must | may | {"FAILED_PRECONDITION"},
                 "Reserve(%s) ahead: expected OK|FAILED_PRECONDITION", oid)
            if c.code == "OK":
                ml = lines_of(resp.lines)
                if tuple((s, q) for s, q, _ in ml) == tuple(lines):
                    want(ml == tuple((s, q, v.get(("p", s)).price) for s, q in lines),
                         "Reserve(%s) priced %s, model prices %s", oid, ml,
                         [v.get(("p", s)).price for s, _ in lines])
                    # ours (or a concurrent order's with the same lines and prices: then
                    # the probe finds it an order)
                    self.ohold_ids.add(oid)
                    v.set(("oh", oid), (ml, True))
                    self.add_reserved(v, ml, +1)
            return
        hd = v.get(("h", oid))
        if hd is not None:
            if hd[0] == "released":
                want(c.code == "FAILED_PRECONDITION", "Reserve(%s) after its release: expected "
                     "FAILED_PRECONDITION", oid)
                return
            want(c.code == "OK" and lines_of(resp.lines) == hd[1],
                 "Reserve(%s) again: expected the first reservation %s", oid, hd[1])
            return
        must, may = self.stock_codes(v, lines)
        if must:
            want(c.code in must | may, "expected %s", "|".join(sorted(must | may)))
            return
        want(c.code == "OK" or c.code in may, "expected OK")
        if c.code != "OK":
            return
        ml = tuple((s, q, v.get(("p", s)).price) for s, q in lines)
        want(resp.order_id == oid and lines_of(resp.lines) == ml, "reserved %s, model %s",
             lines_of(resp.lines), ml)
        v.set(("h", oid), ("live", ml))
        self.add_reserved(v, ml, +1)

    def m_release(self, v, c, oid):
        n = onum(oid)
        o = v.get(("o", oid)) if n else None
        if o is not None and o.status != CANCELLED:
            want(c.code == "FAILED_PRECONDITION", "Release(%s) of a live (%s) order: expected "
                 "FAILED_PRECONDITION, nothing released", oid, SNAME[o.status])
            return
        if o is not None or n:
            want(c.code == "OK" and not c.resp.released, "Release(%s) of a %s id: expected OK, "
                 "released=false", oid, "cancelled order's" if o else "unknown")
            return
        hd = v.get(("h", oid))
        want(c.code == "OK", "expected OK")
        want(c.resp.released == (hd is not None and hd[0] == "live"), "released=%s, model %s",
             c.resp.released, hd)
        if hd is not None and hd[0] == "live":
            v.set(("h", oid), ("released", hd[1]))
            self.add_reserved(v, hd[1], -1)

    # ---------------------------------------------------------------- rounds

    def execute(self, c):
        try:
            c.resp = c.fn(self.apis[c.client])
            c.code = "OK"
        except self.grpc.RpcError as e:
            c.code = e.code().name
            c.details = e.details() or ""

    def fail(self, msg):
        raise Failure("seed %d, round %d (step %d): %s\n# %s" % (
            self.seed, self.round, self.round * self.K, msg, self.replay_hint()))

    def observe(self, calls):
        """Reads the state after the round (nothing in flight): every product, every
        customer's status (when the round changed one), and every order the round
        named or created (None: NOT_FOUND)."""
        ids = set()
        for c in calls:
            ids |= c.touch
            if c.code == "OK" and c.kind == "CreateOrder":
                ids.add(c.resp.id)
            if c.code == "OK" and c.kind == "ImportOrders":
                ids |= {x.order_id for x in c.resp.results if x.order_id}
        prods = {p.sku: p for p in self.chk[1].inv.ListProducts(self.ipb.ListProductsRequest(),
                                                                 timeout=T)}
        custs = None
        if any(c.kind in ("SetCustomerStatus", "CreateCustomer") for c in calls):
            custs = {x.id: x.status for x in self.chk[0].cust.ListCustomers(
                self.cpb.ListCustomersRequest(), timeout=T)}
        orders = {}
        for oid in sorted(ids):
            try:
                orders[oid] = self.chk[2].get_order(oid)
            except self.grpc.RpcError as e:
                if e.code().name != "NOT_FOUND":
                    self.fail("GetOrder(%s) after the round: %s %r" % (oid, e.code().name,
                                                                       e.details()))
                orders[oid] = None
        return prods, orders, custs

    def final_state_ok(self, v, obs):
        """The state a linearization ends in must be the state read after it."""
        prods, orders, custs = obs
        for cid, st in (custs or {}).items():
            want(v.get(("c", cid)) == st, "after the round customer %s is %s, model %s", cid,
                 st, v.get(("c", cid)))
        for s in self.skus:
            p, mp = prods.get(s), v.get(("p", s))
            want(p is not None, "product %s missing after the round", s)
            want((p.on_hand, p.unit_price_cents) == (mp.on_hand, mp.price),
                 "after the round %s has on_hand %d price %d; model %d, %d", s, p.on_hand,
                 p.unit_price_cents, mp.on_hand, mp.price)
            lo = mp.reserved - (self.slack(v, s) if self.split else 0)
            want(lo <= p.reserved <= mp.reserved,
                 "after the round %s has reserved %d; model %d (live orders' lines + the test's "
                 "live reservations)", s, p.reserved, mp.reserved)
        for oid, g in orders.items():
            o = v.get(("o", oid))
            if g is None or o is None:
                want(g is None and o is None, "GetOrder(%s) after the round: %s, model %s", oid,
                     "NOT_FOUND" if g is None else short(g, 200), o)
                continue
            self.check_order_msg(g, o)

    def linearize(self, calls, obs):
        """A depth-first search for an order of the round's steps that the model
        accepts and that ends in the state read after the round (obs). Returns
        the list of views after each step, or raises with the first mismatch of
        the call order as given."""
        steps = [(c, lab, fn) for c in calls for lab, fn in c.subs]
        first_err = []
        budget = [2000000]
        # (steps left, model changes so far) already found to lead nowhere: steps
        # that touch different things commute, so without this the search would
        # try every order of them (8 clients and two imports: 12! orders)
        dead = set()

        def dfs(view, left, path):
            if not left:
                try:
                    self.final_state_ok(view, obs)
                except Mismatch as e:
                    if not first_err:
                        first_err.append((None, "after the round", str(e)))
                    return None
                return path
            key = (left, frozenset(view.ch.items()))
            if key in dead:
                return None
            budget[0] -= 1
            if budget[0] < 0:
                raise Failure("seed %d, round %d: linearization search gave up (%d steps)"
                              % (self.seed, self.round, len(steps)))
            for i in left:
                c, lab, fn = steps[i]
                nv = view.child()
                try:
                    fn(nv)
                except Mismatch as e:
                    if not first_err:
                        first_err.append((c, lab, str(e)))
                    continue
                r = dfs(nv, tuple(j for j in left if j != i), path + [nv])
                if r is not None:
                    return r
            dead.add(key)
            return None
        res = dfs(View(self.model), tuple(range(len(steps))), [])
        self.max_nodes = max(getattr(self, "max_nodes", 0), 2000000 - budget[0])
        if res is None:
            c, lab, e = first_err[0]
            if c is None:
                self.fail("no order of the round's calls ends in the state read after it: %s\n%s"
                          % (e, self.describe(calls)))
            self.fail("no order of the round's calls fits the model; first mismatch: client %d "
                      "%s [%s] -> %s: %s\n%s" % (c.client, c.desc, lab, c.answer(), e,
                                                 self.describe(calls)))
        return res

    def describe(self, calls):
        return "\n".join("#   client %d: %s -> %s" % (c.client, c.desc, c.answer())
                         for c in calls)

    def do_round(self, pool):
        self.round += 1
        calls = []
        for k in range(self.K):
            r = random.Random("%d/%d/%d" % (self.seed, self.round, k))
            calls.append(self.gen(r, k))
        self.order_ids_before = list(self.order_ids)
        list(pool.map(self.execute, calls))
        for c in calls:
            self.stats[(c.kind, c.code)] += 1
            if c.code in FATAL:
                self.fail("%s answered %s %r\n%s" % (c.desc, c.code, c.details,
                                                    self.describe(calls)))
            # never another customer's data
            want_cust = getattr(c, "want_cust", None)
            if c.code == "OK" and want_cust is not None:
                orders = c.resp if isinstance(c.resp, list) else [c.resp]
                bad = [o.id + " of " + o.customer_id for o in orders if o.customer_id != want_cust]
                if bad:
                    self.fail("%s answered another customer's order(s): %s\n%s" % (
                        c.desc, bad, self.describe(calls)))
            pre = getattr(c, "pre", None)
            if pre:
                try:
                    pre()
                except Mismatch as e:
                    self.fail("%s: %s" % (c.desc, e))
        obs = self.observe(calls)
        path = self.linearize(calls, obs)
        before = View(self.model)
        final = path[-1] if path else View(self.model)
        # order states seen during the round, for the non-atomic reads
        states = collections.defaultdict(set)
        for oid in self.order_ids:
            o = self.model[("o", oid)]
            states[oid].add((o.status, o.version))
        for pv in path:
            for k, val in pv.ch.items():
                if k[0] == "o":
                    states[k[1]].add((val.status, val.version))
        for c in calls:
            if c.post:
                try:
                    c.post(states, before, final)
                except Mismatch as e:
                    self.fail("%s -> %s: %s\n%s" % (c.desc, c.answer(), e, self.describe(calls)))
        # commit
        for k, val in final.ch.items():
            if k[0] == "o" and k not in self.model:
                self.order_ids.append(k[1])
            if k[0] == "c" and k not in self.model:
                self.custs.append(k[1])
            self.model[k] = val
        self.quiescent(calls, obs)

    # ---------------------------------------------------------------- quiescent checks

    def expected_reserved(self):
        want_ = {s: 0 for s in self.skus}
        for oid in self.order_ids:
            o = self.model[("o", oid)]
            if o.status != CANCELLED:
                for s, q, _ in o.lines:
                    want_[s] += q
        for k, val in self.model.items():
            if k[0] == "h" and val[0] == "live":
                for s, q, _ in val[1]:
                    want_[s] += q
        for oid in self.ohold_ids:
            e = self.model.get(("oh", oid))
            if e and e[1]:
                for s, q, _ in e[0]:
                    want_[s] += q
        return want_

    def probe_oholds(self):
        """Split: each reservation made ahead under o-<n> is still ours, or was
        taken over by the order that got the id (identical lines), or released
        by it. Reserve again tells: existing -> its lines, released ->
        FAILED_PRECONDITION."""
        ia = self.chk[1]
        top = self.max_onum()
        for oid in sorted(self.ohold_ids, key=onum):
            e = self.model.get(("oh", oid))
            if not e or not e[1]:
                continue
            ls = e[0]
            if ("o", oid) in self.model:  # taken over (checked in m_create) or a concurrent race
                o = self.model[("o", oid)]
                if tuple((s, q) for s, q, _ in o.lines) != tuple((s, q) for s, q, _ in ls):
                    self.fail("order %s has lines %s; the id was reserved ahead with %s"
                              % (oid, o.lines, ls))
                self.model[("oh", oid)] = (ls, False)
                self.stats[("~reserved ahead", "taken over by its order")] += 1
                continue
            try:
                r = ia.inv.Reserve(self.ipb.ReserveRequest(order_id=oid, lines=[
                    self.ipb.ReserveLine(sku=s, quantity=q) for s, q, _ in ls]), timeout=T)
                if lines_of(r.lines) != ls:
                    self.fail("probe Reserve(%s) answered %s, reserved %s" % (oid, lines_of(
                        r.lines), ls))
                if onum(oid) < top:  # ids below the last order are never handed out again
                    self.stats[("~reserved ahead", "kept for good")] += 1
                    self.model[("h", oid)] = ("live", ls)
                    self.model[("oh", oid)] = (ls, False)
            except self.grpc.RpcError as e:
                if e.code().name != "FAILED_PRECONDITION":
                    self.fail("probe Reserve(%s): %s %r" % (oid, e.code().name, e.details()))
                self.stats[("~reserved ahead", "released by a CreateOrder")] += 1
                self.model[("oh", oid)] = (ls, False)  # released by a CreateOrder that skipped it
        # the model's reserved, recomputed (the incremental one is an upper bound here)
        exp = self.expected_reserved()
        for s in self.skus:
            self.model[("p", s)] = self.model[("p", s)]._replace(reserved=exp[s])

    def quiescent(self, calls, obs=None):
        """The model committed, nothing in flight: stock figures and the orders
        the round touched (obs: what observe() read after the round)."""
        if obs is None:
            obs = self.observe(calls)
        if self.split:
            self.probe_oholds()
        exp = self.expected_reserved()
        got, orders, _ = obs
        for s in self.skus:
            p = got.get(s)
            mp = self.model[("p", s)]
            if p is None:
                self.fail("product %s missing" % s)
            if mp.reserved != exp[s]:
                self.fail("model self-check: %s reserved %d, recomputed %d" % (s, mp.reserved,
                                                                               exp[s]))
            if not (0 <= p.reserved <= p.on_hand and p.available == p.on_hand - p.reserved):
                self.fail("%s on_hand %d reserved %d available %d" % (s, p.on_hand, p.reserved,
                                                                       p.available))
            if (p.on_hand, p.reserved, p.unit_price_cents) != (mp.on_hand, exp[s], mp.price):
                self.fail("after the round: %s on_hand %d reserved %d price %d; model on_hand %d, "
                          "reserved %d (live orders' lines + the test's live reservations), "
                          "price %d\n%s" % (s, p.on_hand, p.reserved, p.unit_price_cents,
                                            mp.on_hand, exp[s], mp.price, self.describe(calls)))
        for oid, g in sorted(orders.items()):
            o = self.model.get(("o", oid))
            if g is None and o is None:
                continue
            if g is None:
                self.fail("GetOrder(%s) after the round: NOT_FOUND, model %s" % (oid, o))
            if o is None:
                self.fail("GetOrder(%s) after the round: %s, not in the model\n%s" % (
                    oid, short(g), self.describe(calls)))
            try:
                self.check_order_msg(g, o)
            except Mismatch as e:
                self.fail("GetOrder(%s) after the round: %s\n%s" % (oid, e, self.describe(calls)))
        if self.round % FULL_EVERY == 0:
            self.full_check()

    def full_check(self):
        got = self.chk[2].list_orders(page_size=100, timeout=60)
        ids = [o.id for o in got]
        if ids != sorted(self.order_ids, key=onum):
            extra = sorted(set(ids) - set(self.order_ids), key=onum)
            missing = sorted(set(self.order_ids) - set(ids), key=onum)
            self.fail("ListOrders(): %d orders, model %d; not in the model %s; missing %s"
                      % (len(ids), len(self.order_ids), extra[:10], missing[:10]))
        for g in got:
            try:
                self.check_order_msg(g, self.model[("o", g.id)])
            except Mismatch as e:
                self.fail("ListOrders(): %s" % e)

    def final_checks(self):
        self.full_check()
        if self.split:
            # every live order's reservation exists, with its lines
            ia = self.chk[1]
            for oid in self.order_ids:
                o = self.model[("o", oid)]
                if o.status == CANCELLED:
                    continue
                try:
                    r = ia.inv.Reserve(self.ipb.ReserveRequest(order_id=oid, lines=[
                        self.ipb.ReserveLine(sku=s, quantity=q) for s, q, _ in o.lines]),
                        timeout=T)
                except self.grpc.RpcError as e:
                    self.fail("Reserve(%s) of a live order at the end: %s %r" % (
                        oid, e.code().name, e.details()))
                if lines_of(r.lines) != o.lines:
                    self.fail("Reserve(%s) at the end: %s, the order's lines %s" % (
                        oid, lines_of(r.lines), o.lines))
            self.quiescent([])  # nothing was reserved by those
        # the watch stream: every change of every order, seqs 1..N
        hist = {oid: self.model[("o", oid)].hist for oid in self.order_ids}
        n = sum(len(x) for x in hist.values())
        deadline = time.monotonic() + 60
        with self.ev_cond:
            while len(self.events) < n and self.ev_error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.ev_cond.wait(left)
            evs = list(self.events)
            err = self.ev_error
        if err:
            self.fail("WatchOrders ended: %s after %d events" % (err, len(evs)))
        seqs = [e[0] for e in evs]
        if seqs != list(range(1, len(seqs) + 1)):
            bad = next(i for i, s in enumerate(seqs) if s != i + 1)
            self.fail("WatchOrders seqs not 1..N: #%d is %d (after %s)" % (
                bad, seqs[bad], seqs[max(0, bad - 3):bad]))
        if len(evs) != n:
            self.fail("WatchOrders delivered %d events within 60s, the model has %d changes"
                      % (len(evs), n))
        per = collections.defaultdict(list)
        for seq, oid, cust, st, prev, ver in evs:
            o = self.model.get(("o", oid))
            if o is None:
                self.fail("event %d for an order not in the model: %s" % (seq, oid))
            if cust != o.cust:
                self.fail("event %d: order %s of %s, model %s" % (seq, oid, cust, o.cust))
            per[oid].append((st, prev, ver))
        for oid, hs in hist.items():
            if tuple(per.get(oid, ())) != hs:
                self.fail("events of %s: %s, model %s" % (oid, per.get(oid), hs))
        return n

    def run(self):
        t0 = time.monotonic()
        self.start()
        try:
            self.setup()
            self.start_watch()
            rounds = max(1, self.steps // self.K)
            with concurrent.futures.ThreadPoolExecutor(self.K) as pool:
                for _ in range(rounds):
                    self.do_round(pool)
            nev = self.final_checks()
        finally:
            try:
                self.watch_it.cancel()
            except Exception:
                pass
            self.stop()
        codes = collections.Counter()
        for (kind, code), n in self.stats.items():
            if kind != "CreateOrder 1 ms" and kind[0] != "~":
                codes[code] += n
        live = sum(1 for i in self.order_ids if self.model[("o", i)].status != CANCELLED)
        print("# seed %d %s: %d rounds x %d clients in %.1fs; %d orders (%d live), %d events; "
              "answers %s; %d CreateOrder retried after a 1 ms deadline; search <= %d nodes "
              "a round"
              % (self.seed, self.mode, self.round, self.K, time.monotonic() - t0,
                 len(self.order_ids), live, nev, dict(codes),
                 self.stats[("CreateOrder 1 ms", "DEADLINE_EXCEEDED")] +
                 self.stats[("CreateOrder 1 ms", "UNAVAILABLE")],
                 getattr(self, "max_nodes", 0)),
              flush=True)
        if self.env.args.verbose:
            for (kind, code), n in sorted(self.stats.items()):
                print("#   %-18s %-20s %d" % (kind, code, n))


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.set_defaults(transport="tls")
    p.add_argument("--mode", choices=["aio", "split"], default="aio")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--skip", default="",
                   help="comma list of op variants to leave out, to narrow a failure down: "
                        "key-changed, key-other, reserve-ahead, release-live")
    args = p.parse_args()
    if args.omsd:
        args.omsd = os.path.abspath(args.omsd)  # servers run in their own workdirs
    with h.Env("orders_model", args) as env:
        scale = oi.load_scale(args)
        seed = args.seed
        if seed is None:
            seed = int(os.environ.get("OMS_IT_MODEL_SEED") or
                       random.SystemRandom().randrange(10 ** 6))
        steps = args.steps or int(os.environ.get("OMS_IT_MODEL_STEPS") or
                                  max(600, int(1500 * scale)))
        print("# seed %d, steps %d, clients %d, mode %s, runs %d (replay: --seed %d --steps %d "
              "--clients %d --mode %s)" % (seed, steps, args.clients, args.mode, args.runs, seed,
                                           steps, args.clients, args.mode), flush=True)
        for s in range(seed, seed + args.runs):
            run = Run(env, args.mode, s, steps, args.clients,
                      [x for x in args.skip.split(",") if x], h2c=env.transports[0] == "h2c")
            env.suite.run("%s.seed%d" % (args.mode, s), run.run)


if __name__ == "__main__":
    main()
