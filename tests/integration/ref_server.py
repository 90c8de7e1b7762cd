#!/usr/bin/python3
"""Reference gRPC server written with python grpcio: "a server that is not ours".

It validates the integration harness while omsd is being written, and later
serves as the foreign peer for the project's C client. It takes omsd's
command-line contract and prints the same ready line:

  ref_server.py [--listen HOST:PORT] [--h2c] [--tls-cert F --tls-key F]
                [--max-recv-msg BYTES] [--max-streams N] [--grace S] [--log-level L]
                [--log-metadata KEY]
  -> stdout: "listening on HOST:PORT (tls|h2c)"; SIGTERM: graceful stop, exit 0.

Services (same as omsd):
  grpc.testing.TestService   interop semantics (doc/interop-test-descriptions.md):
                             response sizes, response_status echo, interval_us,
                             x-grpc-test-echo-initial / x-grpc-test-echo-trailing-bin,
                             response_compressed / per-message compressed,
                             expect_compressed, unsupported response_type.
  grpc.health.v1.Health      Check/Watch: "" and every served service SERVING.
  grpc.reflection.v1 and v1alpha ServerReflection, from protobuf's descriptor pool.
  oms.bench.v1.OrderBench    the trivial logic in proto/oms/bench/v1/bench.proto.

How expect_compressed is observed: the server runs with the core option
grpc.per_message_decompression=0, so every request message reaches our
deserializer exactly as it was on the wire. A message whose compressed flag was
set arrives as gzip bytes (magic 1f 8b); an uncompressed protobuf can never
start with 0x1f (field 3, wire type 7 does not exist), so the test is exact.
We gunzip ourselves, apply --max-recv-msg to the decompressed size
(RESOURCE_EXHAUSTED) and map undecodable bytes to INVALID_ARGUMENT.
Only gzip is understood (what grpcio and omsd's client send).
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
import zlib
from concurrent import futures

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402

S = h.load_stubs(os.environ.get("OMS_IT_GEN"))
grpc = S.grpc
from google.protobuf import descriptor_pool  # noqa: E402

m = S.messages_pb2
empty = S.empty_pb2
hp = S.health_pb2
bench = S.bench_pb2

SERVICES = [
    "grpc.testing.TestService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "oms.bench.v1.OrderBench",
]

MAX_RECV = 4 * 1024 * 1024
SC = grpc.StatusCode
CODES = {c.value[0]: c for c in grpc.StatusCode}


class Req:
    """A request as received: the message, whether it was compressed, or an error."""
    __slots__ = ("msg", "compressed", "err")

    def __init__(self, msg=None, compressed=False, err=None):
        self.msg, self.compressed, self.err = msg, compressed, err


def deserializer(cls):
    def de(raw):
        compressed = raw[:2] == b"\x1f\x8b"
        if compressed:
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                raw = d.decompress(raw, MAX_RECV + 1)
                if len(raw) > MAX_RECV or d.unconsumed_tail:
                    return Req(err=(SC.RESOURCE_EXHAUSTED,
                                    "decompressed message larger than %d" % MAX_RECV))
            except zlib.error as e:
                return Req(err=(SC.INTERNAL, "bad gzip message: %s" % e))
        elif len(raw) > MAX_RECV:
            return Req(err=(SC.RESOURCE_EXHAUSTED, "message larger than %d" % MAX_RECV))
        try:
            return Req(cls.FromString(raw), compressed)
        except Exception as e:  # DecodeError
            return Req(err=(SC.INVALID_ARGUMENT, "cannot decode %s: %s" % (cls.__name__, e)))
    return de


def unwrap(r, ctx):
    if r.err:
        ctx.abort(*r.err)
    return r.msg


def stream_unwrap(it, ctx):
    for r in it:
        yield unwrap(r, ctx), r.compressed


# ---------------------------------------------------------------- TestService


def echo_metadata(ctx):
    md = dict(ctx.invocation_metadata())
    if "x-grpc-test-echo-initial" in md:
        ctx.send_initial_metadata([("x-grpc-test-echo-initial", md["x-grpc-test-echo-initial"])])
    if "x-grpc-test-echo-trailing-bin" in md:
        ctx.set_trailing_metadata([("x-grpc-test-echo-trailing-bin",
                                    md["x-grpc-test-echo-trailing-bin"])])


def payload(rtype, size, ctx):
    if rtype != m.COMPRESSABLE:
        ctx.abort(SC.INVALID_ARGUMENT, "unsupported response_type %d" % rtype)
    if size < 0:
        ctx.abort(SC.INVALID_ARGUMENT, "negative response size")
    return m.Payload(type=m.COMPRESSABLE, body=bytes(size))


def check_expect_compressed(req, compressed, ctx):
    if req.HasField("expect_compressed") and req.expect_compressed.value and not compressed:
        ctx.abort(SC.INVALID_ARGUMENT, "expected compressed request")


def echo_status(req, ctx):
    if req.HasField("response_status") and req.response_status.code != 0:
        code = CODES.get(req.response_status.code, SC.UNKNOWN)
        ctx.abort(code, req.response_status.message)


def empty_call(r, ctx):
    unwrap(r, ctx)
    echo_metadata(ctx)
    return empty.Empty()


def unary_call(r, ctx):
    req = unwrap(r, ctx)
    echo_metadata(ctx)
    check_expect_compressed(req, r.compressed, ctx)
    echo_status(req, ctx)
    resp = m.SimpleResponse(payload=payload(req.response_type, req.response_size, ctx))
    if req.fill_server_id:  # as grpc-go's interop server
        resp.server_id = "ref-%s-%d" % (socket.gethostname(), os.getpid())
        resp.hostname = socket.gethostname()
    if req.response_compressed.value:
        ctx.set_compression(grpc.Compression.Gzip)
    else:
        ctx.set_compression(grpc.Compression.NoCompression)
    return resp


def _respond(req, ctx, last_send):
    """Yields the responses for one StreamingOutputCallRequest."""
    for p in req.response_parameters:
        if p.interval_us > 0:
            # interval_us accumulates: sleep relative to the previous response.
            due = last_send[0] + p.interval_us / 1e6
            while time.monotonic() < due:
                if not ctx.is_active():
                    return
                time.sleep(min(0.05, max(0.0, due - time.monotonic())))
        pl = payload(req.response_type, p.size, ctx)
        if not (p.HasField("compressed") and p.compressed.value):
            ctx.disable_next_message_compression()
        last_send[0] = time.monotonic()
        yield m.StreamingOutputCallResponse(payload=pl)


def streaming_output_call(r, ctx):
    req = unwrap(r, ctx)
    echo_metadata(ctx)
    ctx.set_compression(grpc.Compression.Gzip)  # per message disabled unless compressed=true
    last = [time.monotonic()]
    yield from _respond(req, ctx, last)
    echo_status(req, ctx)


def streaming_input_call(it, ctx):
    echo_metadata(ctx)
    total = 0
    for req, compressed in stream_unwrap(it, ctx):
        check_expect_compressed(req, compressed, ctx)
        total += len(req.payload.body)
    return m.StreamingInputCallResponse(aggregated_payload_size=total)


def full_duplex_call(it, ctx):
    echo_metadata(ctx)
    ctx.set_compression(grpc.Compression.Gzip)
    last = [time.monotonic()]
    for req, _ in stream_unwrap(it, ctx):
        echo_status(req, ctx)
        yield from _respond(req, ctx, last)


def half_duplex_call(it, ctx):
    echo_metadata(ctx)
    ctx.set_compression(grpc.Compression.Gzip)
    reqs = [req for req, _ in stream_unwrap(it, ctx)]
    last = [time.monotonic()]
    for req in reqs:
        echo_status(req, ctx)
        yield from _respond(req, ctx, last)


def test_service_handler():
    ser = lambda msg: msg.SerializeToString()  # noqa: E731
    return grpc.method_handlers_generic_handler("grpc.testing.TestService", {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(
            empty_call, deserializer(empty.Empty), ser),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(
            unary_call, deserializer(m.SimpleRequest), ser),
        "CacheableUnaryCall": grpc.unary_unary_rpc_method_handler(
            unary_call, deserializer(m.SimpleRequest), ser),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call, deserializer(m.StreamingOutputCallRequest), ser),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call, deserializer(m.StreamingInputCallRequest), ser),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call, deserializer(m.StreamingOutputCallRequest), ser),
        "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
            half_duplex_call, deserializer(m.StreamingOutputCallRequest), ser),
        # UnimplementedCall is deliberately absent -> UNIMPLEMENTED.
    })


# ---------------------------------------------------------------- Health


def health_status(service):
    if service == "" or service in SERVICES:
        return hp.HealthCheckResponse.SERVING
    return None


def health_check(r, ctx):
    req = unwrap(r, ctx)
    st = health_status(req.service)
    if st is None:
        ctx.abort(SC.NOT_FOUND, "unknown service %s" % req.service)
    return hp.HealthCheckResponse(status=st)


def health_watch(r, ctx):
    req = unwrap(r, ctx)
    st = health_status(req.service)
    yield hp.HealthCheckResponse(
        status=st if st is not None else hp.HealthCheckResponse.SERVICE_UNKNOWN)
    while ctx.is_active() and not STOPPING.is_set():
        time.sleep(0.1)
    if STOPPING.is_set() and ctx.is_active():
        yield hp.HealthCheckResponse(status=hp.HealthCheckResponse.NOT_SERVING)
        ctx.abort(SC.UNAVAILABLE, "server shutting down")


def health_handler():
    ser = lambda msg: msg.SerializeToString()  # noqa: E731
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            health_check, deserializer(hp.HealthCheckRequest), ser),
        "Watch": grpc.unary_stream_rpc_method_handler(
            health_watch, deserializer(hp.HealthCheckRequest), ser),
    })


# ---------------------------------------------------------------- Reflection


def _with_deps(fd):
    out, seen, todo = [], set(), [fd]
    while todo:
        f = todo.pop(0)
        if f.name in seen:
            continue
        seen.add(f.name)
        out.append(f.serialized_pb)
        todo.extend(f.dependencies)
    return out


def reflection_handler(pb):
    pool = descriptor_pool.Default()

    def info(it, ctx):
        for req, _ in stream_unwrap(it, ctx):
            resp = pb.ServerReflectionResponse(valid_host=req.host)
            resp.original_request.CopyFrom(req)
            kind = req.WhichOneof("message_request")
            try:
                if kind == "list_services":
                    for name in SERVICES:
                        resp.list_services_response.service.add(name=name)
                elif kind == "file_by_filename":
                    resp.file_descriptor_response.file_descriptor_proto.extend(
                        _with_deps(pool.FindFileByName(req.file_by_filename)))
                elif kind == "file_containing_symbol":
                    resp.file_descriptor_response.file_descriptor_proto.extend(
                        _with_deps(pool.FindFileContainingSymbol(req.file_containing_symbol)))
                elif kind == "file_containing_extension":
                    raise KeyError("no extensions")
                elif kind == "all_extension_numbers_of_type":
                    pool.FindMessageTypeByName(req.all_extension_numbers_of_type)
                    resp.all_extension_numbers_response.base_type_name = \
                        req.all_extension_numbers_of_type
                else:
                    resp.error_response.error_code = SC.INVALID_ARGUMENT.value[0]
                    resp.error_response.error_message = "empty request"
            except KeyError as e:
                resp.ClearField("message_response")
                resp.error_response.error_code = SC.NOT_FOUND.value[0]
                resp.error_response.error_message = "not found: %s" % e
            yield resp

    ser = lambda msg: msg.SerializeToString()  # noqa: E731
    service = pb.DESCRIPTOR.services_by_name["ServerReflection"].full_name
    return grpc.method_handlers_generic_handler(service, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            info, deserializer(pb.ServerReflectionRequest), ser),
    })


# ---------------------------------------------------------------- OrderBench


class Bench:
    MAX_ORDERS = 1000000

    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0
        self.orders = {}

    def create(self, r, ctx):
        req = unwrap(r, ctx)
        if not req.customer_id:
            ctx.abort(SC.INVALID_ARGUMENT, "customer_id is empty")
        total = 0
        for it in req.items:
            if it.quantity <= 0:
                ctx.abort(SC.INVALID_ARGUMENT, "quantity must be > 0")
            total += it.quantity * it.unit_price_cents
            if not -(1 << 63) <= total < (1 << 63):
                ctx.abort(SC.INVALID_ARGUMENT, "total_cents overflows int64")
        with self.lock:
            self.n += 1
            o = bench.Order(id="o-%d" % self.n, customer_id=req.customer_id, items=req.items,
                            total_cents=total, status=bench.ORDER_STATUS_PENDING,
                            created_at_unix_ms=int(time.time() * 1000))
            if len(self.orders) >= self.MAX_ORDERS:
                self.orders.clear()
            self.orders[o.id] = o
        return o

    def get(self, r, ctx):
        req = unwrap(r, ctx)
        with self.lock:
            o = self.orders.get(req.id)
        if o is None:
            ctx.abort(SC.NOT_FOUND, "order %s not found" % req.id)
        return o

    def watch(self, r, ctx):
        req = unwrap(r, ctx)
        if req.count < 0:
            ctx.abort(SC.INVALID_ARGUMENT, "count < 0")
        for k in range(1, req.count + 1):
            yield bench.OrderEvent(order_id="watch", status=1 + (k - 1) % 5, seq=k)

    def track(self, it, ctx):
        seq = 0
        for req, _ in stream_unwrap(it, ctx):
            seq += 1
            with self.lock:
                o = self.orders.get(req.order_id)
            yield bench.OrderEvent(order_id=req.order_id,
                                   status=o.status if o else bench.ORDER_STATUS_UNSPECIFIED,
                                   seq=seq)

    def handler(self):
        ser = lambda msg: msg.SerializeToString()  # noqa: E731
        return grpc.method_handlers_generic_handler("oms.bench.v1.OrderBench", {
            "CreateOrder": grpc.unary_unary_rpc_method_handler(
                self.create, deserializer(bench.CreateOrderRequest), ser),
            "GetOrder": grpc.unary_unary_rpc_method_handler(
                self.get, deserializer(bench.GetOrderRequest), ser),
            "WatchOrders": grpc.unary_stream_rpc_method_handler(
                self.watch, deserializer(bench.WatchRequest), ser),
            "Track": grpc.stream_stream_rpc_method_handler(
                self.track, deserializer(bench.TrackRequest), ser),
        })


# ---------------------------------------------------------------- main

STOPPING = threading.Event()


class MetadataLog(grpc.ServerInterceptor):
    """--log-metadata KEY: one stderr line per call, before it is served:
    "md METHOD KEY=VALUE" ("-" when the call has no KEY), so that a test can
    see what a client sent (run_call_creds.py: call credentials)."""

    def __init__(self, key):
        self.key = key

    def intercept_service(self, continuation, details):
        v = dict(details.invocation_metadata or ()).get(self.key)
        print("md %s %s=%s" % (details.method, self.key, "-" if v is None else v),
              file=sys.stderr, flush=True)
        return continuation(details)


def main():
    global MAX_RECV
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:50051")
    p.add_argument("--h2c", action="store_true")
    p.add_argument("--tls-cert", default="certs/server.pem")
    p.add_argument("--tls-key", default="certs/server.key")
    p.add_argument("--max-recv-msg", type=int, default=4 * 1024 * 1024)
    p.add_argument("--max-streams", type=int, default=0)
    p.add_argument("--grace", type=float, default=5)
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-metadata", metavar="KEY", help="log each call's KEY metadata")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        p.error("--listen wants HOST:PORT or [IPV6]:PORT, got %r" % a.listen)
    if not 1 <= a.max_recv_msg <= 2147483647:
        p.error("--max-recv-msg wants 1..2147483647 bytes")
    if a.max_streams < 0 or a.max_streams > 2147483647 or "--max-streams" in sys.argv \
            and a.max_streams == 0:
        p.error("--max-streams wants 1..2147483647")
    if not 0 <= a.grace <= 86400:
        p.error("--grace wants 0..86400 seconds")
    if a.log_level not in ("debug", "info", "warn", "error", "off"):
        p.error("--log-level wants debug, info, warn, error or off")
    MAX_RECV = a.max_recv_msg

    options = [
        ("grpc.per_message_decompression", 0),  # see module doc
        # core checks the wire size; the decompressed size is checked by us
        ("grpc.max_receive_message_length", a.max_recv_msg),
        ("grpc.so_reuseport", 0),
    ]
    if a.max_streams > 0:
        options.append(("grpc.max_concurrent_streams", a.max_streams))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         handlers=[test_service_handler(), health_handler(),
                                   reflection_handler(S.refl_v1_pb2),
                                   reflection_handler(S.refl_v1alpha_pb2),
                                   Bench().handler()],
                         options=options, maximum_concurrent_rpcs=None,
                         interceptors=[MetadataLog(a.log_metadata)] if a.log_metadata else None)
    if a.h2c:
        bound = server.add_insecure_port(a.listen)
    else:
        with open(a.tls_key, "rb") as f:
            key = f.read()
        with open(a.tls_cert, "rb") as f:
            cert = f.read()
        bound = server.add_secure_port(a.listen, grpc.ssl_server_credentials([(key, cert)]))
    if not bound:
        print("ref_server: cannot listen on %s" % a.listen, file=sys.stderr)
        sys.exit(1)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: STOPPING.set())
    signal.signal(signal.SIGINT, lambda *_: STOPPING.set())
    print("listening on %s:%d (%s)" % (host, bound, "h2c" if a.h2c else "tls"), flush=True)
    while not STOPPING.wait(0.2):
        pass
    print("ref_server: stopping (grace %.1fs)" % a.grace, file=sys.stderr, flush=True)
    server.stop(a.grace).wait(a.grace + 2)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
