#!/usr/bin/python3
"""The C client against real servers: oms-interop-client vs omsd or ref_server.py.

For each transport, starts a server with the omsd.py harness and runs
`oms-interop-client --test_case all` against it (TLS: server host localhost,
--ca_file the harness's temp CA; h2c: 127.0.0.1). Every PASS/FAIL line the
client prints becomes a case here (`<transport>.<case>`), and the client run
itself is checked: its exit status agrees with its lines, the closing
"N passed, M failed" line is there, every case of the list ran, and its stderr
holds no sanitizer report.

TLS also gets the failures that must happen (each a fresh client process):
  tls.reject.wrong_ca            a CA that did not sign the server certificate
                                 -> UNAVAILABLE, "certificate verify failed"
  tls.reject.hostname_mismatch   --server_host_override wrong.example
                                 -> UNAVAILABLE, "hostname mismatch"
  tls.reject.plaintext_client    --use_tls false against the TLS port -> UNAVAILABLE
and on either transport:
  <transport>.reject.refused     a port nobody listens on -> UNAVAILABLE,
                                 "connection refused"

Usage:
  run_c_client.py --client build/oms-interop-client --omsd build/omsd [--transport tls,h2c]
  run_c_client.py --client build/oms-interop-client --server ref
"""

import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check  # noqa: E402

# The cases oms-interop-client runs for --test_case all (its own list).
CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
    "empty_stream", "custom_metadata", "status_code_and_message", "special_status_message",
    "unimplemented_method", "unimplemented_service", "cancel_after_begin",
    "cancel_after_first_response", "timeout_on_sleeping_server", "client_compressed_unary",
    "client_compressed_streaming", "server_compressed_unary", "server_compressed_streaming",
]

LINE_RE = re.compile(r"^(PASS|FAIL) (\S+)(?: \(([\d.]+)s\))?(?:: (.*))?$")
SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed$")
CLIENT_TIMEOUT = float(os.environ.get("OMS_IT_CLIENT_TIMEOUT", "120"))


class ClientRun:
    """One oms-interop-client process: its lines, summary, status and stderr."""

    def __init__(self, argv):
        self.argv = argv
        try:
            p = subprocess.run(h.wrap_argv(argv), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=CLIENT_TIMEOUT, **h.popen_kwargs())
            self.rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            self.rc, out, err = None, e.stdout or b"", e.stderr or b""
        self.stdout = out.decode(errors="replace")
        self.stderr = err.decode(errors="replace")
        self.results = []  # (PASS|FAIL, case, detail)
        self.summary = None
        for line in self.stdout.splitlines():
            m = LINE_RE.match(line)
            if m:
                self.results.append((m.group(1), m.group(2), m.group(4) or ""))
                continue
            m = SUMMARY_RE.match(line)
            if m:
                self.summary = (int(m.group(1)), int(m.group(2)))

    def sanitizer_report(self):
        lines = self.stderr.splitlines()
        for i, l in enumerate(lines):
            if any(mk in l for mk in h.SANITIZER_MARKERS):
                return "\n".join(lines[max(0, i - 2): i + 40])
        return ""

    def describe(self):
        return "$ %s\nrc=%s\n--- stdout\n%s--- stderr (tail)\n%s" % (
            " ".join(self.argv), self.rc, self.stdout,
            "\n".join(self.stderr.splitlines()[-20:]))

    def check_sane(self):
        """The run ended by itself, consistently, without sanitizer reports."""
        check(self.rc is not None, "client did not finish within %.0fs\n%s",
              CLIENT_TIMEOUT, self.describe())
        san = self.sanitizer_report()
        check(not san, "sanitizer report in the client's stderr:\n%s", san)
        check(self.summary is not None, "no 'N passed, M failed' line\n%s", self.describe())
        npass = sum(1 for r in self.results if r[0] == "PASS")
        nfail = len(self.results) - npass
        check(self.summary == (npass, nfail), "summary %r does not match the lines (%d/%d)\n%s",
              self.summary, npass, nfail, self.describe())
        check((self.rc == 0) == (nfail == 0), "exit status %s with %d failed case(s)\n%s",
              self.rc, nfail, self.describe())


