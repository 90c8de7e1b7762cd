"""Helpers shared by the order-system runners (run_orders*.py): oms.v1 stubs on a
channel, expected-error checks, servers on a fixed port (restart on the same
port and store), kill -9, RSS sampling, and the load scale.

Load scale: OMS_IT_LOAD_SCALE (a float) scales the number of calls, events and
threads of the load phases; by default 1.0, or 0.25 when the omsd binary is
built with AddressSanitizer/UBSan (3-5x slower). Only the amount of load is
scaled, never what is checked.
"""

import itertools
import os
import signal
import sys
import threading
import time
import uuid

import omsd as h
from omsd import Failure

T = h.RPC_TIMEOUT
RUN = uuid.uuid4().hex[:6]  # makes names unique across runs sharing nothing
_counter = itertools.count(1)


def uniq(prefix):
    return "%s-%s-%d" % (prefix, RUN, next(_counter))


def is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, TypeError):
        return False
    return b"__asan_init" in data or b"__ubsan_handle_" in data


def load_scale(args):
    v = os.environ.get("OMS_IT_LOAD_SCALE")
    if v:
        return max(0.01, float(v))
    if args.server == "omsd" and is_sanitized(args.omsd):
        return 0.25
    return 1.0


class Api:
    """The three oms.v1 services on one channel."""

    def __init__(self, stubs, channel):
        S = stubs
        self.grpc = S.grpc
        self.cpb = S.customer_pb2
        self.ipb = S.inventory_pb2
        self.opb = S.order_pb2
        self.channel = channel
        self.cust = S.customer_pb2_grpc.CustomerServiceStub(channel)
        self.inv = S.inventory_pb2_grpc.InventoryServiceStub(channel)
        self.ord = S.order_pb2_grpc.OrderServiceStub(channel)

    def close(self):
        self.channel.close()

    # ---- customers
    def new_customer(self, name=None, email=None):
        tag = uniq("cust")
        return self.cust.CreateCustomer(self.cpb.CreateCustomerRequest(
            name=name or ("Customer " + tag), email=email or (tag + "@example.com")), timeout=T)

    def get_customer(self, cid):
        return self.cust.GetCustomer(self.cpb.GetCustomerRequest(id=cid), timeout=T)

    def set_customer_status(self, cid, status):
        return self.cust.SetCustomerStatus(
            self.cpb.SetCustomerStatusRequest(id=cid, status=status), timeout=T)

    # ---- inventory
    def new_product(self, price, stock, sku=None, name=None):
        sku = sku or uniq("SKU")
        self.inv.UpsertProduct(self.ipb.UpsertProductRequest(
            sku=sku, name=name or ("Product " + sku), unit_price_cents=price), timeout=T)
        if stock:
            self.adjust(sku, stock)
        return sku

    def adjust(self, sku, delta):
        return self.inv.AdjustStock(self.ipb.AdjustStockRequest(sku=sku, delta=delta), timeout=T)

    def product(self, sku):
        return self.inv.GetProduct(self.ipb.GetProductRequest(sku=sku), timeout=T)

    # ---- orders
    def order_req(self, cid, lines, key=""):
        return self.opb.CreateOrderRequest(
            customer_id=cid, idempotency_key=key,
            lines=[self.opb.CreateOrderLine(sku=s, quantity=q) for s, q in lines])

    def create_order(self, cid, lines, key="", metadata=None, timeout=None):
        return self.ord.CreateOrder(self.order_req(cid, lines, key), metadata=metadata,
                                    timeout=timeout or T)

    def get_order(self, oid):
        return self.ord.GetOrder(self.opb.GetOrderRequest(id=oid), timeout=T)

    def cancel(self, oid, reason="", expected_version=0):
        return self.ord.CancelOrder(self.opb.CancelOrderRequest(
            id=oid, reason=reason, expected_version=expected_version), timeout=T)

    def update(self, oid, status, expected_version=0):
        return self.ord.UpdateOrderStatus(self.opb.UpdateOrderStatusRequest(
            id=oid, status=status, expected_version=expected_version), timeout=T)

    def list_orders(self, timeout=None, **kw):
        return list(self.ord.ListOrders(self.opb.ListOrdersRequest(**kw), timeout=timeout or T))


def call_desc(fn_name, req):
    s = str(req).replace("\n", " ").strip()
    if len(s) > 300:
        s = s[:300] + "..."
    return "%s(%s)" % (fn_name, s)


def expect_error(grpc, fn, codes, needles=(), what=""):
    """Runs fn(); it must fail with one of codes (a StatusCode or a tuple) and a
    message containing each of needles (case-insensitive). Returns the error."""
    if not isinstance(codes, (tuple, list)):
        codes = (codes,)
    try:
        r = fn()
    except grpc.RpcError as e:
        if e.code() not in codes:
            raise Failure("%s: expected %s, got %s %r" % (
                what, "|".join(c.name for c in codes), e.code().name, e.details()))
        d = (e.details() or "").lower()
        for n in needles:
            if n.lower() not in d:
                raise Failure("%s: %s message %r does not name %r" % (
                    what, e.code().name, e.details(), n))
        return e
    r = str(r).replace("\n", " ")
    raise Failure("%s: expected %s, got OK: %s" % (
        what, "|".join(c.name for c in codes), r[:300]))


