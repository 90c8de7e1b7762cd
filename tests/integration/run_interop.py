#!/usr/bin/python3
"""gRPC interop client (python grpcio) against omsd or ref_server.py.

Implements every non-auth case of grpc/grpc doc/interop-test-descriptions.md,
over TLS (ssl_channel_credentials with the temp CA, target localhost:PORT)
and/or h2c (insecure_channel), plus a few wire-level variants that grpcio's
API cannot express.

Compression, what is observable from grpcio:
  * client_compressed_*: grpcio compresses a whole call (compression=Gzip);
    the server's verdict on expect_compressed (INVALID_ARGUMENT for the
    uncompressed probe, OK for the compressed call) is observable. grpcio cannot
    send an uncompressed message inside a compressed call, so the *.wire
    variants (raw HTTP/2, h2raw.py) send the exact per-message procedure.
  * server_compressed_*: grpcio hides the response's compressed flag. We open a
    second channel with grpc.per_message_decompression=0: core then hands the
    message bytes through as they were on the wire, so a flagged message shows
    up as gzip (1f 8b) and an unflagged one as plain protobuf (a protobuf can
    never start with 0x1f). That makes the flag observable; we gunzip ourselves.

Usage:
  run_interop.py --server ref [--transport tls,h2c]
  run_interop.py --omsd build/omsd --source-dir . --transport tls
"""

import gzip
import os
import queue
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402
import h2raw  # noqa: E402

T = h.RPC_TIMEOUT


class Ctx:
    def __init__(self, env, server):
        S = env.stubs
        self.S, self.grpc, self.server = S, S.grpc, server
        self.m, self.empty = S.messages_pb2, S.empty_pb2
        self.channel = server.channel()
        self.stub = S.test_pb2_grpc.TestServiceStub(self.channel)
        self.unimpl = S.test_pb2_grpc.UnimplementedServiceStub(self.channel)
        # raw channel: responses reach our deserializer as on the wire
        self.raw_channel = server.channel(options=[("grpc.per_message_decompression", 0)])

    def close(self):
        self.channel.close()
        self.raw_channel.close()

    def zeros(self, n):
        return self.m.Payload(body=bytes(n))

    def expect_code(self, fn, code, what):
        try:
            r = fn()
        except self.grpc.RpcError as e:
            eq(e.code(), code, what + " status")
            return e
        raise h.Failure("%s: expected %s, call succeeded (%r)" % (what, code, type(r).__name__))


class RequestQueue:
    """A request iterator fed one message at a time; close() half-closes."""
    _END = object()

    def __init__(self):
        self.q = queue.Queue()
        self.abandoned = threading.Event()

    def put(self, msg):
        self.q.put(msg)

    def close(self):
        self.q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                item = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.abandoned.is_set():
                    raise StopIteration
                continue
            if item is self._END:
                raise StopIteration
            return item


def unwire(raw):
    """-> (was_compressed, plain bytes) for a message from the raw channel."""
    if raw[:2] == b"\x1f\x8b":
        return True, gzip.decompress(raw)
    return False, raw


# ------------------------------------------------------------------ cases


def empty_unary(c):
    r = c.stub.EmptyCall(c.empty.Empty(), timeout=T)
    check(r is not None and isinstance(r, c.empty.Empty), "response is not an Empty: %r", r)
    eq(r.ByteSize(), 0, "Empty response size")


def large_unary(c):
    r = c.stub.UnaryCall(c.m.SimpleRequest(response_size=314159, payload=c.zeros(271828)),
                         timeout=T)
    eq(len(r.payload.body), 314159, "response payload size")
    check(r.payload.body == bytes(314159), "response payload is not all zeros")


def pick_first_unary(c):
    """grpc-go's pick_first_unary: with fill_server_id every answer names the
    server (server_id and hostname set), and the same one on one channel."""
    ids = set()
    for _ in range(5):
        r = c.stub.UnaryCall(c.m.SimpleRequest(fill_server_id=True), timeout=T)
        check(r.server_id != "" and r.hostname != "", "server_id %r hostname %r",
              r.server_id, r.hostname)
        ids.add(r.server_id)
    eq(len(ids), 1, "distinct server_ids over one channel (%s)" % ids)
    r = c.stub.UnaryCall(c.m.SimpleRequest(), timeout=T)
    eq((r.server_id, r.hostname), ("", ""), "server_id/hostname without fill_server_id")


