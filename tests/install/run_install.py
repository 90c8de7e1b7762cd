#!/usr/bin/env python3
"""libomsrpc as an outside project sees it (cmake/install.cmake).

Installs the build tree into a temp prefix, checks the layout and what the
libraries hold, builds examples/hello against the prefix with
find_package(omsrpc) + omsrpc_generate(), runs its server and client over h2c
and TLS and its interceptor examples (logging server, header client) over h2c, and links tests/install/link_check.c through pkg-config (shared and
static) and through omsrpc::omsrpc_static. Prints PASS/FAIL lines and
"N passed, M failed"; exits non-zero on any failure. Temp dirs and servers are
removed on every exit path (--keep leaves the temp dir, for debugging).
"""
import argparse
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

WARNINGS = "-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror"
STEP_TIMEOUT = 60  # seconds, any one command

passed = 0
failed = 0
servers = []  # Popen objects still to stop


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail.strip()}" if detail else ""), flush=True)
    return ok


def run(cmd, env=None, cwd=None):
    """Runs cmd; returns (exit code, stdout, stderr). A timeout counts as 124."""
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                           timeout=STEP_TIMEOUT)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout or "", f"timed out after {STEP_TIMEOUT}s: {' '.join(cmd)}"


def tail(text, n=25):
    return "\n".join(text.strip().splitlines()[-n:])


