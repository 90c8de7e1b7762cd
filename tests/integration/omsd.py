"""Shared helpers for the integration suite: python stubs, server processes,
and a tiny test runner.

Run every script here with /usr/bin/python3 (Debian's interpreter, which has
grpcio, protobuf and h2).

Stubs: protoc writes grpc/testing/*_pb2.py etc. into a generated directory.
The generated package `grpc.testing` collides with the installed `grpc`
package, so load_stubs() appends <gen>/grpc to grpc.__path__: `grpc.testing`,
`grpc.health` and `grpc.reflection` then resolve to the generated modules while
`grpc` itself stays the real library.

Servers: Server starts either the real `omsd` binary or ref_server.py (the
reference TestService written with grpcio) with the same command-line
contract, waits for the single `listening on HOST:PORT (tls|h2c)` line, and
always stops it (SIGTERM, then SIGKILL). The child also gets
PR_SET_PDEATHSIG(SIGKILL) so a runner killed by a ctest timeout cannot leave a
server behind.

Standalone use: `python3 omsd.py gen --out DIR` generates the stubs.
"""

import argparse
import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

HERE = os.path.dirname(os.path.abspath(__file__))
GRPC_PROTO_DIR = "/usr/share/grpc-proto"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
PROTOS = [
    "grpc/testing/empty.proto",
    "grpc/testing/messages.proto",
    "grpc/testing/test.proto",
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1alpha/reflection.proto",
    "grpc/reflection/v1/reflection.proto",
    "oms/bench/v1/bench.proto",
    "oms/v1/customer.proto",
    "oms/v1/inventory.proto",
    "oms/v1/order.proto",
]
# One module per proto, checked to decide whether generation is complete.
_MARKERS = [p[: -len(".proto")] + "_pb2_grpc.py" for p in PROTOS]

# Generous but bounded: sanitizer builds are several times slower.
RPC_TIMEOUT = float(os.environ.get("OMS_IT_RPC_TIMEOUT", "20"))
START_TIMEOUT = float(os.environ.get("OMS_IT_START_TIMEOUT", "30"))

LISTEN_RE = re.compile(r"^listening on (\S+):(\d+) \((tls|h2c)\)$")


# --------------------------------------------------------------------------
# stubs


def default_source_dir():
    return os.path.abspath(os.path.join(HERE, "..", ".."))


def _stubs_complete(out):
    return all(os.path.isfile(os.path.join(out, m)) for m in _MARKERS)


def generate_stubs(out, source_dir=None):
    """Runs protoc into `out` (atomically: a temp dir renamed into place)."""
    source_dir = source_dir or default_source_dir()
    if _stubs_complete(out):
        return out
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pygen-", dir=parent)
    try:
        cmd = [
            "protoc",
            "-I" + GRPC_PROTO_DIR,
            "-I" + os.path.join(source_dir, "proto"),
            "--python_out=" + tmp,
            "--grpc_python_out=" + tmp,
            "--plugin=protoc-gen-grpc_python=" + GRPC_PYTHON_PLUGIN,
        ] + PROTOS
        subprocess.run(cmd, check=True)
        if os.path.isdir(out):  # a stale or partial directory
            shutil.rmtree(out, ignore_errors=True)
        try:
            os.rename(tmp, out)
        except OSError:
            if not _stubs_complete(out):  # lost a race and the winner is broken
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class Stubs:
    """Namespace holding the generated modules."""


_stubs = None


