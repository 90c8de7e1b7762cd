#!/usr/bin/python3
"""Strings and sizes (issue 10, section 3) against a running omsd.

proto3 strings must be UTF-8 without NUL: invalid bytes (sent raw, since
grpcio's protobuf will not encode them) and embedded NULs are refused with
INVALID_ARGUMENT naming the field, and nothing is stored. Every over-long
field is refused with the shared text ("<field>: at most N bytes, M given",
"lines: 1..100 allowed, 0 given"). Error messages quoting client bytes are
escaped and bounded. ImportOrders past its row limit (--import-max-rows 5
here) answers OK with every created order and counts the rest as skipped.
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402
import orders_it as oi  # noqa: E402

T = h.RPC_TIMEOUT
MAX_ROWS = 5
ORD = "/oms.v1.OrderService/"


# ---- hand-made wire format (grpcio's protobuf refuses invalid UTF-8)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fbytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def fint(num, v):
    return varint(num << 3) + varint(v)


def create_req_wire(cid, lines, key=b""):
    """CreateOrderRequest: customer_id=1, lines=2 {sku=1, quantity=2}, key=3."""
    b = fbytes(1, cid)
    for sku, q in lines:
        b += fbytes(2, fbytes(1, sku) + fint(2, q))
    if key:
        b += fbytes(3, key)
    return b


class W:
    """The world the cases share: one server, a customer, a product."""

    def __init__(self, env, server):
        self.env, self.server = env, server
        self.api = oi.Api(env.stubs, server.channel())
        self.grpc = env.stubs.grpc
        self.opb = self.api.opb
        self.cid = self.api.new_customer().id
        self.sku = self.api.new_product(100, 1000)

    def raw_unary(self, path, body, resp):
        fn = self.api.channel.unary_unary(ORD + path if "/" not in path else path,
                                          request_serializer=lambda b: b,
                                          response_deserializer=resp.FromString)
        return fn(body, timeout=T)

    def raw_import(self, rows):
        fn = self.api.channel.stream_unary(ORD + "ImportOrders", request_serializer=lambda b: b,
                                           response_deserializer=self.opb.ImportOrdersSummary.FromString)
        return fn(iter(rows), timeout=T)

    def expect(self, fn, code, text, what):
        """fn() must fail with code and exactly the message text (None: any)."""
        e = oi.expect_error(self.grpc, fn, getattr(self.grpc.StatusCode, code), (), what)
        if text is not None:
            eq(e.details(), text, what + " message")
        return e

    def snapshot(self):
        """What a refused request must leave as it was: every order, and the
        product's reserved count."""
        orders = [(o.id, o.status, o.version, o.cancel_reason) for o in self.api.list_orders()]
        return orders, self.api.product(self.sku).reserved


# ---- cases


def case_utf8_cancel_reason(w):
    o = w.api.create_order(w.cid, [(w.sku, 1)])
    before = w.snapshot()
    body = fbytes(1, o.id.encode()) + fbytes(2, b"changed my mind \xff\xfe")
    w.expect(lambda: w.raw_unary("CancelOrder", body, w.opb.Order), "INVALID_ARGUMENT",
             "reason: invalid UTF-8", "CancelOrder reason \\xff")
    for bad in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"trunc\xe2\x82"):
        w.expect(lambda: w.raw_unary("CancelOrder", fbytes(1, o.id.encode()) + fbytes(2, bad),
                                     w.opb.Order),
                 "INVALID_ARGUMENT", "reason: invalid UTF-8", "CancelOrder reason %r" % bad)
    eq(w.snapshot(), before, "nothing stored")
    # the order still decodes in grpcio and is untouched
    g = w.api.get_order(o.id)
    eq((g.status, g.cancel_reason), (w.opb.ORDER_STATUS_PENDING, ""), "order untouched")


def case_utf8_create_customer_id(w):
    before = w.snapshot()
    w.expect(lambda: w.raw_unary("CreateOrder", create_req_wire(b"c-\xc0\xaf", [(w.sku.encode(), 1)]),
                                 w.opb.Order),
             "INVALID_ARGUMENT", "customer_id: invalid UTF-8", "CreateOrder customer_id overlong")
    body = create_req_wire(w.cid.encode(), [(w.sku.encode(), 1), (b"SKU-\xff", 1)])
    w.expect(lambda: w.raw_unary("CreateOrder", body, w.opb.Order), "INVALID_ARGUMENT",
             "lines[1].sku: invalid UTF-8", "CreateOrder lines[1].sku")
    eq(w.snapshot(), before, "nothing stored")


