#!/usr/bin/python3
"""Process lifecycle: the command-line contract, startup errors, SIGTERM drain.

- `--listen 127.0.0.1:0` prints exactly one `listening on HOST:PORT (tls|h2c)`
  line with the real port (checked by every runner; here also for two servers
  at once: distinct ports).
- Startup errors exit non-zero without a listening line: missing certificate,
  unknown flag (named, with the nearest known one), a port that is already in
  use; and a start that fails on certificate, key or port leaves no database.
- --version on omsd, omsctl, oms-bench and oms-interop-client.
- SIGTERM on an idle server: exit 0 quickly.
- SIGTERM with a call in flight: the call completes OK within --grace, new
  calls are refused, exit 0.
- Clients that keep calling across SIGTERM: every call completes OK or is
  refused before it started (UNAVAILABLE), nothing else.
- A call that outlives --grace is cut off and the process still exits 0 soon
  after the grace period.
"""

import os
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

T = h.RPC_TIMEOUT


def _expect_start_failure(env, argv, what, timeout=None, cwd=None):
    """Runs argv; it must exit non-zero without printing a listening line."""
    timeout = timeout or h.START_TIMEOUT
    p = subprocess.Popen(h.wrap_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, cwd=cwd or env.workdir, **h.popen_kwargs())
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise h.Failure("%s: still running after %.0fs (stdout %r)" % (what, timeout, out[:200]))
    check(p.returncode != 0, "%s: exit status 0, expected failure (stdout %r)", what, out[:200])
    check(b"listening on" not in out, "%s: printed a listening line: %r", what, out[:200])
    check(p.returncode > 0, "%s: died from signal %d; stderr:\n%s", what, -p.returncode,
          err.decode(errors="replace")[-2000:])
    check(not any(m.encode() in err for m in h.SANITIZER_MARKERS),
          "%s: sanitizer report:\n%s", what, err.decode(errors="replace")[-3000:])
    return out, err


def _base_argv(env, extra=(), h2c=True):
    s = h.Server(env.args.server, env.args.omsd, env.args.source_dir, env.workdir, h2c=h2c,
                 certs=env.certs, name="argv")
    return s.argv() + list(extra)


def missing_cert(env):
    argv = _base_argv(env, h2c=False)
    i = argv.index("--tls-cert")
    argv[i + 1] = os.path.join(env.workdir, "no-such-cert.pem")
    _, err = _expect_start_failure(env, argv, "--tls-cert pointing nowhere")
    check(err.strip(), "no error message on stderr")


def unknown_flag(env):
    _, err = _expect_start_failure(env, _base_argv(env, ["--no-such-flag"]), "unknown flag")
    err = err.decode(errors="replace")
    check("unknown option --no-such-flag" in err, "stderr: %r", err)
    _, err = _expect_start_failure(env, _base_argv(env, ["--gracee", "1"]), "misspelt flag")
    lines = err.decode(errors="replace").strip().splitlines()
    eq(lines, ["omsd: unknown option --gracee; did you mean --grace?",
               "Try 'omsd --help' for more."], "stderr for --gracee (no whole usage)")