def load_stubs(gen_dir=None, source_dir=None):
    global _stubs
    if _stubs is not None:
        return _stubs
    gen_dir = gen_dir or os.environ.get("OMS_IT_GEN") or os.path.join(
        tempfile.gettempdir(), "oms-it-pygen-%d" % os.getuid())
    gen_dir = os.path.abspath(gen_dir)
    generate_stubs(gen_dir, source_dir)
    if gen_dir not in sys.path:
        sys.path.insert(0, gen_dir)
    import grpc  # the installed library

    extra = os.path.join(gen_dir, "grpc")
    if extra not in grpc.__path__:
        grpc.__path__.append(extra)
    import importlib

    s = Stubs()
    s.gen_dir = gen_dir
    s.grpc = grpc
    for attr, mod in [
        ("empty_pb2", "grpc.testing.empty_pb2"),
        ("messages_pb2", "grpc.testing.messages_pb2"),
        ("test_pb2", "grpc.testing.test_pb2"),
        ("test_pb2_grpc", "grpc.testing.test_pb2_grpc"),
        ("health_pb2", "grpc.health.v1.health_pb2"),
        ("health_pb2_grpc", "grpc.health.v1.health_pb2_grpc"),
        ("refl_v1_pb2", "grpc.reflection.v1.reflection_pb2"),
        ("refl_v1_pb2_grpc", "grpc.reflection.v1.reflection_pb2_grpc"),
        ("refl_v1alpha_pb2", "grpc.reflection.v1alpha.reflection_pb2"),
        ("refl_v1alpha_pb2_grpc", "grpc.reflection.v1alpha.reflection_pb2_grpc"),
        ("bench_pb2", "oms.bench.v1.bench_pb2"),
        ("bench_pb2_grpc", "oms.bench.v1.bench_pb2_grpc"),
        ("customer_pb2", "oms.v1.customer_pb2"),
        ("customer_pb2_grpc", "oms.v1.customer_pb2_grpc"),
        ("inventory_pb2", "oms.v1.inventory_pb2"),
        ("inventory_pb2_grpc", "oms.v1.inventory_pb2_grpc"),
        ("order_pb2", "oms.v1.order_pb2"),
        ("order_pb2_grpc", "oms.v1.order_pb2_grpc"),
    ]:
        setattr(s, attr, importlib.import_module(mod))
    _stubs = s
    return s


# --------------------------------------------------------------------------
# certificates


def make_certs(source_dir, dest):
    script = os.path.join(source_dir, "scripts", "certs.sh")
    subprocess.run(["bash", script, dest], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for f in ("ca.pem", "server.pem", "server.key"):
        if not os.path.isfile(os.path.join(dest, f)):
            raise RuntimeError("certs.sh did not create %s/%s" % (dest, f))
    return dest


# --------------------------------------------------------------------------
# server processes

_PR_SET_PDEATHSIG = 1


def _child_setup(nofile=None):
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    if nofile:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))


