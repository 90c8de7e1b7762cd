#!/usr/bin/python3
"""Abuse and resource limits (REFERENCE.md section 3): slow readers must not
grow server memory, HTTP/2 floods (rapid reset, CONTINUATION, PING, SETTINGS,
empty DATA) must be contained, fd exhaustion must not kill the server, and many
connections at once are served.

Memory is judged from the server's VmRSS (/proc/PID/status): growth must stay
far below what unbounded buffering of the requested data would cost.
Every case ends with a healthy-call check (fresh channel, EmptyCall).
"""

import os
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402
import h2raw  # noqa: E402
import hpack  # noqa: E402

T = h.RPC_TIMEOUT
EMPTY = "/grpc.testing.TestService/EmptyCall"
SOC = "/grpc.testing.TestService/StreamingOutputCall"
FDX = "/grpc.testing.TestService/FullDuplexCall"
WATCH = "/oms.bench.v1.OrderBench/WatchOrders"
MB = 1024


def frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


SETTINGS_EMPTY = frame(4, 0, 0)
END_STREAM, END_HEADERS = 0x1, 0x4


class Ctx:
    def __init__(self, env, server):
        self.env, self.server, self.S = env, server, env.stubs
        self.m = self.S.messages_pb2

    def healthy(self):
        s = self.server
        check(s.alive(), "server died (rc=%s); log tail:\n%s", s.proc.poll(), s.log_tail(30))
        ch = s.channel()
        try:
            self.S.test_pb2_grpc.TestServiceStub(ch).EmptyCall(self.S.empty_pb2.Empty(), timeout=T)
        except self.S.grpc.RpcError as e:
            raise h.Failure("healthy EmptyCall afterwards failed: %s" % h.rpc_error_str(e))
        finally:
            ch.close()

    def sock(self, rcvbuf=None):
        """Raw socket (TLS with ALPN h2 if the server is TLS), optionally with a tiny
        receive buffer so that the server's writes back up quickly."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(5)
        s.connect(("127.0.0.1", self.server.port))
        if self.server.h2c:
            return s
        ctx = ssl.create_default_context(cafile=self.server.ca_path())
        ctx.set_alpn_protocols(["h2"])
        return ctx.wrap_socket(s, server_hostname="localhost")

    def headers_block(self, enc, path, extra=()):
        hs = [(":method", "POST"), (":scheme", "http" if self.server.h2c else "https"),
              (":path", path), (":authority", "localhost"), ("content-type", "application/grpc"),
              ("te", "trailers")] + list(extra)
        return enc.encode(hs)


def _rss_growth(c, fn, settle=2.0):
    base = c.server.rss_kb()
    fn()
    time.sleep(settle)
    now = c.server.rss_kb()
    return base, now


def _send_until_blocked(s, data, seconds):
    """Sends data; returns bytes sent before the peer stopped reading or closed."""
    s.settimeout(seconds)
    sent = 0
    view = memoryview(data)
    try:
        while sent < len(data):
            n = s.send(view[sent:sent + 65536])
            if n == 0:
                break
            sent += n
    except (socket.timeout, ssl.SSLWantWriteError):
        pass
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        pass
    return sent


# ------------------------------------------------------------------ slow readers


def slow_reader_streaming_output(c):
    """4 streams x 100 x 1 MB responses to a client that never reads: the server
    must stop at the flow-control window, not buffer 400 MB."""
    m = c.m
    req = m.StreamingOutputCallRequest(
        response_parameters=[m.ResponseParameters(size=1000000) for _ in range(100)])
    body = h2raw.grpc_frame(req.SerializeToString())
    s = c.sock(rcvbuf=4096)
    enc = hpack.Encoder()
    out = h2raw.PREFACE + SETTINGS_EMPTY
    for i in range(4):
        sid = 2 * i + 1
        out += frame(1, END_HEADERS, sid, c.headers_block(enc, SOC))
        out += frame(0, END_STREAM, sid, body)

    def go():
        s.sendall(out)
    try:
        base, now = _rss_growth(c, go, settle=3.0)
        growth = (now - base) // MB
        print("# slow reader (StreamingOutputCall 4x100MB): RSS %d -> %d MB" % (base // MB, now // MB))
        check(growth < 150, "server RSS grew by %d MB for a reader that reads nothing "
              "(400 MB requested): responses are buffered without bound", growth)
    finally:
        s.close()
    time.sleep(0.5)


UNARY = "/grpc.testing.TestService/UnaryCall"


def _bound_mb(c, mb):
    """An RSS growth bound: as given, plus ASan's quarantine (256 MB of freed
    memory it keeps by design) when the server is a sanitizer build."""
    sanitized = c.env.args.server == "omsd" and oi.is_sanitized(c.env.args.omsd)
    return mb + (256 if sanitized else 0)


def unread_unary_4mib(c):
    """1,000 UnaryCalls asking for 4 MiB each on one connection that reads
    nothing (4 GB if every response were queued): the connection's send
    budget stops starting handlers, so RSS grows by far less than 256 MB, a
    good client on another connection keeps its latency, and the memory goes
    back once the peer leaves."""
    m = c.m
    req = m.SimpleRequest(response_size=4 << 20, payload=m.Payload(body=b"x"))
    body = h2raw.grpc_frame(req.SerializeToString())
    s = c.sock(rcvbuf=4096)
    enc = hpack.Encoder()
    out = [h2raw.PREFACE, SETTINGS_EMPTY]
    for i in range(1000):
        sid = 2 * i + 1
        out.append(frame(1, END_HEADERS, sid, c.headers_block(enc, UNARY)))
        out.append(frame(0, END_STREAM, sid, body))
    out = b"".join(out)
    base = c.server.rss_kb()
    try:
        _send_until_blocked(s, out, 10)
        # a well-behaved client on its own connection meanwhile, for 3 s, with
        # the server's RSS sampled all along (the handlers run meanwhile)
        ch = c.server.channel()
        stub = c.S.test_pb2_grpc.TestServiceStub(ch)
        worst, peak = 0.0, base
        end = time.monotonic() + 3
        while time.monotonic() < end:
            t0 = time.monotonic()
            stub.EmptyCall(c.S.empty_pb2.Empty(), timeout=T)
            worst = max(worst, time.monotonic() - t0)
            peak = max(peak, c.server.rss_kb())
        ch.close()
        print("# unread UnaryCall 1000 x 4 MiB: RSS %d -> %d MB, good client's worst call %.0f ms"
              % (base // MB, peak // MB, worst * 1000))
        check((peak - base) // MB < _bound_mb(c, 256), "server RSS grew by %d MB for a peer "
              "that reads nothing (1000 x 4 MiB asked)", (peak - base) // MB)
        check(worst < 2.0, "a good client's EmptyCall took %.0f ms during the attack",
              worst * 1000)
    finally:
        s.close()
    # given back once the peer is gone (the connection's peak is trimmed);
    # not under sanitizers, whose quarantine keeps freed memory by design
    if c.env.args.server != "omsd" or oi.is_sanitized(c.env.args.omsd):
        return
    deadline = time.monotonic() + 10
    now = c.server.rss_kb()
    while (now - base) // MB >= 64 and time.monotonic() < deadline:
        time.sleep(0.2)
        now = c.server.rss_kb()
    print("# after the peer left: RSS %d MB" % (now // MB))
    check((now - base) // MB < 64, "RSS still %d MB above the start after the peer left",
          (now - base) // MB)


def unread_watch_streams(c):
    """1,000 live WatchOrders streams on one connection that reads nothing,
    while events flow: the send budget bounds the connection (not 256 KiB a
    stream)."""
    b = c.S.bench_pb2
    s = c.sock(rcvbuf=4096)
    enc = hpack.Encoder()
    out = [h2raw.PREFACE, SETTINGS_EMPTY]
    body = h2raw.grpc_frame(b.WatchRequest(count=100000000).SerializeToString())
    for i in range(1000):
        sid = 2 * i + 1
        out.append(frame(1, END_HEADERS, sid, c.headers_block(enc, WATCH)))
        out.append(frame(0, END_STREAM, sid, body))
    out = b"".join(out)
    base = c.server.rss_kb()
    try:
        _send_until_blocked(s, out, 10)
        c.healthy()
        # the watch streams produce as fast as they may for 3 s: RSS sampled
        peak = base
        end = time.monotonic() + 3
        while time.monotonic() < end:
            time.sleep(0.05)
            peak = max(peak, c.server.rss_kb())
        print("# unread WatchOrders x1000: RSS %d -> %d MB" % (base // MB, peak // MB))
        check((peak - base) // MB < _bound_mb(c, 96), "server RSS grew by %d MB for 1000 unread "
              "watch streams (the connection's send budget is 16 MiB)", (peak - base) // MB)
    finally:
        s.close()


def unread_watch_streams_4conns(c):
    """4 connections x 1,000 live WatchOrders streams that read nothing, on a
    server whose process send budget (--send-budget 24 MiB) is below the sum
    of the connections' own budgets (4 x 16 MiB): the process budget binds,
    and a good client on a fifth connection keeps its latency."""
    b = c.S.bench_pb2
    body = h2raw.grpc_frame(b.WatchRequest(count=100000000).SerializeToString())
    socks = []
    base = c.server.rss_kb()
    try:
        for _ in range(4):
            s = c.sock(rcvbuf=4096)
            socks.append(s)
            enc = hpack.Encoder()
            out = [h2raw.PREFACE, SETTINGS_EMPTY]
            for i in range(1000):
                sid = 2 * i + 1
                out.append(frame(1, END_HEADERS, sid, c.headers_block(enc, WATCH)))
                out.append(frame(0, END_STREAM, sid, body))
            _send_until_blocked(s, b"".join(out), 10)
        ch = c.server.channel()
        stub = c.S.test_pb2_grpc.TestServiceStub(ch)
        worst, peak = 0.0, base
        end = time.monotonic() + 3
        while time.monotonic() < end:
            t0 = time.monotonic()
            stub.EmptyCall(c.S.empty_pb2.Empty(), timeout=T)
            worst = max(worst, time.monotonic() - t0)
            peak = max(peak, c.server.rss_kb())
        ch.close()
        print("# unread WatchOrders 4 x 1000, --send-budget 24 MiB: RSS %d -> %d MB, good "
              "client's worst call %.0f ms" % (base // MB, peak // MB, worst * 1000))
        # 82 MB without the process budget (4 x 16 MiB queued); 42 MB with it
        check((peak - base) // MB < _bound_mb(c, 64), "server RSS grew by %d MB for 4 unread "
              "connections (process send budget 24 MiB)", (peak - base) // MB)
        check(worst < 2.0, "a good client's EmptyCall took %.0f ms during the attack",
              worst * 1000)
    finally:
        for s in socks:
            s.close()


def slow_reader_watch(c):
    """WatchOrders count=100M to a client that never reads: bounded memory."""
    b = c.S.bench_pb2
    s = c.sock(rcvbuf=4096)
    enc = hpack.Encoder()
    out = h2raw.PREFACE + SETTINGS_EMPTY
    body = h2raw.grpc_frame(b.WatchRequest(count=100000000).SerializeToString())
    for i in range(4):
        sid = 2 * i + 1
        out += frame(1, END_HEADERS, sid, c.headers_block(enc, WATCH))
        out += frame(0, END_STREAM, sid, body)

    def go():
        s.sendall(out)
    try:
        base, now = _rss_growth(c, go, settle=3.0)
        growth = (now - base) // MB
        print("# slow reader (WatchOrders 4x100M): RSS %d -> %d MB" % (base // MB, now // MB))
        check(growth < 150, "server RSS grew by %d MB for a watch reader that reads nothing",
              growth)
    finally:
        s.close()
    time.sleep(0.5)


def zero_window_then_cancel(c):
    """SETTINGS_INITIAL_WINDOW_SIZE=0: the server cannot send; the client resets
    after a while; the stream must be released and the connection keep working."""
    m = c.m
    with h2raw.H2Client("127.0.0.1", c.server.port, ca=c.server.ca_path(), timeout=T) as cl:
        cl.conn.update_settings({4: 0})  # INITIAL_WINDOW_SIZE
        cl.flush()
        cl.wait(lambda: cl.settings_acked, 5)
        req = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=100000)])
        sid = cl.start(SOC, body=h2raw.grpc_frame(req.SerializeToString()))
        cl.wait(lambda: cl.streams[sid].headers is not None, 2)
        time.sleep(0.5)
        check(not cl.streams[sid].data, "server sent DATA into a zero window")
        cl.reset(sid)
        # small unary response also needs window: open it with a WINDOW_UPDATE per stream
        sid = cl.start(EMPTY, body=h2raw.grpc_frame(b""))
        cl.conn.increment_flow_control_window(65535, stream_id=sid)
        cl.flush()
        eq(cl.wait_stream(sid).grpc_status, 0, "EmptyCall on the zero-window connection")


# ------------------------------------------------------------------ floods


def rapid_reset(c):
    """CVE-2023-44487: 5000 x (HEADERS + RST_STREAM) in one burst. The server may
    GOAWAY the connection; it must stay alive and serve others."""
    s = c.sock()
    enc = hpack.Encoder()
    out = [h2raw.PREFACE, SETTINGS_EMPTY]
    for i in range(5000):
        sid = 2 * i + 1
        out.append(frame(1, END_HEADERS, sid, c.headers_block(enc, FDX)))
        out.append(frame(3, 0, sid, (8).to_bytes(4, "big")))  # CANCEL
    t0 = time.monotonic()
    try:
        _send_until_blocked(s, b"".join(out), 10)
        data, closed = h2raw.read_all(s, timeout=3)
    finally:
        s.close()
    frames = h2raw.parse_frames(data)
    ga = [f for f in frames if f[0] == 7]
    note = ("GOAWAY code %d" % int.from_bytes(ga[0][3][4:8], "big")) if ga else \
        ("closed" if closed else "kept open")
    print("# rapid reset x5000: %s after %.2fs" % (note, time.monotonic() - t0))


def continuation_flood(c):
    """CVE-2024-28182: a header block split into ~4000 one-byte CONTINUATION frames.
    nghttp2's cap (8 by default) must end the connection quickly."""
    s = c.sock()
    enc = hpack.Encoder()
    block = c.headers_block(enc, EMPTY, [("x-pad", "a" * 4000)])
    out = [h2raw.PREFACE, SETTINGS_EMPTY, frame(1, 0, 1, block[:1])]
    for i in range(1, len(block)):
        out.append(frame(9, END_HEADERS if i == len(block) - 1 else 0, 1, block[i:i + 1]))
    try:
        _send_until_blocked(s, b"".join(out), 5)
        data, closed = h2raw.read_all(s, timeout=5)
    finally:
        s.close()
    frames = h2raw.parse_frames(data)
    ga = [f for f in frames if f[0] == 7]
    check(ga or closed, "connection still open after %d CONTINUATION frames (frames: %r)",
          len(block) - 1, [h2raw.FRAME_TYPES.get(f[0]) for f in frames][:10])
    answered = [f for f in frames if f[0] == 1 and f[2] == 1]
    check(not answered, "server answered the CONTINUATION-flooded request instead of "
          "refusing it")