def client_compressed_unary(c):
    probe = c.m.SimpleRequest(expect_compressed=c.m.BoolValue(value=True), response_size=314159,
                              payload=c.zeros(271828))
    c.expect_code(lambda: c.stub.UnaryCall(probe, timeout=T), c.grpc.StatusCode.INVALID_ARGUMENT,
                  "uncompressed probe with expect_compressed=true")
    r = c.stub.UnaryCall(probe, timeout=T, compression=c.grpc.Compression.Gzip)
    eq(len(r.payload.body), 314159, "compressed call: response size")
    check(r.payload.body == bytes(314159), "compressed call: payload not zeros")
    req = c.m.SimpleRequest(expect_compressed=c.m.BoolValue(value=False), response_size=314159,
                            payload=c.zeros(271828))
    r = c.stub.UnaryCall(req, timeout=T)
    eq(len(r.payload.body), 314159, "uncompressed call: response size")


def server_compressed_unary(c):
    call = c.raw_channel.unary_unary(
        "/grpc.testing.TestService/UnaryCall",
        request_serializer=c.m.SimpleRequest.SerializeToString,
        response_deserializer=lambda b: b)
    for want in (True, False):
        req = c.m.SimpleRequest(response_compressed=c.m.BoolValue(value=want),
                                response_size=314159, payload=c.zeros(271828))
        raw = call(req, timeout=T)
        compressed, plain = unwire(raw)
        eq(compressed, want, "response_compressed=%s: compressed flag set" % want)
        r = c.m.SimpleResponse.FromString(plain)
        eq(len(r.payload.body), 314159, "response_compressed=%s: payload size" % want)
        check(r.payload.body == bytes(314159), "payload not zeros")


def client_streaming(c):
    sizes = [27182, 8, 1828, 45904]
    r = c.stub.StreamingInputCall(
        iter([c.m.StreamingInputCallRequest(payload=c.zeros(n)) for n in sizes]), timeout=T)
    eq(r.aggregated_payload_size, 74922, "aggregated_payload_size")


def client_compressed_streaming(c):
    probe = c.m.StreamingInputCallRequest(expect_compressed=c.m.BoolValue(value=True),
                                          payload=c.zeros(27182))
    c.expect_code(lambda: c.stub.StreamingInputCall(iter([probe]), timeout=T),
                  c.grpc.StatusCode.INVALID_ARGUMENT,
                  "uncompressed probe with expect_compressed=true")
    # grpcio compresses every message of the call; the second message has
    # expect_compressed=false, which only means "do not check".
    reqs = [probe, c.m.StreamingInputCallRequest(expect_compressed=c.m.BoolValue(value=False),
                                                 payload=c.zeros(45904))]
    r = c.stub.StreamingInputCall(iter(reqs), timeout=T, compression=c.grpc.Compression.Gzip)
    eq(r.aggregated_payload_size, 73086, "aggregated_payload_size")


def server_streaming(c):
    sizes = [31415, 9, 2653, 58979]
    req = c.m.StreamingOutputCallRequest(
        response_parameters=[c.m.ResponseParameters(size=n) for n in sizes])
    got = [len(r.payload.body) for r in c.stub.StreamingOutputCall(req, timeout=T)]
    eq(got, sizes, "response sizes")


def server_compressed_streaming(c):
    call = c.raw_channel.unary_stream(
        "/grpc.testing.TestService/StreamingOutputCall",
        request_serializer=c.m.StreamingOutputCallRequest.SerializeToString,
        response_deserializer=lambda b: b)
    req = c.m.StreamingOutputCallRequest(response_parameters=[
        c.m.ResponseParameters(size=31415, compressed=c.m.BoolValue(value=True)),
        c.m.ResponseParameters(size=92653, compressed=c.m.BoolValue(value=False))])
    raws = list(call(req, timeout=T))
    eq(len(raws), 2, "number of responses")
    flags, sizes = [], []
    for raw in raws:
        comp, plain = unwire(raw)
        flags.append(comp)
        sizes.append(len(c.m.StreamingOutputCallResponse.FromString(plain).payload.body))
    eq(sizes, [31415, 92653], "response sizes")
    eq(flags, [True, False], "compressed flags")


def ping_pong(c):
    pairs = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
    rq = RequestQueue()
    it = c.stub.FullDuplexCall(rq, timeout=T)
    try:
        for i, (resp, reqsz) in enumerate(pairs):
            rq.put(c.m.StreamingOutputCallRequest(
                response_parameters=[c.m.ResponseParameters(size=resp)], payload=c.zeros(reqsz)))
            r = next(it)
            eq(len(r.payload.body), resp, "response %d size" % (i + 1))
        rq.close()
        rest = list(it)
        eq(len(rest), 0, "extra responses after half-close")
        eq(it.code(), c.grpc.StatusCode.OK, "final status")
    finally:
        rq.abandoned.set()


def empty_stream(c):
    it = c.stub.FullDuplexCall(iter([]), timeout=T)
    eq(list(it), [], "responses")
    eq(it.code(), c.grpc.StatusCode.OK, "status")


ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")


