#!/usr/bin/python3
"""Logs, trace context and systemd readiness of omsd (issue 15 sections 2-4).

Cases (h2c servers; calls matched to their access-log lines by a unique
traceparent each):
  access.call_types    unary, empty, server/client/bidi streaming, an error
                       status, UNIMPLEMENTED (known service, unknown path), a
                       client-cancelled bidi: one JSON line each, with type,
                       status name and code, messages and bytes each way as the
                       client sent/received them, peer, time, duration.
  access.hostile_path  a raw HTTP/2 request whose :path holds a quote, a
                       backslash, invalid UTF-8 and valid UTF-8: the line is
                       valid JSON (and UTF-8), invalid bytes become U+FFFD.
  access.reopen        the file renamed, SIGHUP: later lines go to a new file.
  access.drops         the access log is a FIFO nobody reads and a small buffer:
                       calls keep finishing, lines are dropped and counted (a
                       warning with the count), read + dropped = calls made.
  trace.accepted / trace.generated / trace.invalid_ignored: a valid
                       traceparent's trace id is kept (its span becomes the
                       parent); none, or an invalid one (uppercase, zero ids,
                       version ff, wrong length, two headers), gets a new id.
  trace.split          orders + inventory + customers processes: CreateOrder and
                       CancelOrder with a traceparent; the same trace id is in
                       the access logs of all three (GetCustomer, Reserve,
                       Release), the peers' parent span is a new one.
  log.json             --log-format json --log-level debug: every stderr line is
                       a JSON object with time, level, component, msg.
  log.no_secrets       --jwt-secret-file, --log-level debug, --access-log: valid,
                       badly signed, garbage and under-scoped bearer tokens;
                       no 16-character slice of any token (nor the secret) in
                       the server log or the access log; principal = subject.
  notify.ready_stopping  NOTIFY_SOCKET = a unix datagram socket of the test:
                       READY=1 once listening, STOPPING=1 on SIGTERM.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import Failure, check, eq  # noqa: E402

T = h.RPC_TIMEOUT
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
FIELDS = ["time", "peer", "principal", "method", "type", "status", "code", "duration_us",
          "msgs_received", "bytes_received", "msgs_sent", "bytes_sent", "trace_id", "span_id",
          "parent_span_id"]


def new_tp():
    tid = os.urandom(16).hex()
    sid = os.urandom(8).hex()
    return tid, sid, "00-%s-%s-01" % (tid, sid)


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    data.decode("utf-8")  # strict: the file is valid UTF-8
    return [json.loads(l) for l in data.split(b"\n") if l]


def wait_for(fn, what, timeout=None):
    """Polls fn() until it returns something true (the writer thread is
    asynchronous), or fails after the timeout."""
    deadline = time.monotonic() + (timeout or T)
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for %s" % what)
        time.sleep(0.02)


def line_for(path, trace_id, method=None):
    def find():
        for l in read_lines(path):
            if l.get("trace_id") == trace_id and (method is None or l["method"] == method):
                return l
        return None
    return wait_for(find, "the access-log line of trace %s %s in %s" % (trace_id, method or "",
                                                                        path))


def wire(msgs):
    return sum(5 + len(m.SerializeToString()) for m in msgs)


class Ctx:
    def __init__(self, env):
        self.env = env
        self.S = env.stubs
        self.acc = os.path.join(env.workdir, "access-main.log")
        self.srv = env.server(h2c=True, name="main", extra_args=[
            "--access-log", self.acc, "--workers", "2", "--no-demo-data"])
        self.ch = self.srv.channel()
        self.test = self.S.test_pb2_grpc.TestServiceStub(self.ch)


def check_common(l, method, typ, status, code):
    eq(sorted(l.keys()), sorted(FIELDS), "fields of %s" % method)
    check(TIME_RE.match(l["time"]), "time %r", l["time"])
    check(l["peer"].startswith("127.0.0.1:"), "peer %r", l["peer"])
    eq((l["method"], l["type"], l["status"], l["code"]), (method, typ, status, code),
       "method/type/status/code")
    eq(l["principal"], None, "principal without auth")
    check(isinstance(l["duration_us"], int) and 0 <= l["duration_us"] < 60e6,
          "duration_us %r", l["duration_us"])
    check(HEX32.match(l["trace_id"]) and HEX16.match(l["span_id"]), "ids %r %r",
          l["trace_id"], l["span_id"])


def call_types(c):
    S, t = c.S, c.test
    M = S.messages_pb2
    svc = "/grpc.testing.TestService/"
    # unary
    tid, sid, tp = new_tp()
    req = M.SimpleRequest(response_size=10, payload=M.Payload(body=b"x" * 20))
    resp = t.UnaryCall(req, metadata=[("traceparent", tp)], timeout=T)
    l = line_for(c.acc, tid)
    check_common(l, svc + "UnaryCall", "unary", "OK", 0)
    eq((l["msgs_received"], l["bytes_received"], l["msgs_sent"], l["bytes_sent"]),
       (1, wire([req]), 1, wire([resp])), "unary counts")
    eq((l["parent_span_id"],), (sid,), "parent span = the caller's")
    check(l["span_id"] != sid, "a span of its own")
    # empty
    tid, _, tp = new_tp()
    t.EmptyCall(S.empty_pb2.Empty(), metadata=[("traceparent", tp)], timeout=T)
    l = line_for(c.acc, tid)
    check_common(l, svc + "EmptyCall", "unary", "OK", 0)
    eq((l["msgs_received"], l["bytes_received"], l["msgs_sent"], l["bytes_sent"]),
       (1, 5, 1, 5), "empty counts")
    # server streaming
    tid, _, tp = new_tp()
    req = M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=s)
                                                            for s in (1, 200, 3000)])
    out = list(t.StreamingOutputCall(req, metadata=[("traceparent", tp)], timeout=T))
    l = line_for(c.acc, tid)
    check_common(l, svc + "StreamingOutputCall", "server_streaming", "OK", 0)
    eq((l["msgs_received"], l["bytes_received"], l["msgs_sent"], l["bytes_sent"]),
       (1, wire([req]), 3, wire(out)), "server-streaming counts")
    # client streaming
    tid, _, tp = new_tp()
    reqs = [M.StreamingInputCallRequest(payload=M.Payload(body=b"y" * n)) for n in (1, 10, 100, 0)]
    resp = t.StreamingInputCall(iter(reqs), metadata=[("traceparent", tp)], timeout=T)
    l = line_for(c.acc, tid)
    check_common(l, svc + "StreamingInputCall", "client_streaming", "OK", 0)
    eq((l["msgs_received"], l["bytes_received"], l["msgs_sent"], l["bytes_sent"]),
       (4, wire(reqs), 1, wire([resp])), "client-streaming counts")
    # bidi
    tid, _, tp = new_tp()
    reqs = [M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=5)])
            for _ in range(2)]
    out = list(t.FullDuplexCall(iter(reqs), metadata=[("traceparent", tp)], timeout=T))
    l = line_for(c.acc, tid)
    check_common(l, svc + "FullDuplexCall", "bidi_streaming", "OK", 0)
    eq((l["msgs_received"], l["bytes_received"], l["msgs_sent"], l["bytes_sent"]),
       (2, wire(reqs), 2, wire(out)), "bidi counts")
    # an error status
    tid, _, tp = new_tp()
    req = M.SimpleRequest(response_status=M.EchoStatus(code=5, message="nope"))
    try:
        t.UnaryCall(req, metadata=[("traceparent", tp)], timeout=T)
        raise Failure("UnaryCall with response_status 5 succeeded")
    except c.S.grpc.RpcError as e:
        eq(e.code(), c.S.grpc.StatusCode.NOT_FOUND, "client saw")
    l = line_for(c.acc, tid)
    check_common(l, svc + "UnaryCall", "unary", "NOT_FOUND", 5)
    eq((l["msgs_received"], l["msgs_sent"]), (1, 0), "error counts")
    # unknown method
    tid, _, tp = new_tp()
    try:
        c.ch.unary_unary(svc + "NoSuchMethod")(b"", metadata=[("traceparent", tp)], timeout=T)
        raise Failure("unknown method succeeded")
    except c.S.grpc.RpcError as e:
        eq(e.code(), c.S.grpc.StatusCode.UNIMPLEMENTED, "client saw")
    l = line_for(c.acc, tid)
    check_common(l, svc + "NoSuchMethod", "unknown", "UNIMPLEMENTED", 12)
    # cancelled by the client after one response
    tid, _, tp = new_tp()

    def gen():
        yield M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=5)])
        time.sleep(T)  # never sends more: the client cancels
    it = t.FullDuplexCall(gen(), metadata=[("traceparent", tp)], timeout=T)
    next(it)
    it.cancel()
    l = line_for(c.acc, tid)
    check_common(l, svc + "FullDuplexCall", "bidi_streaming", "CANCELLED", 1)
    eq((l["msgs_received"], l["msgs_sent"]), (1, 1), "cancelled counts")


def hostile_path(c):
    path = b'/grpc.testing.TestService/x"\\\xff\xfe\xc3\xa9'
    tid, _, tp = new_tp()
    with _raw(c) as raw:
        sid = raw.start(path, body=h2raw.grpc_frame(b""), end=True,
                        extra=[("traceparent", tp)])
        st = raw.wait_stream(sid)
        eq(st.grpc_status, 12, "UNIMPLEMENTED")
    l = line_for(c.acc, tid)
    eq(l["method"], '/grpc.testing.TestService/x"\\\ufffd\ufffd\u00e9', "method as JSON")


class _raw:
    def __init__(self, c):
        self.c = h2raw.H2Client("127.0.0.1", c.srv.port)

    def __enter__(self):
        return self.c

    def __exit__(self, *a):
        self.c.close()


def trace_generated_and_invalid(c):
    S = c.S
    seen = set()
    for name, md in [("absent", []),
                     ("uppercase", [("traceparent",
                                     "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")]),
                     ("zero trace id", [("traceparent",
                                         "00-" + "0" * 32 + "-00f067aa0ba902b7-01")]),
                     ("zero span id", [("traceparent",
                                        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01")]),
                     ("version ff", [("traceparent",
                                      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
                     ("too long", [("traceparent",
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")]),
                     ("two headers", [("traceparent",
                                       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                                      ("traceparent",
                                       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")])]:
        before = len(read_lines(c.acc))
        c.test.UnaryCall(S.messages_pb2.SimpleRequest(response_size=10), metadata=md, timeout=T)

        def find():
            new = read_lines(c.acc)[before:]
            return new[0] if new else None
        l = wait_for(find, "the line of the %s case" % name)
        check(HEX32.match(l["trace_id"]) and l["trace_id"] != "0" * 32, "%s: trace id %r",
              name, l["trace_id"])
        check(l["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736", "%s: the invalid id was kept",
              name)
        eq(l["parent_span_id"], None, "%s: no parent" % name)
        seen.add(l["trace_id"])


def reopen(c):
    S = c.S
    tid1, _, tp1 = new_tp()
    c.test.EmptyCall(S.empty_pb2.Empty(), metadata=[("traceparent", tp1)], timeout=T)
    line_for(c.acc, tid1)
    rotated = c.acc + ".1"
    os.rename(c.acc, rotated)
    c.srv.signal(signal.SIGHUP)
    wait_for(lambda: "access-log: reopened" in c.srv.log_text(), "the reopen in the server log")
    tid2, _, tp2 = new_tp()
    c.test.EmptyCall(S.empty_pb2.Empty(), metadata=[("traceparent", tp2)], timeout=T)
    line_for(c.acc, tid2)
    eq([l["trace_id"] for l in read_lines(c.acc)], [tid2], "the new file holds the new line")
    check(tid2 not in [l["trace_id"] for l in read_lines(rotated)], "the old file got a new line")


def drops(env):
    fifo = os.path.join(env.workdir, "access.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists, but reads nothing yet
    srv = env.server(h2c=True, name="drops", extra_args=[
        "--access-log", fifo, "--access-log-buffer", "8192", "--workers", "1"])
    ch = srv.channel()
    try:
        t = env.stubs.test_pb2_grpc.TestServiceStub(ch)
        n = 800
        t0 = time.monotonic()
        for _ in range(n):
            t.EmptyCall(env.stubs.empty_pb2.Empty(), timeout=T)
        took = time.monotonic() - t0
        # the writer is stuck on the full pipe: calls went on all the same
        check(took < T, "%d calls took %.1fs", n, took)
        data = b""
        total_re = re.compile(r"access-log: (\d+) line\(s\) dropped.*\((\d+) in all\)")

        def settled():
            nonlocal data
            while True:
                try:
                    chunk = os.read(rfd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                data += chunk
            m = total_re.findall(srv.log_text())
            dropped = int(m[-1][1]) if m else 0
            return dropped and data.count(b"\n") + dropped == n
        wait_for(settled, "lines read + dropped = %d" % n)
        lines = [json.loads(l) for l in data.split(b"\n") if l]
        check(all(l["method"] == "/grpc.testing.TestService/EmptyCall" for l in lines),
              "lines read are whole JSON lines")
        check(0 < len(lines) < n, "%d of %d lines written", len(lines), n)
    finally:
        ch.close()
        os.close(rfd)


def trace_split(env):
    logs = {k: os.path.join(env.workdir, "access-%s.log" % k) for k in ("inv", "cus", "ord")}
    inv = oi.start_server(env, "t-inventory", h2c=True, extra=[
        "--services", "inventory", "--no-demo-data", "--access-log", logs["inv"]])
    cus = oi.start_server(env, "t-customers", h2c=True, extra=[
        "--services", "customers", "--no-demo-data", "--access-log", logs["cus"]])
    ords = oi.start_server(env, "t-orders", h2c=True, extra=[
        "--services", "orders", "--no-demo-data", "--peer-h2c", "--access-log", logs["ord"],
        "--inventory-target", "127.0.0.1:%d" % inv.port,
        "--customers-target", "127.0.0.1:%d" % cus.port])
    ia, ca, oa = oi.api_for(env, inv), oi.api_for(env, cus), oi.api_for(env, ords)
    try:
        cu = ca.new_customer()
        sku = ia.new_product(100, 5)
        tid, sid, tp = new_tp()
        o = oa.create_order(cu.id, [(sku, 2)], metadata=[("traceparent", tp),
                                                         ("tracestate", "oms=test")])
        lo = line_for(logs["ord"], tid, "/oms.v1.OrderService/CreateOrder")
        eq((lo["status"], lo["parent_span_id"]), ("OK", sid), "orders' line")
        lc = line_for(logs["cus"], tid, "/oms.v1.CustomerService/GetCustomer")
        li = line_for(logs["inv"], tid, "/oms.v1.InventoryService/Reserve")
        for what, l in (("customers", lc), ("inventory", li)):
            eq(l["status"], "OK", what)
            check(l["parent_span_id"] not in (None, sid, lo["span_id"]),
                  "%s: parent span %r: expected a new client span", what, l["parent_span_id"])
            check(l["span_id"] != lo["span_id"], "%s: own span", what)
        check(lc["parent_span_id"] != li["parent_span_id"], "one client span per peer call")
        # the compensating/cancel path: Release carries the CancelOrder's trace
        tid2, _, tp2 = new_tp()
        oa.ord.CancelOrder(oa.opb.CancelOrderRequest(id=o.id, reason="trace"),
                           metadata=[("traceparent", tp2)], timeout=T)
        line_for(logs["ord"], tid2, "/oms.v1.OrderService/CancelOrder")
        line_for(logs["inv"], tid2, "/oms.v1.InventoryService/Release")
    finally:
        for a in (ia, ca, oa):
            a.close()
        for s in (ords, cus, inv):
            env.suite.stop_server(s)


def log_json(env):
    srv = env.server(h2c=True, name="jsonlog", extra_args=[
        "--log-format", "json", "--log-level", "debug", "--no-demo-data"])
    ch = srv.channel()
    env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(), timeout=T)
    ch.close()
    problems = env.suite.stop_server(srv) or []
    lines = srv.log_text().splitlines()[1:]  # the first is the harness's "$ argv"
    check(len(lines) >= 3, "only %d log lines", len(lines))
    comps = set()
    for l in lines:
        try:
            j = json.loads(l)
        except ValueError:
            raise Failure("not a JSON line: %r" % l)
        eq(sorted(j.keys()), ["component", "level", "msg", "time"], "keys of %r" % l)
        check(j["level"] in ("debug", "info", "warn", "error"), "level %r", j["level"])
        check(TIME_RE.match(j["time"]), "time %r", j["time"])
        check(re.match(r"^[a-z][a-z0-9_-]*$", j["component"]), "component %r", j["component"])
        comps.add(j["component"])
    for want in ("store", "http2", "main"):
        check(want in comps, "no %s line (components %s)", want, sorted(comps))
    check(not problems, "%s", problems)


def no_secrets(env, omsctl):
    secret = os.path.join(env.workdir, "jwt.secret")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex())
    other = os.path.join(env.workdir, "other.secret")
    with open(other, "w") as f:
        f.write(os.urandom(32).hex())
    acc = os.path.join(env.workdir, "access-auth.log")

    def mint(key, sub, scope):
        r = subprocess.run([omsctl, "token", "--key", key, "--sub", sub, "--scope", scope],
                           capture_output=True, text=True, timeout=T)
        eq(r.returncode, 0, "omsctl token: %s" % r.stderr)
        return r.stdout.strip()
    good = mint(secret, "alice", "test customers:read")
    weak = mint(secret, "bob", "customers:read")
    forged = mint(other, "mallory", "test")
    garbage = "gArBaGe" + os.urandom(24).hex()
    srv = env.server(h2c=True, name="secrets", extra_args=[
        "--jwt-secret-file", secret, "--log-level", "debug", "--access-log", acc,
        "--no-demo-data"])
    ch = srv.channel()
    t = env.stubs.test_pb2_grpc.TestServiceStub(ch)
    SC = env.stubs.grpc.StatusCode
    want = {good: SC.OK, weak: SC.PERMISSION_DENIED, forged: SC.UNAUTHENTICATED,
            garbage: SC.UNAUTHENTICATED}
    for tok, code in want.items():
        try:
            t.EmptyCall(env.stubs.empty_pb2.Empty(),
                        metadata=[("authorization", "Bearer " + tok)], timeout=T)
            got = SC.OK
        except env.stubs.grpc.RpcError as e:
            got = e.code()
        eq(got, code, "call with token %s..." % tok[:8])
    ch.close()
    wait_for(lambda: len(read_lines(acc)) >= 4, "4 access-log lines")
    problems = env.suite.stop_server(srv) or []
    check(not problems, "%s", problems)
    lines = read_lines(acc)
    subs = sorted((str(l["principal"]), l["status"]) for l in lines)
    eq(subs, sorted([("alice", "OK"), ("bob", "PERMISSION_DENIED"), ("None", "UNAUTHENTICATED"),
                     ("None", "UNAUTHENTICATED")]), "principals and statuses")
    with open(acc, "rb") as f:
        text = f.read().decode() + srv.log_text()
    check("debug" in srv.log_text(), "the server log has debug lines")
    with open(secret) as f:
        sec = f.read().strip()
    for name, tok in (("good", good), ("weak", weak), ("forged", forged), ("garbage", garbage),
                      ("secret", sec)):
        for i in range(0, len(tok) - 16 + 1):
            piece = tok[i:i + 16]
            if piece in text:
                raise Failure("%s token slice %r at %d appears in a log" % (name, piece, i))


def notify(env):
    path = os.path.join(env.workdir, "notify.sock")
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sk.bind(path)
    sk.settimeout(T)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        srv = env.server(h2c=True, name="notify", extra_args=["--no-demo-data"])
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        msg = sk.recv(4096).decode()
        check("READY=1" in msg.split("\n"), "first notification %r", msg)
        srv.signal(signal.SIGTERM)
        msg = sk.recv(4096).decode()
        check("STOPPING=1" in msg.split("\n"), "notification after SIGTERM %r", msg)
        eq(srv.wait(T), 0, "exit status")
    finally:
        sk.close()


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--omsctl", help="omsctl binary (log.no_secrets mints tokens with it)")
    args = p.parse_args()
    with h.Env("logs", args) as env:
        c = Ctx(env)
        env.suite.run("access.call_types", call_types, c)
        env.suite.run("access.hostile_path", hostile_path, c)
        env.suite.run("trace.generated_and_invalid_ignored", trace_generated_and_invalid, c)
        env.suite.run("access.reopen", reopen, c)
        c.ch.close()
        env.suite.run("access.drops", drops, env)
        env.suite.run("trace.split", trace_split, env)
        env.suite.run("log.json", log_json, env)
        if args.omsctl:
            env.suite.run("log.no_secrets", no_secrets, env, args.omsctl)
        else:
            env.suite.record("log.no_secrets", False, "needs --omsctl")
        env.suite.run("notify.ready_stopping", notify, env)


if __name__ == "__main__":
    main()
