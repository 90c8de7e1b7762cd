#!/usr/bin/python3
"""The order system's API (proto/oms/v1) against one all-in-one omsd per transport.

Every RPC of CustomerService, InventoryService and OrderService and every error
the API documents: INVALID_ARGUMENT naming the field, NOT_FOUND,
FAILED_PRECONDITION (insufficient stock, suspended customer, illegal transition,
stock below reserved), ABORTED (expected_version), ALREADY_EXISTS (email);
idempotency (field, `idempotency-key` metadata, concurrent retries, a retry
after a cancelled or timed-out call); prices and totals from inventory; money
overflow; cancel releases stock; ListOrders filters and paging; the List
streams; ImportOrders with good and bad rows; WatchOrders replay -> live with
gap-free seqs (also while orders are being created), live-only and filters;
TrackOrders subscribe/unsubscribe; reflection and health for oms.v1; the demo
catalog; and no oversell: 50 clients (one channel each) race for the last 10
units, exactly 10 succeed.
"""

import os
import queue
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import Failure, check, eq  # noqa: E402
from orders_it import T, expect_error, uniq  # noqa: E402

INT64_MAX = (1 << 63) - 1
OMS_SERVICES = ["oms.v1.CustomerService", "oms.v1.InventoryService", "oms.v1.OrderService"]


class Ctx:
    def __init__(self, env, server):
        self.env = env
        self.server = server
        self.S = env.stubs
        self.grpc = env.stubs.grpc
        self.api = oi.Api(env.stubs, server.channel())
        self.a = self.api
        self.cpb, self.ipb, self.opb = self.a.cpb, self.a.ipb, self.a.opb
        self.SC = self.grpc.StatusCode
        self.scale = env.scale
        self.deferred = []

    def soft(self, fn, *args):
        """Runs a check; a failure is recorded and the case goes on (it fails at
        its end), so that one wrong answer does not hide the checks after it."""
        try:
            return fn(*args)
        except Failure as e:
            self.deferred.append(str(e))
            return None

    def eventually(self, get, want, what, timeout=3.0):
        """get() must equal want right away (recorded softly if not) and within
        timeout at the latest (hard)."""
        got = get()
        if got == want:
            return
        self.deferred.append("%s: right after the reply: expected %r, got %r" % (what, want, got))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            got = get()
            if got == want:
                self.deferred[-1] += " (settled later)"
                return
        eq(got, want, what + " (after %.0fs)" % timeout)

    def run_case(self, fn):
        self.deferred = []
        fn(self)
        if self.deferred:
            raise Failure("; ".join(self.deferred))


def now_ms():
    return int(time.time() * 1000)


def check_time(v, what):
    n = now_ms()
    check(n - 600000 <= v <= n + 600000, "%s = %d is not a unix-ms time near now (%d)", what, v, n)


def st(c, v):
    return c.opb.OrderStatus.Name(v)


class Collector:
    """Reads a server stream (a grpcio iterator) on a thread."""

    def __init__(self, grpc, it):
        self.grpc = grpc
        self.it = it
        self.events = []
        self.error = None
        self.done = False
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for e in self.it:
                with self.cv:
                    self.events.append(e)
                    self.cv.notify_all()
        except self.grpc.RpcError as e:
            self.error = e
        except Exception as e:  # noqa: BLE001
            self.error = e
        finally:
            with self.cv:
                self.done = True
                self.cv.notify_all()

    def wait(self, pred, timeout=T):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred(self.events):
                left = deadline - time.monotonic()
                if self.done or left <= 0:
                    return pred(self.events)
                self.cv.wait(min(left, 0.5))
            return True

    def wait_n(self, n, timeout=T):
        return self.wait(lambda evs: len(evs) >= n, timeout)

    def cancel(self):
        self.it.cancel()
        self.t.join(5)

    def err(self):
        if self.error is None:
            return "no error"
        try:
            return "%s %r" % (self.error.code(), self.error.details())
        except Exception:
            return repr(self.error)


# ================================================================== customers


def customers_create_get(c):
    a = c.a
    tag = uniq("cc")
    r = a.cust.CreateCustomer(c.cpb.CreateCustomerRequest(name="Ada " + tag,
                                                          email=tag + "@example.com"), timeout=T)
    check(r.id.startswith("c-") and r.id[2:].isdigit(), "customer id %r is not c-<n>", r.id)
    eq((r.name, r.email, r.status), ("Ada " + tag, tag + "@example.com",
                                      c.cpb.CUSTOMER_STATUS_ACTIVE), "created customer")
    check_time(r.created_at, "created_at")
    g = a.get_customer(r.id)
    eq(g, r, "GetCustomer(%s)" % r.id)
    r2 = a.new_customer()
    check(r2.id != r.id, "two customers got the same id %s", r.id)


def customers_invalid(c):
    a, SC = c.a, c.SC
    ok_email = uniq("e") + "@example.com"
    cases = [
        ("", ok_email, "name"),
        ("x" * 201, ok_email, "name"),
        ("Bob", "", "email"),
        ("Bob", "no-at-sign", "email"),
        ("Bob", "@example.com", "email"),
        ("Bob", "local@", "email"),
    ]
    for name, email, field in cases:
        req = c.cpb.CreateCustomerRequest(name=name, email=email)
        expect_error(c.grpc, lambda: a.cust.CreateCustomer(req, timeout=T),
                     SC.INVALID_ARGUMENT, (field,),
                     "CreateCustomer(name=%d bytes, email=%r)" % (len(name), email))
    # the limits themselves are fine
    r = a.new_customer(name="y" * 200)
    eq(len(r.name), 200, "200-byte name")


def customers_duplicate_email(c):
    a = c.a
    email = uniq("dup") + "@example.com"
    first = a.new_customer(email=email)
    expect_error(c.grpc, lambda: a.new_customer(email=email), c.SC.ALREADY_EXISTS, (),
                 "CreateCustomer with the email of %s" % first.id)
    eq(a.get_customer(first.id), first, "first customer unchanged")


def customers_not_found(c):
    a, SC = c.a, c.SC
    expect_error(c.grpc, lambda: a.get_customer("c-999999999"), SC.NOT_FOUND, (),
                 "GetCustomer(c-999999999)")
    expect_error(c.grpc, lambda: a.get_customer("no-such-customer"), SC.NOT_FOUND, (),
                 "GetCustomer(no-such-customer)")
    expect_error(c.grpc, lambda: a.get_customer(""), (SC.INVALID_ARGUMENT, SC.NOT_FOUND), (),
                 'GetCustomer("")')
    expect_error(c.grpc, lambda: a.set_customer_status("c-999999999",
                                                       c.cpb.CUSTOMER_STATUS_SUSPENDED),
                 SC.NOT_FOUND, (), "SetCustomerStatus(c-999999999)")


