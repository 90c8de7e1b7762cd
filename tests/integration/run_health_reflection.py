#!/usr/bin/python3
"""grpc.health.v1.Health and grpc.reflection.v1 / v1alpha ServerReflection.

Health: Check("") and Check(<every served service>) -> SERVING; an unknown
service -> NOT_FOUND; Watch yields SERVING first (SERVICE_UNKNOWN first for an
unknown service, without ending the call, per health.proto).

Reflection (both versions, one fresh stream per request so that a server that
skips files already sent on a stream is still judged correctly):
list_services; file_containing_symbol for services, methods and messages with
transitive dependencies parsed as FileDescriptorProto; file_by_filename;
NOT_FOUND (5) error_response for unknown symbols/files; several requests on
one stream answered in order.
"""

import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

T = h.RPC_TIMEOUT

SERVED = [
    "grpc.testing.TestService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "oms.bench.v1.OrderBench",
]
# Declared in test.proto but not served by omsd: must not be listed.
NOT_SERVED = [
    "grpc.testing.UnimplementedService",
    "grpc.testing.ReconnectService",
    "grpc.testing.LoadBalancerStatsService",
    "grpc.testing.XdsUpdateHealthService",
    "grpc.testing.XdsUpdateClientConfigureService",
]


class Ctx:
    def __init__(self, env, server):
        self.S = env.stubs
        self.grpc = self.S.grpc
        self.channel = server.channel()
        self.health = self.S.health_pb2_grpc.HealthStub(self.channel)
        self.hp = self.S.health_pb2
        self.refl = {
            "v1": (self.S.refl_v1_pb2, self.S.refl_v1_pb2_grpc.ServerReflectionStub(self.channel)),
            "v1alpha": (self.S.refl_v1alpha_pb2,
                        self.S.refl_v1alpha_pb2_grpc.ServerReflectionStub(self.channel)),
        }


# ------------------------------------------------------------------ health


def health_check_overall(c):
    r = c.health.Check(c.hp.HealthCheckRequest(service=""), timeout=T)
    eq(r.status, c.hp.HealthCheckResponse.SERVING, 'Check("") status')


def health_check_services(c):
    for svc in SERVED:
        r = c.health.Check(c.hp.HealthCheckRequest(service=svc), timeout=T)
        eq(r.status, c.hp.HealthCheckResponse.SERVING, "Check(%r) status" % svc)


def health_check_unknown(c):
    for svc in ("no.such.Service", "grpc.testing.UnimplementedService"):
        try:
            r = c.health.Check(c.hp.HealthCheckRequest(service=svc), timeout=T)
        except c.grpc.RpcError as e:
            eq(e.code(), c.grpc.StatusCode.NOT_FOUND, "Check(%r) status code" % svc)
            continue
        raise h.Failure("Check(%r) succeeded with %s, expected NOT_FOUND" % (svc, r.status))


def _watch_first(c, svc):
    it = c.health.Watch(c.hp.HealthCheckRequest(service=svc), timeout=T)
    try:
        first = next(it)
        # the call must stay open after the first message
        done = threading.Event()
        extra = []

        def more():
            try:
                for r in it:
                    extra.append(r)
            except c.grpc.RpcError as e:
                extra.append(e)
            done.set()
        t = threading.Thread(target=more, daemon=True)
        t.start()
        ended_early = done.wait(0.3)
        return first, ended_early, extra
    finally:
        it.cancel()


def health_watch_overall(c):
    first, ended, extra = _watch_first(c, "")
    eq(first.status, c.hp.HealthCheckResponse.SERVING, 'Watch("") first status')
    check(not ended, "Watch ended right after the first message: %r", extra)


def health_watch_service(c):
    first, ended, extra = _watch_first(c, "grpc.testing.TestService")
    eq(first.status, c.hp.HealthCheckResponse.SERVING, "Watch(TestService) first status")
    check(not ended, "Watch ended right after the first message: %r", extra)


