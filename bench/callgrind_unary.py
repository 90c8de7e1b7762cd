#!/usr/bin/python3
"""User-space instructions per unary call, counted by callgrind: omsd (or
nghttpd) runs under `valgrind --tool=callgrind` while h2load sends a fixed
number of requests, twice (N1 and N2 requests, a fresh server each time), and
the figure is the marginal count (I(N2) - I(N1)) / (N2 - N1), so start-up,
connection set-up and shutdown cancel out. Instruction counts do not depend
on what else the machine is doing, unlike timings.

    bench/callgrind_unary.py --omsd build/omsd                 # h2c CreateOrder
    bench/callgrind_unary.py --omsd build/omsd --tls --certs DIR
    bench/callgrind_unary.py --nghttpd                         # GET of a 60-byte file
    bench/callgrind_unary.py --omsd build/omsd --top 25        # + per-function table

omsd runs `--workers 1 --bench-only --log-level warn` and h2load sends
oms.bench.v1.OrderBench/CreateOrder with the gRPC-framed CreateOrderRequest
bench/compare uses (customer_id "c1", one item); nghttpd serves a 60-byte
file to the same h2load command (`h2load -t1 -cC -mM -n N`). --top prints
the functions' marginal instructions per call (callgrind_annotate, inclusive
of nothing: self cost), the same difference of two runs.
"""

import argparse
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

CREATE_PATH = "/oms.bench.v1.OrderBench/CreateOrder"
LISTEN_RE = re.compile(rb"listening on (\S+):(\d+) \((tls|h2c)\)")


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _ld(field, data):
    return bytes([field << 3 | 2]) + _varint(len(data)) + data


def create_order_body():
    item = _ld(1, b"a") + bytes([2 << 3]) + _varint(2) + bytes([3 << 3]) + _varint(150)
    msg = _ld(1, b"c1") + _ld(2, item)
    return b"\0" + struct.pack(">I", len(msg)) + msg


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, p, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("server exited %d" % p.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not listen on %d" % port)


def one_run(a, wd, n, tag):
    out = os.path.join(wd, "callgrind.%s.%d" % (tag, n))
    port = free_port()
    vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    if a.nghttpd:
        docroot = os.path.join(wd, "docroot")
        os.makedirs(docroot, exist_ok=True)
        with open(os.path.join(docroot, "file60"), "wb") as f:
            f.write(b"x" * 59 + b"\n")
        argv = ["nghttpd", "-a", "127.0.0.1", "-d", docroot]
        if a.tls:
            argv += [str(port), os.path.join(a.certs, "server.key"),
                     os.path.join(a.certs, "server.pem")]
        else:
            argv += ["--no-tls", str(port)]
    else:
        argv = [a.omsd, "--listen", "127.0.0.1:%d" % port, "--workers", "1", "--bench-only",
                "--log-level", "warn"]
        if a.tls:
            argv += ["--tls-cert", os.path.join(a.certs, "server.pem"),
                     "--tls-key", os.path.join(a.certs, "server.key")]
        else:
            argv += ["--h2c"]
    err = open(os.path.join(wd, "server.%s.%d.err" % (tag, n)), "wb")
    p = subprocess.Popen(vg + argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=wd)
    try:
        wait_port(port, p)
        h2 = ["h2load", "-t1", "-c%d" % a.c, "-m%d" % a.m, "-n", str(n)]
        if not a.nghttpd:
            h2 += ["-d", a.body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
        h2.append("%s://127.0.0.1:%d%s" % ("https" if a.tls else "http", port,
                                           "/file60" if a.nghttpd else CREATE_PATH))
        r = subprocess.run(h2, capture_output=True, text=True, timeout=600)
        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", r.stdout)
        if r.returncode != 0 or not m or int(m.group(1)) != n:
            raise RuntimeError("h2load: %s\n%s" % (" ".join(h2), r.stdout[-1500:]))
    finally:
        p.send_signal(signal.SIGTERM if not a.nghttpd else signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return out, int(line.split()[1])
    raise RuntimeError("no totals in " + out)


def functions(path):
    r = subprocess.run(["callgrind_annotate", "--threshold=100", path], capture_output=True,
                       text=True)
    fns = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\s\d.%]+\)\s+)?(\S.*)$", line)
        if m and ":" in m.group(2) and not m.group(2).startswith(("=>", "<", "*")):
            fns[m.group(2).strip()] = int(m.group(1).replace(",", ""))
    return fns


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--omsd", help="omsd binary")
    ap.add_argument("--nghttpd", action="store_true", help="measure nghttpd instead")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--certs", help="directory with server.pem, server.key (--tls)")
    ap.add_argument("-c", type=int, default=10)
    ap.add_argument("-m", type=int, default=20)
    ap.add_argument("--n1", type=int, default=10000)
    ap.add_argument("--n2", type=int, default=30000)
    ap.add_argument("--top", type=int, default=0, help="also print the N costliest functions")
    a = ap.parse_args()
    if not a.nghttpd and not a.omsd:
        ap.error("--omsd BIN or --nghttpd")
    if a.tls and not a.certs:
        ap.error("--tls needs --certs")
    if a.omsd:
        a.omsd = os.path.abspath(a.omsd)
    if a.certs:
        a.certs = os.path.abspath(a.certs)
    with tempfile.TemporaryDirectory(prefix="cg-") as wd:
        a.body = os.path.join(wd, "body.bin")
        with open(a.body, "wb") as f:
            f.write(create_order_body())
        tag = "nghttpd" if a.nghttpd else "omsd"
        f1, i1 = one_run(a, wd, a.n1, tag)
        f2, i2 = one_run(a, wd, a.n2, tag)
        per = (i2 - i1) / (a.n2 - a.n1)
        what = "GET /file60" if a.nghttpd else "CreateOrder"
        print("%s %s %s, h2load -c%d -m%d: %d instructions (n=%d), %d (n=%d): "
              "%.0f instructions per call" % (tag, "tls" if a.tls else "h2c", what, a.c, a.m,
                                              i1, a.n1, i2, a.n2, per))
        if a.top:
            fa, fb = functions(f1), functions(f2)
            rows = sorted(((fb.get(k, 0) - fa.get(k, 0)) / (a.n2 - a.n1), k)
                          for k in set(fa) | set(fb))
            rows.reverse()
            for v, k in rows[:a.top]:
                print("%9.0f  %s" % (v, k))


if __name__ == "__main__":
    sys.exit(main())