def _check_echo(call, what):
    init = list(call.initial_metadata() or ())
    trail = list(call.trailing_metadata() or ())
    check(ECHO_INITIAL in [(k, v) for k, v in init],
          "%s: initial metadata lacks %r; got %r", what, ECHO_INITIAL, init)
    check(ECHO_TRAILING in [(k, v) for k, v in trail],
          "%s: trailing metadata lacks %r; got %r", what, ECHO_TRAILING, trail)


def custom_metadata(c):
    md = [ECHO_INITIAL, ECHO_TRAILING]
    r, call = c.stub.UnaryCall.with_call(
        c.m.SimpleRequest(response_size=314159, payload=c.zeros(271828)), metadata=md, timeout=T)
    eq(len(r.payload.body), 314159, "unary response size")
    _check_echo(call, "UnaryCall")
    it = c.stub.FullDuplexCall(iter([c.m.StreamingOutputCallRequest(
        response_parameters=[c.m.ResponseParameters(size=314159)], payload=c.zeros(271828))]),
        metadata=md, timeout=T)
    sizes = [len(r.payload.body) for r in it]
    eq(sizes, [314159], "FullDuplexCall responses")
    _check_echo(it, "FullDuplexCall")


def _status_case(c, message):
    st = c.m.EchoStatus(code=2, message=message)
    e = c.expect_code(lambda: c.stub.UnaryCall(c.m.SimpleRequest(response_status=st), timeout=T),
                      c.grpc.StatusCode.UNKNOWN, "UnaryCall")
    eq(e.details(), message, "UnaryCall status message")
    it = c.stub.FullDuplexCall(iter([c.m.StreamingOutputCallRequest(response_status=st)]),
                               timeout=T)

    def drain():
        return list(it)
    e = c.expect_code(drain, c.grpc.StatusCode.UNKNOWN, "FullDuplexCall")
    eq(e.details(), message, "FullDuplexCall status message")


def status_code_and_message(c):
    _status_case(c, "test status message")


def special_status_message(c):
    _status_case(c, "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n")