def _flood_no_read(c, unit, count, what):
    s = c.sock(rcvbuf=4096)
    payload = h2raw.PREFACE + SETTINGS_EMPTY + unit * count
    base = c.server.rss_kb()
    try:
        sent = _send_until_blocked(s, payload, 5)
        time.sleep(1.0)
        now = c.server.rss_kb()
    finally:
        s.close()
    growth = (now - base) // MB
    print("# %s flood, never reading: sent %.1f of %.1f MB; server RSS %d -> %d MB"
          % (what, sent / 1e6, len(payload) / 1e6, base // MB, now // MB))
    check(growth < 100, "%s flood grew server RSS by %d MB", what, growth)


def ping_flood(c):
    """CVE-2019-9512: 400k PINGs (7 MB) while never reading the ACKs."""
    _flood_no_read(c, frame(6, 0, 0, b"12345678"), 400000, "PING")


def settings_flood(c):
    """CVE-2019-9515: 600k empty SETTINGS frames while never reading the ACKs."""
    _flood_no_read(c, SETTINGS_EMPTY, 600000, "SETTINGS")


def empty_data_flood(c):
    """CVE-2019-9518: 300k empty DATA frames on one open stream."""
    s = c.sock()
    enc = hpack.Encoder()
    out = h2raw.PREFACE + SETTINGS_EMPTY + frame(1, END_HEADERS, 1, c.headers_block(enc, FDX))
    out += frame(0, 0, 1) * 300000
    t0 = time.monotonic()
    try:
        sent = _send_until_blocked(s, out, 10)
    finally:
        s.close()
    print("# empty DATA flood: %.1f MB sent in %.2fs" % (sent / 1e6, time.monotonic() - t0))


def header_table_churn(c):
    """2000 requests on one connection, each with new literal headers indexed into
    the HPACK table (table-size churn); all answered."""
    with h2raw.H2Client("127.0.0.1", c.server.port, ca=c.server.ca_path(), timeout=T) as cl:
        sids = []
        for i in range(2000):
            sids.append(cl.start(EMPTY, body=h2raw.grpc_frame(b""),
                                 extra=[("x-churn-%d" % i, "v" * (i % 300))]))
            if len(sids) >= 50:
                for s in sids:
                    eq(cl.wait_stream(s).grpc_status, 0, "stream %d" % s)
                    del cl.streams[s]
                sids = []
        for s in sids:
            eq(cl.wait_stream(s).grpc_status, 0, "stream %d" % s)


def many_streams_one_connection(c):
    """900 concurrent bidi streams on one connection (default limit 1000), each
    answered after all are open."""
    m = c.m
    req = h2raw.grpc_frame(m.StreamingOutputCallRequest(
        response_parameters=[m.ResponseParameters(size=16)]).SerializeToString())
    with h2raw.H2Client("127.0.0.1", c.server.port, ca=c.server.ca_path(), timeout=T) as cl:
        cl.wait_settings(5)
        sids = [cl.start(FDX, end=False) for _ in range(900)]
        for sid in sids:
            cl.send_data(sid, req, end=True)
        bad = []
        for sid in sids:
            st = cl.wait_stream(sid)
            if st.grpc_status != 0 or len(st.messages()) != 1:
                bad.append(st.describe())
        check(not bad, "%d of 900 streams failed: %s", len(bad), bad[:2])


# ------------------------------------------------------------------ connections


def many_connections(c):
    """200 connections at once, each with one EmptyCall."""
    errors = []

    def one():
        try:
            with h2raw.H2Client("127.0.0.1", c.server.port, ca=c.server.ca_path(),
                                timeout=T) as cl:
                sid = cl.start(EMPTY, body=h2raw.grpc_frame(b""))
                st = cl.wait_stream(sid)
                if st.grpc_status != 0:
                    errors.append(st.describe())
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(200)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T * 2)
    check(not errors, "%d of 200 connections failed: %s", len(errors), errors[:3])


def fd_exhaustion(c):
    """Server started with RLIMIT_NOFILE=64: 150 idle connections exhaust its fds.
    It must survive (libuv reports EMFILE to the connection callback) and serve
    again once they are closed."""
    socks = []
    try:
        for _ in range(150):
            try:
                socks.append(socket.create_connection(("127.0.0.1", c.server.port), timeout=2))
            except OSError:
                break
        time.sleep(1.0)
        check(c.server.alive(), "server died with %d connections and 64 fds; log:\n%s",
              len(socks), c.server.log_tail(20))
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)


