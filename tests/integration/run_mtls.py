#!/usr/bin/python3
"""mTLS and the TLS policy against the real omsd (python grpcio, python ssl,
omsctl).

--client-ca with --client-auth require / optional: a client certificate of
the CA works, none fails the handshake (require: grpcio sees UNAVAILABLE; with
TLS 1.3 the client finishes its side first and the server's
certificate_required alert ends the connection at the first read) or is
anonymous (optional), a certificate of another CA fails in both modes.
Policy: TLS 1.1 and a TLS 1.2 CBC suite are refused, TLS 1.2 AEAD works,
--tls-min-version 1.3 refuses a TLS 1.2-only client. SIGHUP reload while a
WatchOrders stream is open: the stream keeps delivering, a new connection
sees the new certificate (SHA-256 of its DER), a garbage certificate file is
logged and the previous one kept. Split deployment with --client-ca on
inventory/customers and --peer-cert/--peer-key on orders; without the peer
certificate CreateOrder fails; the same on service tokens (--peer-token-file
against --jwt-secret-file peers). Certificates as principals (--client-ca turns
authentication on): a policy line narrows one, an unnamed one gets every
scope. --test-services off, start-up errors, the key-permission warning,
omsctl --cert/--key.
"""

import hashlib
import os
import warnings
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402