def customers_set_status(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    r = a.set_customer_status(cu.id, c.cpb.CUSTOMER_STATUS_SUSPENDED)
    eq((r.id, r.status, r.email), (cu.id, c.cpb.CUSTOMER_STATUS_SUSPENDED, cu.email),
       "SetCustomerStatus(SUSPENDED) answer")
    eq(a.get_customer(cu.id).status, c.cpb.CUSTOMER_STATUS_SUSPENDED, "status after suspend")
    r = a.set_customer_status(cu.id, c.cpb.CUSTOMER_STATUS_ACTIVE)
    eq(r.status, c.cpb.CUSTOMER_STATUS_ACTIVE, "SetCustomerStatus(ACTIVE) answer")
    expect_error(c.grpc, lambda: a.set_customer_status(cu.id, c.cpb.CUSTOMER_STATUS_UNSPECIFIED),
                 SC.INVALID_ARGUMENT, ("status",), "SetCustomerStatus(UNSPECIFIED)")
    expect_error(c.grpc, lambda: a.set_customer_status(cu.id, 7),
                 SC.INVALID_ARGUMENT, ("status",), "SetCustomerStatus(7)")
    eq(a.get_customer(cu.id).status, c.cpb.CUSTOMER_STATUS_ACTIVE, "status after bad requests")


def _id_num(s):
    try:
        return int(s.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def customers_list(c):
    a = c.a
    mine = [a.new_customer().id for _ in range(7)]
    for ps in (0, 1, 2, 3, 1000):
        got = list(a.cust.ListCustomers(c.cpb.ListCustomersRequest(page_size=ps), timeout=T))
        ids = [x.id for x in got]
        eq(len(ids), len(set(ids)), "ListCustomers(page_size=%d): duplicate ids" % ps)
        missing = [m for m in mine if m not in ids]
        check(not missing, "ListCustomers(page_size=%d) misses %s", ps, missing)
        check(ids == sorted(ids, key=_id_num) or ids == sorted(ids),
              "ListCustomers(page_size=%d) not in id order: %s", ps, ids[:20])
        byid = {x.id: x for x in got}
        eq(byid[mine[0]], a.get_customer(mine[0]), "listed customer == GetCustomer")


# ================================================================== inventory


def products_upsert_get(c):
    a = c.a
    sku = uniq("SKU")
    p = a.inv.UpsertProduct(c.ipb.UpsertProductRequest(sku=sku, name="Widget",
                                                       unit_price_cents=1234), timeout=T)
    eq((p.sku, p.name, p.unit_price_cents, p.on_hand, p.reserved, p.available),
       (sku, "Widget", 1234, 0, 0, 0), "new product")
    check_time(p.updated_at, "updated_at")
    eq(a.product(sku), p, "GetProduct")
    a.adjust(sku, 5)
    p2 = a.inv.UpsertProduct(c.ipb.UpsertProductRequest(sku=sku, name="Widget v2",
                                                        unit_price_cents=99), timeout=T)
    eq((p2.name, p2.unit_price_cents, p2.on_hand, p2.reserved, p2.available),
       ("Widget v2", 99, 5, 0, 5), "upsert of an existing product keeps its stock")
    check(p2.updated_at >= p.updated_at, "updated_at went back")
    # free price, and the longest SKU with every allowed character class
    long_sku = ("Az09._-" + RUNSKU())[:64].ljust(64, "x")
    p3 = a.inv.UpsertProduct(c.ipb.UpsertProductRequest(sku=long_sku, name="free",
                                                        unit_price_cents=0), timeout=T)
    eq((p3.sku, p3.unit_price_cents), (long_sku, 0), "64-byte SKU, price 0")


def RUNSKU():
    return uniq("s").replace("-", "")


def products_invalid(c):
    a, SC = c.a, c.SC
    for sku, price, field in [("", 1, "sku"), ("bad sku", 1, "sku"), ("a/b", 1, "sku"),
                              ("x" * 65, 1, "sku"), ("caf\u00e9", 1, "sku"),
                              (uniq("SKU"), -1, "unit_price_cents")]:
        req = c.ipb.UpsertProductRequest(sku=sku, name="n", unit_price_cents=price)
        expect_error(c.grpc, lambda: a.inv.UpsertProduct(req, timeout=T), SC.INVALID_ARGUMENT,
                     (field,), "UpsertProduct(sku=%r, price=%d)" % (sku, price))
    expect_error(c.grpc, lambda: a.product("bad sku"), (SC.INVALID_ARGUMENT, SC.NOT_FOUND), (),
                 "GetProduct('bad sku')")


def products_not_found(c):
    a, SC = c.a, c.SC
    ghost = uniq("GHOST")
    expect_error(c.grpc, lambda: a.product(ghost), SC.NOT_FOUND, (), "GetProduct(%s)" % ghost)
    expect_error(c.grpc, lambda: a.adjust(ghost, 5), SC.NOT_FOUND, (), "AdjustStock(%s)" % ghost)


def products_adjust_stock(c):
    a, SC = c.a, c.SC
    sku = a.new_product(100, 0)
    p = a.adjust(sku, 10)
    eq((p.on_hand, p.reserved, p.available), (10, 0, 10), "after +10")
    p = a.adjust(sku, -3)
    eq((p.on_hand, p.reserved, p.available), (7, 0, 7), "after -3")
    expect_error(c.grpc, lambda: a.adjust(sku, -8), SC.FAILED_PRECONDITION, (),
                 "AdjustStock(-8) with on_hand 7")
    r = a.inv.Reserve(c.ipb.ReserveRequest(order_id=uniq("res"), lines=[
        c.ipb.ReserveLine(sku=sku, quantity=5)]), timeout=T)
    eq([(l.sku, l.quantity) for l in r.lines], [(sku, 5)], "reservation")
    expect_error(c.grpc, lambda: a.adjust(sku, -3), SC.FAILED_PRECONDITION, (),
                 "AdjustStock(-3) with on_hand 7, reserved 5")
    p = a.adjust(sku, -2)
    eq((p.on_hand, p.reserved, p.available), (5, 5, 0), "down to reserved")
    eq(a.product(sku), p, "GetProduct after adjusting")
    # on_hand near INT64_MAX: another +1 must not wrap around
    sku2 = a.new_product(1, INT64_MAX)
    try:
        p = a.adjust(sku2, 1)
        raise Failure("AdjustStock(+1) on on_hand=INT64_MAX succeeded: %s" % p)
    except c.grpc.RpcError as e:
        check(e.code() in (SC.INVALID_ARGUMENT, SC.FAILED_PRECONDITION, SC.OUT_OF_RANGE),
              "AdjustStock overflow: %s %r", e.code(), e.details())
    eq(a.product(sku2).on_hand, INT64_MAX, "on_hand after the overflowing adjust")


def products_list(c):
    a = c.a
    mine = sorted(a.new_product(7, 1) for _ in range(7))
    for ps in (0, 1, 2, 3, 1000):
        got = list(a.inv.ListProducts(c.ipb.ListProductsRequest(page_size=ps), timeout=T))
        skus = [p.sku for p in got]
        eq(len(skus), len(set(skus)), "ListProducts(page_size=%d): duplicates" % ps)
        eq(skus, sorted(skus), "ListProducts(page_size=%d) SKU order" % ps)
        missing = [m for m in mine if m not in skus]
        check(not missing, "ListProducts(page_size=%d) misses %s", ps, missing)
        byid = {p.sku: p for p in got}
        eq(byid[mine[0]], a.product(mine[0]), "listed product == GetProduct")


def inventory_reserve_release(c):
    a, SC, ipb = c.a, c.SC, c.ipb
    A = a.new_product(250, 10)
    B = a.new_product(1999, 4)
    oid = uniq("ord")
    req = ipb.ReserveRequest(order_id=oid, lines=[ipb.ReserveLine(sku=A, quantity=2),
                                                  ipb.ReserveLine(sku=B, quantity=3)])
    r = a.inv.Reserve(req, timeout=T)
    eq(r.order_id, oid, "Reservation.order_id")
    eq([(l.sku, l.quantity, l.unit_price_cents) for l in r.lines],
       [(A, 2, 250), (B, 3, 1999)], "reserved lines")
    eq((a.product(A).reserved, a.product(B).reserved), (2, 3), "reserved after Reserve")
    # idempotent per order id: the first reservation, unchanged, nothing reserved twice
    a.inv.UpsertProduct(ipb.UpsertProductRequest(sku=A, name="A", unit_price_cents=1), timeout=T)
    r2 = a.inv.Reserve(req, timeout=T)
    eq(r2, r, "Reserve again with the same order id")
    r3 = a.inv.Reserve(ipb.ReserveRequest(order_id=oid, lines=[ipb.ReserveLine(sku=A, quantity=7)]),
                       timeout=T)
    c.soft(eq, r3, r, "Reserve again with the same order id and other lines")
    eq((a.product(A).reserved, a.product(B).reserved), (2, 3), "reserved after the retries")
    # all or nothing; the message names the short SKU
    oid2 = uniq("ord")
    expect_error(c.grpc, lambda: a.inv.Reserve(ipb.ReserveRequest(order_id=oid2, lines=[
        ipb.ReserveLine(sku=A, quantity=1), ipb.ReserveLine(sku=B, quantity=2)]), timeout=T),
        SC.FAILED_PRECONDITION, (B,), "Reserve with B short (1 available)")
    eq((a.product(A).reserved, a.product(B).reserved), (2, 3), "nothing reserved by a failed Reserve")
    # release
    rel = a.inv.Release(ipb.ReleaseRequest(order_id=oid), timeout=T)
    eq(rel.released, True, "Release.released")
    c.eventually(lambda: (a.product(A).reserved, a.product(B).reserved), (0, 0),
                 "reserved after Release")
    eq((a.product(A).available, a.product(B).available), (10, 4), "available after Release")
    eq(a.inv.Release(ipb.ReleaseRequest(order_id=oid), timeout=T).released, False, "Release again")
    eq(a.inv.Release(ipb.ReleaseRequest(order_id=uniq("never")), timeout=T).released, False,
       "Release of an unknown order id")
    eq((a.product(A).reserved, a.product(B).reserved), (0, 0), "reserved after double Release")


def inventory_reserve_invalid(c):
    a, SC, ipb = c.a, c.SC, c.ipb
    A = a.new_product(5, 10)
    B = a.new_product(5, 10)
    L = ipb.ReserveLine
    cases = [
        ("", [L(sku=A, quantity=1)], (SC.INVALID_ARGUMENT,), ("order_id",)),
        (uniq("o"), [], (SC.INVALID_ARGUMENT,), ("lines",)),
        (uniq("o"), [L(sku=A, quantity=0)], (SC.INVALID_ARGUMENT,), ("quantity",)),
        (uniq("o"), [L(sku=A, quantity=-2)], (SC.INVALID_ARGUMENT,), ("quantity",)),
        (uniq("o"), [L(sku=A, quantity=1), L(sku=A, quantity=1)], (SC.INVALID_ARGUMENT,), ("sku",)),
        (uniq("o"), [L(sku="bad sku", quantity=1)], (SC.INVALID_ARGUMENT,), ("sku",)),
        (uniq("o"), [L(sku="S%d" % i, quantity=1) for i in range(101)],
         (SC.INVALID_ARGUMENT,), ("lines",)),
        (uniq("o"), [L(sku=A, quantity=1), L(sku=uniq("GHOST"), quantity=1)],
         (SC.NOT_FOUND, SC.FAILED_PRECONDITION), ("GHOST",)),
    ]
    for oid, lines, codes, needles in cases:
        req = ipb.ReserveRequest(order_id=oid, lines=lines)
        expect_error(c.grpc, lambda: a.inv.Reserve(req, timeout=T), codes, needles,
                     "Reserve(order_id=%r, %d lines: %s)" % (
                         oid, len(lines), [(l.sku, l.quantity) for l in lines[:3]]))
    eq((a.product(A).reserved, a.product(B).reserved), (0, 0), "nothing reserved by bad Reserves")


# ================================================================== orders


def orders_create_get(c):
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(250, 10)
    B = a.new_product(1999, 5)
    t0 = now_ms()
    o = a.create_order(cu.id, [(A, 3), (B, 2)])
    check(o.id.startswith("o-") and o.id[2:].isdigit(), "order id %r is not o-<n>", o.id)
    eq(o.customer_id, cu.id, "customer_id")
    eq([(l.sku, l.quantity, l.unit_price_cents, l.line_total_cents) for l in o.lines],
       [(A, 3, 250, 750), (B, 2, 1999, 3998)], "lines with prices from inventory")
    eq(o.total_cents, 750 + 3998, "total_cents")
    eq((o.status, o.version, o.cancel_reason), (opb.ORDER_STATUS_PENDING, 1, ""),
       "status, version, cancel_reason")
    check(t0 - 1000 <= o.created_at <= now_ms() + 1000, "created_at %d not within the call",
          o.created_at)
    eq(o.updated_at, o.created_at, "updated_at on creation")
    eq(a.get_order(o.id), o, "GetOrder")
    pa, pb = a.product(A), a.product(B)
    eq((pa.on_hand, pa.reserved, pa.available), (10, 3, 7), "A stock after the order")
    eq((pb.on_hand, pb.reserved, pb.available), (5, 2, 3), "B stock after the order")
    # prices are taken when the order is made; a later price change leaves it alone
    a.inv.UpsertProduct(c.ipb.UpsertProductRequest(sku=A, name="A", unit_price_cents=300),
                        timeout=T)
    eq(a.get_order(o.id), o, "order after a price change")
    o2 = a.create_order(cu.id, [(A, 1)])
    eq((o2.lines[0].unit_price_cents, o2.total_cents), (300, 300), "new order, new price")
    check(o2.id != o.id, "second order has the first one's id")
    # a client-supplied price is not an input: the request has none; quantities up
    # to the available amount work
    o3 = a.create_order(cu.id, [(B, 3)])
    eq(a.product(B).available, 0, "B available after ordering the rest")
    eq(o3.total_cents, 3 * 1999, "o3 total")


def orders_invalid_argument(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    A = a.new_product(100, 100)
    B = a.new_product(100, 100)
    cases = [
        ("", [(A, 1)], "customer_id"),
        (cu.id, [], "lines"),
        (cu.id, [("S%d" % i, 1) for i in range(101)], "lines"),
        (cu.id, [(A, 0)], "quantity"),
        (cu.id, [(A, -1)], "quantity"),
        (cu.id, [(A, 1), (B, 0)], "quantity"),
        (cu.id, [("", 1)], "sku"),
        (cu.id, [("bad sku!", 1)], "sku"),
        (cu.id, [("x" * 65, 1)], "sku"),
        (cu.id, [(A, 1), (B, 1), (A, 2)], "sku"),
    ]
    for cid, lines, field in cases:
        expect_error(c.grpc, lambda: a.create_order(cid, lines), SC.INVALID_ARGUMENT, (field,),
                     "CreateOrder(customer_id=%r, lines=%s%s)" % (
                         cid, lines[:3], "..." if len(lines) > 3 else ""))
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 1)], key="k" * 5000),
                 SC.INVALID_ARGUMENT, ("idempotency",), "CreateOrder(idempotency_key=5000 bytes)")
    eq((a.product(A).reserved, a.product(B).reserved), (0, 0), "nothing reserved by bad orders")
    eq(a.list_orders(customer_id=cu.id), [], "no order created by bad requests")
    # the 100-line limit itself is fine
    skus = [a.new_product(1, 1) for _ in range(100)]
    o = a.create_order(cu.id, [(s, 1) for s in skus])
    eq((len(o.lines), o.total_cents), (100, 100), "100-line order")


