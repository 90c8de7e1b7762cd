#!/usr/bin/python3
"""bench/tls_records.py OMSD: TLS records omsd writes per unary call.

    bench/tls_records.py build-compare/omsd [--n1 20000 --n2 120000] [-c 50 -m 20]

Builds bench/reccount.c (an LD_PRELOAD shim that follows the TLS record
headers in every byte omsd writes to its sockets and counts SSL_write calls)
into a temporary directory, starts omsd over TLS (--workers 1 --bench-only,
pinned to CPU 0, a throw-away CA from scripts/certs.sh) and runs
`h2load -t1 -cC -mM -n N` CreateOrder on CPU 1 (the body bench/compare
sends), once with N1 and once with N2 calls, each against a fresh omsd. The
marginal figures, (count(N2) - count(N1)) / (N2 - N1), leave out what each
connection costs once (the handshake, session tickets), so they are per call:
application-data records, SSL_write calls and bytes written.
No pcap, no root."""
import argparse, importlib.machinery, importlib.util, json, os, re, shutil, signal, subprocess
import sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("omsd")
ap.add_argument("--n1", type=int, default=20000)
ap.add_argument("--n2", type=int, default=120000)
ap.add_argument("-c", dest="conns", type=int, default=50)
ap.add_argument("-m", dest="streams", type=int, default=20)
a = ap.parse_args()
omsd, N1, N2 = os.path.abspath(a.omsd), a.n1, a.n2
# bench/compare's request body (gRPC-framed CreateOrderRequest) and listening line
spec = importlib.util.spec_from_loader(
    "cmp", importlib.machinery.SourceFileLoader("cmp", os.path.join(HERE, "compare")))
cmp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cmp)
wd = tempfile.mkdtemp(prefix="oms-tls-records-")
shim = os.path.join(wd, "reccount.so")
subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, os.path.join(HERE, "reccount.c"),
                "-ldl"], check=True)
subprocess.run(["bash", os.path.join(HERE, "..", "scripts", "certs.sh"), wd + "/certs"],
               check=True, capture_output=True)
body = wd + "/create_order.bin"
open(body, "wb").write(cmp.grpc_frame(cmp.create_order_request()))
res = {}
for n in (N1, N2):
    out = "%s/count-%d.json" % (wd, n)
    env = dict(os.environ, LD_PRELOAD=shim, RECCOUNT_OUT=out)
    p = subprocess.Popen(["taskset", "-c", "0", omsd, "--listen", "127.0.0.1:0", "--grace", "2",
                          "--tls-cert", wd + "/certs/server.pem", "--tls-key", wd + "/certs/server.key",
                          "--log-level", "warn", "--workers", "1", "--bench-only"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = None
    buf = b""
    while port is None:
        line = p.stdout.readline()
        if not line: sys.exit("omsd died: " + buf.decode())
        buf += line
        m = cmp.LISTEN_RE.search(line)
        if m: port = int(m.group(2))
    cmd = ["taskset", "-c", "1", "h2load", "-t1", "-c%d" % a.conns, "-m%d" % a.streams, "-n", str(n), "-d", body,
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           "https://127.0.0.1:%d/oms.bench.v1.OrderBench/CreateOrder" % port]
    h = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"(\d+) succeeded", h.stdout)
    if not m or int(m.group(1)) != n:
        sys.exit("h2load did not complete %d calls:\n%s%s" % (n, h.stdout, h.stderr))
    ok = m.group(1)
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    c = json.load(open(out)); c["calls"] = n; c["succeeded"] = int(ok)
    res[n] = c
    print(" ".join(cmd), "->", json.dumps(c))
d = {k: res[N2][k] - res[N1][k] for k in ("app_records", "ssl_write_calls", "bytes")}
print("marginal per call: records %.3f, SSL_write calls %.3f, bytes %.1f" % (
    d["app_records"] / (N2 - N1), d["ssl_write_calls"] / (N2 - N1), d["bytes"] / (N2 - N1)))
shutil.rmtree(wd, ignore_errors=True)