def case_utf8_import_row_id(w):
    before = w.snapshot()
    good = fbytes(1, b"r-1") + fbytes(2, create_req_wire(w.cid.encode(), [(w.sku.encode(), 1)]))
    bad = fbytes(1, b"r-\xff") + fbytes(2, create_req_wire(w.cid.encode(), [(w.sku.encode(), 1)]))
    w.expect(lambda: w.raw_import([bad, good]), "INVALID_ARGUMENT", "row_id: invalid UTF-8",
             "ImportOrders row_id \\xff")
    nested = fbytes(1, b"r-2") + fbytes(2, create_req_wire(b"c-1\x00x", [(w.sku.encode(), 1)]))
    w.expect(lambda: w.raw_import([nested]), "INVALID_ARGUMENT", "order.customer_id: contains NUL",
             "ImportOrders order.customer_id NUL")
    eq(w.snapshot(), before, "nothing stored")


def case_nul_customer_refused(w):
    before = w.snapshot()
    w.expect(lambda: w.api.create_order(w.cid + "\0evil", [(w.sku, 1)]), "INVALID_ARGUMENT",
             "customer_id: contains NUL", "CreateOrder %r" % (w.cid + "\0evil"))
    w.expect(lambda: w.api.create_order("c-1\0evil", [(w.sku, 1)]), "INVALID_ARGUMENT",
             "customer_id: contains NUL", "CreateOrder 'c-1\\0evil'")
    eq(w.snapshot(), before, "nothing stored (not cut to the customer's id)")


def case_nul_get_order_refused(w):
    o = w.api.create_order(w.cid, [(w.sku, 1)])
    w.expect(lambda: w.api.get_order(o.id + "\0junk"), "INVALID_ARGUMENT", "id: contains NUL",
             "GetOrder(%r)" % (o.id + "\0junk"))
    eq(w.api.get_order(o.id).id, o.id, "the real id still works")


def case_nul_idempotency_keys(w):
    before = w.snapshot()
    for key in ("k\0A", "k\0B"):
        w.expect(lambda: w.api.create_order(w.cid, [(w.sku, 1)], key=key), "INVALID_ARGUMENT",
                 "idempotency_key: contains NUL", "CreateOrder key %r" % key)
    eq(w.snapshot(), before, "neither key stored an order")
    a = w.api.create_order(w.cid, [(w.sku, 1)], key=oi.uniq("kA"))
    b = w.api.create_order(w.cid, [(w.sku, 1)], key=oi.uniq("kB"))
    check(a.id != b.id, "distinct keys, distinct orders: %s %s", a.id, b.id)


def case_big_row_id(w):
    before = w.snapshot()
    big = "x" * (1 << 20)
    rows = [w.opb.ImportOrderRow(row_id=big, order=w.api.order_req(w.cid, [(w.sku, 1)])),
            w.opb.ImportOrderRow(row_id="ok-1", order=w.api.order_req(w.cid, [(w.sku, 1)]))]
    s = w.api.ord.ImportOrders(iter(rows), timeout=T)
    eq((s.received, s.created, s.failed, s.skipped), (2, 1, 1, 0), "summary counts")
    r0, r1 = s.results
    eq((r0.code, r0.row_id, r0.order_id, r0.message),
       (3, "", "", "row_id: at most 64 bytes, 1048576 given"), "the 1 MiB row")
    eq((r1.code, r1.row_id), (0, "ok-1"), "the next row")
    check(s.ByteSize() < 1024, "summary stays small: %d bytes", s.ByteSize())
    orders, reserved = w.snapshot()
    eq(len(orders), len(before[0]) + 1, "one order created")
    eq(reserved, before[1] + 1, "one unit reserved")