def orders_not_found(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    A = a.new_product(100, 10)
    ghost = uniq("GHOST")
    expect_error(c.grpc, lambda: a.create_order("c-999999999", [(A, 1)]), SC.NOT_FOUND,
                 ("c-999999999",), "CreateOrder(unknown customer)")
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 1), (ghost, 1)]),
                 SC.NOT_FOUND, (ghost,), "CreateOrder(unknown SKU %s)" % ghost)
    eq(a.product(A).reserved, 0, "nothing reserved by an order with an unknown SKU")
    for fn, what in [(lambda: a.get_order("o-999999999"), "GetOrder"),
                     (lambda: a.cancel("o-999999999", "x"), "CancelOrder"),
                     (lambda: a.update("o-999999999", c.opb.ORDER_STATUS_CONFIRMED),
                      "UpdateOrderStatus"),
                     (lambda: a.get_order("nonsense"), "GetOrder(nonsense)")]:
        expect_error(c.grpc, fn, SC.NOT_FOUND, (), what + "(unknown order)")


def orders_insufficient_stock(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    A = a.new_product(100, 5)
    B = a.new_product(100, 50)
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 6)]), SC.FAILED_PRECONDITION, (A,),
                 "CreateOrder(6 of %s with 5 in stock)" % A)
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(B, 10), (A, 6)]),
                 SC.FAILED_PRECONDITION, (A,), "CreateOrder(B ok, A short)")
    eq((a.product(A).reserved, a.product(B).reserved), (0, 0),
       "all or nothing: no line reserved by a failed order")
    eq(a.list_orders(customer_id=cu.id), [], "no order stored for failed CreateOrders")
    o = a.create_order(cu.id, [(A, 5)])
    eq(a.product(A).available, 0, "available after ordering all of A")
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 1)]), SC.FAILED_PRECONDITION, (A,),
                 "CreateOrder(1 of %s with 0 available)" % A)
    a.cancel(o.id, "free it")
    c.eventually(lambda: a.product(A).available, 5, "available after the cancel")
    a.create_order(cu.id, [(A, 5)])


def orders_suspended_customer(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    A = a.new_product(100, 10)
    a.set_customer_status(cu.id, c.cpb.CUSTOMER_STATUS_SUSPENDED)
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 1)]), SC.FAILED_PRECONDITION,
                 ("suspended",), "CreateOrder for suspended %s" % cu.id)
    eq(a.product(A).reserved, 0, "nothing reserved for a suspended customer")
    a.set_customer_status(cu.id, c.cpb.CUSTOMER_STATUS_ACTIVE)
    o = a.create_order(cu.id, [(A, 1)])
    eq(o.status, c.opb.ORDER_STATUS_PENDING, "order after reactivation")


def orders_status_machine(c):
    a, SC, opb = c.a, c.SC, c.opb
    P, C_, S_, D, X = (opb.ORDER_STATUS_PENDING, opb.ORDER_STATUS_CONFIRMED,
                       opb.ORDER_STATUS_SHIPPED, opb.ORDER_STATUS_DELIVERED,
                       opb.ORDER_STATUS_CANCELLED)
    cu = a.new_customer()
    A = a.new_product(100, 100)

    def illegal(o, to):
        before = a.get_order(o.id)
        try:
            a.update(o.id, to)
            raise Failure("UpdateOrderStatus %s -> %s succeeded" % (st(c, before.status), st(c, to)))
        except c.grpc.RpcError as e:
            if e.code() != SC.FAILED_PRECONDITION:
                c.deferred.append("UpdateOrderStatus %s -> %s: expected FAILED_PRECONDITION, "
                                  "got %s %r" % (st(c, before.status), st(c, to), e.code().name,
                                                 e.details()))
        eq(a.get_order(o.id), before, "order after an illegal transition")

    o = a.create_order(cu.id, [(A, 2)])
    for to in (P, S_, D):
        illegal(o, to)
    last = o
    for v, to in ((2, C_), (3, S_), (4, D)):
        before = a.get_order(o.id)
        for bad in [s for s in (P, C_, S_, D, X) if s != to and
                    not (before.status in (P, C_) and s == X)]:
            illegal(o, bad)
        r = a.update(o.id, to)
        eq((r.status, r.version), (to, v), "after -> %s" % st(c, to))
        check(r.updated_at >= last.updated_at, "updated_at went back")
        eq((r.created_at, list(r.lines), r.total_cents), (o.created_at, list(o.lines),
                                                          o.total_cents), "unchanged fields")
        eq(a.get_order(o.id), r, "GetOrder after -> %s" % st(c, to))
        last = r
    # DELIVERED is final, also for CancelOrder
    expect_error(c.grpc, lambda: a.cancel(o.id, "too late"), SC.FAILED_PRECONDITION, (),
                 "CancelOrder of a DELIVERED order")
    # SHIPPED cannot be cancelled
    o2 = a.create_order(cu.id, [(A, 1)])
    a.update(o2.id, C_)
    a.update(o2.id, S_)
    illegal(o2, X)
    expect_error(c.grpc, lambda: a.cancel(o2.id, "no"), SC.FAILED_PRECONDITION, (),
                 "CancelOrder of a SHIPPED order")
    # CONFIRMED -> CANCELLED through UpdateOrderStatus releases the stock
    o3 = a.create_order(cu.id, [(A, 5)])
    res = a.product(A).reserved
    a.update(o3.id, C_)
    r = a.update(o3.id, X)
    eq((r.status, r.version), (X, 3), "CONFIRMED -> CANCELLED")
    c.eventually(lambda: a.product(A).reserved, res - 5,
                 "reserved after UpdateOrderStatus(CANCELLED)")
    for to in (P, C_, S_, D, X):
        illegal(o3, to)
    # not a status at all
    o4 = a.create_order(cu.id, [(A, 1)])
    expect_error(c.grpc, lambda: a.update(o4.id, opb.ORDER_STATUS_UNSPECIFIED),
                 (SC.INVALID_ARGUMENT, SC.FAILED_PRECONDITION), (), "UpdateOrderStatus(UNSPECIFIED)")
    expect_error(c.grpc, lambda: a.update(o4.id, 42), SC.INVALID_ARGUMENT, ("status",),
                 "UpdateOrderStatus(42)")
    eq(a.get_order(o4.id).version, 1, "version after rejected updates")


def orders_cancel(c):
    a, SC, opb = c.a, c.SC, c.opb
    cu = a.new_customer()
    A = a.new_product(100, 10)
    B = a.new_product(7, 10)
    o = a.create_order(cu.id, [(A, 4), (B, 6)])
    eq((a.product(A).reserved, a.product(B).reserved), (4, 6), "reserved")
    r = a.cancel(o.id, "changed my mind")
    eq((r.status, r.version, r.cancel_reason), (opb.ORDER_STATUS_CANCELLED, 2, "changed my mind"),
       "CancelOrder answer")
    eq(a.get_order(o.id), r, "GetOrder after cancel")
    def stock():
        pa, pb = a.product(A), a.product(B)
        return (pa.reserved, pa.available, pb.reserved, pb.available)
    c.eventually(stock, (0, 10, 0, 10), "stock released by the cancel")
    expect_error(c.grpc, lambda: a.cancel(o.id, "again"), SC.FAILED_PRECONDITION, (),
                 "CancelOrder of a cancelled order")
    eq((a.product(A).reserved, a.product(B).reserved), (0, 0), "no double release")
    eq(a.get_order(o.id), r, "order after the second cancel")
    # a cancel of a CONFIRMED order
    o2 = a.create_order(cu.id, [(A, 10)])
    a.update(o2.id, opb.ORDER_STATUS_CONFIRMED)
    r2 = a.cancel(o2.id, "")
    eq((r2.status, r2.version), (opb.ORDER_STATUS_CANCELLED, 3), "cancel CONFIRMED")
    c.eventually(lambda: a.product(A).available, 10,
                 "available after cancelling the CONFIRMED order")


