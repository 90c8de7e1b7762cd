#!/usr/bin/python3
"""omsd --metrics-listen: the admin listener and its Prometheus metrics.

- /healthz 200, /readyz 200 while serving, 404 on other paths, 405 on other
  methods, 400 on garbage; keep-alive (two requests on one connection).
- N calls of known codes (EmptyCall OK, Health.Check NOT_FOUND, a
  server-streaming call, random unknown methods): grpc_server_started_total,
  _handled_total (by grpc_code), _msg_received/_sent_total and the
  _handling_seconds histogram count rose by exactly what the client did, with
  the right grpc_type/grpc_service/grpc_method labels; unknown methods all
  land in grpc_service="unknown", grpc_method="unknown".
- `promtool check metrics` (Debian's prometheus package) accepts the output;
  a failure if promtool is missing (scripts/deps.sh installs it).
- TLS: a handshake and a failed one (plain HTTP on the TLS port) are counted.
- Split mode: the order process's calls to its peers appear as
  grpc_client_handled_total.
- /readyz answers 503 during the drain (SIGTERM with a stream open), while
  the stream still finishes; connections closed by every reason are counted
  under their label (peer, idle, limit, flood, protocol_error,
  keepalive_timeout, age, tls_error, drain).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
import h2raw  # noqa: E402
from omsd import check, eq  # noqa: E402

T = h.RPC_TIMEOUT
ADMIN_RE = re.compile(r"admin: /metrics, /healthz, /readyz on port (\d+)")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def admin_port(server):
    """The admin port, from the server's log line (written before the
    'listening on' line is printed, so present once start() returned)."""
    m = ADMIN_RE.search(server.log_text())
    check(m is not None, "no admin line in the server log")
    return int(m.group(1))


def get(port, path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=T)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def parse(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m is not None, "unparsable line %r", line)
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def scrape(port):
    st, hd, body = get(port, "/metrics")
    eq(st, 200, "/metrics status")
    eq(hd.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8", "content type")
    return body.decode(), parse(body.decode())


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def lbl(svc, meth, typ):
    return dict(grpc_service=svc, grpc_method=meth, grpc_type=typ)


class Ctx:
    def __init__(self, env):
        self.env = env
        self.s = env.server(h2c=True, extra_args=["--metrics-listen", "127.0.0.1:0",
                                                   "--workers", "2"], name="metrics")
        self.port = admin_port(self.s)


def endpoints(c):
    st, _, body = get(c.port, "/healthz")
    eq((st, body), (200, b"ok\n"), "/healthz")
    st, _, body = get(c.port, "/readyz")
    eq((st, body), (200, b"ready\n"), "/readyz")
    st, _, _ = get(c.port, "/nope")
    eq(st, 404, "unknown path")
    st, hd, _ = get(c.port, "/metrics", method="POST")
    eq((st, hd.get("Allow")), (405, "GET"), "POST /metrics")
    # keep-alive: two requests, one connection
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=T)
    conn.request("GET", "/healthz")
    r1 = conn.getresponse()
    r1.read()
    conn.request("GET", "/readyz")
    r2 = conn.getresponse()
    r2.read()
    conn.close()
    eq((r1.status, r2.status), (200, 200), "keep-alive")
    # garbage
    with socket.create_connection(("127.0.0.1", c.port), timeout=T) as sk:
        sk.sendall(b"\x00\x01 nonsense\r\n\r\n")
        data = b""
        while True:
            b = sk.recv(4096)
            if not b:
                break
            data += b
    check(data.startswith(b"HTTP/1.1 400 "), "garbage got %r", data[:60])


def zero_series(c):
    """Right after start, before any call: every registered method has its
    series at 0 with its real grpc_type (dashboards and absent() alerts see
    them); no "unknown" row yet."""
    text, now = scrape(c.port)
    g = "grpc.testing.TestService"
    want = {
        ("EmptyCall", g, "unary"), ("StreamingOutputCall", g, "server_stream"),
        ("StreamingInputCall", g, "client_stream"), ("FullDuplexCall", g, "bidi_stream"),
        ("Check", "grpc.health.v1.Health", "unary"), ("Watch", "grpc.health.v1.Health", "server_stream"),
    }
    for meth, svc, typ in sorted(want):
        key = lbl(svc, meth, typ)
        for name in ("grpc_server_started_total", "grpc_server_msg_received_total",
                     "grpc_server_msg_sent_total", "grpc_server_handling_seconds_count"):
            check((name, frozenset(key.items())) in now, "no %s for %s/%s (%s) at start",
                  name, svc, meth, typ)
            eq(now[(name, frozenset(key.items()))], 0, "%s %s" % (name, meth))
        k = frozenset(dict(key, grpc_code="OK").items())
        eq(now.get(("grpc_server_handled_total", k)), 0, "handled OK %s" % meth)
    check('grpc_method="unknown"' not in text, "an unknown row before any call")
    started = [k for k in now if k[0] == "grpc_server_started_total"]
    check(all(now[k] == 0 for k in started), "a started count above 0 before any call")
    print("# %d methods with zero series at start" % len(started))


def counters(c):
    S, grpc = c.env.stubs, c.env.stubs.grpc
    _, before = scrape(c.port)
    ch = c.s.channel()
    test = S.test_pb2_grpc.TestServiceStub(ch)
    health = S.health_pb2_grpc.HealthStub(ch)
    n_ok, n_nf, n_unknown = 7, 3, 4
    for _ in range(n_ok):
        test.EmptyCall(S.empty_pb2.Empty(), timeout=T)
    for _ in range(n_nf):
        try:
            health.Check(S.health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=T)
            raise h.Failure("Health.Check of an unknown service succeeded")
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.NOT_FOUND, "Health.Check unknown")
    for i in range(n_unknown):
        m = ch.unary_unary("/random%d.Svc/Method%d" % (i, i))
        try:
            m(b"", timeout=T)
            raise h.Failure("an unknown method succeeded")
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.UNIMPLEMENTED, "unknown method")
    mp = S.messages_pb2
    req = mp.StreamingOutputCallRequest(response_parameters=[
        mp.ResponseParameters(size=10) for _ in range(3)])
    eq(len(list(test.StreamingOutputCall(req, timeout=T))), 3, "stream responses")
    ch.close()
    text, after = scrape(c.port)

    def d(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    e = lbl("grpc.testing.TestService", "EmptyCall", "unary")
    eq(d("grpc_server_started_total", **e), n_ok, "EmptyCall started")
    eq(d("grpc_server_handled_total", grpc_code="OK", **e), n_ok, "EmptyCall handled OK")
    eq(d("grpc_server_msg_received_total", **e), n_ok, "EmptyCall msg received")
    eq(d("grpc_server_msg_sent_total", **e), n_ok, "EmptyCall msg sent")
    eq(d("grpc_server_handling_seconds_count", **e), n_ok, "EmptyCall histogram count")
    eq(d("grpc_server_handling_seconds_bucket", le="+Inf", **e), n_ok, "EmptyCall +Inf bucket")
    hc = lbl("grpc.health.v1.Health", "Check", "unary")
    eq(d("grpc_server_handled_total", grpc_code="NotFound", **hc), n_nf, "Check NotFound")
    eq(d("grpc_server_handled_total", grpc_code="OK", **hc), 0, "Check OK")
    u = lbl("unknown", "unknown", "unknown")
    eq(d("grpc_server_started_total", **u), n_unknown, "unknown started")
    eq(d("grpc_server_handled_total", grpc_code="Unimplemented", **u), n_unknown,
       "unknown Unimplemented")
    check(not re.search(r'grpc_method="Method\d"', text), "a random method name became a label")
    so = lbl("grpc.testing.TestService", "StreamingOutputCall", "server_stream")
    eq(d("grpc_server_msg_sent_total", **so), 3, "StreamingOutputCall msgs sent")
    eq(d("grpc_server_handled_total", grpc_code="OK", **so), 1, "StreamingOutputCall handled")
    check(any(k[0] == "oms_build_info" for k in after), "oms_build_info missing")
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "process_start_time_seconds"):
        check(val(after, name) > 0 or name == "process_cpu_seconds_total", "%s missing", name)
    # transport: our channel's connection was accepted and its streams counted
    check(d("oms_http2_connections_accepted_total") >= 1, "no accepted connection counted")
    n_streams = n_ok + n_nf + n_unknown + 1
    eq(d("oms_http2_streams_total"), n_streams, "streams opened")
    check(d("oms_http2_received_bytes_total") > 0 and d("oms_http2_sent_bytes_total") > 0,
          "bytes in/out")
    for name in ("oms_store_commit_seconds_count", "oms_store_queue_depth",
                 "oms_events_sent_total", "oms_tls_handshakes_total"):
        check(any(k[0] == name for k in after), "%s missing", name)
    eq(val(after, "oms_store_available"), 1, "oms_store_available")
    c.last_text = text


def delivery_lag(c):
    """An order event handed to a WatchOrders stream is observed in
    oms_events_delivery_lag_seconds (the hub's stats are sampled each second:
    polled with a deadline)."""
    a = oi.Api(c.env.stubs, c.s.channel())
    try:
        cust = a.cust.CreateCustomer(a.cpb.CreateCustomerRequest(
            name="Lag", email="lag-%d@example.com" % os.getpid()), timeout=T).id
        sku = "SKU-LAG-%d" % os.getpid()
        a.inv.UpsertProduct(a.ipb.UpsertProductRequest(sku=sku, name="lag", unit_price_cents=1),
                            timeout=T)
        a.inv.AdjustStock(a.ipb.AdjustStockRequest(sku=sku, delta=10), timeout=T)
        oid = a.ord.CreateOrder(a.opb.CreateOrderRequest(
            customer_id=cust, lines=[a.opb.CreateOrderLine(sku=sku, quantity=1)]), timeout=T).id
        it = a.ord.WatchOrders(a.opb.WatchOrdersRequest(order_ids=[oid], since_seq=1), timeout=T)
        ev = next(it)
        it.cancel()
        eq(ev.order_id, oid, "the watched order's event")
    finally:
        a.close()
    deadline = time.monotonic() + 10
    while True:
        text, now = scrape(c.port)
        n = val(now, "oms_events_delivery_lag_seconds_count")
        if n >= 1 or time.monotonic() > deadline:
            break
    check(n >= 1, "no delivery lag observed")
    eq(val(now, "oms_events_delivery_lag_seconds_bucket", le="+Inf"), n, "+Inf bucket = count")
    s = val(now, "oms_events_delivery_lag_seconds_sum")
    check(0 <= s < 60 * n, "delivery lag sum %r for %d events", s, n)
    c.last_text = text


def promtool(c):
    tool = shutil.which("promtool")
    check(tool, "promtool not found: apt install prometheus (scripts/deps.sh installs it)")
    p = subprocess.run([tool, "check", "metrics"], input=c.last_text.encode(),
                       capture_output=True, timeout=60)
    eq((p.returncode, p.stdout + p.stderr), (0, b""), "promtool check metrics")


def split_client(env):
    inv = oi.start_server(env, "m-inventory", h2c=True,
                          extra=["--services", "inventory", "--no-demo-data"])
    cus = oi.start_server(env, "m-customers", h2c=True,
                          extra=["--services", "customers", "--no-demo-data"])
    ords = oi.start_server(env, "m-orders", h2c=True, extra=[
        "--services", "orders", "--no-demo-data", "--peer-h2c",
        "--inventory-target", "127.0.0.1:%d" % inv.port,
        "--customers-target", "127.0.0.1:%d" % cus.port,
        "--metrics-listen", "127.0.0.1:0"])
    port = admin_port(ords)
    ia, ca, oa = oi.api_for(env, inv), oi.api_for(env, cus), oi.api_for(env, ords)
    cu = ca.new_customer()
    a = ia.new_product(100, 10)
    _, before = scrape(port)
    oa.create_order(cu.id, [(a, 1)])
    oa.create_order(cu.id, [(a, 2)])
    text, after = scrape(port)
    check(val(after, "oms_store_commit_seconds_count") - val(before, "oms_store_commit_seconds_count")
          >= 2, "store commits of the two orders")
    g = lbl("oms.v1.CustomerService", "GetCustomer", "unary")
    r = lbl("oms.v1.InventoryService", "Reserve", "unary")
    got = (val(after, "grpc_client_handled_total", grpc_code="OK", **g)
           - val(before, "grpc_client_handled_total", grpc_code="OK", **g),
           val(after, "grpc_client_handled_total", grpc_code="OK", **r)
           - val(before, "grpc_client_handled_total", grpc_code="OK", **r))
    check(got[0] >= 1 and got[1] == 2, "client calls (GetCustomer, Reserve) rose by %r", got)
    check(val(after, "grpc_client_handling_seconds_count", **r) >= 2, "client histogram")
    for s in (ords, cus, inv):
        env.suite.stop_server(s)


def tls_transport(env):
    S = env.stubs
    s = env.server(h2c=False, extra_args=["--metrics-listen", "127.0.0.1:0"],
                   name="metrics-tls")
    port = admin_port(s)
    _, before = scrape(port)
    ch = s.channel()
    S.test_pb2_grpc.TestServiceStub(ch).EmptyCall(S.empty_pb2.Empty(), timeout=T)
    ch.close()
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        sk.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not a TLS ClientHello
        while sk.recv(4096):
            pass
    deadline = time.monotonic() + 10
    while True:  # the failure is counted once the server processed the bytes
        _, after = scrape(port)
        fails = val(after, "oms_tls_handshake_failures_total") - \
            val(before, "oms_tls_handshake_failures_total")
        if fails >= 1 or time.monotonic() > deadline:
            break
    eq(val(after, "oms_tls_handshakes_total") - val(before, "oms_tls_handshakes_total"), 1,
       "TLS handshakes")
    eq(fails, 1, "TLS handshake failures")
    eq(wait_closed(port, {"tls_error": 1}), dict({r: 0 for r in CLOSE_REASONS}, peer=1, tls_error=1),
       "connections closed by reason (the call's, then the failed handshake)")
    env.suite.stop_server(s)


CLOSE_REASONS = ["peer", "idle", "age", "limit", "flood", "protocol_error",
                 "keepalive_timeout", "drain", "tls_error", "other"]
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def closed_counts(port):
    _, now = scrape(port)
    return {r: val(now, "oms_http2_connections_closed_total", reason=r) for r in CLOSE_REASONS}


def wait_closed(port, want):
    """Scrapes until every reason in want reached its count (the close is
    counted on the server's loop after the client saw it), then returns the
    counts; bounded by a deadline, after which the caller's eq() reports."""
    deadline = time.monotonic() + 10
    while True:
        got = closed_counts(port)
        if all(got[r] >= n for r, n in want.items()) or time.monotonic() > deadline:
            return got


def close_reasons(env):
    """oms_http2_connections_closed_total{reason}: every reason present from
    the start (0), then exact counts after a peer close and an idle close."""
    s = env.server(h2c=True, extra_args=["--metrics-listen", "127.0.0.1:0",
                                         "--max-connection-idle", "1"],
                   name="metrics-close")
    port = admin_port(s)
    _, before = scrape(port)
    for r in CLOSE_REASONS:
        check(("oms_http2_connections_closed_total", frozenset({("reason", r)})) in before,
              "no closed_total series for reason %s at start", r)
        eq(val(before, "oms_http2_connections_closed_total", reason=r), 0, "closed " + r)
    zero = {r: 0 for r in CLOSE_REASONS}

    # peer: preface and SETTINGS, then the client closes
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        sk.sendall(H2_PREFACE)
    eq(wait_closed(port, {"peer": 1}), dict(zero, peer=1), "closed by peer")
    # idle: the client stays silent; the server's GOAWAY after 1 s closes it
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        sk.sendall(H2_PREFACE)
        while sk.recv(4096):  # until the server closes
            pass
    eq(wait_closed(port, {"idle": 1}), dict(zero, peer=1, idle=1), "closed by reason")
    env.suite.stop_server(s)


def read_to_eof(sk):
    try:
        while sk.recv(4096):
            pass
    except ConnectionResetError:  # the server closed with our bytes unread
        pass


def close_reasons_policy(env):
    """The reasons a connection policy decides, each counted once under its
    own label: over --max-connections (limit), a PING flood (flood), a bad
    frame (protocol_error), no preface within --handshake-timeout
    (keepalive_timeout), then --max-connection-age on another server (age)."""
    s = env.server(h2c=True, name="metrics-close-policy",
                   extra_args=["--metrics-listen", "127.0.0.1:0", "--max-connections", "1",
                               "--handshake-timeout", "1"])
    port = admin_port(s)
    want = {r: 0 for r in CLOSE_REASONS}

    # limit: a second connection while one is open is closed at once
    holder = h2raw.H2Client(s.host, s.port)
    holder.wait_settings()
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        read_to_eof(sk)
    want["limit"] += 1
    eq(wait_closed(port, {"limit": 1}), want, "closed over the connection cap")
    holder.close()
    want["peer"] += 1
    eq(wait_closed(port, {"peer": 1}), want, "the holder closed by the peer")

    # flood: PINGs with no call open, past the strikes
    c = h2raw.H2Client(s.host, s.port)
    for i in range(10):
        c.ping(b"%08d" % i)
        if c.wait(lambda: c.goaway is not None or c.closed, 0.3):
            break
    check(c.goaway is not None and c.goaway[0] == 0xb, "no ENHANCE_YOUR_CALM: %r", c.goaway)
    check(c.wait(lambda: c.closed, 10), "the pinging connection stayed open")
    c.close()
    want["flood"] += 1
    eq(wait_closed(port, {"flood": 1}), want, "closed for a PING flood")

    # protocol_error: a DATA frame on stream 0 after the preface
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        sk.sendall(H2_PREFACE + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        data, _ = h2raw.read_all(sk, timeout=T)
        frames = h2raw.parse_frames(data)
    check(any(f[0] == 7 for f in frames), "no GOAWAY for DATA on stream 0")
    want["protocol_error"] += 1
    eq(wait_closed(port, {"protocol_error": 1}), want, "closed for a protocol error")

    # keepalive_timeout: connected, but no preface within --handshake-timeout
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as sk:
        read_to_eof(sk)
    want["keepalive_timeout"] += 1
    eq(wait_closed(port, {"keepalive_timeout": 1}), want, "closed without a preface")
    env.suite.stop_server(s)

    a = env.server(h2c=True, name="metrics-close-age",
                   extra_args=["--metrics-listen", "127.0.0.1:0", "--max-connection-age", "1",
                               "--max-connection-age-grace", "1"])
    aport = admin_port(a)
    c = h2raw.H2Client(a.host, a.port)
    check(c.wait(lambda: c.closed, 10), "a connection past --max-connection-age stayed open")
    c.close()
    eq(wait_closed(aport, {"age": 1}), dict({r: 0 for r in CLOSE_REASONS}, age=1),
       "closed for its age")
    env.suite.stop_server(a)


def readyz_drain(env):
    S = env.stubs
    s = env.server(h2c=True, grace=8, extra_args=["--metrics-listen", "127.0.0.1:0"],
                   name="metrics-drain")
    port = admin_port(s)
    ch = s.channel()
    mp = S.messages_pb2
    req = mp.StreamingOutputCallRequest(response_parameters=[
        mp.ResponseParameters(size=10, interval_us=300000) for _ in range(10)])
    it = S.test_pb2_grpc.TestServiceStub(ch).StreamingOutputCall(req, timeout=T)
    next(it)
    idle = h2raw.H2Client(s.host, s.port)  # a connection without a call
    idle.wait_settings()
    eq(get(port, "/readyz")[0], 200, "/readyz before SIGTERM")
    s.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    st = None
    while time.monotonic() < deadline:  # the signal is handled asynchronously
        st, _, body = get(port, "/readyz")
        if st == 503:
            break
    eq((st, body), (503, b"draining\n"), "/readyz during the drain")
    eq(get(port, "/healthz")[0], 200, "/healthz during the drain")
    # the drain's GOAWAY closes the idle connection while the stream goes on
    # (python-h2 does not answer the drain PING: the final GOAWAY follows
    # after the server's 1 s ack wait, well before the stream's 3 s)
    check(idle.wait(lambda: idle.closed, 10), "the idle connection stayed open in the drain")
    idle.close()
    eq(wait_closed(port, {"drain": 1})["drain"], 1, "closed by the drain")
    rest = list(it)
    eq(len(rest), 9, "the open stream finished")
    ch.close()
    eq(s.wait(15), 0, "exit status after the drain")
    env.suite.stop_server(s)


def documented_names(c):
    """Every metric the Grafana dashboard queries and docs/OPERATIONS.md names
    is a family omsd exports (grpc_client_* only in split mode: checked by
    split_client)."""
    fams = set(re.findall(r"^# TYPE (\S+) ", c.last_text, re.M))
    src = c.env.args.source_dir
    with open(os.path.join(src, "contrib", "grafana", "oms.json")) as f:
        exprs = " ".join(t.get("expr", "") for p in json.load(f)["panels"]
                         for t in p.get("targets", []))
    with open(os.path.join(src, "docs", "OPERATIONS.md")) as f:
        ops = f.read()
    names = set(re.findall(r"\b((?:grpc_server|oms|process)_[a-z0-9_]+)", exprs + " " + ops))
    missing = sorted(n for n in names
                     if n not in fams and re.sub(r"_(bucket|sum|count)$", "", n) not in fams)
    eq(missing, [], "metric names in the dashboard or OPERATIONS.md that /metrics lacks")
    print("# %d documented metric names, all exported" % len(names))


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("metrics", args) as env:
        c = Ctx(env)
        env.suite.run("zero_series", zero_series, c)
        env.suite.run("endpoints", endpoints, c)
        env.suite.run("counters", counters, c)
        env.suite.run("delivery_lag", delivery_lag, c)
        if hasattr(c, "last_text"):
            env.suite.run("promtool", promtool, c)
            env.suite.run("documented_names", documented_names, c)
        env.suite.stop_server(c.s)
        env.suite.run("split_client", split_client, env)
        env.suite.run("tls_transport", tls_transport, env)
        env.suite.run("close_reasons", close_reasons, env)
        env.suite.run("close_reasons_policy", close_reasons_policy, env)
        env.suite.run("readyz_drain", readyz_drain, env)


if __name__ == "__main__":
    main()
