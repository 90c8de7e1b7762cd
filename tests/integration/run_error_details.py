#!/usr/bin/python3
"""Rich error details: grpcio reads google.rpc.Status from grpc-status-details-bin.

Against the real omsd (all-in-one, TLS and h2c) with Debian's python3-grpcio;
the google.rpc message classes are generated with protoc --python_out from
the same google/rpc/*.proto the server is built from, into a temp dir:
  bad_request          CreateOrder with quantity 0: INVALID_ARGUMENT, BadRequest
                       {field "lines[0].quantity"}; CustomerService too (one rule)
  insufficient_stock   CreateOrder: FAILED_PRECONDITION, PreconditionFailure
                       {STOCK, sku, "N available, M requested"} + ErrorInfo
                       INSUFFICIENT_STOCK (oms.v1, sku/available/requested); the
                       same from InventoryService.Reserve
  illegal_transition   ILLEGAL_TRANSITION (order_id/from/to), message said once
  version_mismatch     "order o-N is at version 1, not 7", VERSION_MISMATCH
  customer_suspended   CUSTOMER_SUSPENDED
  key_reused           IDEMPOTENCY_KEY_REUSED (INVALID_ARGUMENT)
  not_found            NOT_FOUND carries no details
  wire                 the raw trailer (h2raw): Trailers-Only, base64 without padding
  split                the split deployment: a stock shortage on the inventory process
                       reaches the order service's caller with the same details
"""

import base64
import importlib.util
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402
from orders_it import T  # noqa: E402

GOOGLEAPIS_DIR = "/usr/share/gocode/src/github.com/gogo/googleapis"
DETAILS_KEY = "grpc-status-details-bin"


def load_rpc_protos(workdir):
    """google/rpc/{status,error_details}_pb2, generated here and loaded by path
    (a temp dir on sys.path would shadow the installed google.protobuf)."""
    out = tempfile.mkdtemp(prefix="rpcpb-", dir=workdir)
    subprocess.run(["protoc", "-I" + GOOGLEAPIS_DIR, "-I/usr/include", "--python_out=" + out,
                    "google/rpc/status.proto", "google/rpc/error_details.proto"], check=True)
    mods = {}
    for name in ("status", "error_details"):
        path = os.path.join(out, "google", "rpc", name + "_pb2.py")
        spec = importlib.util.spec_from_file_location("oms_it_rpc_" + name, path)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        mods[name] = m
    return mods["status"], mods["error_details"]


class Ctx:
    def __init__(self, env, server, status_pb2, details_pb2):
        self.env, self.server = env, server
        self.api = oi.api_for(env, server)
        self.grpc = env.stubs.grpc
        self.SC = self.grpc.StatusCode
        self.st, self.ed = status_pb2, details_pb2
        self.cust = self.api.new_customer().id

    def fail(self, fn, code, what):
        """Runs fn; it must fail with code. Returns (error, google.rpc.Status or None)."""
        try:
            fn()
        except self.grpc.RpcError as e:
            eq(e.code(), code, "%s: status (%s)" % (what, e.details()))
            raw = [v for k, v in (e.trailing_metadata() or ()) if k == DETAILS_KEY]
            if not raw:
                return e, None
            eq(len(raw), 1, "%s: %s entries" % (what, DETAILS_KEY))
            s = self.st.Status()
            s.ParseFromString(raw[0])
            eq(s.code, code.value[0], "%s: Status.code" % what)
            eq(s.message, e.details(), "%s: Status.message is grpc-message" % what)
            return e, s
        raise h.Failure("%s: succeeded" % what)

    def unpack(self, s, cls):
        """The details of type cls, unpacked."""
        out = []
        for any_ in s.details:
            if any_.type_url == "type.googleapis.com/" + cls.DESCRIPTOR.full_name:
                m = cls()
                check(any_.Unpack(m), "Unpack %s", any_.type_url)
                out.append(m)
        return out

    def info(self, s, reason):
        infos = self.unpack(s, self.ed.ErrorInfo)
        eq(len(infos), 1, "ErrorInfo count in %s" % s)
        eq((infos[0].reason, infos[0].domain), (reason, "oms.v1"), "ErrorInfo")
        return dict(infos[0].metadata)