def orders_cancel_race(c):
    """8 clients cancel the same order at once: one wins, the stock comes back once."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(100, 100)
    keep = a.create_order(cu.id, [(A, 7)])
    for round_ in range(3):
        o = a.create_order(cu.id, [(A, 5)])
        res, lock, barrier = [], threading.Lock(), threading.Barrier(8)
        chans = [c.server.channel() for _ in range(8)]

        def go(i):
            api = oi.Api(c.S, chans[i])
            barrier.wait()
            try:
                r = api.cancel(o.id, "race %d" % i)
                r = ("OK", r.version)
            except c.grpc.RpcError as e:
                r = (e.code().name, e.details())
            with lock:
                res.append(r)
        try:
            oi.threads_run(8, go)
        finally:
            for ch in chans:
                ch.close()
        oks = [r for r in res if r[0] == "OK"]
        eq(len(oks), 1, "round %d: cancels that succeeded (%s)" % (round_, res))
        check(all(r[0] in ("OK", "FAILED_PRECONDITION", "ABORTED") for r in res),
              "round %d: codes %s", round_, res)
        g = a.get_order(o.id)
        eq((g.status, g.version), (opb.ORDER_STATUS_CANCELLED, 2), "round %d: order" % round_)
        c.eventually(lambda: a.product(A).reserved, 7, "round %d: reserved (only %s's 7 units)"
                     % (round_, keep.id))


def inventory_adjust_vs_reserve_race(c):
    """Orders and negative AdjustStock race: on_hand never drops below reserved,
    and reserved is exactly what the stored orders hold."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(1, 60)
    chans = [c.server.channel() for _ in range(9)]
    oks, codes, lock = [], [], threading.Lock()

    def go(i):
        api = oi.Api(c.S, chans[i])
        for _ in range(10):
            try:
                if i == 8:
                    api.adjust(A, -3)
                    r = "adjust OK"
                else:
                    o = api.create_order(cu.id, [(A, 1)])
                    with lock:
                        oks.append(o.id)
                    r = "order OK"
            except c.grpc.RpcError as e:
                r = ("adjust " if i == 8 else "order ") + e.code().name
            with lock:
                codes.append(r)
    try:
        oi.threads_run(9, go)
    finally:
        for ch in chans:
            ch.close()
    check(all(x.endswith(("OK", "FAILED_PRECONDITION")) for x in codes), "codes: %s",
          sorted(set(codes)))
    p = a.product(A)
    check(p.on_hand >= p.reserved >= 0 and p.available == p.on_hand - p.reserved,
          "stock after the race: %s", p)
    eq(p.reserved, len(oks), "reserved vs orders that succeeded")
    eq(p.on_hand, 60 - 3 * codes.count("adjust OK"), "on_hand vs adjusts that succeeded")
    eq(len(a.list_orders(customer_id=cu.id)), len(oks), "stored orders")


def orders_expected_version(c):
    a, SC, opb = c.a, c.SC, c.opb
    cu = a.new_customer()
    A = a.new_product(100, 10)
    o = a.create_order(cu.id, [(A, 1)])
    for bad in (2, 5):
        expect_error(c.grpc, lambda: a.update(o.id, opb.ORDER_STATUS_CONFIRMED, bad),
                     SC.ABORTED, (), "UpdateOrderStatus(expected_version=%d) at version 1" % bad)
    # a negative version can never match: ABORTED, or INVALID_ARGUMENT naming the field
    e = expect_error(c.grpc, lambda: a.update(o.id, opb.ORDER_STATUS_CONFIRMED, -1),
                     (SC.ABORTED, SC.INVALID_ARGUMENT), (), "UpdateOrderStatus(expected_version=-1)")
    if e.code() == SC.INVALID_ARGUMENT:
        check("expected_version" in e.details(), "INVALID_ARGUMENT %r does not name "
              "expected_version", e.details())
    eq(a.get_order(o.id), o, "order after ABORTED updates")
    r = a.update(o.id, opb.ORDER_STATUS_CONFIRMED, 1)
    eq(r.version, 2, "version after a matching update")
    expect_error(c.grpc, lambda: a.update(o.id, opb.ORDER_STATUS_SHIPPED, 1), SC.ABORTED, (),
                 "UpdateOrderStatus with a stale version")
    expect_error(c.grpc, lambda: a.cancel(o.id, "x", 1), SC.ABORTED, (),
                 "CancelOrder with a stale version")
    eq(a.get_order(o.id), r, "order after stale updates")
    eq(a.product(A).reserved, 1, "stock still reserved after an ABORTED cancel")
    r = a.cancel(o.id, "ok", 2)
    eq((r.status, r.version), (opb.ORDER_STATUS_CANCELLED, 3), "cancel at the right version")
    # concurrent updates with the same expected version: exactly one wins
    o2 = a.create_order(cu.id, [(A, 1)])
    codes = []
    lock = threading.Lock()

    def go(i):
        try:
            a.update(o2.id, opb.ORDER_STATUS_CONFIRMED, 1)
            r = "OK"
        except c.grpc.RpcError as e:
            r = e.code().name
        with lock:
            codes.append(r)
    oi.threads_run(8, go)
    eq(codes.count("OK"), 1, "concurrent updates at version 1 that succeeded (codes %s)"
       % sorted(codes))
    check(all(x in ("OK", "ABORTED", "FAILED_PRECONDITION") for x in codes),
          "losers' codes: %s", codes)
    eq(a.get_order(o2.id).version, 2, "version after the race")


def orders_idempotency_field(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    A = a.new_product(100, 10)
    key = uniq("key")
    o1 = a.create_order(cu.id, [(A, 3)], key=key)
    o2 = a.create_order(cu.id, [(A, 3)], key=key)
    eq(o2, o1, "the same key twice")
    c.eventually(lambda: a.product(A).reserved, 3, "stock reserved once")
    # the same key with another body never makes a second order: refused
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 5)], key=key), SC.INVALID_ARGUMENT,
                 ("idempotency key reused with a different request",), "same key, other lines")
    c.eventually(lambda: a.product(A).reserved, 3, "stock still reserved once")
    eq([o.id for o in a.list_orders(customer_id=cu.id)], [o1.id], "orders of the customer")
    # after a status change the key still returns the (current) order, not a new one
    a.update(o1.id, c.opb.ORDER_STATUS_CONFIRMED)
    o4 = a.create_order(cu.id, [(A, 3)], key=key)
    eq(o4.id, o1.id, "the key after the order changed")
    # other keys, other orders
    o5 = a.create_order(cu.id, [(A, 3)], key=uniq("key"))
    check(o5.id != o1.id, "another key returned the first order")
    # a failed first call leaves no order behind that a retry would return
    key2 = uniq("key")
    expect_error(c.grpc, lambda: a.create_order(cu.id, [(A, 100)], key=key2),
                 SC.FAILED_PRECONDITION, (A,), "keyed CreateOrder with too little stock")
    a.adjust(A, 200)
    try:
        o6 = a.create_order(cu.id, [(A, 100)], key=key2)
        eq(a.product(A).reserved, 3 + 3 + 100, "reserved after the retry that succeeded")
        check(o6.id not in (o1.id, o5.id), "retry of a failed key returned another order")
    except c.grpc.RpcError as e:  # replaying the first failure is also acceptable
        eq(e.code(), SC.FAILED_PRECONDITION, "retry of a failed key")


def _order_num(oid):
    check(oid.startswith("o-"), "order id %r", oid)
    return int(oid[2:])


def integrity_reserve_ahead(c):
    """A public Reserve cannot take the ids the next orders get: each is
    refused, and every next CreateOrder succeeds under the next id."""
    a, SC, ipb = c.a, c.SC, c.ipb
    cu = a.new_customer()
    A = a.new_product(100, 50)
    n = _order_num(a.create_order(cu.id, [(A, 1)]).id)
    for k in range(1, 6):
        expect_error(c.grpc, lambda: a.inv.Reserve(ipb.ReserveRequest(
            order_id="o-%d" % (n + k), lines=[ipb.ReserveLine(sku=A, quantity=1)]), timeout=T),
            SC.FAILED_PRECONDITION, ("o-%d" % (n + k), "does not exist"), "Reserve of a future id")
    eq(a.product(A).reserved, 1, "reserved after refused Reserves")
    for k in range(1, 6):
        o = a.create_order(cu.id, [(A, 2)])
        eq(_order_num(o.id), n + k, "the next order's id")
    eq(a.product(A).reserved, 11, "reserved: the orders' lines only")
    # a live order's id: its own reservation, unchanged; nothing more reserved
    r = a.inv.Reserve(ipb.ReserveRequest(order_id="o-%d" % n,
                                         lines=[ipb.ReserveLine(sku=A, quantity=9)]), timeout=T)
    eq([(l.sku, l.quantity) for l in r.lines], [(A, 1)], "Reserve of a live order's id")
    eq(a.product(A).reserved, 11, "reserved after Reserve of a live order's id")
    # a cancelled order's id
    a.cancel("o-%d" % n)
    expect_error(c.grpc, lambda: a.inv.Reserve(ipb.ReserveRequest(
        order_id="o-%d" % n, lines=[ipb.ReserveLine(sku=A, quantity=1)]), timeout=T),
        SC.FAILED_PRECONDITION, ("o-%d" % n,), "Reserve of a cancelled order's id")
    eq(a.product(A).reserved, 10, "reserved after the cancel")


def integrity_release_live(c):
    """Release cannot free a live order's stock: the last unit is sold once."""
    a, SC, ipb = c.a, c.SC, c.ipb
    c1, c2 = a.new_customer(), a.new_customer()
    A = a.new_product(100, 1)
    o = a.create_order(c1.id, [(A, 1)])
    for status in (None, c.opb.ORDER_STATUS_CONFIRMED):
        if status:
            a.update(o.id, status)
        expect_error(c.grpc, lambda: a.inv.Release(ipb.ReleaseRequest(order_id=o.id), timeout=T),
                     SC.FAILED_PRECONDITION, (o.id, "cancel"), "Release of a live order")
        eq(a.product(A).reserved, 1, "reserved after a refused Release")
        expect_error(c.grpc, lambda: a.create_order(c2.id, [(A, 1)]), SC.FAILED_PRECONDITION,
                     (A,), "CreateOrder for the unit a live order holds")
    a.cancel(o.id)
    eq(a.product(A).reserved, 0, "reserved after the cancel")
    eq(a.inv.Release(ipb.ReleaseRequest(order_id=o.id), timeout=T).released, False,
       "Release of a cancelled order")
    o2 = a.create_order(c2.id, [(A, 1)])
    eq(o2.customer_id, c2.id, "the unit sold again after the cancel")


def integrity_key_per_customer(c):
    """Idempotency keys are the customer's: another customer's key makes its
    own order; never another customer's data."""
    a, SC = c.a, c.SC
    c1, c2 = a.new_customer(), a.new_customer()
    A = a.new_product(100, 10)
    B = a.new_product(200, 10)
    key = uniq("shared-key")
    o1 = a.create_order(c1.id, [(A, 1)], key=key)
    o2 = a.create_order(c2.id, [(B, 2)], key=key)
    check(o2.id != o1.id, "c2 with c1's key got c1's order %s", o1.id)
    eq(o2.customer_id, c2.id, "customer of c2's order")
    eq(a.create_order(c2.id, [(B, 2)], key=key), o2, "c2's repeat")
    eq(a.create_order(c1.id, [(A, 1)], key=key), o1, "c1's repeat")
    expect_error(c.grpc, lambda: a.create_order(c2.id, [(A, 1)], key=key), SC.INVALID_ARGUMENT,
                 ("idempotency key reused with a different request",), "c2: c1's request")
    md = (("idempotency-key", key),)
    eq(a.create_order(c2.id, [(B, 2)], metadata=md).id, o2.id, "c2's key as metadata")
    eq((a.product(A).reserved, a.product(B).reserved), (1, 2), "reserved once per order")