CASES = [
    ("slow_reader.streaming_output", slow_reader_streaming_output, ("tls", "h2c")),
    ("slow_reader.watch_orders", slow_reader_watch, ("tls", "h2c")),
    ("zero_window_then_cancel", zero_window_then_cancel, ("tls", "h2c")),
    ("unread.unary_4mib_x1000", unread_unary_4mib, ("h2c", "tls")),
    ("unread.watch_streams_x1000", unread_watch_streams, ("h2c",)),
    ("flood.rapid_reset", rapid_reset, ("h2c", "tls")),
    ("flood.continuation", continuation_flood, ("h2c", "tls")),
    ("flood.ping_no_read", ping_flood, ("h2c", "tls")),
    ("flood.settings_no_read", settings_flood, ("h2c",)),
    ("flood.empty_data", empty_data_flood, ("h2c",)),
    ("hpack_churn", header_table_churn, ("h2c",)),
    ("many_connections", many_connections, ("tls", "h2c")),
    ("many_streams_one_connection", many_streams_one_connection, ("tls", "h2c")),
]


# gRPC core (the ref server) has no CONTINUATION cap and stalls after EMFILE.
REF_LAX = {
    "flood.continuation": "grpc core has no CONTINUATION cap",
    "fd_exhaustion": "grpc core does not recover from EMFILE within the deadline",
}


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("stress", args) as env:
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"))
            c = Ctx(env, server)
            for name, fn, trs in CASES:
                if tr in trs:
                    env.suite.run("%s.%s" % (tr, name), lambda: (fn(c), c.healthy()),
                                  xfail=REF_LAX.get(name) if args.server == "ref" else None)
            env.suite.stop_server(server)
        if env.suite.selected("unread.watch_streams_4conns") and args.server == "omsd":
            server = env.server(h2c=True, name="omsd-budget",
                                extra_args=("--send-budget", str(24 << 20)))
            c = Ctx(env, server)
            env.suite.run("h2c.unread.watch_streams_4conns",
                          lambda: (unread_watch_streams_4conns(c), c.healthy()))
            env.suite.stop_server(server)
        if env.suite.selected("fd_exhaustion"):
            server = env.server(h2c=True, name="%s-64fds" % args.server, nofile=64)
            c = Ctx(env, server)
            env.suite.run("h2c.fd_exhaustion", lambda: (fd_exhaustion(c), c.healthy()),
                          xfail=REF_LAX["fd_exhaustion"] if args.server == "ref" else None)
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