def unimplemented_method(c):
    c.expect_code(lambda: c.stub.UnimplementedCall(c.empty.Empty(), timeout=T),
                  c.grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(c):
    c.expect_code(lambda: c.unimpl.UnimplementedCall(c.empty.Empty(), timeout=T),
                  c.grpc.StatusCode.UNIMPLEMENTED, "UnimplementedService/UnimplementedCall")


def cancel_after_begin(c):
    rq = RequestQueue()
    fut = c.stub.StreamingInputCall.future(rq, timeout=T)
    try:
        fut.cancel()
        eq(fut.cancelled(), True, "future cancelled")
        eq(fut.code(), c.grpc.StatusCode.CANCELLED, "status")
    finally:
        rq.abandoned.set()
    # the server must not be stuck on the cancelled call
    empty_unary(c)


def cancel_after_first_response(c):
    rq = RequestQueue()
    it = c.stub.FullDuplexCall(rq, timeout=T)
    try:
        rq.put(c.m.StreamingOutputCallRequest(
            response_parameters=[c.m.ResponseParameters(size=31415)], payload=c.zeros(27182)))
        r = next(it)
        eq(len(r.payload.body), 31415, "first response size")
        it.cancel()
        eq(it.code(), c.grpc.StatusCode.CANCELLED, "status")
        try:
            next(it)
            raise h.Failure("stream yielded a message after cancel")
        except c.grpc.RpcError as e:
            eq(e.code(), c.grpc.StatusCode.CANCELLED, "iteration after cancel")
    finally:
        rq.abandoned.set()
    empty_unary(c)


def timeout_on_sleeping_server(c):
    rq = RequestQueue()
    rq.put(c.m.StreamingOutputCallRequest(payload=c.zeros(27182)))
    it = c.stub.FullDuplexCall(rq, timeout=0.001)
    try:
        c.expect_code(lambda: list(it), c.grpc.StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall 1ms")
    finally:
        rq.abandoned.set()
    empty_unary(c)


# ---- extras beyond the interop document (same server features)


def extra_interval_us(c):
    """ResponseParameters.interval_us: a sleep before each response, accumulating."""
    req = c.m.StreamingOutputCallRequest(response_parameters=[
        c.m.ResponseParameters(size=10, interval_us=150000),
        c.m.ResponseParameters(size=20, interval_us=150000)])
    t0 = time.monotonic()
    times, sizes = [], []
    for r in c.stub.StreamingOutputCall(req, timeout=T):
        times.append(time.monotonic() - t0)
        sizes.append(len(r.payload.body))
    eq(sizes, [10, 20], "sizes")
    check(times[0] >= 0.12, "first response after %.3fs, expected >= 0.15s", times[0])
    check(times[1] >= 0.27, "second response after %.3fs, expected >= 0.30s", times[1])


def extra_server_deadline(c):
    """The server must honour grpc-timeout: a 200 ms deadline on a 5 s stream."""
    req = c.m.StreamingOutputCallRequest(response_parameters=[
        c.m.ResponseParameters(size=1, interval_us=5000000)])
    t0 = time.monotonic()
    c.expect_code(lambda: list(c.stub.StreamingOutputCall(req, timeout=0.2)),
                  c.grpc.StatusCode.DEADLINE_EXCEEDED, "StreamingOutputCall 200ms")
    check(time.monotonic() - t0 < 3, "deadline took %.1fs", time.monotonic() - t0)
    empty_unary(c)


def extra_unsupported_response_type(c):
    """REFERENCE §1: unsupported response_type -> INVALID_ARGUMENT."""
    c.expect_code(lambda: c.stub.UnaryCall(c.m.SimpleRequest(response_type=7, response_size=5),
                                           timeout=T),
                  c.grpc.StatusCode.INVALID_ARGUMENT, "UnaryCall response_type=7")


def extra_half_duplex(c):
    """HalfDuplexCall: responses only after the client half-closes."""
    reqs = [c.m.StreamingOutputCallRequest(response_parameters=[c.m.ResponseParameters(size=n)])
            for n in (3, 4, 5)]
    try:
        got = [len(r.payload.body) for r in c.stub.HalfDuplexCall(iter(reqs), timeout=T)]
    except c.grpc.RpcError as e:
        if e.code() == c.grpc.StatusCode.UNIMPLEMENTED:
            return  # HalfDuplexCall is optional in the interop server features
        raise
    eq(got, [3, 4, 5], "sizes")


def extra_concurrent_large_unary(c):
    """A light version of the TODO concurrent_large_unary: 32 in parallel."""
    req = c.m.SimpleRequest(response_size=314159, payload=c.zeros(271828))
    futs = [c.stub.UnaryCall.future(req, timeout=T * 2) for _ in range(32)]
    for i, f in enumerate(futs):
        eq(len(f.result().payload.body), 314159, "call %d size" % i)


def extra_many_messages(c):
    """2000 small messages each way on one FullDuplexCall (framing across DATA frames)."""
    n = 2000
    reqs = (c.m.StreamingOutputCallRequest(response_parameters=[c.m.ResponseParameters(size=i % 7)],
                                           payload=c.zeros(i % 13)) for i in range(n))
    sizes = [len(r.payload.body) for r in c.stub.FullDuplexCall(reqs, timeout=T * 2)]
    eq(sizes, [i % 7 for i in range(n)], "sizes")


def extra_status_codes(c):
    """Every non-OK code 1..16 round-trips through response_status."""
    for code in range(1, 17):
        want = c.grpc.StatusCode.__members__[
            [k for k, v in c.grpc.StatusCode.__members__.items() if v.value[0] == code][0]]
        st = c.m.EchoStatus(code=code, message="code %d" % code)
        e = c.expect_code(lambda: c.stub.UnaryCall(c.m.SimpleRequest(response_status=st),
                                                   timeout=T), want, "code %d" % code)
        eq(e.details(), "code %d" % code, "message for code %d" % code)


def extra_metadata_echo_variety(c):
    """-bin values of every length 0..7 and all 256 byte values (base64 padding), and
    3000-byte ASCII / binary values (7 KB of headers: under gRPC core's 8 KB soft limit),
    echoed exactly."""
    values = [bytes(range(256))[:n] for n in range(8)] + [bytes(range(256)), b"\xab" * 3000]
    for v in values:
        md = [("x-grpc-test-echo-initial", "i" * len(v)),
              ("x-grpc-test-echo-trailing-bin", v)]
        _, call = c.stub.UnaryCall.with_call(c.m.SimpleRequest(response_size=1), metadata=md,
                                             timeout=T)
        trail = dict(call.trailing_metadata() or ())
        init = dict(call.initial_metadata() or ())
        eq(trail.get("x-grpc-test-echo-trailing-bin"), v, "trailing -bin of %d bytes" % len(v))
        if v:
            eq(init.get("x-grpc-test-echo-initial"), "i" * len(v),
               "initial value of %d chars" % len(v))


def extra_request_size_limit(c):
    """Default receive limit 4 MiB: a 4194304-byte request passes, 4194305 does not."""
    for n, ok in ((4194304, True), (4194305, False)):
        req = c.m.SimpleRequest(response_size=1, payload=c.zeros(n - 10))
        req.payload.body = bytes(n - 10 - (req.ByteSize() - n))
        eq(req.ByteSize(), n, "request size")
        if ok:
            eq(len(c.stub.UnaryCall(req, timeout=T).payload.body), 1, "response")
        else:
            c.expect_code(lambda: c.stub.UnaryCall(req, timeout=T),
                          c.grpc.StatusCode.RESOURCE_EXHAUSTED, "request of %d bytes" % n)


def extra_large_response(c):
    r = c.stub.UnaryCall(c.m.SimpleRequest(response_size=4000000), timeout=T)
    eq(len(r.payload.body), 4000000, "response size")


def extra_client_streaming_empty(c):
    r = c.stub.StreamingInputCall(iter([]), timeout=T)
    eq(r.aggregated_payload_size, 0, "aggregated_payload_size with no messages")


def extra_stream_then_status(c):
    """Echo Status on streams: responses already produced arrive, then the status."""
    m = c.m
    st = m.EchoStatus(code=5, message="after two")
    it = c.stub.StreamingOutputCall(m.StreamingOutputCallRequest(
        response_parameters=[m.ResponseParameters(size=3), m.ResponseParameters(size=4)],
        response_status=st), timeout=T)
    got = []
    try:
        for r in it:
            got.append(len(r.payload.body))
        raise h.Failure("stream ended OK, expected NOT_FOUND")
    except c.grpc.RpcError as e:
        eq(e.code(), c.grpc.StatusCode.NOT_FOUND, "status")
        eq(e.details(), "after two", "message")
    eq(got, [3, 4], "responses before the status")
    # bidi: the second request carries the status
    rq = RequestQueue()
    it = c.stub.FullDuplexCall(rq, timeout=T)
    try:
        rq.put(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=7)]))
        eq(len(next(it).payload.body), 7, "first bidi response")
        rq.put(m.StreamingOutputCallRequest(response_status=m.EchoStatus(code=9, message="x")))
        c.expect_code(lambda: next(it), c.grpc.StatusCode.FAILED_PRECONDITION, "bidi status")
    finally:
        rq.abandoned.set()