def integrity_key_retention(env):
    """omsd --idempotency-retention: a key older than that is forgotten in the
    background (the same request then makes a new order); a fresh key is
    not. Waits for the background pass by polling the answer (bounded)."""
    server = oi.start_server(env, "omsd-retention", h2c=True,
                             extra=("--idempotency-retention", "1s"))
    c = Ctx(env, server)
    try:
        a = c.a
        cu = a.new_customer()
        A = a.new_product(100, 1000)
        key = uniq("short-lived")
        first = a.create_order(cu.id, [(A, 1)], key=key)
        eq(a.create_order(cu.id, [(A, 1)], key=key).id, first.id, "a repeat within the retention")
        deadline = time.monotonic() + 15
        again = first
        while again.id == first.id and time.monotonic() < deadline:
            time.sleep(0.1)
            again = a.create_order(cu.id, [(A, 1)], key=key)
        check(again.id != first.id, "key still answered with %s after 15 s (retention 1s)",
              first.id)
        eq(a.get_order(first.id).id, first.id, "the first order stays after its key is forgotten")
    finally:
        c.api.close()
        env.suite.stop_server(server)


def orders_idempotency_metadata(c):
    a = c.a
    cu = a.new_customer()
    A = a.new_product(100, 20)
    k1, k2 = uniq("mkey"), uniq("fkey")
    md = (("idempotency-key", k1),)
    o1 = a.create_order(cu.id, [(A, 2)], metadata=md)
    o2 = a.create_order(cu.id, [(A, 2)], metadata=md)
    eq(o2, o1, "the same idempotency-key metadata twice")
    c.eventually(lambda: a.product(A).reserved, 2, "reserved once")
    # metadata and field name the same key space
    o3 = a.create_order(cu.id, [(A, 2)], key=k1)
    eq(o3.id, o1.id, "field key == earlier metadata key")
    # the field wins over the metadata
    o4 = a.create_order(cu.id, [(A, 2)], key=k2, metadata=md)
    check(o4.id != o1.id, "field key %s with metadata %s returned the metadata key's order", k2, k1)
    o5 = a.create_order(cu.id, [(A, 2)], key=k2)
    eq(o5.id, o4.id, "field key again")
    c.eventually(lambda: a.product(A).reserved, 4, "reserved for two orders")
    # no key at all: every call is a new order
    o6 = a.create_order(cu.id, [(A, 1)])
    o7 = a.create_order(cu.id, [(A, 1)])
    check(o6.id != o7.id, "two keyless orders got the same id")
    eq(len(a.list_orders(customer_id=cu.id)), 4, "orders of the customer")


def orders_idempotency_concurrent(c):
    """8 clients send the same key at once: one order, stock reserved once."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(100, 100)
    for round_ in range(3):
        key = uniq("ckey")
        res = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)
        chans = [c.server.channel() for _ in range(8)]

        def go(i):
            api = oi.Api(c.S, chans[i])
            barrier.wait()
            try:
                r = ("OK", api.create_order(cu.id, [(A, 2)], key=key).id)
            except c.grpc.RpcError as e:
                r = (e.code().name, e.details())
            with lock:
                res.append(r)
        try:
            oi.threads_run(8, go)
        finally:
            for ch in chans:
                ch.close()
        ids = {r[1] for r in res if r[0] == "OK"}
        check(len(ids) == 1, "round %d: same key from 8 clients: %s", round_, res)
        check(all(r[0] in ("OK", "ABORTED", "UNAVAILABLE") for r in res),
              "round %d: codes %s", round_, res)
        c.eventually(lambda: a.product(A).reserved, 2 * (round_ + 1),
                     "round %d: reserved after 8 calls with one key" % round_)
    eq(len(a.list_orders(customer_id=cu.id)), 3, "orders after 3 rounds")


def orders_idempotency_lost_reply(c):
    """The first call's reply never arrives (client cancels it, or its deadline is
    tiny): a retry with the key returns one order, never a second."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(100, 1000)
    keys = []
    for i in range(10):
        key = uniq("lost")
        keys.append(key)
        req = a.order_req(cu.id, [(A, 1)], key)
        if i % 2 == 0:
            fut = a.ord.CreateOrder.future(req, timeout=T)
            time.sleep(0.0005 * i)
            fut.cancel()
        else:
            try:
                a.ord.CreateOrder(req, timeout=0.0005 * i)
            except c.grpc.RpcError:
                pass
    time.sleep(0.3)
    ids = []
    for key in keys:
        o1 = a.create_order(cu.id, [(A, 1)], key=key)
        o2 = a.create_order(cu.id, [(A, 1)], key=key)
        eq(o2.id, o1.id, "retries of %s" % key)
        ids.append(o1.id)
    eq(len(set(ids)), 10, "distinct orders for 10 keys")
    orders = a.list_orders(customer_id=cu.id)
    eq(sorted(o.id for o in orders), sorted(ids), "orders of the customer (no duplicates)")
    c.eventually(lambda: a.product(A).reserved, 10, "reserved for 10 orders")


def orders_overflow(c):
    a, SC = c.a, c.SC
    cu = a.new_customer()
    big = a.new_product(1 << 61, 1 << 40)
    half = a.new_product(1 << 62, 10)
    cheap = a.new_product(3, 1 << 62)
    cases = [
        ([(big, 4)], "2^61 cents x 4"),
        ([(cheap, (1 << 62))], "3 cents x 2^62"),
        ([(half, 1), (a.new_product(1 << 62, 10), 1)], "2^62 + 2^62"),
        ([(big, 3), (a.new_product(1 << 61, 10), 2)], "3*2^61 + 2*2^61"),
    ]
    for lines, what in cases:
        expect_error(c.grpc, lambda: a.create_order(cu.id, lines), SC.INVALID_ARGUMENT, (),
                     "CreateOrder(%s): total overflows int64" % what)
    c.eventually(lambda: (a.product(big).reserved, a.product(half).reserved,
                          a.product(cheap).reserved), (0, 0, 0),
                 "nothing reserved by overflowing orders")
    eq(a.list_orders(customer_id=cu.id), [], "no overflowing order stored")
    # just below the limit is fine
    top = a.new_product(INT64_MAX, 1)
    o = a.create_order(cu.id, [(top, 1)])
    eq(o.total_cents, INT64_MAX, "total of INT64_MAX")
    o = a.create_order(cu.id, [(big, 3)])
    eq(o.total_cents, 3 << 61, "total 3*2^61")


def orders_list(c):
    a, opb = c.a, c.opb
    A = a.new_product(10, 1000)
    ca, cb = a.new_customer(), a.new_customer()
    mine = []
    for i in range(9):
        mine.append(a.create_order(ca.id, [(A, i + 1)]))
        if i % 3 == 0:
            time.sleep(0.005)  # spread created_at over several ms
    other = [a.create_order(cb.id, [(A, 1)]) for _ in range(3)]

    def ids(**kw):
        return [o.id for o in a.list_orders(**kw)]
    for ps in (1, 2, 3, 0, 1000):
        got = a.list_orders(customer_id=ca.id, page_size=ps)
        eq([o.id for o in got], [o.id for o in mine], "ListOrders(customer A, page_size=%d)" % ps)
        eq(got[4], a.get_order(mine[4].id), "listed order == GetOrder")
    eq(ids(customer_id=cb.id, page_size=1), [o.id for o in other], "ListOrders(customer B)")
    # status filter
    a.cancel(mine[1].id, "x")
    a.cancel(mine[5].id, "y")
    a.update(mine[2].id, opb.ORDER_STATUS_CONFIRMED)
    eq(ids(customer_id=ca.id, status=opb.ORDER_STATUS_CANCELLED, page_size=1),
       [mine[1].id, mine[5].id], "ListOrders(A, CANCELLED)")
    eq(ids(customer_id=ca.id, status=opb.ORDER_STATUS_CONFIRMED, page_size=2), [mine[2].id],
       "ListOrders(A, CONFIRMED)")
    eq(ids(customer_id=ca.id, status=opb.ORDER_STATUS_PENDING, page_size=2),
       [o.id for i, o in enumerate(mine) if i not in (1, 2, 5)], "ListOrders(A, PENDING)")
    eq(ids(customer_id=ca.id, status=opb.ORDER_STATUS_DELIVERED), [], "ListOrders(A, DELIVERED)")
    # created range: [from, to)
    lo, hi = mine[3].created_at, mine[7].created_at
    want = [o.id for o in mine if lo <= o.created_at < hi]
    eq(ids(customer_id=ca.id, created_from=lo, created_to=hi, page_size=2), want,
       "ListOrders(A, created in [%d, %d))" % (lo, hi))
    want = [o.id for o in mine if o.created_at >= lo]
    eq(ids(customer_id=ca.id, created_from=lo, page_size=2), want, "ListOrders(A, from %d)" % lo)
    want = [o.id for o in mine if o.created_at < hi]
    eq(ids(customer_id=ca.id, created_to=hi, page_size=2), want, "ListOrders(A, to %d)" % hi)
    eq(ids(customer_id=ca.id, created_from=hi, created_to=hi), [], "empty range")
    # all customers: a superset, oldest first
    everything = a.list_orders(page_size=7)
    allids = [o.id for o in everything]
    eq(len(allids), len(set(allids)), "ListOrders(): duplicate ids")
    for o in mine + other:
        check(o.id in allids, "ListOrders() misses %s", o.id)
    pos = [allids.index(o.id) for o in mine + other]
    eq(pos, sorted(pos), "ListOrders() oldest first (our orders' positions)")
    # (created_at order under concurrency: orders.list_oldest_first_concurrent)
    # combined filter: all customers, CANCELLED, from lo
    got = ids(status=opb.ORDER_STATUS_CANCELLED, created_from=mine[0].created_at, page_size=1)
    check(mine[1].id in got and mine[5].id in got, "CANCELLED over all customers: %s", got)
    check(all(a.get_order(i).status == opb.ORDER_STATUS_CANCELLED for i in got),
          "status filter returned other statuses")
    eq(ids(customer_id="c-999999999"), [], "ListOrders(unknown customer)")