def wrap_argv(argv, nofile=None):
    """Prefixes argv so that the child dies with us (PR_SET_PDEATHSIG via setpriv) and
    gets RLIMIT_NOFILE (via prlimit), all by exec: no preexec_fn, so subprocess can
    use vfork/posix_spawn. A plain fork() in a process with live grpc threads runs
    grpc core's atfork handlers and can trip its thread-pool assertions."""
    pre = []
    if nofile:
        pre += [shutil.which("prlimit") or "prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        pre += [setpriv, "--pdeathsig", "KILL", "--"]
    return pre + list(argv)


def popen_kwargs(nofile=None):
    """preexec_fn only when setpriv/prlimit are unavailable."""
    if shutil.which("setpriv") and (not nofile or shutil.which("prlimit")):
        return {}
    return {"preexec_fn": lambda: _child_setup(nofile)}


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class ServerError(Exception):
    pass


class Server:
    """One omsd (or ref_server.py) process bound to 127.0.0.1 on a free port.

    kind: "omsd" or "ref". h2c: plaintext instead of TLS.
    """

    def __init__(self, kind, omsd_path, source_dir, workdir, h2c=False, certs=None,
                 extra_args=(), grace=5, name=None, nofile=None):
        self.kind = kind
        self.omsd_path = omsd_path
        self.source_dir = source_dir
        self.h2c = h2c
        self.certs = certs
        self.grace = grace
        self.extra_args = list(extra_args)
        self.nofile = nofile  # RLIMIT_NOFILE for the server process
        self.name = name or ("%s-%s" % (kind, "h2c" if h2c else "tls"))
        self.workdir = os.path.join(workdir, self.name)
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "server.log")
        self.proc = None
        self.host = None
        self.port = None
        self.stdout_lines = []
        self.returncode = None
        self.sent_term = False
        self._reader = None

    # the argv, identical for both kinds apart from the program
    def argv(self):
        if self.kind == "omsd":
            prog = [self.omsd_path]
        elif self.kind == "ref":
            prog = [sys.executable, os.path.join(HERE, "ref_server.py")]
        else:
            raise ValueError(self.kind)
        args = ["--listen", "127.0.0.1:0", "--grace", str(self.grace)]
        if self.h2c:
            args.append("--h2c")
        else:
            args += ["--tls-cert", os.path.join(self.certs, "server.pem"),
                     "--tls-key", os.path.join(self.certs, "server.key")]
        return prog + args + self.extra_args

    @property
    def transport(self):
        return "h2c" if self.h2c else "tls"

    def start(self):
        env = dict(os.environ)
        if self.kind == "ref" and _stubs is not None:
            env["OMS_IT_GEN"] = _stubs.gen_dir
        self._log = open(self.log_path, "wb")
        argv = self.argv()
        self._log.write(("$ " + " ".join(argv) + "\n").encode())
        self._log.flush()
        self.proc = subprocess.Popen(wrap_argv(argv, self.nofile), cwd=self.workdir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env, **popen_kwargs(self.nofile))
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise ServerError("%s: no 'listening on' line within %.0fs; log:\n%s"
                                  % (self.name, START_TIMEOUT, self.log_tail()))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait()
                    raise ServerError("%s exited (rc=%s) before listening; stdout=%r; log:\n%s"
                                      % (self.name, rc, buf, self.log_tail()))
                buf += chunk
                if b"\n" in buf:
                    line, rest = buf.split(b"\n", 1)
                    line = line.decode(errors="replace").rstrip("\r")
                    self.stdout_lines.append(line)
                    m = LISTEN_RE.match(line)
                    if not m:
                        self.kill()
                        raise ServerError("%s: first stdout line is %r, expected "
                                          "'listening on HOST:PORT (tls|h2c)'" % (self.name, line))
                    if m.group(3) != self.transport:
                        self.kill()
                        raise ServerError("%s: listening line says %s, expected %s"
                                          % (self.name, m.group(3), self.transport))
                    self.host, self.port = m.group(1), int(m.group(2))
                    if self.port == 0:
                        self.kill()
                        raise ServerError("%s: printed port 0, expected the real port" % self.name)
                    self._rest = rest
                    break
            elif self.proc.poll() is not None:
                raise ServerError("%s exited (rc=%s) before listening; log:\n%s"
                                  % (self.name, self.proc.returncode, self.log_tail()))
        self._reader = threading.Thread(target=self._drain_stdout, daemon=True)
        self._reader.start()
        return self

    def _drain_stdout(self):
        data = self._rest
        try:
            while True:
                chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") \
                    else self.proc.stdout.read(4096)
                if not chunk:
                    break
                data += chunk
        except Exception:
            pass
        for line in data.decode(errors="replace").splitlines():
            self.stdout_lines.append(line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def target(self):
        """grpc target: localhost for TLS (matches the SAN), 127.0.0.1 for h2c."""
        return ("127.0.0.1:%d" if self.h2c else "localhost:%d") % self.port

    def channel(self, options=()):
        grpc = load_stubs().grpc
        opts = list(options)
        if self.h2c:
            return grpc.insecure_channel(self.target(), options=opts)
        with open(os.path.join(self.certs, "ca.pem"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(self.target(), creds, options=opts)

    def ca_path(self):
        return None if self.h2c else os.path.join(self.certs, "ca.pem")

    def signal(self, sig):
        if self.alive():
            if sig == signal.SIGTERM:
                self.sent_term = True
            self.proc.send_signal(sig)

    def rss_kb(self):
        """Resident set size of the server process (kB), from /proc."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.returncode = self.proc.returncode

    def stop(self):
        """SIGTERM, wait grace+slack, else SIGKILL. Returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is not None:
            if not self.sent_term:
                problems.append("%s had already exited with rc=%s"
                                % (self.name, self.proc.returncode))
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace + 15)
            except subprocess.TimeoutExpired:
                problems.append("%s did not exit within %ss of SIGTERM (killed)"
                                % (self.name, self.grace + 15))
                self.kill()
        self.returncode = self.proc.returncode
        if self.returncode != 0 and not problems:
            problems.append("%s exit status %s after SIGTERM, expected 0%s"
                            % (self.name, self.returncode,
                               " (signal %d)" % -self.returncode if self.returncode < 0 else ""))
        if self._reader:
            self._reader.join(timeout=5)
        try:
            self._log.close()
        except Exception:
            pass
        san = self.sanitizer_reports()
        if san:
            problems.append("%s: sanitizer report(s):\n%s" % (self.name, san))
        n = sum(1 for l in self.stdout_lines if l.startswith("listening on"))
        if n != 1:
            problems.append("%s printed %d 'listening on' lines, expected exactly 1: %r"
                            % (self.name, n, self.stdout_lines[:5]))
        return problems

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_reports(self):
        lines = self.log_text().splitlines()
        for i, l in enumerate(lines):
            if any(m in l for m in SANITIZER_MARKERS):
                return "\n".join(lines[max(0, i - 2): i + 40])
        return ""


# --------------------------------------------------------------------------
# test runner


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        if len(g) > 200:
            g = g[:200] + "...(%d chars)" % len(g)
        if len(w) > 200:
            w = w[:200] + "...(%d chars)" % len(w)
        raise Failure("%s: expected %s, got %s" % (what, w, g))


def health_check(env, server, what="health check"):
    """grpc.health.v1 Check("") over grpcio: the server serves gRPC."""
    stubs = env.stubs
    with server.channel() as ch:
        hs = stubs.health_pb2_grpc.HealthStub(ch)
        r = hs.Check(stubs.health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT)
        eq(r.status, stubs.health_pb2.HealthCheckResponse.SERVING, what)


class Suite:
    """Runs named cases, prints PASS/FAIL lines and 'N passed, M failed'."""

    def __init__(self, name, only=None, verbose=False):
        self.name = name
        self.only = only
        self.verbose = verbose
        self.passed = 0
        self.failed = []
        self.servers = []

    def selected(self, case):
        return not self.only or any(o in case for o in self.only)

    def run(self, case, fn, *args, xfail=None, **kw):
        """Runs fn(*args, **kw). xfail: a reason why this failure is expected (only
        used for known laxness of the reference server); it is then not counted."""
        if not self.selected(case):
            return None
        t0 = time.monotonic()
        try:
            fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            dt = time.monotonic() - t0
            detail = "%s: %s" % (type(e).__name__, e) if not isinstance(e, Failure) else str(e)
            if xfail:
                print("XFAIL %s (%.2fs): %s (expected: %s)"
                      % (case, dt, detail.splitlines()[0][:300], xfail), flush=True)
                return None
            print("FAIL %s (%.2fs): %s" % (case, dt, detail), flush=True)
            if self.verbose or not isinstance(e, (Failure,)) and not _is_rpc_error(e):
                traceback.print_exc(file=sys.stdout)
            self.failed.append((case, detail))
            return False
        dt = time.monotonic() - t0
        print("PASS %s (%.2fs)" % (case, dt), flush=True)
        self.passed += 1
        return True

    def record(self, case, ok, detail=""):
        if ok:
            print("PASS %s" % case, flush=True)
            self.passed += 1
        else:
            print("FAIL %s: %s" % (case, detail), flush=True)
            self.failed.append((case, detail))

    def start_server(self, server):
        """Starts a server; failures are recorded and re-raised."""
        self.servers.append(server)
        try:
            server.start()
        except Exception as e:
            self.record("%s.start" % server.name, False, str(e))
            raise
        print("# %s listening on %s:%d (%s) pid %d"
              % (server.name, server.host, server.port, server.transport, server.proc.pid),
              flush=True)
        return server

    def stop_server(self, server):
        if server not in self.servers:
            return
        self.servers.remove(server)
        if server.proc is None:
            return
        problems = server.stop()
        self.record("%s.clean_exit" % server.name, not problems, "; ".join(problems))
        if problems or self.failed:
            print("# --- %s log (tail) ---\n%s\n# --- end ---" % (server.name, server.log_tail(60)),
                  flush=True)

    def finish(self):
        for s in list(self.servers):
            self.stop_server(s)
        if self.failed:
            print("# failures:")
            for c, d in self.failed:
                print("#   %s: %s" % (c, d.splitlines()[0] if d else ""))
        print("%d passed, %d failed" % (self.passed, len(self.failed)), flush=True)
        return 0 if not self.failed else 1


def _is_rpc_error(e):
    try:
        return isinstance(e, load_stubs().grpc.RpcError)
    except Exception:
        return False


def rpc_error_str(e):
    try:
        return "%s %r" % (e.code(), e.details())
    except Exception:
        return repr(e)


def common_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--omsd", help="path to the omsd binary (required for --server omsd)")
    p.add_argument("--source-dir", default=default_source_dir(),
                   help="oms source tree (for scripts/certs.sh and proto/)")
    p.add_argument("--server", choices=["omsd", "ref"], default="omsd",
                   help="which server to drive: the C omsd or ref_server.py (grpcio)")
    p.add_argument("--gen", help="directory for generated python stubs")
    p.add_argument("--transport", default="tls,h2c", help="comma list: tls,h2c")
    p.add_argument("--workdir", help="keep server logs/certs here instead of a temp dir")
    p.add_argument("-k", dest="only", action="append",
                   help="only run cases whose name contains this (repeatable)")
    p.add_argument("-v", dest="verbose", action="store_true")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("OMS_IT_SUITE_TIMEOUT", "170")),
                   help="hard limit for the whole runner (seconds)")
    return p