# ---- wire-level variants (raw HTTP/2): what grpcio cannot send


def _raw(c):
    s = c.server
    return h2raw.H2Client("127.0.0.1", s.port, ca=s.ca_path(), timeout=T)


def _raw_call(c, path, msgs, extra=()):
    with _raw(c) as cl:
        sid = cl.start(path, body=b"".join(msgs), end=True, extra=list(extra))
        return cl.wait_stream(sid)


SIC = "/grpc.testing.TestService/StreamingInputCall"


def wire_client_compressed_streaming(c):
    """The exact procedure: grpc-encoding gzip; probe flagged-uncompressed must fail;
    then one compressed (flag 1) + one uncompressed (flag 0) message on one call."""
    m = c.m
    enc = [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "identity")]
    probe = m.StreamingInputCallRequest(expect_compressed=m.BoolValue(value=True),
                                        payload=c.zeros(27182)).SerializeToString()
    st = _raw_call(c, SIC, [h2raw.grpc_frame(probe)], enc)
    eq(st.http_status, 200, "probe :status")
    eq(st.grpc_status, 3, "probe (grpc-encoding gzip, flag 0, expect_compressed) grpc-status")
    second = m.StreamingInputCallRequest(expect_compressed=m.BoolValue(value=False),
                                         payload=c.zeros(45904)).SerializeToString()
    st = _raw_call(c, SIC, [h2raw.grpc_frame_gzip(probe), h2raw.grpc_frame(second)], enc)
    eq(st.grpc_status, 0, "compressed+uncompressed call grpc-status (%s)" % st.grpc_message)
    msgs = st.messages()
    eq(len(msgs), 1, "response messages")
    flag, body = msgs[0]
    if flag:
        body = gzip.decompress(body)
    eq(m.StreamingInputCallResponse.FromString(body).aggregated_payload_size, 73086,
       "aggregated_payload_size")


def wire_client_compressed_unary(c):
    m = c.m
    enc = [("grpc-encoding", "gzip")]
    req = m.SimpleRequest(expect_compressed=m.BoolValue(value=True), response_size=31,
                          payload=c.zeros(2718)).SerializeToString()
    path = "/grpc.testing.TestService/UnaryCall"
    st = _raw_call(c, path, [h2raw.grpc_frame(req)], enc)
    eq(st.grpc_status, 3, "gzip header but flag 0 with expect_compressed grpc-status")
    st = _raw_call(c, path, [h2raw.grpc_frame_gzip(req)], enc)
    eq(st.grpc_status, 0, "flag 1 gzip grpc-status (%s)" % st.grpc_message)
    flag, body = st.messages()[0]
    if flag:
        eq(st.headers.get("grpc-encoding"), "gzip", "grpc-encoding of a flagged response")
        body = gzip.decompress(body)
    eq(len(m.SimpleResponse.FromString(body).payload.body), 31, "response size")