def orders_list_oldest_first_concurrent(c):
    """Orders created concurrently (8 clients, and an ImportOrders with many rows
    in flight): ListOrders is oldest first, i.e. created_at never goes down."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(1, 10 ** 6)
    chans = [c.server.channel() for _ in range(8)]

    def go(i):
        api = oi.Api(c.S, chans[i])
        for _ in range(40):
            api.create_order(cu.id, [(A, 1)])
    try:
        oi.threads_run(8, go)
    finally:
        for ch in chans:
            ch.close()
    _import(c, [("r%d" % i, cu.id, [(A, 1)], "") for i in range(300)], timeout=T * 2)
    got = a.list_orders(customer_id=cu.id, page_size=50)
    eq(len(got), 620, "orders listed")
    inv = [(got[i - 1].id, got[i - 1].created_at, o.id, o.created_at)
           for i, o in enumerate(got) if i and o.created_at < got[i - 1].created_at]
    check(not inv, "ListOrders is not oldest first: %d inversions, e.g. %s (created_at %d) listed "
          "before %s (created_at %d); largest %d ms", len(inv), *(inv[0] if inv else ("", 0, "", 0)),
          max([x[1] - x[3] for x in inv] or [0]))


def orders_list_cancel_midway(c):
    """Cancelling a ListOrders stream after a few orders: the server stops, the
    next calls work."""
    a = c.a
    it = a.ord.ListOrders(c.opb.ListOrdersRequest(page_size=1), timeout=T)
    n = 0
    for _ in it:
        n += 1
        if n == 3:
            break
    it.cancel()
    a.list_orders(page_size=5)


def _import(c, rows, timeout=None):
    opb = c.opb
    reqs = [opb.ImportOrderRow(row_id=rid, order=c.a.order_req(cid, lines, key))
            for rid, cid, lines, key in rows]
    return c.a.ord.ImportOrders(iter(reqs), timeout=timeout or T)


def orders_import(c):
    a = c.a
    cu = a.new_customer()
    sus = a.new_customer()
    a.set_customer_status(sus.id, c.cpb.CUSTOMER_STATUS_SUSPENDED)
    A = a.new_product(150, 10)
    B = a.new_product(20, 100)
    k = uniq("ik")
    rows = [
        ("r0", cu.id, [(A, 2)], k),
        ("r1", cu.id, [(A, 0)], ""),                 # INVALID_ARGUMENT quantity
        ("r2", cu.id, [(B, 5), (A, 1)], ""),
        ("r3", "c-999999999", [(B, 1)], ""),         # NOT_FOUND customer
        ("r4", cu.id, [(A, 100)], ""),               # FAILED_PRECONDITION stock
        ("r5", sus.id, [(B, 1)], ""),                # FAILED_PRECONDITION suspended
        ("r6", cu.id, [(B, 1), (B, 2)], ""),         # INVALID_ARGUMENT duplicate sku
        ("r7", cu.id, [(A, 2)], k),                  # same key as r0: same order
        ("r8", "", [(B, 1)], ""),                    # INVALID_ARGUMENT customer_id
        ("r9", cu.id, [(uniq("GHOST"), 1)], ""),     # NOT_FOUND sku
        ("", cu.id, [(B, 3)], ""),                   # empty row id is echoed as empty
        ("r0", cu.id, [(B, 4)], ""),                 # a repeated row id is the client's business
    ]
    want = [(0, ""), (3, "quantity"), (0, ""), (5, ""), (9, A), (9, "suspended"), (3, "sku"),
            (0, ""), (3, "customer_id"), (5, "GHOST"), (0, ""), (0, "")]
    s = _import(c, rows)
    eq(s.received, len(rows), "received")
    eq(len(s.results), len(rows), "one result per row")
    eq([r.row_id for r in s.results], [r[0] for r in rows], "row ids in arrival order")
    for i, (r, (code, needle)) in enumerate(zip(s.results, want)):
        check(r.code == code, "row %d (%s): code %d %r, expected %d", i, rows[i][:3], r.code,
              r.message, code)
        if code:
            check(needle.lower() in r.message.lower(), "row %d: message %r does not name %r",
                  i, r.message, needle)
            eq(r.order_id, "", "row %d: order_id of a failed row" % i)
        else:
            check(r.order_id.startswith("o-"), "row %d: order_id %r", i, r.order_id)
    ok = [r for r in s.results if r.code == 0]
    eq(s.failed, len(rows) - len(ok), "failed")
    check(s.created in (len(ok), len(ok) - 1), "created %d for %d OK rows (one of them a "
          "repeated key)", s.created, len(ok))
    eq(s.results[7].order_id, s.results[0].order_id, "row r7 (same key as r0)")
    o = a.get_order(s.results[2].order_id)
    eq([(l.sku, l.quantity, l.unit_price_cents) for l in o.lines], [(B, 5, 20), (A, 1, 150)],
       "imported order lines")
    eq((o.customer_id, o.total_cents, o.status), (cu.id, 5 * 20 + 150, c.opb.ORDER_STATUS_PENDING),
       "imported order")
    c.eventually(lambda: (a.product(A).reserved, a.product(B).reserved), (3, 5 + 3 + 4),
                 "A, B reserved by the import")
    listed = sorted(x.id for x in a.list_orders(customer_id=cu.id))
    eq(listed, sorted({r.order_id for r in ok}), "orders of the customer after the import")
    # an empty import
    s = c.a.ord.ImportOrders(iter([]), timeout=T)
    eq((s.received, s.created, s.failed, len(s.results)), (0, 0, 0, 0), "empty import")


def orders_import_large(c):
    """More rows than the server runs at once (bounded in-flight), every 7th bad."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(1, 100000)
    n = max(50, int(2000 * c.scale))
    rows = [("row%d" % i, cu.id, [(A, 0 if i % 7 == 3 else 1)], "") for i in range(n)]
    s = _import(c, rows, timeout=T * 3)
    eq((s.received, len(s.results)), (n, n), "received / results")
    bad = [i for i in range(n) if i % 7 == 3]
    eq([r.row_id for r in s.results], ["row%d" % i for i in range(n)], "row order")
    eq([i for i, r in enumerate(s.results) if r.code != 0], bad, "failed rows")
    check(all(s.results[i].code == 3 for i in bad), "bad rows' codes")
    eq((s.created, s.failed), (n - len(bad), len(bad)), "created / failed")
    c.eventually(lambda: a.product(A).reserved, n - len(bad), "reserved")
    eq(len({r.order_id for r in s.results if r.code == 0}), n - len(bad), "distinct order ids")


# ================================================================== watch / track


def _ev(e):
    return (e.order_id, e.status, e.previous_status, e.version)


def watch_replay_then_live(c):
    a, opb = c.a, c.opb
    P, C_, S_, X = (opb.ORDER_STATUS_PENDING, opb.ORDER_STATUS_CONFIRMED,
                    opb.ORDER_STATUS_SHIPPED, opb.ORDER_STATUS_CANCELLED)
    U = opb.ORDER_STATUS_UNSPECIFIED
    cu, other = a.new_customer(), a.new_customer()
    A = a.new_product(5, 1000)
    o1 = a.create_order(cu.id, [(A, 1)])
    a.create_order(other.id, [(A, 1)])
    o2 = a.create_order(cu.id, [(A, 1)])
    a.update(o1.id, C_)
    want = [(o1.id, P, U, 1), (o2.id, P, U, 1), (o1.id, C_, P, 2)]
    col = Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cu.id,
                                                                    since_seq=1), timeout=T * 3))
    try:
        check(col.wait_n(3), "replay: %d events (%s)", len(col.events), col.err())
        eq([_ev(e) for e in col.events[:3]], want, "replayed events")
        for e in col.events[:3]:
            eq(e.customer_id, cu.id, "customer_id of an event")
            check_time(e.at, "event at")
        # live
        o3 = a.create_order(cu.id, [(A, 2)])
        a.update(o1.id, S_)
        a.cancel(o2.id, "x")
        a.create_order(other.id, [(A, 1)])
        want += [(o3.id, P, U, 1), (o1.id, S_, C_, 3), (o2.id, X, P, 2)]
        check(col.wait_n(6), "live: %d events (%s)", len(col.events), col.err())
        time.sleep(0.2)
        eq([_ev(e) for e in col.events], want, "replayed then live events")
        seqs = [e.seq for e in col.events]
        eq(seqs, sorted(set(seqs)), "seqs increasing without duplicates")
        check(seqs[0] >= 1, "first seq %d", seqs[0])
    finally:
        col.cancel()


def watch_since_middle(c):
    """since_seq = N: every matching event with seq >= N, none before."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    os_ = [a.create_order(cu.id, [(A, 1)]) for _ in range(4)]
    first = list(_take(c, opb.WatchOrdersRequest(customer_id=cu.id, since_seq=1), 4))
    eq([e.order_id for e in first], [o.id for o in os_], "replay from 1")
    mid = first[2].seq
    got = list(_take(c, opb.WatchOrdersRequest(customer_id=cu.id, since_seq=mid), 2))
    eq([e.seq for e in got], [first[2].seq, first[3].seq], "replay from seq %d" % mid)
    got = list(_take(c, opb.WatchOrdersRequest(customer_id=cu.id, since_seq=mid + 1), 1))
    eq([e.seq for e in got], [first[3].seq], "replay from seq %d" % (mid + 1))


def _take(c, req, n, timeout=None):
    it = c.a.ord.WatchOrders(req, timeout=timeout or T)
    out = []
    try:
        for e in it:
            out.append(e)
            if len(out) == n:
                break
    finally:
        it.cancel()
    return out


def watch_order_ids(c):
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    o = [a.create_order(cu.id, [(A, 1)]) for _ in range(3)]
    a.update(o[1].id, opb.ORDER_STATUS_CONFIRMED)
    a.update(o[0].id, opb.ORDER_STATUS_CONFIRMED)
    got = _take(c, opb.WatchOrdersRequest(order_ids=[o[0].id, o[2].id], since_seq=1), 3)
    eq([(e.order_id, e.version) for e in got], [(o[0].id, 1), (o[2].id, 1), (o[0].id, 2)],
       "WatchOrders(order_ids=[o0, o2])")


def watch_customer_and_order_ids(c):
    """customer_id and order_ids together: the customer's orders and those orders."""
    a, opb = c.a, c.opb
    ca, cb = a.new_customer(), a.new_customer()
    A = a.new_product(5, 1000)
    oa1 = a.create_order(ca.id, [(A, 1)])
    ob1 = a.create_order(cb.id, [(A, 1)])
    a.create_order(cb.id, [(A, 1)])
    oa2 = a.create_order(ca.id, [(A, 1)])
    a.update(ob1.id, opb.ORDER_STATUS_CONFIRMED)
    got = _take(c, opb.WatchOrdersRequest(customer_id=ca.id, order_ids=[ob1.id], since_seq=1), 4)
    eq([(e.order_id, e.version) for e in got],
       [(oa1.id, 1), (ob1.id, 1), (oa2.id, 1), (ob1.id, 2)],
       "WatchOrders(customer A, order_ids=[B's first order])")


