#!/usr/bin/python3
"""User-space instructions per unary call of the load generator, counted by
callgrind: oms-bench (our C client on libomsrpc) against h2load on the same
omsd. omsd runs normally (pinned to CPU 0); the client runs under
`valgrind --tool=callgrind` (pinned to CPU 1) for a fixed number of calls,
twice (N1 and N2), and the figure is the marginal count
(I(N2) - I(N1)) / (N2 - N1): start-up, connection set-up and shutdown cancel
out. Instruction counts do not depend on what else the machine is doing,
unlike timings (syscalls batch a little differently under valgrind's
slowdown, and kernel time is not counted).

    bench/callgrind_client.py --omsd build/omsd --oms-bench build/oms-bench
    bench/callgrind_client.py ... --call bidi          # round trips (oms-bench only)
    bench/callgrind_client.py ... --top 25             # + oms-bench's functions

Both clients send oms.bench.v1.OrderBench/CreateOrder with the same request
(oms-bench's: customer_id "bench-customer", one item "sku-1" x 1 at 1999),
50 connections x 20 streams: oms-bench --connections 50 --concurrency 1000
--count N --warmup 0, h2load -t1 -c50 -m20 -n N. oms-bench's --count ends
the window at its N-th call; the calls still in flight then (at most the
concurrency) finish uncounted in both runs, so they cancel out too.
"""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the gRPC path, the log line and the protobuf encoding helpers are the server
# script's (bench/callgrind_unary.py)
from callgrind_unary import CREATE_PATH, LISTEN_RE, _ld, _varint  # noqa: E402

REFS_RE = re.compile(rb"I\s+refs:\s+([\d,]+)")


def request_body():
    """oms-bench's unary request (drive_unary.c), gRPC-framed."""
    item = _ld(1, b"sku-1") + bytes([2 << 3]) + _varint(1) + bytes([3 << 3]) + _varint(1999)
    msg = _ld(1, b"bench-customer") + _ld(2, item)
    return b"\0" + struct.pack(">I", len(msg)) + msg


def start_omsd(binary, cpu, workdir):
    out = open(os.path.join(workdir, "omsd.out"), "wb+")
    p = subprocess.Popen(["taskset", "-c", str(cpu), binary, "--listen", "127.0.0.1:0", "--h2c",
                          "--workers", "1", "--bench-only", "--log-level", "warn", "--grace",
                          "1"], stdout=out, stderr=subprocess.DEVNULL, cwd=workdir)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out.seek(0)
        m = LISTEN_RE.search(out.read())
        if m:
            return p, int(m.group(2))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    sys.exit("omsd did not start")


def callgrind(argv, cpu, outfile):
    """Runs argv under callgrind; returns (instructions, stdout+stderr)."""
    cmd = ["taskset", "-c", str(cpu), "valgrind", "--tool=callgrind",
           "--callgrind-out-file=" + outfile] + argv
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    m = REFS_RE.search(p.stdout)
    if p.returncode != 0 or not m:
        sys.exit("failed (rc %d): %s\n%s" % (p.returncode, " ".join(cmd),
                                             p.stdout.decode(errors="replace")[-1500:]))
    return int(m.group(1).replace(b",", b"")), p.stdout.decode(errors="replace")


def oms_bench_argv(a, port, n):
    argv = [a.oms_bench, "--target", "127.0.0.1:%d" % port, "--h2c", "--call", a.call,
            "--count", str(n), "--warmup", "0"]
    if a.call == "bidi":
        argv += ["--connections", "10", "--concurrency", "50"]
    else:
        argv += ["--connections", "50", "--concurrency", "1000"]
    return argv


def h2load_argv(body, port, n):
    return ["h2load", "-t1", "-c50", "-m20", "-n", str(n), "-d", body, "-H",
            "content-type: application/grpc", "-H", "te: trailers",
            "http://127.0.0.1:%d%s" % (port, CREATE_PATH)]


def marginal(what, make_argv, a, workdir, check):
    counts = []
    files = []
    for n in (a.n1, a.n2):
        f = os.path.join(workdir, "%s.%d.cg" % (what, n))
        ir, out = callgrind(make_argv(n), a.client_cpu, f)
        check(out, n)
        counts.append(ir)
        files.append(f)
    per = (counts[1] - counts[0]) / (a.n2 - a.n1)
    print("%-10s %10.0f instructions/call  (%d calls: %d, %d calls: %d)" % (
        what, per, a.n1, counts[0], a.n2, counts[1]))
    return per, files


def check_bench(out, n):
    m = re.search(r"^\s+calls\s+(\d+) \((\d+) OK, (\d+) errors\)", out, re.M)
    if not m or m.group(3) != "0":
        sys.exit("oms-bench did not complete its calls without errors:\n" + out[-1500:])


def check_h2load(out, n):
    if "%d succeeded, 0 failed, 0 errored" % n not in out:
        sys.exit("h2load did not complete %d requests:\n%s" % (n, out[-1500:]))


def top(files, n1, n2, k):
    """Self cost per call by function: the difference of the two runs."""
    def table(f):
        p = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", f], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        t = {}
        for line in p.stdout.decode(errors="replace").splitlines():
            m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S+)", line)
            if m and "PROGRAM TOTALS" not in line:
                t[m.group(2)] = t.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
        return t
    t1, t2 = table(files[0]), table(files[1])
    rows = sorted(((t2.get(f, 0) - t1.get(f, 0)) / (n2 - n1), f) for f in t2)
    for per, f in reversed(rows[-k:]):
        print("  %8.0f  %s" % (per, f))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--omsd", required=True)
    ap.add_argument("--oms-bench", required=True)
    ap.add_argument("--call", default="unary", choices=["unary", "bidi"])
    ap.add_argument("--n1", type=int, default=20000)
    ap.add_argument("--n2", type=int, default=60000)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--no-h2load", action="store_true")
    ap.add_argument("--top", type=int, default=0, metavar="K",
                    help="also print oms-bench's K costliest functions per call")
    a = ap.parse_args()
    a.omsd = os.path.abspath(a.omsd)  # omsd runs in a temporary directory
    a.oms_bench = os.path.abspath(a.oms_bench)
    with tempfile.TemporaryDirectory(prefix="cgclient-") as wd:
        body = os.path.join(wd, "body.bin")
        with open(body, "wb") as f:
            f.write(request_body())
        srv, port = start_omsd(a.omsd, a.server_cpu, wd)
        try:
            mine, files = marginal("oms-bench", lambda n: oms_bench_argv(a, port, n), a, wd,
                                   check_bench)
            if a.call == "unary" and not a.no_h2load:
                theirs, _ = marginal("h2load", lambda n: h2load_argv(body, port, n), a, wd,
                                     check_h2load)
                print("oms-bench / h2load: %.2fx" % (mine / theirs))
            if a.top:
                top(files, a.n1, a.n2, a.top)
        finally:
            srv.terminate()
            try:
                srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()


if __name__ == "__main__":
    main()