def wire_server_compressed_unary(c):
    """The compressed flag seen on the wire, with grpc-encoding gzip in the headers."""
    m = c.m
    path = "/grpc.testing.TestService/UnaryCall"
    for want in (True, False):
        req = m.SimpleRequest(response_compressed=m.BoolValue(value=want), response_size=4096,
                              payload=c.zeros(10)).SerializeToString()
        st = _raw_call(c, path, [h2raw.grpc_frame(req)],
                       [("grpc-accept-encoding", "identity,gzip")])
        eq(st.grpc_status, 0, "grpc-status")
        msgs = st.messages()
        eq(len(msgs), 1, "messages")
        flag, body = msgs[0]
        eq(bool(flag), want, "response_compressed=%s: compressed flag" % want)
        if flag:
            eq(st.headers.get("grpc-encoding"), "gzip", "grpc-encoding header")
            body = gzip.decompress(body)
        eq(len(m.SimpleResponse.FromString(body).payload.body), 4096, "size")


def wire_no_compression_unless_accepted(c):
    """response_compressed=true, but the client accepts only identity (or says nothing):
    the server must send the message uncompressed (grpc.io compression guide: a message
    the client cannot decode is sent uncompressed)."""
    m = c.m
    req = m.SimpleRequest(response_compressed=m.BoolValue(value=True), response_size=4096,
                          payload=c.zeros(10)).SerializeToString()
    for extra in ([("grpc-accept-encoding", "identity")], []):
        st = _raw_call(c, "/grpc.testing.TestService/UnaryCall", [h2raw.grpc_frame(req)], extra)
        what = "accept-encoding %r" % (extra[0][1] if extra else None)
        eq(st.grpc_status, 0, what + ": grpc-status (%s)" % st.describe())
        flag, body = st.messages()[0]
        eq(flag, 0, what + ": compressed flag")
        eq(len(m.SimpleResponse.FromString(body).payload.body), 4096, what + ": size")


def wire_trailers(c):
    """A normal unary answer: :status 200, content-type application/grpc*,
    one message, trailers with grpc-status 0; special message percent-encoded."""
    m = c.m
    st = _raw_call(c, "/grpc.testing.TestService/UnaryCall",
                   [h2raw.grpc_frame(m.SimpleRequest(response_size=3).SerializeToString())])
    eq(st.http_status, 200, ":status")
    ct = st.headers.get("content-type", "")
    check(ct.startswith("application/grpc"), "content-type %r", ct)
    check(st.trailers is not None, "no trailers HEADERS block: %s", st.describe())
    eq(st.grpc_status, 0, "grpc-status")
    msg = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
    req = m.SimpleRequest(response_status=m.EchoStatus(code=2, message=msg)).SerializeToString()
    st = _raw_call(c, "/grpc.testing.TestService/UnaryCall", [h2raw.grpc_frame(req)])
    eq(st.grpc_status, 2, "grpc-status")
    raw = st.grpc_message or ""
    check(all(0x20 <= ord(ch) <= 0x7e for ch in raw), "grpc-message not percent-encoded: %r", raw)
    from urllib.parse import unquote
    eq(unquote(raw, encoding="utf-8", errors="strict"), msg, "percent-decoded grpc-message")


def wire_server_deadline(c):
    """The server itself enforces grpc-timeout: a raw client (which never gives up on
    its own) gets grpc-status 4 from the server about 200 ms into a 5 s stream."""
    m = c.m
    req = m.StreamingOutputCallRequest(response_parameters=[
        m.ResponseParameters(size=1, interval_us=5000000)]).SerializeToString()
    t0 = time.monotonic()
    st = _raw_call(c, "/grpc.testing.TestService/StreamingOutputCall", [h2raw.grpc_frame(req)],
                   [("grpc-timeout", "200m")])
    dt = time.monotonic() - t0
    eq(st.grpc_status, 4, "grpc-status (%s)" % st.describe())
    check(0.15 <= dt < 3, "DEADLINE_EXCEEDED after %.2fs for a 200 ms deadline", dt)


def wire_framing_split(c):
    """Messages split at every byte (prefix included) across DATA frames, and many
    messages in one DATA frame, reassemble correctly."""
    m = c.m
    path = "/grpc.testing.TestService/StreamingInputCall"
    msgs = [h2raw.grpc_frame(m.StreamingInputCallRequest(payload=c.zeros(n)).SerializeToString())
            for n in (0, 1, 100, 1000)]
    blob = b"".join(msgs)
    with _raw(c) as cl:
        sid = cl.start(path, end=False)
        for i in range(len(blob)):
            cl.send_data(sid, blob[i:i + 1])
        cl.end(sid)
        st = cl.wait_stream(sid)
    eq(st.grpc_status, 0, "one-byte DATA frames: grpc-status (%s)" % st.describe())
    eq(m.StreamingInputCallResponse.FromString(st.messages()[0][1]).aggregated_payload_size,
       1101, "aggregated size (one-byte frames)")
    many = b"".join(h2raw.grpc_frame(m.StreamingInputCallRequest(
        payload=c.zeros(7)).SerializeToString()) for _ in range(500))
    st = _raw_call(c, path, [many])
    eq(st.grpc_status, 0, "500 messages in one DATA write: grpc-status")
    eq(m.StreamingInputCallResponse.FromString(st.messages()[0][1]).aggregated_payload_size,
       3500, "aggregated size (500 messages)")