class Env:
    """Parsed args + workdir + certs + a Suite; use as a context manager."""

    def __init__(self, name, args):
        self.args = args
        if args.server == "omsd":
            if not args.omsd:
                sys.exit("--omsd PATH is required with --server omsd")
            if not os.access(args.omsd, os.X_OK):
                print("omsd binary not found or not executable: %s" % args.omsd)
                print("0 passed, 1 failed")
                sys.exit(1)
        self.transports = [t.strip() for t in args.transport.split(",") if t.strip()]
        self.stubs = load_stubs(args.gen, args.source_dir)
        self._own_workdir = args.workdir is None
        self.workdir = args.workdir or tempfile.mkdtemp(prefix="oms-it-%s-" % name)
        os.makedirs(self.workdir, exist_ok=True)
        self.suite = Suite("%s[%s]" % (name, args.server), args.only, args.verbose)
        try:
            self.certs = make_certs(args.source_dir, os.path.join(self.workdir, "certs"))
        except Exception as e:
            print("FAIL setup.certs: %s" % e)
            print("0 passed, 1 failed", flush=True)
            sys.exit(1)
        # Watchdog: never let ctest's own timeout kill us without a summary.
        self._watchdog = threading.Timer(args.timeout, self._expire)
        self._watchdog.daemon = True

    def _expire(self):
        print("FAIL suite.timeout: runner exceeded %.0fs; killing servers" % self.args.timeout,
              flush=True)
        for s in list(self.suite.servers):
            try:
                print("# --- %s log (tail) ---\n%s" % (s.name, s.log_tail(60)), flush=True)
                s.kill()
            except Exception:
                pass
        print("%d passed, %d failed" % (self.suite.passed, len(self.suite.failed) + 1), flush=True)
        os._exit(1)

    def server(self, h2c=False, extra_args=(), name=None, grace=5, nofile=None):
        s = Server(self.args.server, self.args.omsd, self.args.source_dir, self.workdir,
                   h2c=h2c, certs=self.certs, extra_args=extra_args, grace=grace, name=name,
                   nofile=nofile)
        return self.suite.start_server(s)

    def __enter__(self):
        self._watchdog.start()
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and et is not SystemExit:
            print("FAIL suite.aborted: %s: %s" % (et.__name__, ev), flush=True)
            if not isinstance(ev, ServerError):
                traceback.print_exception(et, ev, tb, file=sys.stdout)
            self.suite.failed.append(("suite.aborted", str(ev)))
        rc = self.suite.finish()
        self._watchdog.cancel()
        if self._own_workdir and rc == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self._own_workdir:
            print("# logs kept in %s" % self.workdir)
        sys.stdout.flush()
        os._exit(rc)  # grpc threads must not delay or change the exit status


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate python stubs")
    g.add_argument("--out", required=True)
    g.add_argument("--source-dir", default=default_source_dir())
    a = p.parse_args()
    if a.cmd == "gen":
        generate_stubs(os.path.abspath(a.out), a.source_dir)
        load_stubs(a.out, a.source_dir)  # proves the stubs import
        print("stubs in %s" % a.out)


if __name__ == "__main__":
    main()