def client_argv(args, server, extra=()):
    if server.h2c:
        base = ["--server_host", "127.0.0.1", "--server_port", str(server.port),
                "--use_tls", "false"]
    else:
        base = ["--server_host", "localhost", "--server_port", str(server.port),
                "--use_tls", "true", "--ca_file", server.ca_path()]
    return [args.client] + base + list(extra)


def run_all(env, server):
    """--test_case all: each client line becomes a case of ours."""
    tr = server.transport
    suite = env.suite
    if not any(suite.selected("%s.%s" % (tr, c)) for c in CASES + ["client_run"]):
        return
    runs = []

    def client_run():
        runs.append(ClientRun(client_argv(env.args, server, ["--test_case", "all"])))
        runs[0].check_sane()

    suite.run("%s.client_run" % tr, client_run)
    if not runs:
        return
    run = runs[0]
    seen = set()
    for verdict, case, detail in run.results:
        seen.add(case)
        name = "%s.%s" % (tr, case)
        if suite.selected(name):
            suite.record(name, verdict == "PASS", detail)
    for case in CASES:
        name = "%s.%s" % (tr, case)
        if case not in seen and suite.selected(name):
            suite.record(name, False, "the client did not run this case\n%s" % run.describe())


def expect_unavailable(argv, *needles):
    """One empty_unary that must fail with UNAVAILABLE and a reason holding the
    needles (case-insensitive)."""
    run = ClientRun(argv + ["--test_case", "empty_unary"])
    run.check_sane()
    check(run.rc == 1, "exit status %s, expected 1\n%s", run.rc, run.describe())
    check(len(run.results) == 1 and run.results[0][0] == "FAIL",
          "expected one FAIL line\n%s", run.describe())
    detail = run.results[0][2]
    check("UNAVAILABLE (14)" in detail, "expected UNAVAILABLE, got: %s", detail)
    for n in needles:
        check(n.lower() in detail.lower(), "reason should mention %r: %s", n, detail)


def free_port():
    """A port nobody listens on (bound, then closed: the kernel will refuse)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_rejections(env, server):
    tr = server.transport
    suite = env.suite
    a = env.args
    if not server.h2c:
        other = os.path.join(env.workdir, "other-ca")

        def wrong_ca():
            h.make_certs(a.source_dir, other)
            argv = client_argv(a, server)
            argv[argv.index("--ca_file") + 1] = os.path.join(other, "ca.pem")
            expect_unavailable(argv, "certificate verify failed")

        suite.run("tls.reject.wrong_ca", wrong_ca)
        suite.run("tls.reject.hostname_mismatch", expect_unavailable,
                  client_argv(a, server, ["--server_host_override", "wrong.example"]),
                  "hostname mismatch")
        suite.run("tls.reject.plaintext_client", expect_unavailable,
                  [a.client, "--server_host", "127.0.0.1", "--server_port", str(server.port),
                   "--use_tls", "false"])
    refused = client_argv(a, server)
    refused[refused.index("--server_port") + 1] = str(free_port())
    suite.run("%s.reject.refused" % tr, expect_unavailable, refused, "connection refused")


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--client", required=True, help="path to oms-interop-client")
    p.add_argument("--workers", type=int, default=0,
                   help="start omsd with --workers N (several loops on one port)")
    args = p.parse_args()
    if not os.access(args.client, os.X_OK):
        print("FAIL setup.client: not found or not executable: %s" % args.client)
        print("0 passed, 1 failed")
        sys.exit(1)
    with h.Env("c_client", args) as env:
        for tr in env.transports:
            extra = ["--workers", str(args.workers)] if args.workers else []
            server = env.server(h2c=(tr == "h2c"), extra_args=extra)
            run_all(env, server)
            run_rejections(env, server)
            env.suite.run("%s.server_alive" % tr,
                          lambda: check(server.alive(), "server exited: rc=%s",
                                        server.proc.poll()))
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