def wire_padded_data(c):
    """Padded DATA frames are legal HTTP/2: the padding is not part of the message."""
    m = c.m
    body = h2raw.grpc_frame(m.SimpleRequest(response_size=3).SerializeToString())
    with _raw(c) as cl:
        sid = cl.start("/grpc.testing.TestService/UnaryCall", end=False)
        cl.conn.send_data(sid, body[:4], pad_length=100)
        cl.conn.send_data(sid, body[4:], pad_length=7, end_stream=True)
        cl.flush()
        st = cl.wait_stream(sid)
    eq(st.grpc_status, 0, "padded DATA: grpc-status (%s)" % st.describe())
    eq(len(m.SimpleResponse.FromString(st.messages()[0][1]).payload.body), 3, "response size")


def wire_request_trailers(c):
    """Request trailers (HEADERS ending the stream after DATA) are legal HTTP/2 but not
    part of gRPC: served OK or refused (RST_STREAM / non-OK), never hung."""
    m = c.m
    body = h2raw.grpc_frame(m.SimpleRequest(response_size=3).SerializeToString())
    with _raw(c) as cl:
        sid = cl.start("/grpc.testing.TestService/UnaryCall", body=body, end=False)
        cl.send_headers(sid, [("x-request-trailer", "1")], end=True)
        st = cl.wait_stream(sid)
        sid = cl.start("/grpc.testing.TestService/EmptyCall", body=h2raw.grpc_frame(b""))
        eq(cl.wait_stream(sid).grpc_status, 0, "EmptyCall on the same connection")
    print("# request trailers: %s" % ("served OK" if st.grpc_status == 0 else st.describe()))


def wire_unknown_fields(c):
    """Unknown protobuf fields in a request are ignored (proto3)."""
    m = c.m
    body = m.SimpleRequest(response_size=5).SerializeToString()
    body += b"\xf8\x06\x01" + b"\x82\x07\x03abc"  # field 111 varint, field 112 bytes
    st = _raw_call(c, "/grpc.testing.TestService/UnaryCall", [h2raw.grpc_frame(body)])
    eq(st.grpc_status, 0, "grpc-status (%s)" % st.describe())
    eq(len(m.SimpleResponse.FromString(st.messages()[0][1]).payload.body), 5, "response size")


def wire_deadline_idle_stream(c):
    """grpc-timeout on a bidi stream whose client sends nothing and never half-closes:
    the server answers grpc-status 4 on its own."""
    t0 = time.monotonic()
    with _raw(c) as cl:
        sid = cl.start("/grpc.testing.TestService/FullDuplexCall", end=False,
                       extra=[("grpc-timeout", "200m")])
        st = cl.wait_stream(sid)
    dt = time.monotonic() - t0
    eq(st.grpc_status, 4, "grpc-status (%s)" % st.describe())
    check(0.15 <= dt < 3, "answered after %.2fs for a 200 ms deadline", dt)


def wire_client_goaway(c):
    """A client GOAWAY(NO_ERROR, last 0) does not cut the client's own in-flight stream:
    the server finishes it (RFC 9113 6.8: GOAWAY only limits streams the *sender* of the
    GOAWAY would accept, i.e. server-initiated ones)."""
    m = c.m
    with _raw(c) as cl:
        sid = cl.start("/grpc.testing.TestService/FullDuplexCall", end=False)
        cl.send_data(sid, h2raw.grpc_frame(m.StreamingOutputCallRequest(
            response_parameters=[m.ResponseParameters(size=5)]).SerializeToString()))
        cl.wait(lambda: cl.streams[sid].data, 5)
        # raw GOAWAY behind h2's back: last_stream_id 0, NO_ERROR
        cl.sock.sendall(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8))
        cl.send_data(sid, h2raw.grpc_frame(m.StreamingOutputCallRequest(
            response_parameters=[m.ResponseParameters(size=6)]).SerializeToString()), end=True)
        st = cl.wait_stream(sid)
    eq(st.grpc_status, 0, "in-flight stream after client GOAWAY (%s)" % st.describe())
    eq([len(m.StreamingOutputCallResponse.FromString(b).payload.body) for _, b in st.messages()],
       [5, 6], "responses")