# ------------------------------------------------------------------ servers


class OmsServer(h.Server):
    """h.Server on a chosen port (0: any); incarnation > 0 logs to server.N.log so
    that a restart on the same workdir (same ./oms.db) keeps the earlier logs."""

    def __init__(self, *a, port=0, incarnation=0, **kw):
        super().__init__(*a, **kw)
        self.fixed_port = port
        if incarnation:
            self.log_path = os.path.join(self.workdir, "server.%d.log" % incarnation)

    def argv(self):
        a = super().argv()
        i = a.index("--listen")
        a[i + 1] = "127.0.0.1:%d" % self.fixed_port
        return a


def use_pg(env):
    """From now on start_server gives every server name a PostgreSQL database
    of its own (a restart under the same name finds its data again) on a
    throwaway server (scripts/pgtmp.py), stopped with env.pg_stop()."""
    sys.path.insert(0, os.path.join(env.args.source_dir, "scripts"))
    import pgtmp
    env.pg = pgtmp.PgTmp().start()
    env.pg.watch_owner()  # stopped even if the runner is killed
    print("# PostgreSQL at %s" % env.pg.url, flush=True)
    env.pg_stop = env.pg.stop


def run_on_pg(name, args, cases):
    """The main of a PostgreSQL runner: an Env named `name`, a throwaway
    server (use_pg), each (case name, fn) run as fn(env), the server stopped."""
    with h.Env(name, args) as env:
        use_pg(env)
        try:
            for case, fn in cases:
                env.suite.run(case, fn, env)
        finally:
            env.pg_stop()


def store_args(env, name):
    """--store for server `name` when the suite runs on PostgreSQL, else ()."""
    pg = getattr(env, "pg", None)
    if not pg:
        return []
    db = "oms_" + "".join(c if c.isalnum() else "_" for c in name.lower())
    return ["--store", pg.new_db(db)]


def start_server(env, name, h2c=False, extra=(), port=0, incarnation=0, retry_s=10.0):
    """Starts omsd named `name` (its workdir, hence ./oms.db, is per name;
    on PostgreSQL its database, see use_pg). With a fixed port, retries while
    the port is not yet free."""
    extra = list(extra)
    if "--store" not in extra:
        extra = store_args(env, name) + extra
    deadline = time.monotonic() + retry_s
    while True:
        s = OmsServer(env.args.server, env.args.omsd, env.args.source_dir, env.workdir,
                      h2c=h2c, certs=env.certs, extra_args=list(extra), name=name,
                      port=port, incarnation=incarnation)
        env.suite.servers.append(s)
        try:
            s.start()
        except h.ServerError as e:
            env.suite.servers.remove(s)
            if port and time.monotonic() < deadline and "in use" in s.log_text().lower():
                time.sleep(0.2)
                continue
            env.suite.record("%s.start" % name, False, str(e))
            raise
        print("# %s listening on %s:%d (%s) pid %d" % (name, s.host, s.port, s.transport,
                                                        s.proc.pid), flush=True)
        return s


def kill9(env, s):
    """SIGKILL, wait, and take the server out of the suite's clean-exit checks
    (a sanitizer report written before the kill is still a failure)."""
    if s.proc and s.proc.poll() is None:
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
    if s in env.suite.servers:
        env.suite.servers.remove(s)
    try:
        s._log.close()
    except Exception:
        pass
    san = s.sanitizer_reports()
    if san:
        env.suite.record("%s.no_sanitizer_report" % s.name, False, san)


def api_for(env, server, options=()):
    return Api(env.stubs, server.channel(options))


class RssSampler:
    """Samples a process's VmRSS (kB) every `period` seconds in a thread."""

    def __init__(self, server, period=0.1):
        self.server = server
        self.period = period
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = self.server.rss_kb()
            if v is not None:
                self.samples.append((time.monotonic(), v))
            self._stop.wait(self.period)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self

    @property
    def max_kb(self):
        return max((v for _, v in self.samples), default=0)


def threads_run(n, fn, *args):
    """Runs fn(i, *args) on n threads; re-raises the first exception."""
    errs = []

    def wrap(i):
        try:
            fn(i, *args)
        except BaseException as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]


def check_consecutive(seqs, first, what):
    """seqs must be exactly first, first+1, ... (gap-free, no duplicate)."""
    for i, s in enumerate(seqs):
        if s != first + i:
            prev = seqs[i - 1] if i else None
            raise Failure("%s: seq #%d is %d after %s, expected %d (gap or duplicate; %d events "
                          "from %d)" % (what, i, s, prev, first + i, len(seqs), first))