def bad_request(c):
    a = c.api
    e, s = c.fail(lambda: a.create_order(c.cust, [(a.new_product(100, 5), 0)]),
                  c.SC.INVALID_ARGUMENT, "quantity 0")
    check(s is not None, "no details for %s", e.details())
    br = c.unpack(s, c.ed.BadRequest)
    eq([(v.field, v.description) for b in br for v in b.field_violations],
       [("lines[0].quantity", "must be > 0")], "field violations")
    eq(e.details(), "lines[0].quantity: must be > 0", "message")
    # the same rule in another service
    e, s = c.fail(lambda: a.get_customer(""), c.SC.INVALID_ARGUMENT, "GetCustomer id ''")
    check(s is not None, "no details for %s", e.details())
    fields = [v.field for b in c.unpack(s, c.ed.BadRequest) for v in b.field_violations]
    eq(fields, ["id"], "GetCustomer field violations (%s)" % e.details())


def insufficient_stock(c):
    a = c.api
    sku = a.new_product(100, 3)
    e, s = c.fail(lambda: a.create_order(c.cust, [(sku, 5)]), c.SC.FAILED_PRECONDITION,
                  "5 of 3")
    check(s is not None, "no details for %s", e.details())
    pf = c.unpack(s, c.ed.PreconditionFailure)
    eq([(v.type, v.subject, v.description) for p in pf for v in p.violations],
       [("STOCK", sku, "3 available, 5 requested")], "precondition violations")
    eq(c.info(s, "INSUFFICIENT_STOCK"), {"sku": sku, "available": "3", "requested": "5"},
       "ErrorInfo metadata")
    check("3 available, 5 requested" in e.details(), "message %r", e.details())
    # InventoryService.Reserve says the same
    ipb = c.env.stubs.inventory_pb2
    req = ipb.ReserveRequest(order_id=oi.uniq("res"),
                             lines=[ipb.ReserveLine(sku=sku, quantity=4)])
    e, s = c.fail(lambda: a.inv.Reserve(req, timeout=T), c.SC.FAILED_PRECONDITION,
                  "Reserve 4 of 3")
    check(s is not None, "Reserve: no details for %s", e.details())
    eq(c.info(s, "INSUFFICIENT_STOCK"), {"sku": sku, "available": "3", "requested": "4"},
       "Reserve ErrorInfo")


def illegal_transition(c):
    a = c.api
    o = a.create_order(c.cust, [(a.new_product(100, 5), 1)])
    e, s = c.fail(lambda: a.update(o.id, a.opb.ORDER_STATUS_DELIVERED), c.SC.FAILED_PRECONDITION,
                  "PENDING -> DELIVERED")
    eq(e.details(), "order %s is PENDING; cannot become DELIVERED" % o.id, "message (said once)")
    eq(c.info(s, "ILLEGAL_TRANSITION"), {"order_id": o.id, "from": "PENDING", "to": "DELIVERED"},
       "ErrorInfo metadata")


def version_mismatch(c):
    a = c.api
    o = a.create_order(c.cust, [(a.new_product(100, 5), 1)])
    e, s = c.fail(lambda: a.cancel(o.id, expected_version=7), c.SC.ABORTED, "version 7")
    eq(e.details(), "order %s is at version 1, not 7" % o.id, "message (said once)")
    eq(c.info(s, "VERSION_MISMATCH"),
       {"order_id": o.id, "version": "1", "expected_version": "7"}, "ErrorInfo metadata")


def customer_suspended(c):
    a = c.api
    cid = a.new_customer().id
    a.set_customer_status(cid, a.cpb.CUSTOMER_STATUS_SUSPENDED)
    e, s = c.fail(lambda: a.create_order(cid, [(a.new_product(100, 5), 1)]),
                  c.SC.FAILED_PRECONDITION, "suspended customer")
    eq(c.info(s, "CUSTOMER_SUSPENDED"), {"customer_id": cid}, "ErrorInfo metadata")


def key_reused(c):
    a = c.api
    sku = a.new_product(100, 5)
    key = oi.uniq("key")
    a.create_order(c.cust, [(sku, 1)], key=key)
    e, s = c.fail(lambda: a.create_order(c.cust, [(sku, 2)], key=key), c.SC.INVALID_ARGUMENT,
                  "key with another request")
    eq(e.details(), "idempotency key reused with a different request", "message")
    eq(c.info(s, "IDEMPOTENCY_KEY_REUSED"), {"customer_id": c.cust}, "ErrorInfo metadata")
    eq(c.unpack(s, c.ed.BadRequest), [], "no field violation besides the reason")