def watch_future_since_seq(c):
    """since_seq = the next seq to be committed: nothing before it, every event
    from it on. since_seq further ahead: either the same (events from it on) or
    OUT_OF_RANGE naming since_seq (not documented in order.proto, but a fair
    answer to a client that is ahead of the server)."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    o = a.create_order(cu.id, [(A, 1)])
    cur = _take(c, opb.WatchOrdersRequest(order_ids=[o.id], since_seq=1), 1)[0].seq
    nxt = Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cu.id,
                                                                    since_seq=cur + 1),
                                              timeout=T * 2))
    start = cur + 3
    ahead = Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cu.id,
                                                                      since_seq=start),
                                                timeout=T * 2))
    try:
        time.sleep(0.3)
        for _ in range(6):
            a.create_order(cu.id, [(A, 1)])
        evs = _take(c, opb.WatchOrdersRequest(customer_id=cu.id, since_seq=cur + 1), 6)
        check(nxt.wait_n(6), "WatchOrders(since_seq=next %d): %d events (%s)", cur + 1,
              len(nxt.events), nxt.err())
        eq([(e.order_id, e.seq) for e in nxt.events], [(e.order_id, e.seq) for e in evs],
           "WatchOrders(since_seq=%d), the next seq" % (cur + 1))
        want = [(e.order_id, e.seq) for e in evs if e.seq >= start]
        ahead.wait_n(len(want))
        time.sleep(0.2)
        if ahead.done and not ahead.events and ahead.error is not None and \
                ahead.error.code() == c.SC.OUT_OF_RANGE:
            check("since_seq" in (ahead.error.details() or ""), "OUT_OF_RANGE %r does not name "
                  "since_seq", ahead.error.details())
            print("# WatchOrders(since_seq=last+3): OUT_OF_RANGE %r" % ahead.error.details())
        else:
            eq([(e.order_id, e.seq) for e in ahead.events], want,
               "WatchOrders(since_seq=%d) with the last seq at %d (%s)" % (start, cur, ahead.err()))
    finally:
        nxt.cancel()
        ahead.cancel()


def track_live_only(c):
    """TrackSubscribe with since_seq 0: no replay, only later changes."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    o1, o2 = a.create_order(cu.id, [(A, 1)]), a.create_order(cu.id, [(A, 1)])
    q = queue.Queue()

    def gen():
        while True:
            x = q.get()
            if x is None:
                return
            yield x
    col = Collector(c.grpc, a.ord.TrackOrders(gen(), timeout=T * 2))
    try:
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[o1.id, o2.id])))
        # a replayed subscription of another order marks the point where the
        # first subscription is in place (requests are handled in order)
        o3 = a.create_order(cu.id, [(A, 1)])
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[o3.id], since_seq=1)))
        check(col.wait_n(1), "o3 replay: %s", col.err())
        eq((col.events[0].order_id, col.events[0].version), (o3.id, 1), "first event: o3 replay")
        a.update(o2.id, opb.ORDER_STATUS_CONFIRMED)
        a.cancel(o1.id, "x")
        check(col.wait_n(3), "live events: %s", col.err())
        time.sleep(0.2)
        eq([(e.order_id, e.version) for e in col.events[1:]], [(o2.id, 2), (o1.id, 2)],
           "live events after subscribe(since_seq=0)")
    finally:
        q.put(None)
        col.cancel()


def watch_live_only(c):
    """since_seq 0: only events committed after the call started. Probe orders are
    created until one's event arrives (the subscription is then in place); from
    there on every event comes, and none committed before the call."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    old = a.create_order(cu.id, [(A, 1)])
    col = Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(customer_id=cu.id,
                                                                    since_seq=0), timeout=T * 2))
    try:
        probes = []
        for _ in range(40):
            probes.append(a.create_order(cu.id, [(A, 1)]).id)
            if col.wait_n(1, 0.5):
                break
        check(col.events, "no live event for %d probe orders (%s)", len(probes), col.err())
        first = probes.index(col.events[0].order_id) if col.events[0].order_id in probes else -1
        check(first >= 0, "first live event is not a probe order's: %s", col.events[0])
        new = [a.create_order(cu.id, [(A, 1)]) for _ in range(3)]
        a.update(old.id, opb.ORDER_STATUS_CONFIRMED)
        want = [(p, 1) for p in probes[first:]] + [(n.id, 1) for n in new] + [(old.id, 2)]
        check(col.wait_n(len(want)), "live events: %d of %d (%s)", len(col.events), len(want),
              col.err())
        time.sleep(0.2)
        eq([(e.order_id, e.version) for e in col.events], want, "live-only events")
        seqs = [e.seq for e in col.events]
        eq(seqs, sorted(set(seqs)), "increasing seqs")
    finally:
        col.cancel()


def watch_all_gap_free_under_load(c):
    """WatchOrders(since_seq=1, no filter) started while 4 clients create orders:
    the replay-to-live hand-off yields 1, 2, 3, ... with no gap and no duplicate,
    up to an order created after the load."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(1, 10 ** 9)
    stop = threading.Event()
    made = []
    lock = threading.Lock()
    chans = [c.server.channel() for _ in range(4)]

    def load(i):
        api = oi.Api(c.S, chans[i])
        while not stop.is_set():
            o = api.create_order(cu.id, [(A, 1)])
            if len(made) % 5 == 0:
                api.update(o.id, opb.ORDER_STATUS_CONFIRMED)
            with lock:
                made.append(o.id)
    errs = []

    def load_safe(i):
        try:
            load(i)
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=load_safe, args=(i,), daemon=True) for i in range(4)]
    for t in ts:
        t.start()
    try:
        time.sleep(0.5)
        cols = [Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(since_seq=1),
                                                    timeout=T * 4)) for _ in range(2)]
        time.sleep(max(1.0, 2.0 * c.scale))
        cols.append(Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(since_seq=1),
                                                        timeout=T * 4)))
        time.sleep(max(0.5, 1.0 * c.scale))
    finally:
        stop.set()
        for t in ts:
            t.join()
        for ch in chans:
            ch.close()
    marker = a.create_order(cu.id, [(A, 1)])
    try:
        check(not errs, "load: %s", errs[:1])
        for i, col in enumerate(cols):
            check(col.wait(lambda evs: any(e.order_id == marker.id for e in evs), T * 2),
                  "watch %d: marker %s not seen; %d events (%s)", i, marker.id, len(col.events),
                  col.err())
            evs = list(col.events)
            oi.check_consecutive([e.seq for e in evs], 1, "watch %d" % i)
            seen = {e.order_id for e in evs if e.version == 1}
            miss = [x for x in made if x not in seen]
            check(not miss, "watch %d: no creation event for %d orders (e.g. %s)", i, len(miss),
                  miss[:3])
        print("# watch under load: %d orders made, %d events replayed+live"
              % (len(made), len(cols[0].events)), flush=True)
    finally:
        for col in cols:
            col.cancel()


def track_orders(c):
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(5, 1000)
    o1, o2, o3 = (a.create_order(cu.id, [(A, 1)]) for _ in range(3))
    q = queue.Queue()

    def gen():
        while True:
            x = q.get()
            if x is None:
                return
            yield x
    col = Collector(c.grpc, a.ord.TrackOrders(gen(), timeout=T * 3))
    try:
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[o1.id], since_seq=1)))
        check(col.wait_n(1), "replay of o1: %s", col.err())
        eq(_ev(col.events[0]), (o1.id, opb.ORDER_STATUS_PENDING, opb.ORDER_STATUS_UNSPECIFIED, 1),
           "o1 replay")
        a.update(o1.id, opb.ORDER_STATUS_CONFIRMED)
        check(col.wait_n(2), "live o1 event: %s", col.err())
        eq((col.events[1].order_id, col.events[1].version), (o1.id, 2), "live o1 event")
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[o2.id], since_seq=1)))
        check(col.wait_n(3), "replay of o2: %s", col.err())
        eq((col.events[2].order_id, col.events[2].version), (o2.id, 1), "o2 replay")
        a.update(o2.id, opb.ORDER_STATUS_CONFIRMED)
        a.update(o1.id, opb.ORDER_STATUS_SHIPPED)
        check(col.wait_n(5), "live o2, o1 events: %s", col.err())
        eq([(e.order_id, e.version) for e in col.events[3:5]], [(o2.id, 2), (o1.id, 3)],
           "live events of both")
        # unsubscribe o1; o3's replay proves the server has read the unsubscribe
        q.put(opb.TrackRequest(unsubscribe=opb.TrackUnsubscribe(order_ids=[o1.id])))
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[o3.id], since_seq=1)))
        check(col.wait_n(6), "replay of o3: %s", col.err())
        eq((col.events[5].order_id, col.events[5].version), (o3.id, 1), "o3 replay")
        a.update(o1.id, opb.ORDER_STATUS_DELIVERED)
        a.update(o2.id, opb.ORDER_STATUS_SHIPPED)
        check(col.wait_n(7), "after unsubscribe: %s", col.err())
        time.sleep(0.3)
        eq([(e.order_id, e.version) for e in col.events[6:]], [(o2.id, 3)],
           "events after unsubscribing o1")
        live = [col.events[i].seq for i in (1, 3, 4, 6)]
        eq(live, sorted(set(live)), "live seqs increasing")
        q.put(None)  # half-close: the server ends the call
        check(col.wait(lambda evs: col.done, T), "TrackOrders did not end after half-close")
        check(col.error is None, "TrackOrders ended with %s", col.err())
    finally:
        q.put(None)
        col.cancel()