def extra_large_upload(c):
    """48 MB client stream in 1 MB messages (connection and stream windows refilled)."""
    msg = c.m.StreamingInputCallRequest(payload=c.zeros(1000000))
    r = c.stub.StreamingInputCall(iter([msg] * 48), timeout=T * 2)
    eq(r.aggregated_payload_size, 48000000, "aggregated_payload_size")


def extra_concurrent_bidi(c):
    """16 concurrent FullDuplexCalls, 50 turns of 10 KB each way."""
    import concurrent.futures

    def one(k):
        rq = RequestQueue()
        it = c.stub.FullDuplexCall(rq, timeout=T * 2)
        try:
            for i in range(50):
                rq.put(c.m.StreamingOutputCallRequest(
                    response_parameters=[c.m.ResponseParameters(size=10000 + k)],
                    payload=c.zeros(10000)))
                r = next(it)
                if len(r.payload.body) != 10000 + k:
                    return "call %d turn %d: size %d" % (k, i, len(r.payload.body))
            rq.close()
            list(it)
            return None
        finally:
            rq.abandoned.set()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        errs = [e for e in ex.map(one, range(16)) if e]
    check(not errs, "errors: %r", errs[:3])


CASES = [
    ("empty_unary", empty_unary),
    ("large_unary", large_unary),
    ("client_streaming", client_streaming),
    ("server_streaming", server_streaming),
    ("ping_pong", ping_pong),
    ("empty_stream", empty_stream),
    ("custom_metadata", custom_metadata),
    ("status_code_and_message", status_code_and_message),
    ("special_status_message", special_status_message),
    ("unimplemented_method", unimplemented_method),
    ("unimplemented_service", unimplemented_service),
    ("cancel_after_begin", cancel_after_begin),
    ("cancel_after_first_response", cancel_after_first_response),
    ("timeout_on_sleeping_server", timeout_on_sleeping_server),
    ("client_compressed_unary", client_compressed_unary),
    ("client_compressed_streaming", client_compressed_streaming),
    ("server_compressed_unary", server_compressed_unary),
    ("server_compressed_streaming", server_compressed_streaming),
    ("extra.interval_us", extra_interval_us),
    ("extra.server_deadline", extra_server_deadline),
    ("extra.unsupported_response_type", extra_unsupported_response_type),
    ("extra.half_duplex", extra_half_duplex),
    ("extra.concurrent_large_unary", extra_concurrent_large_unary),
    ("extra.many_messages", extra_many_messages),
    ("extra.status_codes", extra_status_codes),
    ("extra.metadata_echo_variety", extra_metadata_echo_variety),
    ("extra.request_size_limit", extra_request_size_limit),
    ("extra.large_response", extra_large_response),
    ("pick_first_unary", pick_first_unary),
    ("extra.large_upload", extra_large_upload),
    ("extra.client_streaming_empty", extra_client_streaming_empty),
    ("extra.stream_then_status", extra_stream_then_status),
    ("extra.concurrent_bidi", extra_concurrent_bidi),
    ("wire.client_compressed_unary", wire_client_compressed_unary),
    ("wire.client_compressed_streaming", wire_client_compressed_streaming),
    ("wire.server_compressed_unary", wire_server_compressed_unary),
    ("wire.no_compression_unless_accepted", wire_no_compression_unless_accepted),
    ("wire.trailers", wire_trailers),
    ("wire.server_deadline", wire_server_deadline),
    ("wire.framing_split", wire_framing_split),
    ("wire.padded_data", wire_padded_data),
    ("wire.request_trailers", wire_request_trailers),
    ("wire.unknown_fields", wire_unknown_fields),
    ("wire.deadline_idle_stream", wire_deadline_idle_stream),
    ("wire.client_goaway", wire_client_goaway),
]


# gRPC core (ref server) may close the connection on an oversized request
# ("Broken pipe" / UNAVAILABLE) instead of answering RESOURCE_EXHAUSTED.
REF_LAX = {"extra.request_size_limit": "grpc core may reset instead of RESOURCE_EXHAUSTED",
           "wire.padded_data": "grpc core chttp2 rejects padded DATA frames (unsupported flags)",
           "wire.no_compression_unless_accepted":
               "grpc core compresses even when the client accepts only identity"}


def main():
    p = h.common_args(__doc__.split("\n")[0])
    args = p.parse_args()
    with h.Env("interop", args) as env:
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"))
            c = Ctx(env, server)
            for name, fn in CASES:
                env.suite.run("%s.%s" % (tr, name), fn, c,
                              xfail=REF_LAX.get(name) if args.server == "ref" else None)
            env.suite.run("%s.server_alive" % tr,
                          lambda: check(server.alive(), "server exited: rc=%s", server.proc.poll()))
            c.close()
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