def not_found(c):
    e, s = c.fail(lambda: c.api.get_order("o-987654321"), c.SC.NOT_FOUND, "unknown order")
    check(s is None, "NOT_FOUND with details: %s", s)


def wire(c):
    """The raw answer: a Trailers-Only response whose details are unpadded base64."""
    a = c.api
    sku = a.new_product(100, 1)
    req = a.order_req(c.cust, [(sku, 2)]).SerializeToString()
    with h2raw.H2Client("127.0.0.1", c.server.port, ca=c.server.ca_path(), timeout=T) as cl:
        sid = cl.start("/oms.v1.OrderService/CreateOrder", body=h2raw.grpc_frame(req))
        st = cl.wait_stream(sid)
    check(st.trailers_only, "want Trailers-Only: %s", st.describe())
    eq(st.grpc_status, 9, "grpc-status (%s)" % st.describe())
    v = (st.headers or {}).get(DETAILS_KEY)
    check(v, "no %s header: %s", DETAILS_KEY, st.describe())
    check("=" not in v, "padded base64: %r", v)
    s = c.st.Status()
    s.ParseFromString(base64.b64decode(v + "=" * (-len(v) % 4)))
    eq(s.code, 9, "Status.code")


CASES = [("bad_request", bad_request), ("insufficient_stock", insufficient_stock),
         ("illegal_transition", illegal_transition), ("version_mismatch", version_mismatch),
         ("customer_suspended", customer_suspended), ("key_reused", key_reused),
         ("not_found", not_found), ("wire", wire)]


def split(env, status_pb2, details_pb2):
    """Split mode (h2c): the inventory process's INSUFFICIENT_STOCK details come
    back through the order service."""
    inv = oi.start_server(env, "details-inventory", h2c=True,
                          extra=["--services", "inventory", "--no-demo-data"])
    cus = oi.start_server(env, "details-customers", h2c=True,
                          extra=["--services", "customers", "--no-demo-data"])
    ords = oi.start_server(env, "details-orders", h2c=True, extra=[
        "--services", "orders", "--no-demo-data", "--peer-h2c",
        "--inventory-target", "127.0.0.1:%d" % inv.port,
        "--customers-target", "127.0.0.1:%d" % cus.port])
    apis = []
    try:
        ia, ca, oa = (oi.api_for(env, s) for s in (inv, cus, ords))
        apis = [ia, ca, oa]
        sku = ia.new_product(100, 2)
        cid = ca.new_customer().id
        c = Ctx.__new__(Ctx)
        c.env, c.api, c.grpc = env, oa, env.stubs.grpc
        c.SC, c.st, c.ed = c.grpc.StatusCode, status_pb2, details_pb2
        e, s = c.fail(lambda: oa.create_order(cid, [(sku, 3)]), c.SC.FAILED_PRECONDITION,
                      "split: 3 of 2")
        check(s is not None, "split: no details for %s", e.details())
        eq(c.info(s, "INSUFFICIENT_STOCK"), {"sku": sku, "available": "2", "requested": "3"},
           "split: ErrorInfo metadata")
        pf = c.unpack(s, c.ed.PreconditionFailure)
        eq([(v.type, v.subject) for p in pf for v in p.violations], [("STOCK", sku)],
           "split: precondition")
    finally:
        for a in apis:
            a.close()
        for s in (ords, cus, inv):
            env.suite.stop_server(s)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    args = p.parse_args()
    with h.Env("error_details", args) as env:
        status_pb2, details_pb2 = load_rpc_protos(env.workdir)
        for tr in env.transports:
            server = oi.start_server(env, "omsd-%s" % tr, h2c=(tr == "h2c"))
            c = Ctx(env, server, status_pb2, details_pb2)
            for name, fn in CASES:
                env.suite.run("%s.%s" % (tr, name), fn, c)
            c.api.close()
            env.suite.stop_server(server)
        if "h2c" in env.transports:
            env.suite.run("h2c.split", split, env, status_pb2, details_pb2)


if __name__ == "__main__":
    main()