def start_server(exe, args):
    """Starts hello_server and waits for "listening on HOST:PORT"; returns (proc, port)."""
    p = subprocess.Popen([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    servers.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 15)
    line = p.stdout.readline() if ready else ""
    m = re.match(r"listening on [^ ]+:(\d+) ", line)
    if not m:
        stop_server(p)
        return None, f"no 'listening on' line (got {line!r}); stderr: {p.stderr.read()}"
    return p, int(m.group(1))


def stop_server(p):
    """SIGINT (graceful stop), then SIGKILL after 10 s; returns the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in servers:
        servers.remove(p)
    return p.returncode


def free_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def needed(path):
    rc, out, _ = run(["readelf", "-d", path])
    return re.findall(r"\(NEEDED\).*\[(.+)\]", out) if rc == 0 else []


def soname(path):
    rc, out, _ = run(["readelf", "-d", path])
    m = re.search(r"\(SONAME\).*\[(.+)\]", out)
    return m.group(1) if m else None


def defined_symbols(lib):
    rc, out, _ = run(["nm", "-D", "--defined-only", lib] if lib.endswith(".so")
                     else ["nm", "--defined-only", lib])
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3}


# The installed headers' public declarations: OMS_EXTERN <type> name(...).
EXTERN_DECL = re.compile(r"^OMS_EXTERN\b[^(;]*?\b(\w+)\s*\(", re.M)
# What libomsrpc.so may export: the documented API's prefixes, never an
# internal (rpc__*, http2__*, oms__*) or a generated descriptor (google__*,
# grpc__*): docs/ABI.md.
PUBLIC_SYMBOL = re.compile(r"^(rpc|http2|oms)_(?!_)\w+$")


def public_declarations(include_dir):
    names = set()
    for root, _, files in os.walk(include_dir):
        for f in files:
            if f.endswith(".h"):
                with open(os.path.join(root, f)) as fh:
                    names |= set(EXTERN_DECL.findall(fh.read()))
    return names


def abi_problems(exported, declared):
    """Why a shared library's dynamic symbols are not exactly the public API
    (empty when they are): internals or descriptors exported, exports no
    installed header declares OMS_EXTERN, OMS_EXTERN declarations not exported."""
    problems = []
    bad = sorted(s for s in exported if not PUBLIC_SYMBOL.match(s))
    if bad:
        problems.append(f"{len(bad)} internal/generated symbols exported: {bad[:8]}")
    undeclared = sorted(s for s in exported - declared if PUBLIC_SYMBOL.match(s))
    if undeclared:
        problems.append(f"exported but not OMS_EXTERN in an installed header: {undeclared[:8]}")
    missing = sorted(declared - exported)
    if missing:
        problems.append(f"OMS_EXTERN in a header but not exported: {missing[:8]}")
    return problems


def check_install(a, prefix):
    rc, out, err = run([a.cmake, "--install", a.build_dir, "--prefix", prefix])
    if not check("cmake --install into a temp prefix", rc == 0, tail(out + err)):
        return False
    lib = os.path.join(prefix, a.libdir)
    expected = [
        "include/oms/base/export.h", "include/oms/base/log.h", "include/oms/http2/http2.h", "include/oms/rpc/rpc.h",
        "include/oms/rpc/rpc_client.h", "include/oms/rpc/health.h",
        "include/oms/rpc/reflection.h", "bin/protoc-gen-omsrpc",
        f"{a.libdir}/libomsrpc.a", f"{a.libdir}/libomsrpc.so",
        f"{a.libdir}/pkgconfig/omsrpc.pc", f"{a.libdir}/cmake/omsrpc/omsrpcConfig.cmake",
        f"{a.libdir}/cmake/omsrpc/omsrpcConfigVersion.cmake",
        f"{a.libdir}/cmake/omsrpc/omsrpcTargets.cmake",
    ]
    missing = [f for f in expected if not os.path.exists(os.path.join(prefix, f))]
    check("layout: headers, libraries, plugin, omsrpc.pc, CMake package", not missing,
          f"missing {missing}")

    so = os.path.join(lib, "libomsrpc.so")
    name = soname(so)
    check("libomsrpc.so: SONAME from the project version, symlinked",
          os.path.islink(so) and name is not None and name.startswith("libomsrpc.so.")
          and os.path.exists(os.path.join(lib, name))
          and os.path.realpath(so).endswith("libomsrpc.so." + a.version), f"SONAME {name}")

    # The archive: every layer and the health/reflection/descriptor messages
    # (hidden, but there), none of the test or bench protos.
    api = {"oms_log", "http2_server_new", "rpc_server_new", "rpc_channel_new",
           "rpc_health_new", "rpc_reflection_new"}
    want = api | {"grpc__health__v1__health_check_request__descriptor",
                  "grpc__reflection__v1__server_reflection_request__descriptor",
                  "grpc__reflection__v1alpha__server_reflection_request__descriptor",
                  "google__protobuf__file_descriptor_set__descriptor"}
    syms = defined_symbols(os.path.join(lib, "libomsrpc.a"))
    extra = sorted(s for s in syms if s.startswith(("grpc__testing__", "oms__bench__")))
    check("libomsrpc.a: base + http2 + rpc + health/reflection/descriptor protos only",
          want <= syms and not extra, f"missing {sorted(want - syms)}, unexpected {extra[:5]}")

    # The shared library exports exactly the OMS_EXTERN declarations of the
    # installed headers (docs/ABI.md): no rpc__/http2__ internal, no
    # google__/grpc__ descriptor (which would clash with a program that
    # compiles its own descriptor.pb-c.c).
    exported = defined_symbols(so)
    declared = public_declarations(os.path.join(prefix, "include", "oms"))
    problems = abi_problems(exported, declared)
    print(f"libomsrpc.so exports {len(exported)} symbols, the headers declare "
          f"{len(declared)} OMS_EXTERN", flush=True)
    check("libomsrpc.so exports exactly the public API (nm -D --defined-only)",
          api <= exported and len(declared) > 100 and not problems,
          "; ".join(problems) or f"missing {sorted(api - exported)}")
    # The check itself catches a leak: the same comparison on a planted one.
    check("the ABI check flags a planted internal, descriptor and undeclared export",
          len(abi_problems(exported | {"rpc__call_planted", "google__protobuf__planted",
                                       "rpc_planted_undeclared"}, declared)) == 2
          and "rpc__call_planted" in abi_problems(exported | {"rpc__call_planted"},
                                                  declared)[0])
    return True


def check_example(a, prefix, tmp):
    src = os.path.join(a.source_dir, "examples", "hello")
    bld = os.path.join(tmp, "hello")
    rc, out, err = run([a.cmake, "-S", src, "-B", bld, "-G", a.generator,
                        f"-DCMAKE_C_COMPILER={a.cc}", f"-DCMAKE_PREFIX_PATH={prefix}",
                        f"-DCMAKE_C_FLAGS={WARNINGS}"])
    if rc == 0:
        rc, out, err = run([a.cmake, "--build", bld, "-j", "2"])
    if not check("examples/hello: find_package + omsrpc_generate, builds warning-free", rc == 0,
                 tail(out + err)):
        return
    server = os.path.join(bld, "hello_server")
    client = os.path.join(bld, "hello_client")

    # h2c: unary (blocking stub), then a server stream of 3.
    p, port = start_server(server, ["--h2c", "--listen", "127.0.0.1:0"])
    if check("hello_server --h2c starts on a free port", p is not None, str(port)):
        rc, out, err = run([client, "--h2c", "--target", f"127.0.0.1:{port}", "--count", "3",
                            "install-test"])
        want = ["Hello, install-test!"] + [f"Hello #{i}, install-test!" for i in (1, 2, 3)]
        check("hello_client --h2c: SayHello and LotsOfReplies", rc == 0
              and out.splitlines() == want, f"rc {rc}, stdout {out!r}, stderr {tail(err)}")
        # --metrics: the client library's grpc_client_* counters, as a
        # program on libomsrpc asks for them (metrics/metrics.h)
        rc, out, err = run([client, "--h2c", "--target", f"127.0.0.1:{port}", "--count", "2",
                            "--metrics", "m"])
        got = {}
        for line in err.splitlines():
            m = re.match(r"^(grpc_client_\w+)\{(.*)\} (\S+)$", line)
            if m:
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                got[(m.group(1), labels)] = float(m.group(3))

        def sample(name, typ, meth, **extra):
            labels = dict(grpc_type=typ, grpc_service="hello.v1.Greeter", grpc_method=meth)
            return got.get((name, frozenset(dict(labels, **extra).items())))
        want = {("started", "SayHello"): (sample("grpc_client_started_total", "unary",
                                                  "SayHello"), 1),
                ("handled OK", "SayHello"): (sample("grpc_client_handled_total", "unary",
                                                    "SayHello", grpc_code="OK"), 1),
                ("histogram", "SayHello"): (sample("grpc_client_handling_seconds_count", "unary",
                                                   "SayHello"), 1),
                ("started", "LotsOfReplies"): (sample("grpc_client_started_total",
                                                      "server_stream", "LotsOfReplies"), 1),
                ("received", "LotsOfReplies"): (sample("grpc_client_msg_received_total",
                                                       "server_stream", "LotsOfReplies"), 2)}
        wrong = {k: v for k, v in want.items() if v[0] != v[1]}
        check("hello_client --metrics: its calls counted as grpc_client_* by type and code",
              rc == 0 and len(out.splitlines()) == 3 and not wrong,
              f"rc {rc}, (got, want) {wrong}, stderr {tail(err, 10)}")
        rc = stop_server(p)
        check("hello_server exits 0 on SIGINT", rc == 0, f"rc {rc}: {tail(p.stderr.read())}")

    # Interceptors: the logging server logs every call with the header client's
    # x-request-id; without the id the call is rejected before the handler, and
    # still logged.
    lserver = os.path.join(bld, "hello_logging_server")
    hclient = os.path.join(bld, "hello_header_client")
    p, port = start_server(lserver, ["--h2c", "--listen", "127.0.0.1:0"])
    if check("hello_logging_server --h2c starts on a free port", p is not None, str(port)):
        rc, out, err = run([hclient, "--h2c", "--target", f"127.0.0.1:{port}", "icpt"])
        check("hello_header_client: SayHello with x-request-id, its interceptor reports the end",
              rc == 0 and out.splitlines() == ["Hello, icpt!"]
              and re.search(r"SayHello: OK in [0-9.]+ ms, sent 1 msg/\d+ B, received 1 msg", err),
              f"rc {rc}, stdout {out!r}, stderr {tail(err)}")
        rc, out, err = run([hclient, "--h2c", "--no-id", "--target", f"127.0.0.1:{port}"])
        check("hello_header_client --no-id: rejected by the server's interceptor",
              rc == 1 and "status 3: x-request-id header required" in err
              and "INVALID_ARGUMENT" in err, f"rc {rc}, stdout {out!r}, stderr {tail(err)}")
        rc = stop_server(p)
        log = p.stdout.read().splitlines()
        check("hello_logging_server logs both calls, the rejected one too", rc == 0
              and len(log) == 2
              and re.match(r"hello\.v1\.Greeter/SayHello id=hello-1 peer=127\.0\.0\.1:\d+ "
                           r"code=OK [0-9.]+ ms in=1 msg/\d+ B out=1 msg/\d+ B$", log[0])
              and re.match(r"hello\.v1\.Greeter/SayHello id=- .* code=INVALID_ARGUMENT .* "
                           r"out=0 msg/0 B$", log[1]), f"rc {rc}, log {log!r}")

    # TLS with a temp CA (scripts/certs.sh): verified with --ca, refused without it.
    certs = os.path.join(tmp, "certs")
    rc, out, err = run(["bash", os.path.join(a.source_dir, "scripts", "certs.sh"), certs])
    if not check("scripts/certs.sh makes a temp CA", rc == 0, err):
        return
    p, port = start_server(server, ["--listen", "127.0.0.1:0",
                                    "--cert", os.path.join(certs, "server.pem"),
                                    "--key", os.path.join(certs, "server.key")])
    if check("hello_server starts with TLS", p is not None, str(port)):
        rc, out, err = run([client, "--target", f"127.0.0.1:{port}",
                            "--ca", os.path.join(certs, "ca.pem"), "tls"])
        check("hello_client over TLS, verified with --ca", rc == 0
              and out.splitlines() == ["Hello, tls!"], f"rc {rc}, {out!r}, {tail(err)}")
        rc, out, err = run([client, "--target", f"127.0.0.1:{port}", "untrusted"])
        check("hello_client refuses the server without the CA", rc == 1
              and "status 14" in err and not out, f"rc {rc}, {out!r}, {tail(err)}")
        rc = stop_server(p)
        check("hello_server (TLS) exits 0 on SIGINT", rc == 0, f"rc {rc}")

    rc, out, err = run([client, "--h2c", "--target", f"127.0.0.1:{free_port()}"])
    check("hello_client with no server: exit 1 with UNAVAILABLE", rc == 1
          and "status 14" in err, f"rc {rc}, {tail(err)}")


def check_pkg_config(a, prefix, tmp):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, a.libdir, "pkgconfig"))
    rc, ver, err = run([a.pkg_config, "--modversion", "omsrpc"], env=env)
    check("pkg-config finds omsrpc", rc == 0 and ver.strip() == a.version, f"{ver!r} {err}")
    rc1, cflags, e1 = run([a.pkg_config, "--cflags", "omsrpc"], env=env)
    rc2, libs, e2 = run([a.pkg_config, "--libs", "omsrpc"], env=env)
    rc3, static_libs, e3 = run([a.pkg_config, "--static", "--libs", "omsrpc"], env=env)
    if not check("pkg-config --cflags --libs [--static] omsrpc", rc1 == rc2 == rc3 == 0,
                 e1 + e2 + e3):
        return
    check("Cflags name <prefix>/include/oms",
          f"-I{os.path.join(prefix, 'include', 'oms')}" in shlex.split(cflags), cflags)
    src = os.path.join(a.source_dir, "tests", "install", "link_check.c")
    lib = os.path.join(prefix, a.libdir)
    # -l:libomsrpc.a takes the archive where -lomsrpc would take the .so.
    static = ["-l:libomsrpc.a" if w == "-lomsrpc" else w for w in shlex.split(static_libs)]
    for kind, link in (("shared", shlex.split(libs)), ("static", static)):
        exe = os.path.join(tmp, f"link_check_{kind}")
        rc, out, err = run([a.cc] + WARNINGS.split() + [src, "-o", exe] + shlex.split(cflags)
                           + link)
        if not check(f"link_check.c links {kind} via pkg-config", rc == 0, tail(out + err)):
            continue
        rc, out, err = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=lib))
        check(f"link_check ({kind}) runs", rc == 0 and out.startswith("omsrpc ok: 3 services"),
              f"rc {rc}, {out!r}, {tail(err)}")
        on_so = any(n.startswith("libomsrpc.so") for n in needed(exe))
        check(f"link_check ({kind}) {'needs' if kind == 'shared' else 'does not need'} "
              "libomsrpc.so", on_so == (kind == "shared"), str(needed(exe)))

    # The same through the CMake package's static target.
    proj = os.path.join(tmp, "static_proj")
    os.makedirs(proj)
    with open(os.path.join(proj, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.20)\nproject(link_check C)\n"
                f"find_package(omsrpc {a.version} CONFIG REQUIRED)\n"
                f"add_executable(link_check {src})\n"
                "target_link_libraries(link_check PRIVATE omsrpc::omsrpc_static)\n")
    bld = os.path.join(proj, "build")
    rc, out, err = run([a.cmake, "-S", proj, "-B", bld, "-G", a.generator,
                        f"-DCMAKE_C_COMPILER={a.cc}", f"-DCMAKE_PREFIX_PATH={prefix}"])
    if rc == 0:
        rc, out, err = run([a.cmake, "--build", bld])
    if check("link_check.c links omsrpc::omsrpc_static via find_package", rc == 0,
             tail(out + err)):
        exe = os.path.join(bld, "link_check")
        rc, out, err = run([exe])
        check("link_check (omsrpc::omsrpc_static) runs, without libomsrpc.so", rc == 0
              and not any(n.startswith("libomsrpc") for n in needed(exe)),
              f"rc {rc}, {out!r}, {tail(err)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--generator", default="Unix Makefiles")
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--pkg-config", default="pkg-config")
    ap.add_argument("--libdir", default="lib")
    ap.add_argument("--version", required=True, help="the project version")
    ap.add_argument("--keep", action="store_true", help="leave the temp dir")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="oms-install-")
    start = time.monotonic()
    try:
        prefix = os.path.join(tmp, "prefix")
        if check_install(a, prefix):
            check_example(a, prefix, tmp)
            check_pkg_config(a, prefix, tmp)
    finally:
        for p in list(servers):
            p.kill()
            p.wait()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"({time.monotonic() - start:.1f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