def track_gap_free_under_load(c):
    """TrackOrders subscribes (since_seq=1) to 20 orders while 4 clients move them
    through their statuses: the subscriber gets exactly the events a replay
    shows for them, in seq order, no gap, no duplicate."""
    a, opb = c.a, c.opb
    cu = a.new_customer()
    A = a.new_product(1, 10 ** 6)
    orders = [a.create_order(cu.id, [(A, 1)]).id for _ in range(20)]
    chans = [c.server.channel() for _ in range(4)]
    steps = (opb.ORDER_STATUS_CONFIRMED, opb.ORDER_STATUS_SHIPPED, opb.ORDER_STATUS_DELIVERED)
    errs = []

    def load(i):
        api = oi.Api(c.S, chans[i])
        try:
            for st_ in steps:
                for oid in orders[i::4]:
                    api.update(oid, st_)
                    time.sleep(0.005)
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    q = queue.Queue()

    def gen():
        while True:
            x = q.get()
            if x is None:
                return
            yield x
    ts = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    col = Collector(c.grpc, a.ord.TrackOrders(gen(), timeout=T * 3))
    try:
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=orders[:10], since_seq=1)))
        time.sleep(0.05)
        q.put(opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=orders[10:], since_seq=1)))
        for t in ts:
            t.join()
        for ch in chans:
            ch.close()
        check(not errs, "load: %s", errs[:1])
        want_n = 20 * 4
        check(col.wait_n(want_n), "%d of %d events (%s)", len(col.events), want_n, col.err())
        time.sleep(0.2)
        got = [(e.order_id, e.version) for e in col.events]
        eq(len(got), len(set(got)), "duplicate events")
        eq(sorted(got), sorted((o, v) for o in orders for v in (1, 2, 3, 4)), "events received")
        replay = _take(c, opb.WatchOrdersRequest(order_ids=orders, since_seq=1), want_n)
        seq_of = {(e.order_id, e.version): e.seq for e in replay}
        for e in col.events:
            eq(e.seq, seq_of[(e.order_id, e.version)], "seq of %s v%d" % (e.order_id, e.version))
        per = {}
        for e in col.events:
            per.setdefault(e.order_id, []).append(e.version)
        for o, vs in per.items():
            eq(vs, [1, 2, 3, 4], "versions of %s in arrival order" % o)
    finally:
        q.put(None)
        col.cancel()


# ================================================================== oversell


def no_oversell(c):
    """50 clients, each on its own channel, race for the last 10 units."""
    a = c.a
    cu = a.new_customer()
    A = a.new_product(999, 10)
    chans = [c.server.channel() for _ in range(50)]
    apis = [oi.Api(c.S, ch) for ch in chans]
    for api in apis:  # connect first so that the calls really race
        api.cust.GetCustomer(c.cpb.GetCustomerRequest(id=cu.id), timeout=T)
    res = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def go(i):
        barrier.wait()
        try:
            o = apis[i].create_order(cu.id, [(A, 1)])
            r = ("OK", o.id)
        except c.grpc.RpcError as e:
            r = (e.code().name, e.details())
        with lock:
            res.append(r)
    try:
        oi.threads_run(50, go)
    finally:
        for ch in chans:
            ch.close()
    codes = sorted(r[0] for r in res)
    eq(codes.count("OK"), 10, "successful orders (codes %s)" % {k: codes.count(k) for k in set(codes)})
    eq(codes.count("FAILED_PRECONDITION"), 40, "FAILED_PRECONDITION answers")
    eq(len({r[1] for r in res if r[0] == "OK"}), 10, "distinct order ids")
    p = a.product(A)
    eq((p.on_hand, p.reserved, p.available), (10, 10, 0), "stock after the race")
    eq(len(a.list_orders(customer_id=cu.id)), 10, "stored orders")


# ================================================================== reflection, health, demo


def reflection_lists_oms(c):
    S = c.S
    stub = S.refl_v1_pb2_grpc.ServerReflectionStub(c.api.channel)
    r = list(stub.ServerReflectionInfo(iter([S.refl_v1_pb2.ServerReflectionRequest(
        list_services="")]), timeout=T))
    names = [s.name for s in r[0].list_services_response.service]
    for svc in OMS_SERVICES:
        check(svc in names, "reflection list_services lacks %s: %s", svc, names)
    from google.protobuf import descriptor_pb2
    for svc, methods in [("oms.v1.OrderService", {"CreateOrder", "GetOrder", "CancelOrder",
                                                  "UpdateOrderStatus", "ListOrders",
                                                  "ImportOrders", "WatchOrders", "TrackOrders"}),
                         ("oms.v1.InventoryService", {"UpsertProduct", "GetProduct",
                                                      "ListProducts", "AdjustStock", "Reserve",
                                                      "Release"}),
                         ("oms.v1.CustomerService", {"CreateCustomer", "GetCustomer",
                                                     "ListCustomers", "SetCustomerStatus"})]:
        r = list(stub.ServerReflectionInfo(iter([S.refl_v1_pb2.ServerReflectionRequest(
            file_containing_symbol=svc)]), timeout=T))
        fdps = [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in r[0].file_descriptor_response.file_descriptor_proto]
        got = set()
        for f in fdps:
            for s in f.service:
                if f.package + "." + s.name == svc:
                    got = {m.name for m in s.method}
        eq(got, methods, "%s methods via reflection" % svc)


def health_serving(c):
    hp = c.S.health_pb2
    stub = c.S.health_pb2_grpc.HealthStub(c.api.channel)
    for svc in [""] + OMS_SERVICES:
        r = stub.Check(hp.HealthCheckRequest(service=svc), timeout=T)
        eq(r.status, hp.HealthCheckResponse.SERVING, "Health.Check(%r)" % svc)


def demo_data(c):
    a = c.a
    for cid in ("c-1", "c-2", "c-3"):
        cu = a.get_customer(cid)
        eq(cu.status, c.cpb.CUSTOMER_STATUS_ACTIVE, "demo customer %s status" % cid)
    p = a.product("SKU-001")
    check(p.on_hand > 0 and p.unit_price_cents > 0, "demo product SKU-001: %s", p)
    skus = [x.sku for x in a.inv.ListProducts(c.ipb.ListProductsRequest(), timeout=T)]
    check("SKU-001" in skus, "ListProducts lacks SKU-001: %s", skus[:10])


def wrong_service_unimplemented(c):
    """Unknown methods still answer UNIMPLEMENTED next to the order services."""
    ch = c.api.channel
    fn = ch.unary_unary("/oms.v1.OrderService/NoSuchMethod")
    expect_error(c.grpc, lambda: fn(b"", timeout=T), c.SC.UNIMPLEMENTED, (),
                 "/oms.v1.OrderService/NoSuchMethod")


def watch_on_sigterm(c):
    """An open WatchOrders ends with UNAVAILABLE when omsd drains (SIGTERM), well
    within the grace period, and the server exits cleanly (checked by stop)."""
    a, opb = c.a, c.opb
    col = Collector(c.grpc, a.ord.WatchOrders(opb.WatchOrdersRequest(since_seq=0),
                                              timeout=T * 2))
    time.sleep(0.3)
    t0 = time.monotonic()
    c.server.signal(__import__("signal").SIGTERM)
    check(col.wait(lambda evs: col.done, T), "WatchOrders still open %.0fs after SIGTERM", T)
    dt = time.monotonic() - t0
    check(col.error is not None and getattr(col.error, "code", lambda: None)() ==
          c.SC.UNAVAILABLE, "WatchOrders at SIGTERM ended with %s", col.err())
    check(dt < c.server.grace, "WatchOrders ended %.1fs after SIGTERM (grace %ss)", dt,
          c.server.grace)
    c.server.wait(c.server.grace + 10)


CASES = [
    ("demo_data", demo_data),
    ("health", health_serving),
    ("reflection", reflection_lists_oms),
    ("unimplemented_method", wrong_service_unimplemented),
    ("customers.create_get", customers_create_get),
    ("customers.invalid_argument", customers_invalid),
    ("customers.duplicate_email", customers_duplicate_email),
    ("customers.not_found", customers_not_found),
    ("customers.set_status", customers_set_status),
    ("customers.list", customers_list),
    ("products.upsert_get", products_upsert_get),
    ("products.invalid_argument", products_invalid),
    ("products.not_found", products_not_found),
    ("products.adjust_stock", products_adjust_stock),
    ("products.list", products_list),
    ("inventory.reserve_release", inventory_reserve_release),
    ("inventory.reserve_invalid", inventory_reserve_invalid),
    ("orders.create_get", orders_create_get),
    ("orders.invalid_argument", orders_invalid_argument),
    ("orders.not_found", orders_not_found),
    ("orders.insufficient_stock", orders_insufficient_stock),
    ("orders.suspended_customer", orders_suspended_customer),
    ("orders.status_machine", orders_status_machine),
    ("orders.cancel_releases_stock", orders_cancel),
    ("orders.expected_version", orders_expected_version),
    ("orders.cancel_race", orders_cancel_race),
    ("inventory.adjust_vs_reserve_race", inventory_adjust_vs_reserve_race),
    ("orders.idempotency.field", orders_idempotency_field),
    ("orders.idempotency.metadata", orders_idempotency_metadata),
    ("orders.idempotency.concurrent", orders_idempotency_concurrent),
    ("orders.idempotency.lost_reply", orders_idempotency_lost_reply),
    ("integrity.reserve_ahead", integrity_reserve_ahead),
    ("integrity.release_live", integrity_release_live),
    ("integrity.key_per_customer", integrity_key_per_customer),
    ("orders.overflow", orders_overflow),
    ("orders.list_filters_paging", orders_list),
    ("orders.list_oldest_first_concurrent", orders_list_oldest_first_concurrent),
    ("orders.list_cancel_midway", orders_list_cancel_midway),
    ("orders.import", orders_import),
    ("orders.import_large", orders_import_large),
    ("watch.replay_then_live", watch_replay_then_live),
    ("watch.since_middle", watch_since_middle),
    ("watch.order_ids", watch_order_ids),
    ("watch.live_only", watch_live_only),
    ("watch.customer_and_order_ids", watch_customer_and_order_ids),
    ("watch.future_since_seq", watch_future_since_seq),
    ("track.live_only", track_live_only),
    ("track.gap_free_under_load", track_gap_free_under_load),
    ("watch.all_gap_free_under_load", watch_all_gap_free_under_load),
    ("track.subscribe_unsubscribe", track_orders),
    ("no_oversell.50_clients_10_units", no_oversell),
]


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--pg", action="store_true",
                   help="omsd --store postgres://... on a throwaway PostgreSQL (scripts/pgtmp.py)")
    args = p.parse_args()
    with h.Env("orders_pg" if args.pg else "orders", args) as env:
        if args.pg:
            oi.use_pg(env)
        try:
            run_all(env, args)
        finally:
            if args.pg:
                env.pg_stop()


def run_all(env, args):
    env.scale = oi.load_scale(args)
    print("# load scale %.2f" % env.scale, flush=True)
    for tr in env.transports:
        server = oi.start_server(env, "omsd-%s" % tr, h2c=(tr == "h2c"))
        c = Ctx(env, server)
        for name, fn in CASES:
            env.suite.run("%s.%s" % (tr, name), c.run_case, fn)
        env.suite.run("%s.watch.unavailable_on_sigterm" % tr, watch_on_sigterm, c)
        c.api.close()
        env.suite.stop_server(server)
    env.suite.run("integrity.key_retention", integrity_key_retention, env)


if __name__ == "__main__":
    main()