T = h.RPC_TIMEOUT
warnings.filterwarnings("ignore", "ssl.TLSVersion.TLSv1_1", DeprecationWarning)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Mtls:
    def __init__(self, env):
        self.env = env
        self.S = env.stubs
        self.grpc = env.stubs.grpc
        self.SC = self.grpc.StatusCode
        self.certs = env.certs
        self.foreign = h.make_certs(env.args.source_dir, os.path.join(env.workdir, "foreign"))
        for f in ("client.pem", "orders.pem"):
            check(os.path.isfile(os.path.join(self.certs, f)), "certs.sh made no %s" % f)

    def p(self, name, d=None):
        return os.path.join(d or self.certs, name)

    def creds(self, cert_dir=None, cert="client"):
        """Channel credentials trusting our CA, with cert_dir's client cert."""
        root = read(self.p("ca.pem"))
        if cert_dir is None:
            return self.grpc.ssl_channel_credentials(root)
        return self.grpc.ssl_channel_credentials(
            root, read(self.p(cert + ".key", cert_dir)), read(self.p(cert + ".pem", cert_dir)))

    def server(self, name, extra, certs=None):
        s = h.Server(self.env.args.server, self.env.args.omsd, self.env.args.source_dir,
                     self.env.workdir, certs=certs or self.certs, extra_args=extra, name=name)
        return self.env.suite.start_server(s)

    def health(self, srv, creds):
        """Health Check over a fresh channel: StatusCode.OK or the error's code."""
        ch = self.grpc.secure_channel("localhost:%d" % srv.port, creds)
        try:
            stub = self.S.health_pb2_grpc.HealthStub(ch)
            r = stub.Check(self.S.health_pb2.HealthCheckRequest(), timeout=T)
            eq(r.status, self.S.health_pb2.HealthCheckResponse.SERVING, "health status")
            return self.SC.OK
        except self.grpc.RpcError as e:
            self.last_error = e.details()
            return e.code()
        finally:
            ch.close()

    # ---- client authentication

    def require_mode(self):
        srv = self.server("require", ["--client-ca", self.p("ca.pem")])
        try:
            eq(self.health(srv, self.creds(self.certs)), self.SC.OK, "with a client certificate")
            api = oi.Api(self.S, self.grpc.secure_channel("localhost:%d" % srv.port,
                                                          self.creds(self.certs)))
            names = [c.name for c in api.cust.ListCustomers(
                api.cpb.ListCustomersRequest(), timeout=T)]
            check(names, "ListCustomers with a client certificate gave nothing")
            api.close()
            eq(self.health(srv, self.creds()), self.SC.UNAVAILABLE, "without a certificate")
            print("# grpcio without a certificate: %r" % self.last_error, flush=True)
            eq(self.health(srv, self.creds(self.foreign)), self.SC.UNAVAILABLE,
               "with another CA's certificate")
            log = srv.log_text()
            check("peer did not return a certificate" in log,
                  "no handshake failure logged for the client without a certificate")
            check("client certificate verify failed" in log,
                  "no verify failure logged for the foreign certificate")
        finally:
            self.env.suite.stop_server(srv)

    def optional_mode(self):
        srv = self.server("optional", ["--client-ca", self.p("ca.pem"),
                                       "--client-auth", "optional", "--log-level", "debug"])
        try:
            eq(self.health(srv, self.creds()), self.SC.OK, "without a certificate")
            eq(self.health(srv, self.creds(self.certs)), self.SC.OK, "with a client certificate")
            eq(self.health(srv, self.creds(self.foreign)), self.SC.UNAVAILABLE,
               "with another CA's certificate")
            check("client certificate identity spiffe://oms.local/client/dev" in srv.log_text(),
                  "the identity was not logged at debug level")
        finally:
            self.env.suite.stop_server(srv)

    def omsctl(self):
        omsctl = os.path.join(os.path.dirname(os.path.abspath(self.env.args.omsd)), "omsctl")
        if not os.access(omsctl, os.X_OK):
            raise h.Failure("no omsctl next to omsd (%s)" % omsctl)
        srv = self.server("omsctl", ["--client-ca", self.p("ca.pem")])
        try:
            base = [omsctl, "--target", "127.0.0.1:%d" % srv.port, "--ca", self.p("ca.pem")]
            run = lambda *a: subprocess.run(base + list(a), capture_output=True, text=True,
                                            timeout=60)
            r = run("--cert", self.p("client.pem"), "--key", self.p("client.key"), "health")
            eq((r.returncode, r.stdout.strip()), (0, "SERVING"), "omsctl --cert/--key health")
            r = run("health")
            eq(r.returncode, 2, "omsctl without a certificate: exit code (stderr %r)" % r.stderr)
            check("UNAVAILABLE" in r.stderr, "omsctl without a certificate: %r" % r.stderr)
            r = run("--cert", self.p("client.pem"), "health")
            eq(r.returncode, 1, "omsctl --cert without --key: usage exit code")
            check("--cert and --key go together" in r.stderr, "stderr %r" % r.stderr)
        finally:
            self.env.suite.stop_server(srv)

    def c_tools(self):
        """oms-bench and oms-interop-client with --cert/--key (the C client)."""
        bindir = os.path.dirname(os.path.abspath(self.env.args.omsd))
        bench, interop = os.path.join(bindir, "oms-bench"), os.path.join(bindir, "oms-interop-client")
        for b in (bench, interop):
            if not os.access(b, os.X_OK):
                raise h.Failure("no %s next to omsd" % b)
        srv = self.server("c-tools", ["--client-ca", self.p("ca.pem")])
        cert = ["--cert", self.p("client.pem"), "--key", self.p("client.key")]
        try:
            run = lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=120)
            base = [interop, "--server_host", "localhost", "--server_port", str(srv.port),
                    "--ca_file", self.p("ca.pem"), "--test_case", "large_unary"]
            r = run(base + cert)
            eq(r.returncode, 0, "oms-interop-client --cert/--key (%s)" % r.stdout[-300:])
            r = run(base)
            check(r.returncode != 0 and "certificate required" in r.stdout + r.stderr,
                  "oms-interop-client without a certificate: rc %d %r"
                  % (r.returncode, (r.stdout + r.stderr)[-300:]))
            r = run(base + ["--cert", self.p("client.pem")])
            check(r.returncode != 0 and "--cert and --key go together" in r.stderr,
                  "oms-interop-client --cert alone: %r" % r.stderr)
            base = [bench, "--target", "127.0.0.1:%d" % srv.port, "--server-name", "localhost",
                    "--ca", self.p("ca.pem"), "--duration", "0.5", "--warmup", "0"]
            r = run(base + cert)
            eq(r.returncode, 0, "oms-bench --cert/--key (%s)" % r.stderr[-300:])
            r = run(base)
            check(r.returncode != 0, "oms-bench without a certificate succeeded")
            r = run(base + ["--key", self.p("client.key")])
            check(r.returncode != 0 and "--cert and --key go together" in r.stderr,
                  "oms-bench --key alone: %r" % r.stderr)
        finally:
            self.env.suite.stop_server(srv)

    # ---- TLS policy

    def handshake(self, srv, maximum=None, minimum=None, ciphers=None):
        """A python ssl handshake offering h2: (version, None) or (None, error)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.p("ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        if ciphers:
            ctx.set_ciphers(ciphers)
        if minimum:
            ctx.minimum_version = minimum
        if maximum:
            ctx.maximum_version = maximum
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    return s.version(), None
        except (ssl.SSLError, OSError) as e:
            return None, str(e)

    def policy(self):
        srv = self.server("policy", [])
        try:
            v, err = self.handshake(srv, minimum=ssl.TLSVersion.TLSv1_1,
                                    maximum=ssl.TLSVersion.TLSv1_1,
                                    ciphers="DEFAULT:@SECLEVEL=0")
            check(v is None, "TLS 1.1 accepted (%s)" % v)
            print("# TLS 1.1: %s" % err, flush=True)
            check("version" in err.lower() or "handshake" in err.lower(),
                  "TLS 1.1: unexpected error %r" % err)
            v, err = self.handshake(srv, maximum=ssl.TLSVersion.TLSv1_2,
                                    ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
            check(v is None, "TLS 1.2 with CBC suites accepted (%s)" % v)
            print("# TLS 1.2 CBC: %s" % err, flush=True)
            v, err = self.handshake(srv, maximum=ssl.TLSVersion.TLSv1_2,
                                    ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
            eq((v, err), ("TLSv1.2", None), "TLS 1.2 with an AEAD suite")
            v, err = self.handshake(srv)
            eq((v, err), ("TLSv1.3", None), "default handshake")
        finally:
            self.env.suite.stop_server(srv)
        srv = self.server("tls13", ["--tls-min-version", "1.3"])
        try:
            v, err = self.handshake(srv, maximum=ssl.TLSVersion.TLSv1_2)
            check(v is None, "--tls-min-version 1.3 accepted %s" % v)
            eq(self.health(srv, self.creds()), self.SC.OK, "grpcio (TLS 1.3)")
        finally:
            self.env.suite.stop_server(srv)

    # ---- reload

    def fingerprint_seen(self, srv, ca):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(self.p("client.pem"), self.p("client.key"))
        with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()

    @staticmethod
    def fingerprint_of(pem):
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(read(pem).decode())).hexdigest()

    def wait_log(self, srv, needle, count):
        """Waits until needle appears count times in the server's log."""
        deadline = time.monotonic() + T
        while srv.log_text().count(needle) < count:
            check(time.monotonic() < deadline, "no %r in the log after %ss" % (needle, T))
            check(srv.alive(), "omsd died")
            time.sleep(0.05)

    def reload(self):
        # The server's files live in a directory of their own: they get replaced.
        d = os.path.join(self.env.workdir, "reload-certs")
        shutil.copytree(self.certs, d)
        srv = self.server("reload", ["--client-ca", self.p("ca.pem"), "--workers", "2"], certs=d)
        ch = self.grpc.secure_channel("localhost:%d" % srv.port, self.creds(self.certs))
        api = oi.Api(self.S, ch)
        events, done = [], threading.Event()
        stream = api.ord.WatchOrders(api.opb.WatchOrdersRequest(customer_id="c-1"))

        def reader():
            try:
                for ev in stream:
                    events.append(ev.order_id)
            except self.grpc.RpcError as e:
                events.append(e.code())
            done.set()

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        created = []

        def order_seen():
            o = api.create_order("c-1", [("SKU-001", 1)])
            created.append(o.id)
            deadline = time.monotonic() + T
            while o.id not in events:
                check(not done.is_set(), "the WatchOrders stream ended: %r" % events[-1:])
                check(time.monotonic() < deadline, "order %s not delivered on the stream" % o.id)
                time.sleep(0.02)

        try:
            old = self.fingerprint_of(self.p("server.pem", d))
            eq(self.fingerprint_seen(srv, self.p("ca.pem")), old, "certificate before reload")
            order_seen()
            # The foreign CA's server certificate and key replace ours.
            shutil.copy(self.p("server.pem", self.foreign), self.p("server.pem", d))
            shutil.copy(self.p("server.key", self.foreign), self.p("server.key", d))
            new = self.fingerprint_of(self.p("server.pem", d))
            srv.signal(signal.SIGHUP)
            self.wait_log(srv, "reload: TLS certificate, key and client CA re-read", 1)
            order_seen()  # the open connection and its stream carry on
            eq(self.fingerprint_seen(srv, self.p("ca.pem", self.foreign)), new,
               "certificate of a new connection after reload")
            # A bad reload: garbage where the certificate was.
            with open(self.p("server.pem", d), "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                        "-----END CERTIFICATE-----\n")
            srv.signal(signal.SIGHUP)
            self.wait_log(srv, "reload: keeping the previous TLS context", 1)
            check("cannot load certificate" in srv.log_text(), "the bad reload's reason not logged")
            eq(self.fingerprint_seen(srv, self.p("ca.pem", self.foreign)), new,
               "certificate of a new connection after a bad reload")
            order_seen()
            check(not done.is_set(), "the stream ended")
        finally:
            stream.cancel()
            done.wait(T)
            api.close()
            self.env.suite.stop_server(srv)

    # ---- split deployment

    def split(self):
        ca = self.p("ca.pem")
        inv = oi.start_server(self.env, "split-inventory",
                              extra=["--services", "inventory", "--client-ca", ca])
        cus = oi.start_server(self.env, "split-customers",
                              extra=["--services", "customers", "--client-ca", ca])
        peers = ["--services", "orders", "--no-demo-data",
                 "--inventory-target", "127.0.0.1:%d" % inv.port,
                 "--customers-target", "127.0.0.1:%d" % cus.port, "--peer-ca", ca]
        ords = oi.start_server(self.env, "split-orders", extra=peers + [
            "--peer-cert", self.p("orders.pem"), "--peer-key", self.p("orders.key")])
        bare = oi.start_server(self.env, "split-orders-nocert", extra=peers)
        try:
            api = oi.api_for(self.env, ords)
            o = api.create_order("c-1", [("SKU-002", 2)])
            check(o.id, "CreateOrder through mTLS peers gave no id")
            api.close()
            api = oi.api_for(self.env, bare)
            try:
                api.create_order("c-1", [("SKU-002", 1)], timeout=10)
                raise h.Failure("CreateOrder worked without the peer certificate")
            except self.grpc.RpcError as e:
                print("# CreateOrder without a peer certificate: %s %r" % (e.code(), e.details()),
                      flush=True)
                eq(e.code(), self.SC.UNAVAILABLE, "CreateOrder without a peer certificate (%r)"
                   % e.details())
                check(e.details() in ("customer service unavailable",
                                      "inventory service unavailable"),
                      "CreateOrder without a peer certificate: unclear reason %r" % e.details())
            # The caller is told which service; the orders process logs why.
            check("certificate required" in bare.log_text(),
                  "the orders process did not log the refused certificate")
            api.close()
            check("peer did not return a certificate" in cus.log_text() + inv.log_text(),
                  "the peers did not log the handshake without a certificate")
        finally:
            for s in (bare, ords, cus, inv):
                self.env.suite.stop_server(s)

    def peer_token(self):
        """Split deployment on bearer tokens: inventory and customers verify an
        HS256 secret, the orders process sends --peer-token-file. A service
        token with the scopes it needs works; one without inventory:write is
        refused by inventory, and the caller is told the order service was
        refused (not the peer's address)."""
        omsctl = os.path.join(os.path.dirname(os.path.abspath(self.env.args.omsd)), "omsctl")
        secret = os.path.join(self.env.workdir, "peer-secret")
        with open(secret, "wb") as f:
            f.write(os.urandom(24).hex().encode())

        def token_file(name, scope):
            r = subprocess.run([omsctl, "token", "--key", secret, "--alg", "HS256", "--sub",
                                "orders-service", "--scope", scope, "--ttl", "1h"],
                               capture_output=True, text=True, timeout=60)
            eq(r.returncode, 0, "omsctl token (%s)" % r.stderr)
            path = os.path.join(self.env.workdir, name)
            with open(path, "w") as f:
                f.write(r.stdout.strip() + "\n")
            return path
        good = token_file("peer-good.jwt", "inventory:read inventory:write customers:read")
        weak = token_file("peer-weak.jwt", "inventory:read customers:read")
        ca = self.p("ca.pem")
        inv = oi.start_server(self.env, "token-inventory",
                              extra=["--services", "inventory", "--jwt-secret-file", secret])
        cus = oi.start_server(self.env, "token-customers",
                              extra=["--services", "customers", "--jwt-secret-file", secret])
        peers = ["--services", "orders", "--no-demo-data",
                 "--inventory-target", "127.0.0.1:%d" % inv.port,
                 "--customers-target", "127.0.0.1:%d" % cus.port, "--peer-ca", ca]
        ords = oi.start_server(self.env, "token-orders", extra=peers + ["--peer-token-file", good])
        weak_ords = oi.start_server(self.env, "token-orders-weak",
                                    extra=peers + ["--peer-token-file", weak])
        try:
            api = oi.api_for(self.env, ords)
            o = api.create_order("c-1", [("SKU-002", 1)])
            check(o.id, "CreateOrder with a service token gave no id")
            api.close()
            api = oi.api_for(self.env, weak_ords)
            try:
                api.create_order("c-1", [("SKU-002", 1)], timeout=10)
                raise h.Failure("CreateOrder worked with a token lacking inventory:write")
            except self.grpc.RpcError as e:
                eq(e.code(), self.SC.INTERNAL, "CreateOrder with a weak service token (%r)"
                   % e.details())
                eq(e.details(), "inventory service refused the order service",
                   "CreateOrder with a weak service token")
            api.close()
        finally:
            for s in (weak_ords, ords, cus, inv):
                self.env.suite.stop_server(s)

    # ---- certificates as principals

    def cert_principal(self):
        """--client-ca turns authentication on: a verified certificate is the
        call's principal. A policy `principal` line narrows client.pem to
        inventory:read; orders.pem, not named, gets every scope; no certificate
        (optional mode) is UNAUTHENTICATED outside the public methods."""
        policy = os.path.join(self.env.workdir, "cert-policy.txt")
        with open(os.path.join(self.env.args.source_dir, "docs", "AUTHZ-POLICY.md")) as f:
            text = f.read()
        block = text.split("## The default policy", 1)[1].split("```", 2)[1]
        with open(policy, "w") as f:
            f.write(block.strip() + "\nprincipal spiffe://oms.local/client/dev inventory:read\n")
        srv = self.server("cert-principal", ["--client-ca", self.p("ca.pem"),
                                             "--client-auth", "optional",
                                             "--authz-policy", policy])

        def call(creds, fn):
            api = oi.Api(self.S, self.grpc.secure_channel("localhost:%d" % srv.port, creds))
            try:
                fn(api)
                return "OK", ""
            except self.grpc.RpcError as e:
                return e.code().name, e.details()
            finally:
                api.close()
        get = lambda a: a.product("SKU-001")  # noqa: E731
        create = lambda a: a.create_order("c-1", [("SKU-001", 1)])  # noqa: E731
        try:
            narrowed = self.creds(self.certs, "client")
            full = self.creds(self.certs, "orders")
            anon = self.grpc.ssl_channel_credentials(read(self.p("ca.pem")))
            eq(call(narrowed, get)[0], "OK", "GetProduct with client.pem (inventory:read)")
            eq(call(narrowed, create), ("PERMISSION_DENIED", "missing scope orders:write"),
               "CreateOrder with client.pem (narrowed to inventory:read)")
            eq(call(full, create)[0], "OK", "CreateOrder with orders.pem (not named: every scope)")
            eq(call(anon, get), ("UNAUTHENTICATED", "authentication required"),
               "GetProduct without a certificate")
            eq(self.health(srv, anon), self.SC.OK, "health without a certificate (public)")
        finally:
            self.env.suite.stop_server(srv)

    # ---- exposure and start-up

    def test_services_off(self):
        srv = self.server("no-test-services", ["--test-services", "off"])
        ch = self.grpc.secure_channel("localhost:%d" % srv.port, self.creds())
        try:
            for call in (
                    lambda: self.S.test_pb2_grpc.TestServiceStub(ch).EmptyCall(
                        self.S.empty_pb2.Empty(), timeout=T),
                    lambda: self.S.bench_pb2_grpc.OrderBenchStub(ch).GetOrder(
                        self.S.bench_pb2.GetOrderRequest(id="1"), timeout=T)):
                try:
                    call()
                    raise h.Failure("a test service answered with --test-services off")
                except self.grpc.RpcError as e:
                    eq(e.code(), self.SC.UNIMPLEMENTED, "test service with --test-services off")
            eq(self.health(srv, self.creds()), self.SC.OK, "health with --test-services off")
        finally:
            ch.close()
            self.env.suite.stop_server(srv)

    def startup_errors(self):
        omsd = self.env.args.omsd
        for args, needle in [
                (["--client-auth", "require"], "--client-auth needs --client-ca"),
                (["--client-auth", "sometimes", "--client-ca", "x"], "require or optional"),
                (["--tls-min-version", "1.1"], "1.2 or 1.3"),
                (["--test-services", "maybe"], "on or off"),
                (["--peer-cert", "x.pem"], "--peer-cert and --peer-key go together"),
                (["--client-ca", "/nonexistent/ca.pem"], "cannot load client CA")]:
            r = subprocess.run([omsd, "--listen", "127.0.0.1:0", "--no-demo-data",
                                "--store", "sqlite:" + os.path.join(self.env.workdir, "x.db"),
                                "--tls-cert", self.p("server.pem"),
                                "--tls-key", self.p("server.key")] + args,
                               capture_output=True, text=True, timeout=60,
                               cwd=self.env.workdir)
            check(r.returncode != 0 and needle in r.stderr,
                  "%s: rc %d, stderr %r" % (args, r.returncode, r.stderr))

    def key_mode_warning(self):
        d = os.path.join(self.env.workdir, "loose-key")
        shutil.copytree(self.certs, d)
        os.chmod(self.p("server.key", d), 0o644)
        srv = self.server("loose-key", [], certs=d)
        try:
            eq(self.health(srv, self.creds()), self.SC.OK, "health")
            log = srv.log_text()
            eq(log.count("is readable by group or others"), 1, "key permission warnings")
            check(self.p("server.key", d) in log, "the warning does not name the file")
        finally:
            self.env.suite.stop_server(srv)


def main():
    args = h.common_args(__doc__).parse_args()
    with h.Env("mtls", args) as env:
        m = Mtls(env)
        run = env.suite.run
        run("client_auth.require", m.require_mode)
        run("client_auth.optional", m.optional_mode)
        run("client_auth.omsctl", m.omsctl)
        run("client_auth.c_tools", m.c_tools)
        run("policy.versions_and_suites", m.policy)
        run("reload.sighup_with_open_stream", m.reload)
        run("split.peer_certificate", m.split)
        run("split.peer_token", m.peer_token)
        run("authz.cert_principal", m.cert_principal)
        run("test_services.off", m.test_services_off)
        run("startup.errors", m.startup_errors)
        run("startup.key_mode_warning", m.key_mode_warning)


if __name__ == "__main__":
    main()