def case_over_long_fields(w):
    """Every bounded string over its bound, and the lists, with the shared texts."""
    a, cpb, ipb, opb = w.api, w.api.cpb, w.api.ipb, w.api.opb
    id32, sku65, s201 = "i" * 32, "S" * 65, "n" * 201
    before = w.snapshot()
    cases = [
        ("CreateCustomer name", lambda: a.cust.CreateCustomer(
            cpb.CreateCustomerRequest(name=s201, email="a@example.com"), timeout=T),
         "name: at most 200 bytes, 201 given"),
        ("CreateCustomer email", lambda: a.cust.CreateCustomer(
            cpb.CreateCustomerRequest(name="N", email="e" * 243 + "@example.com"), timeout=T),
         "email: at most 254 bytes, 255 given"),
        ("CreateCustomer name empty", lambda: a.cust.CreateCustomer(
            cpb.CreateCustomerRequest(name="", email="a@example.com"), timeout=T),
         "name: required"),
        ("GetCustomer id", lambda: a.get_customer(id32), "id: at most 31 bytes, 32 given"),
        ("SetCustomerStatus id", lambda: a.set_customer_status(id32, 1),
         "id: at most 31 bytes, 32 given"),
        ("UpsertProduct sku", lambda: a.inv.UpsertProduct(
            ipb.UpsertProductRequest(sku=sku65, name="P"), timeout=T),
         "sku: at most 64 bytes, 65 given"),
        ("UpsertProduct name", lambda: a.inv.UpsertProduct(
            ipb.UpsertProductRequest(sku="SKU-X", name=s201), timeout=T),
         "name: at most 200 bytes, 201 given"),
        ("GetProduct sku", lambda: a.product(sku65), "sku: at most 64 bytes, 65 given"),
        ("AdjustStock sku", lambda: a.adjust(sku65, 1), "sku: at most 64 bytes, 65 given"),
        ("Reserve order_id", lambda: a.inv.Reserve(ipb.ReserveRequest(
            order_id=id32, lines=[ipb.ReserveLine(sku=w.sku, quantity=1)]), timeout=T),
         "order_id: at most 31 bytes, 32 given"),
        ("Reserve lines[0].sku", lambda: a.inv.Reserve(ipb.ReserveRequest(
            order_id="o-x1", lines=[ipb.ReserveLine(sku=sku65, quantity=1)]), timeout=T),
         "lines[0].sku: at most 64 bytes, 65 given"),
        ("Reserve no lines", lambda: a.inv.Reserve(ipb.ReserveRequest(order_id="o-x1"), timeout=T),
         "lines: 1..100 allowed, 0 given"),
        ("Reserve 101 lines", lambda: a.inv.Reserve(ipb.ReserveRequest(
            order_id="o-x1", lines=[ipb.ReserveLine(sku="S%d" % i, quantity=1)
                                    for i in range(101)]), timeout=T),
         "lines: 1..100 allowed, 101 given"),
        ("Release order_id", lambda: a.inv.Release(ipb.ReleaseRequest(order_id=id32), timeout=T),
         "order_id: at most 31 bytes, 32 given"),
        ("CreateOrder customer_id", lambda: a.create_order(id32, [(w.sku, 1)]),
         "customer_id: at most 31 bytes, 32 given"),
        ("CreateOrder idempotency_key", lambda: a.create_order(w.cid, [(w.sku, 1)], key="k" * 129),
         "idempotency_key: at most 128 bytes, 129 given"),
        ("CreateOrder idempotency-key metadata", lambda: a.create_order(
            w.cid, [(w.sku, 1)], metadata=(("idempotency-key", "m" * 200),)),
         "idempotency-key: at most 128 bytes, 200 given"),
        ("CreateOrder lines[0].sku", lambda: a.create_order(w.cid, [(sku65, 1)]),
         "lines[0].sku: at most 64 bytes, 65 given"),
        ("CreateOrder no lines", lambda: a.create_order(w.cid, []),
         "lines: 1..100 allowed, 0 given"),
        ("CreateOrder 101 lines", lambda: a.create_order(w.cid, [("S%d" % i, 1) for i in range(101)]),
         "lines: 1..100 allowed, 101 given"),
        ("GetOrder id", lambda: a.get_order(id32), "id: at most 31 bytes, 32 given"),
        ("GetOrder empty id", lambda: a.get_order(""), "id: required"),
        ("CancelOrder id", lambda: a.cancel(id32), "id: at most 31 bytes, 32 given"),
        ("CancelOrder reason", lambda: a.cancel("o-1", reason=s201),
         "reason: at most 200 bytes, 201 given"),
        ("UpdateOrderStatus id", lambda: a.update(id32, opb.ORDER_STATUS_CONFIRMED),
         "id: at most 31 bytes, 32 given"),
        ("ListOrders customer_id", lambda: a.list_orders(customer_id=id32),
         "customer_id: at most 31 bytes, 32 given"),
        ("WatchOrders customer_id", lambda: list(a.ord.WatchOrders(
            opb.WatchOrdersRequest(customer_id=id32), timeout=T)),
         "customer_id: at most 31 bytes, 32 given"),
        ("WatchOrders order_ids[1]", lambda: list(a.ord.WatchOrders(
            opb.WatchOrdersRequest(order_ids=["o-1", id32]), timeout=T)),
         "order_ids[1]: at most 31 bytes, 32 given"),
        ("WatchOrders 1001 ids", lambda: list(a.ord.WatchOrders(
            opb.WatchOrdersRequest(order_ids=["o-%d" % i for i in range(1001)]), timeout=T)),
         "order_ids: 0..1000 allowed, 1001 given"),
        ("TrackOrders subscribe.order_ids[0]", lambda: list(a.ord.TrackOrders(iter([
            opb.TrackRequest(subscribe=opb.TrackSubscribe(order_ids=[id32]))]), timeout=T)),
         "subscribe.order_ids[0]: at most 31 bytes, 32 given"),
    ]
    for what, fn, text in cases:
        w.expect(fn, "INVALID_ARGUMENT", text, what)
    # a row of ImportOrders fails alone, with the same text as CreateOrder's
    s = a.ord.ImportOrders(iter([opb.ImportOrderRow(row_id="r", order=a.order_req(id32, [(w.sku, 1)]))]),
                           timeout=T)
    eq((s.results[0].code, s.results[0].message), (3, "customer_id: at most 31 bytes, 32 given"),
       "ImportOrders row")
    eq(w.snapshot(), before, "nothing stored")