def _fresh_dir(env, name):
    d = os.path.join(env.workdir, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return d


def failed_start_leaves_nothing(env):
    """A start that fails on its certificate, key or port creates no database:
    omsd checks them before it opens (creates, migrates) the store."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    try:
        cases = [
            ("--tls-cert", "no-such-cert.pem", "missing certificate"),
            ("--tls-key", "no-such-key.pem", "missing key"),
            ("--tls-key", "CERT", "a certificate where the key should be"),
            ("--listen", "127.0.0.1:%d" % held.getsockname()[1], "port in use"),
        ]
        for flag, value, what in cases:
            d = _fresh_dir(env, "failed-start")
            argv = _base_argv(env, h2c=False)
            if value == "CERT":
                value = argv[argv.index("--tls-cert") + 1]
            elif flag != "--listen":
                value = os.path.join(d, value)
            argv[argv.index(flag) + 1] = value
            argv += ["--store", "sqlite:" + os.path.join(d, "oms.db")]
            _, err = _expect_start_failure(env, argv, what, cwd=d)
            check(err.strip(), "%s: no message on stderr", what)
            eq(sorted(os.listdir(d)), [], "files left behind after a failed start (%s)" % what)
    finally:
        held.close()


def version_everywhere(env):
    """--version on every binary: name, version and the git commit built from."""
    import re
    bindir = os.path.dirname(os.path.abspath(env.args.omsd))
    seen = 0
    for name in ("omsd", "omsctl", "oms-bench", "oms-interop-client"):
        path = os.path.join(bindir, name)
        if not os.access(path, os.X_OK):
            continue
        seen += 1
        p = subprocess.run(h.wrap_argv([path, "--version"]), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, **h.popen_kwargs())
        out = p.stdout.decode(errors="replace")
        eq(p.returncode, 0, "%s --version exit status (stderr %r)" % (name, p.stderr[-500:]))
        check(re.fullmatch(r"%s \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,40}(-dirty)?|unknown)\)\n"
                           % re.escape(name), out), "%s --version printed %r", name, out)
        p = subprocess.run(h.wrap_argv([path, "--verison"]), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, **h.popen_kwargs())
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0 and "did you mean --version?" in err,
              "%s --verison: rc %d, stderr %r", name, p.returncode, err)
        check(len(err.strip().splitlines()) == 2, "%s --verison: not two lines: %r", name, err)
    check(seen >= 1, "no binary found next to %s", env.args.omsd)


def port_in_use(env):
    # a plain listening socket holds the port (no SO_REUSEPORT)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        argv = _base_argv(env)
        argv[argv.index("--listen") + 1] = "127.0.0.1:%d" % port
        _expect_start_failure(env, argv, "port %d already in use" % port)
    finally:
        s.close()


def port_in_use_by_omsd(env):
    """A second server on the same port must fail, not share it via SO_REUSEPORT."""
    a = env.server(h2c=True, name="%s-first" % env.args.server)
    try:
        argv = _base_argv(env)
        argv[argv.index("--listen") + 1] = "127.0.0.1:%d" % a.port
        _expect_start_failure(env, argv, "second server on %d" % a.port)
    finally:
        env.suite.stop_server(a)


def two_servers_distinct_ports(env):
    a = env.server(h2c=True, name="%s-a" % env.args.server)
    b = env.server(h2c=False, name="%s-b" % env.args.server)
    try:
        check(a.port != b.port, "both servers printed port %d", a.port)
        for s in (a, b):
            ch = s.channel()
            env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(),
                                                                  timeout=T)
            ch.close()
    finally:
        env.suite.stop_server(a)
        env.suite.stop_server(b)


BAD_ARGS = [
    ["--max-recv-msg", "abc"], ["--max-recv-msg", "-1"], ["--max-recv-msg", "0"],
    ["--max-recv-msg", "99999999999999999999"], ["--max-streams", "-1"], ["--max-streams", "0"],
    ["--grace", "-1"], ["--grace", "abc"], ["--listen", "127.0.0.1"],
    ["--listen", "127.0.0.1:99999"], ["--listen", "127.0.0.1:abc"], ["--log-level", "bogus"],
    ["--listen"],
]


def bad_arguments(env):
    """Invalid flag values: non-zero exit with a message, never a listening server."""
    bad = []
    for extra in BAD_ARGS:
        try:
            _, err = _expect_start_failure(env, _base_argv(env, extra), " ".join(extra), timeout=10)
            if not err.strip():
                bad.append("%s: no message on stderr" % " ".join(extra))
        except h.Failure as e:
            bad.append(str(e))
    check(not bad, "%d bad argument sets misbehaved:\n  %s", len(bad), "\n  ".join(bad))


def authz_policy_file(env):
    """--authz-policy FILE is checked at start: a bad file exits 2 naming FILE:LINE; a good one
    starts (authentication is off: calls are allowed as before)."""
    bad = os.path.join(env.workdir, "authz-bad.policy")
    with open(bad, "w") as f:
        f.write("# a comment\nmethod /oms.v1.OrderService/GetOrder orders:read\n"
                "method /oms.v1.OrderService/GetOrder orders:admin\n")
    p = subprocess.run(h.wrap_argv(_base_argv(env, ["--authz-policy", bad])), capture_output=True,
                       stdin=subprocess.DEVNULL, cwd=env.workdir, timeout=h.START_TIMEOUT,
                       **h.popen_kwargs())
    err = p.stderr.decode(errors="replace")
    eq(p.returncode, 2, "exit status with a bad policy (stderr %r)" % err[-500:])
    check("%s:3: duplicate method /oms.v1.OrderService/GetOrder (first at line 2)" % bad in err,
          "stderr does not name the file and line: %r", err[-500:])
    check(b"listening on" not in p.stdout, "a bad policy printed a listening line")
    p = subprocess.run(h.wrap_argv(_base_argv(env, ["--authz-policy", bad + ".missing"])),
                       capture_output=True, stdin=subprocess.DEVNULL, cwd=env.workdir,
                       timeout=h.START_TIMEOUT, **h.popen_kwargs())
    eq(p.returncode, 2, "exit status with a missing policy file")
    good = os.path.join(env.workdir, "authz-good.policy")
    with open(good, "w") as f:
        f.write("method /oms.v1.OrderService/* orders:read\nmethod /grpc.testing.TestService/* t\n")
    s = h.Server(env.args.server, env.args.omsd, env.args.source_dir, env.workdir, h2c=True,
                 certs=env.certs, name="%s-authz" % env.args.server,
                 extra_args=["--authz-policy", good, "--reflection-auth"])
    env.suite.start_server(s)
    try:
        ch = s.channel()
        env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(),
                                                              timeout=T)
        ch.close()
    finally:
        env.suite.stop_server(s)


def listen_ipv6(env):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        print("# no IPv6 loopback here; skipped")
        return
    s = h.Server(env.args.server, env.args.omsd, env.args.source_dir, env.workdir, h2c=True,
                 certs=env.certs, name="%s-ipv6" % env.args.server,
                 extra_args=["--listen", "[::1]:0"])
    env.suite.start_server(s)
    try:
        eq(s.host, "[::1]", "host in the listening line")
        grpc = env.stubs.grpc
        ch = grpc.insecure_channel("[::1]:%d" % s.port)
        env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(),
                                                              timeout=T)
        ch.close()
    finally:
        env.suite.stop_server(s)


def default_cert_paths(env):
    """Without --tls-cert/--tls-key the server uses certs/server.pem and certs/server.key
    relative to its working directory."""
    import shutil
    s = h.Server(env.args.server, env.args.omsd, env.args.source_dir, env.workdir, h2c=False,
                 certs=env.certs, name="%s-defcerts" % env.args.server)
    os.makedirs(os.path.join(s.workdir, "certs"), exist_ok=True)
    for f in ("server.pem", "server.key"):
        shutil.copy(os.path.join(env.certs, f), os.path.join(s.workdir, "certs", f))
    argv = s.argv()
    i = argv.index("--tls-cert")
    del argv[i:i + 4]  # --tls-cert F --tls-key F
    s.argv = lambda: argv
    env.suite.start_server(s)
    try:
        ch = s.channel()
        env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(),
                                                              timeout=T)
        ch.close()
    finally:
        env.suite.stop_server(s)


def sigterm_idle(env):
    s = env.server(h2c=True, name="%s-idle" % env.args.server)
    ch = s.channel()
    env.stubs.test_pb2_grpc.TestServiceStub(ch).EmptyCall(env.stubs.empty_pb2.Empty(), timeout=T)
    ch.close()
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    rc = s.wait(10)
    dt = time.monotonic() - t0
    check(rc is not None, "idle server still running 10s after SIGTERM")
    eq(rc, 0, "exit status")
    check(dt < 5, "idle server took %.1fs to exit", dt)
    env.suite.stop_server(s)  # records clean_exit (sanitizers, listening line)


def _grace_server(env, grace, tls=False):
    return env.server(h2c=not tls, grace=grace,
                      name="%s-drain-%s-%s" % (env.args.server, grace, "tls" if tls else "h2c"))


def sigterm_drains_inflight(env, tls=False):
    S, grpc = env.stubs, env.stubs.grpc
    m = S.messages_pb2
    s = _grace_server(env, 5, tls)
    ch = s.channel()
    stub = S.test_pb2_grpc.TestServiceStub(ch)
    # 3 responses, 400 ms apart: ~1.2 s in flight
    req = m.StreamingOutputCallRequest(response_parameters=[
        m.ResponseParameters(size=100, interval_us=400000) for _ in range(3)])
    it = stub.StreamingOutputCall(req, timeout=T)
    first = next(it)
    eq(len(first.payload.body), 100, "first response")
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    time.sleep(0.2)
    # a new call on a new channel is refused while draining
    ch2 = s.channel()
    try:
        S.test_pb2_grpc.TestServiceStub(ch2).EmptyCall(S.empty_pb2.Empty(), timeout=3)
        new_call = "succeeded"
    except grpc.RpcError as e:
        new_call = e.code()
    finally:
        ch2.close()
    rest = []
    try:
        for r in it:
            rest.append(len(r.payload.body))
        code = it.code()
    except grpc.RpcError as e:
        code = e.code()
    ch.close()
    rc = s.wait(s.grace + 10)
    dt = time.monotonic() - t0
    eq((code, rest), (grpc.StatusCode.OK, [100, 100]),
       "in-flight call across SIGTERM (status, remaining sizes)")
    check(new_call in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED),
          "a new call during the drain: expected UNAVAILABLE, got %s", new_call)
    check(rc is not None, "server still running %.0fs after SIGTERM", s.grace + 10)
    eq(rc, 0, "exit status")
    check(dt < s.grace + 3, "exit took %.1fs (grace %ss)", dt, s.grace)
    env.suite.stop_server(s)


def sigterm_grace_expires(env):
    S, grpc = env.stubs, env.stubs.grpc
    m = S.messages_pb2
    s = _grace_server(env, 1)
    ch = s.channel()
    stub = S.test_pb2_grpc.TestServiceStub(ch)
    req = m.StreamingOutputCallRequest(response_parameters=[
        m.ResponseParameters(size=10), m.ResponseParameters(size=10, interval_us=30000000)])
    it = stub.StreamingOutputCall(req, timeout=60)
    next(it)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    try:
        list(it)
        code = it.code()
    except grpc.RpcError as e:
        code = e.code()
    ch.close()
    rc = s.wait(15)
    dt = time.monotonic() - t0
    check(code != grpc.StatusCode.OK, "30 s call finished OK despite a 1 s grace")
    check(rc is not None, "server still running 15s after SIGTERM with --grace 1")
    eq(rc, 0, "exit status")
    check(dt < 1 + 5, "exit took %.1fs with --grace 1", dt)
    env.suite.stop_server(s)


def sigterm_ends_health_watch(env):
    """An open Health.Watch must not hold the drain for the whole grace period:
    the server reports NOT_SERVING (or ends the call) and exits well before --grace 8."""
    S, grpc = env.stubs, env.stubs.grpc
    hp = S.health_pb2
    s = _grace_server(env, 8)
    ch = s.channel()
    it = S.health_pb2_grpc.HealthStub(ch).Watch(hp.HealthCheckRequest(service=""), timeout=30)
    eq(next(it).status, hp.HealthCheckResponse.SERVING, "first Watch status")
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    seen, code = [], None
    try:
        for r in it:
            seen.append(r.status)
        code = it.code()
    except grpc.RpcError as e:
        code = e.code()
    ch.close()
    rc = s.wait(20)
    dt = time.monotonic() - t0
    check(rc is not None, "server still running 20s after SIGTERM with an open Watch")
    eq(rc, 0, "exit status")
    check(hp.HealthCheckResponse.NOT_SERVING in seen or code != grpc.StatusCode.OK,
          "Watch saw %r and ended %s", seen, code)
    check(dt < 8, "exit took %.1fs: the open Watch held the drain for the whole grace", dt)
    print("# Watch across SIGTERM: statuses %r, end %s, exit after %.2fs" % (seen, code, dt))
    env.suite.stop_server(s)


def sigterm_stalled_reader(env, tls=False):
    """A client that stops reading a large response (zero window) must not keep the
    process alive past the grace period."""
    import h2raw
    m = env.stubs.messages_pb2
    s = _grace_server(env, 1, tls)
    cl = h2raw.H2Client("127.0.0.1", s.port, ca=s.ca_path(), timeout=T)
    try:
        cl.conn.update_settings({4: 0})  # INITIAL_WINDOW_SIZE 0: nothing can be sent
        cl.flush()
        cl.wait(lambda: cl.settings_acked, 5)
        req = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=300000)])
        cl.start("/grpc.testing.TestService/StreamingOutputCall",
                 body=h2raw.grpc_frame(req.SerializeToString()))
        time.sleep(0.3)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        rc = s.wait(15)
        dt = time.monotonic() - t0
    finally:
        cl.close()
    check(rc is not None, "server still running 15s after SIGTERM (--grace 1) with a stalled reader")
    eq(rc, 0, "exit status")
    check(dt < 1 + 5, "exit took %.1fs with --grace 1", dt)
    env.suite.stop_server(s)


def sigint_like_sigterm(env):
    s = env.server(h2c=True, name="%s-sigint" % env.args.server)
    s.signal(signal.SIGINT)
    s.sent_term = True
    rc = s.wait(10)
    check(rc is not None, "still running 10s after SIGINT")
    eq(rc, 0, "exit status after SIGINT")
    env.suite.stop_server(s)


def sigterm_drain_under_load(env, tls=False):
    """Clients that keep calling while omsd drains: the drain notice (GOAWAY
    2^31-1, the real last stream id a PING round trip later) means a call
    already on its way is served, so every call either completes OK or is
    refused before it started (UNAVAILABLE; grpcio retries refused streams
    transparently). Nothing ends CANCELLED, INTERNAL or UNKNOWN."""
    import threading
    S, grpc = env.stubs, env.stubs.grpc
    s = _grace_server(env, 5, tls)
    ch = s.channel()
    stub = S.test_pb2_grpc.TestServiceStub(ch)
    lock = threading.Lock()
    codes = {}
    after_term = {"ok": 0}
    started = threading.Event()
    stop = threading.Event()
    term_sent = threading.Event()

    def caller():
        n = 0
        while not stop.is_set():
            try:
                stub.EmptyCall(S.empty_pb2.Empty(), timeout=T)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            n += 1
            with lock:
                codes[code] = codes.get(code, 0) + 1
                if code == grpc.StatusCode.OK and term_sent.is_set():
                    after_term["ok"] += 1
                if sum(codes.values()) >= 200:
                    started.set()
            if not s.alive() and n > 0:
                # a few more calls against the exited server: refused, never started
                if code != grpc.StatusCode.OK:
                    break

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    check(started.wait(T), "200 calls did not complete before the drain")
    term_sent.set()
    s.signal(signal.SIGTERM)
    rc = s.wait(s.grace + 10)
    stop.set()
    for t in threads:
        t.join(T)
    ch.close()
    print("# drain under load (%s): %r, OK after SIGTERM %d" % (
        "tls" if tls else "h2c", {str(k): v for k, v in codes.items()}, after_term["ok"]))
    check(rc is not None, "server still running after SIGTERM under load")
    eq(rc, 0, "exit status")
    bad = {str(k): v for k, v in codes.items()
           if k not in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)}
    eq(bad, {}, "calls that neither completed nor were refused before starting")
    env.suite.stop_server(s)


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("lifecycle", args) as env:
        su = env.suite
        su.run("startup.missing_cert", missing_cert, env)
        su.run("startup.unknown_flag", unknown_flag, env)
        su.run("startup.failed_start_leaves_nothing", failed_start_leaves_nothing, env)
        su.run("cli.version_everywhere", version_everywhere, env)
        su.run("startup.port_in_use", port_in_use, env)
        su.run("startup.bad_arguments", bad_arguments, env)
        su.run("startup.authz_policy_file", authz_policy_file, env)
        su.run("startup.listen_ipv6", listen_ipv6, env)
        su.run("startup.default_cert_paths", default_cert_paths, env)
        su.run("startup.port_in_use_by_second_server", port_in_use_by_omsd, env)
        su.run("startup.two_servers_distinct_ports", two_servers_distinct_ports, env)
        su.run("sigterm.idle_exits_0", sigterm_idle, env)
        su.run("sigterm.drains_inflight_h2c", sigterm_drains_inflight, env, False)
        su.run("sigterm.drains_inflight_tls", sigterm_drains_inflight, env, True)
        su.run("sigterm.drain_under_load_h2c", sigterm_drain_under_load, env, False)
        su.run("sigterm.drain_under_load_tls", sigterm_drain_under_load, env, True)
        su.run("sigterm.grace_expires", sigterm_grace_expires, env)
        su.run("sigterm.ends_health_watch", sigterm_ends_health_watch, env)
        su.run("sigterm.stalled_reader_h2c", sigterm_stalled_reader, env, False)
        su.run("sigterm.stalled_reader_tls", sigterm_stalled_reader, env, True)
        su.run("sigint.exits_0", sigint_like_sigterm, env)


if __name__ == "__main__":
    main()