def health_watch_unknown(c):
    first, ended, extra = _watch_first(c, "no.such.Service")
    eq(first.status, c.hp.HealthCheckResponse.SERVICE_UNKNOWN, "Watch(unknown) first status")
    check(not ended, "Watch(unknown) ended instead of staying open: %r", extra)


def health_watch_cancel(c):
    """Cancelled watches must not linger: 20 opened and cancelled, then Check works."""
    its = [c.health.Watch(c.hp.HealthCheckRequest(service=""), timeout=T) for _ in range(20)]
    for it in its:
        eq(next(it).status, c.hp.HealthCheckResponse.SERVING, "first status")
    for it in its:
        it.cancel()
    health_check_overall(c)


# ------------------------------------------------------------------ reflection


def _ask(c, ver, **req):
    pb, stub = c.refl[ver]
    resps = list(stub.ServerReflectionInfo(iter([pb.ServerReflectionRequest(**req)]), timeout=T))
    eq(len(resps), 1, "%s: responses to one request" % ver)
    return pb, resps[0]


def _files(resp, what):
    kind = resp.WhichOneof("message_response")
    if kind == "error_response":
        raise h.Failure("%s: error_response %d %r" % (what, resp.error_response.error_code,
                                                     resp.error_response.error_message))
    eq(kind, "file_descriptor_response", "%s: response kind" % what)
    out = {}
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        out[fd.name] = fd
    return out


def list_services(c, ver):
    _, r = _ask(c, ver, list_services="*")
    eq(r.WhichOneof("message_response"), "list_services_response", "response kind")
    names = [s.name for s in r.list_services_response.service]
    missing = [s for s in SERVED if s not in names]
    check(not missing, "list_services lacks %r; got %r", missing, names)
    eq(len(names), len(set(names)), "duplicate service names in %r" % names)
    wrong = [s for s in NOT_SERVED if s in names]
    check(not wrong, "list_services lists services that are not served: %r", wrong)
    # every listed service must be healthy and resolvable
    for n in names:
        hr = c.health.Check(c.hp.HealthCheckRequest(service=n), timeout=T)
        eq(hr.status, c.hp.HealthCheckResponse.SERVING, "health of listed %r" % n)
        _, rr = _ask(c, ver, file_containing_symbol=n)
        fds = _files(rr, "file_containing_symbol(%r)" % n)
        pkg, _, short = n.rpartition(".")
        check(any(fd.package == pkg and any(s.name == short for s in fd.service)
                  for fd in fds.values()),
              "no returned file defines service %r (files %r)", n, list(fds))


def symbol_test_service(c, ver):
    _, r = _ask(c, ver, file_containing_symbol="grpc.testing.TestService")
    fds = _files(r, "file_containing_symbol(grpc.testing.TestService)")
    want = {"grpc/testing/test.proto", "grpc/testing/empty.proto", "grpc/testing/messages.proto"}
    check(want <= set(fds), "files %r lack %r", sorted(fds), sorted(want - set(fds)))
    test = fds["grpc/testing/test.proto"]
    eq(test.package, "grpc.testing", "test.proto package")
    eq(sorted(test.dependency), ["grpc/testing/empty.proto", "grpc/testing/messages.proto"],
       "test.proto dependencies")
    svc = {s.name: s for s in test.service}
    check("TestService" in svc, "test.proto has no TestService: %r", list(svc))
    methods = {m.name: m for m in svc["TestService"].method}
    for mname in ("EmptyCall", "UnaryCall", "StreamingOutputCall", "StreamingInputCall",
                  "FullDuplexCall", "HalfDuplexCall", "UnimplementedCall"):
        check(mname in methods, "TestService lacks method %s", mname)
    eq(methods["UnaryCall"].input_type, ".grpc.testing.SimpleRequest", "UnaryCall input")
    eq(methods["FullDuplexCall"].client_streaming and methods["FullDuplexCall"].server_streaming,
       True, "FullDuplexCall is bidi")
    msgs = {m.name for m in fds["grpc/testing/messages.proto"].message_type}
    for mname in ("SimpleRequest", "SimpleResponse", "Payload", "StreamingOutputCallRequest"):
        check(mname in msgs, "messages.proto lacks %s", mname)
    eq([m.name for m in fds["grpc/testing/empty.proto"].message_type], ["Empty"],
       "empty.proto messages")
    # every dependency of every returned file must be returned too (transitive closure)
    for fd in fds.values():
        for dep in fd.dependency:
            check(dep in fds, "%s depends on %s, which was not returned", fd.name, dep)