def case_hostile_bytes_escaped(w):
    """Control bytes and non-ASCII in a quoted id come back as \\xNN, and a long
    quoted string is cut to 64 bytes + "..."."""
    e = w.expect(lambda: w.api.get_order("o-\x1b[2J\n\u00e9"), "NOT_FOUND", None, "GetOrder hostile")
    eq(e.details(), "order o-\\x1b[2J\\x0a\\xc3\\xa9 not found", "escaped message")
    e = w.expect(lambda: w.api.get_customer("c-\x07\x7f"), "NOT_FOUND", None, "GetCustomer hostile")
    eq(e.details(), "customer c-\\x07\\x7f not found", "escaped message")
    # reflection quotes a symbol of any length: bounded
    S = w.env.stubs
    stub = S.refl_v1_pb2_grpc.ServerReflectionStub(w.api.channel)
    sym = "\x1b[31m" + "A" * 5000
    resp = list(stub.ServerReflectionInfo(iter([S.refl_v1_pb2.ServerReflectionRequest(
        file_containing_symbol=sym)]), timeout=T))
    msg = resp[0].error_response.error_message
    eq(msg, "symbol not found: \\x1b[31m" + "A" * 59 + "...", "bounded reflection message")


def case_import_row_limit(w):
    before = w.snapshot()
    n = MAX_ROWS + 3
    rows = [w.opb.ImportOrderRow(row_id="lim-%d" % i, order=w.api.order_req(w.cid, [(w.sku, 1)]))
            for i in range(n)]
    s = w.api.ord.ImportOrders(iter(rows), timeout=T)
    eq((s.received, s.created, s.failed, s.skipped), (n, MAX_ROWS, 0, 3), "summary counts")
    eq([r.row_id for r in s.results], ["lim-%d" % i for i in range(MAX_ROWS)], "results")
    check("not processed" in s.skipped_reason and str(MAX_ROWS) in s.skipped_reason,
          "skipped_reason says why: %r", s.skipped_reason)
    for r in s.results:
        eq(w.api.get_order(r.order_id).customer_id, w.cid, "order %s exists" % r.order_id)
    orders, reserved = w.snapshot()
    eq(len(orders), len(before[0]) + MAX_ROWS, "exactly the reported orders were created")
    eq(reserved, before[1] + MAX_ROWS, "exactly their stock reserved")


CASES = [
    ("utf8_cancel_reason", case_utf8_cancel_reason),
    ("utf8_create_customer_id", case_utf8_create_customer_id),
    ("utf8_import_row_id", case_utf8_import_row_id),
    ("nul_customer_refused", case_nul_customer_refused),
    ("nul_get_order_refused", case_nul_get_order_refused),
    ("nul_idempotency_keys", case_nul_idempotency_keys),
    ("big_row_id", case_big_row_id),
    ("over_long_fields", case_over_long_fields),
    ("hostile_bytes_escaped", case_hostile_bytes_escaped),
    ("import_row_limit", case_import_row_limit),
]


def main():
    p = h.common_args(__doc__.split("\n")[0])
    args = p.parse_args()
    with h.Env("strings", args) as env:
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"), name="omsd-" + tr,
                                extra_args=["--import-max-rows", str(MAX_ROWS)])
            w = W(env, server)
            for name, fn in CASES:
                env.suite.run("%s.%s" % (tr, name), fn, w)
            w.api.close()
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