def symbol_method_and_message(c, ver):
    for sym, fname in [("grpc.testing.TestService.UnaryCall", "grpc/testing/test.proto"),
                       ("grpc.testing.SimpleRequest", "grpc/testing/messages.proto"),
                       ("oms.bench.v1.Order", "oms/bench/v1/bench.proto"),
                       ("oms.bench.v1.OrderBench.CreateOrder", "oms/bench/v1/bench.proto"),
                       ("grpc.health.v1.HealthCheckRequest", "grpc/health/v1/health.proto")]:
        _, r = _ask(c, ver, file_containing_symbol=sym)
        fds = _files(r, "file_containing_symbol(%r)" % sym)
        check(fname in fds, "file_containing_symbol(%r): %s not among %r", sym, fname, list(fds))
        # the first file is the one that defines the symbol
        first = descriptor_pb2.FileDescriptorProto.FromString(
            r.file_descriptor_response.file_descriptor_proto[0])
        eq(first.name, fname, "file_containing_symbol(%r): first file" % sym)


def by_filename_bench(c, ver):
    _, r = _ask(c, ver, file_by_filename="oms/bench/v1/bench.proto")
    fds = _files(r, "file_by_filename(oms/bench/v1/bench.proto)")
    check("oms/bench/v1/bench.proto" in fds, "files %r", list(fds))
    fd = fds["oms/bench/v1/bench.proto"]
    eq(fd.package, "oms.bench.v1", "package")
    svc = {s.name: s for s in fd.service}
    check("OrderBench" in svc, "no OrderBench in %r", list(svc))
    eq(sorted(m.name for m in svc["OrderBench"].method),
       ["CreateOrder", "GetOrder", "Track", "WatchOrders"], "OrderBench methods")
    eq(sorted(m.name for m in fd.message_type),
       sorted(["LineItem", "CreateOrderRequest", "Order", "GetOrderRequest", "WatchRequest",
               "TrackRequest", "OrderEvent"]), "bench.proto messages")
    eq([e.name for e in fd.enum_type], ["OrderStatus"], "enums")


def by_filename_test_proto(c, ver):
    _, r = _ask(c, ver, file_by_filename="grpc/testing/test.proto")
    fds = _files(r, "file_by_filename(grpc/testing/test.proto)")
    want = {"grpc/testing/test.proto", "grpc/testing/empty.proto", "grpc/testing/messages.proto"}
    check(want <= set(fds), "files %r lack %r", sorted(fds), sorted(want - set(fds)))


def unknown_symbol(c, ver):
    for req in ({"file_containing_symbol": "no.such.Symbol"},
                {"file_containing_symbol": "grpc.testing.TestService.NoSuchMethod"},
                {"file_by_filename": "no/such/file.proto"}):
        _, r = _ask(c, ver, **req)
        eq(r.WhichOneof("message_response"), "error_response", "%r: response kind" % req)
        eq(r.error_response.error_code, 5, "%r: error_code" % req)


def multi_request_stream(c, ver):
    """Several requests on one stream are each answered, in order."""
    pb, stub = c.refl[ver]
    reqs = [pb.ServerReflectionRequest(list_services=""),
            pb.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
            pb.ServerReflectionRequest(file_by_filename="oms/bench/v1/bench.proto"),
            pb.ServerReflectionRequest(list_services="")]
    resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=T))
    eq([r.WhichOneof("message_response") for r in resps],
       ["list_services_response", "error_response", "file_descriptor_response",
        "list_services_response"], "response kinds")


def original_request_echo(c, ver):
    """ServerReflectionResponse.original_request echoes the request (grpc's servers do)."""
    pb, r = _ask(c, ver, host="localhost", file_by_filename="oms/bench/v1/bench.proto")
    eq(r.original_request.file_by_filename, "oms/bench/v1/bench.proto", "original_request")


def interleaved_ping_pong(c, ver):
    """One request at a time on one stream: the server answers without waiting for half-close."""
    import queue
    pb, stub = c.refl[ver]
    q = queue.Queue()

    def gen():
        while True:
            item = q.get(timeout=T)
            if item is None:
                return
            yield item
    it = stub.ServerReflectionInfo(gen(), timeout=T)
    try:
        for _ in range(3):
            q.put(pb.ServerReflectionRequest(list_services=""))
            r = next(it)
            eq(r.WhichOneof("message_response"), "list_services_response", "kind")
        q.put(None)
        eq(list(it), [], "after half-close")
    finally:
        q.put(None)


def odd_requests(c, ver):
    """Extension queries and an empty request: one answer each, stream keeps going."""
    pb, stub = c.refl[ver]
    reqs = [
        pb.ServerReflectionRequest(file_containing_extension=pb.ExtensionRequest(
            containing_type="grpc.testing.SimpleRequest", extension_number=100)),
        pb.ServerReflectionRequest(all_extension_numbers_of_type="grpc.testing.SimpleRequest"),
        pb.ServerReflectionRequest(all_extension_numbers_of_type="no.such.Type"),
        pb.ServerReflectionRequest(),  # no message_request set
        pb.ServerReflectionRequest(file_containing_symbol=""),
        pb.ServerReflectionRequest(file_by_filename=""),
        pb.ServerReflectionRequest(list_services=""),
    ]
    resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=T))
    eq(len(resps), len(reqs), "one response per request")
    kinds = [r.WhichOneof("message_response") for r in resps]
    eq(kinds[-1], "list_services_response", "last response")
    r = resps[0]
    check(kinds[0] == "error_response" and r.error_response.error_code == 5,
          "file_containing_extension on a message without extensions: %s", r)
    r = resps[1]
    if kinds[1] == "all_extension_numbers_response":
        eq(r.all_extension_numbers_response.base_type_name, "grpc.testing.SimpleRequest",
           "base_type_name")
        eq(list(r.all_extension_numbers_response.extension_number), [], "extension numbers")
    else:
        check(kinds[1] == "error_response" and r.error_response.error_code in (5, 12),
              "all_extension_numbers_of_type: %s", r)
    check(kinds[2] == "error_response" and resps[2].error_response.error_code in (5, 12),
          "all_extension_numbers_of_type(no.such.Type): %s", resps[2])
    for i in (3, 4, 5):
        check(kinds[i] == "error_response" and resps[i].error_response.error_code != 0,
              "request %d (%r) answered %s", i, reqs[i], resps[i])


REFL_CASES = [
    ("list_services", list_services),
    ("file_containing_symbol.TestService", symbol_test_service),
    ("file_containing_symbol.method_and_message", symbol_method_and_message),
    ("file_by_filename.bench", by_filename_bench),
    ("file_by_filename.test_proto", by_filename_test_proto),
    ("unknown_symbol_not_found", unknown_symbol),
    ("multi_request_stream", multi_request_stream),
    ("interleaved_ping_pong", interleaved_ping_pong),
    ("original_request_echo", original_request_echo),
    ("odd_requests", odd_requests),
]

HEALTH_CASES = [
    ("health.check_overall", health_check_overall),
    ("health.check_services", health_check_services),
    ("health.check_unknown_not_found", health_check_unknown),
    ("health.watch_overall", health_watch_overall),
    ("health.watch_service", health_watch_service),
    ("health.watch_unknown", health_watch_unknown),
    ("health.watch_cancel", health_watch_cancel),
]


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("health_reflection", args) as env:
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"))
            c = Ctx(env, server)
            for name, fn in HEALTH_CASES:
                env.suite.run("%s.%s" % (tr, name), fn, c)
            for ver in ("v1", "v1alpha"):
                for name, fn in REFL_CASES:
                    env.suite.run("%s.reflection.%s.%s" % (tr, ver, name), fn, c, ver)
            c.channel.close()
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
