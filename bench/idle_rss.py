#!/usr/bin/python3
"""RSS per idle connection: opens N idle HTTP/2 connections to one server and
reports how much the server's resident memory grew per connection.

    bench/idle_rss.py --server build-compare/omsd --transport h2c
    bench/idle_rss.py --server build-compare/omsd --transport tls --certs /tmp/certs \\
        --connections 10000 --json /tmp/rss.json

The tool starts the server itself (any binary with omsd's command line:
`--listen 127.0.0.1:0`, `--h2c` or `--tls-cert/--tls-key`, and the line
`listening on HOST:PORT (tls|h2c)` on stdout), pinned with `taskset -c CPU`
(default 0), and raises RLIMIT_NOFILE to the hard limit for itself and the
server (it needs N + a few descriptors on each side).

An idle connection is what a quiet client leaves open:
  h2c  TCP connect, client preface, an empty SETTINGS frame; the server's
       SETTINGS is acknowledged, and the connection counts once the server
       has acknowledged ours (so it has read and processed the preface);
  tls  the same after a TLS handshake (ALPN h2, certificate checked against
       --certs/ca.pem).
Connections are opened --parallel at a time (default 100, below the
listen backlog), then left alone.

Measured (VmRSS from /proc/PID/status, KiB):
  rss_start      the server after it printed its listening line, no connection
  rss_1k         with 1,000 connections open (only when N > 1000)
  rss_n          with all N open, after --settle seconds (default 1)
  rss_streams    with --streams K: after each connection opened K request
                 streams (HEADERS of a CreateOrder call to
                 /oms.bench.v1.OrderBench/CreateOrder, no END_STREAM, no
                 body: the server holds an open stream and call for each)
                 and --settle seconds
  rss_closed     after every connection was closed and --settle seconds
  per_conn_bytes       (rss_n - rss_start) * 1024 / N   (the headline)
  marginal_bytes       (rss_n - rss_1k) * 1024 / (N - 1000): per extra
                       connection, without one-time costs
  per_stream_bytes     (rss_streams - rss_n) * 1024 / (N * K): per open stream
Exit status 0 when all N connections were established and the server is
still alive, 1 otherwise. --json FILE writes every figure.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0)
SETTINGS_ACK = struct.pack(">I", 0)[1:] + bytes([4, 1]) + struct.pack(">I", 0)
LISTEN_RE = re.compile(rb"listening on (\S+):(\d+) \((tls|h2c)\)")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup():
    # the server dies with us (PR_SET_PDEATHSIG = 1, SIGKILL)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def start_server(argv, workdir, timeout=30.0):
    out = open(os.path.join(workdir, "server.out"), "wb")
    err = open(os.path.join(workdir, "server.err"), "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         preexec_fn=_child_setup, cwd=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(out.name, "rb") as f:
            m = LISTEN_RE.search(f.read())
        if m:
            return p, int(m.group(2))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(p)
    with open(err.name, "rb") as f:
        raise RuntimeError("server did not start: %s\n%s" % (" ".join(argv),
                                                             f.read().decode(errors="replace")))


def stop_server(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def read_frame(reader):
    hdr = await reader.readexactly(9)
    length = int.from_bytes(hdr[:3], "big")
    payload = await reader.readexactly(length) if length else b""
    return hdr[3], hdr[4], payload


async def open_idle(port, sslctx):
    """One idle connection; returns its writer once the server ACKed our SETTINGS."""
    if sslctx is not None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=sslctx, server_hostname="localhost")
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            raise RuntimeError("ALPN %r, not h2" % alpn)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PREFACE + SETTINGS)
    await writer.drain()
    acked = False
    while not acked:
        ftype, flags, _ = await read_frame(reader)
        if ftype == 4 and not flags & 1:
            writer.write(SETTINGS_ACK)
            await writer.drain()
        elif ftype == 4 and flags & 1:
            acked = True
        elif ftype == 7:
            raise RuntimeError("GOAWAY from the server")
    return reader, writer


def _hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    assert len(name) < 127 and len(value) < 127
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def request_headers(sid):
    """HEADERS (END_HEADERS, no END_STREAM) of a CreateOrder call."""
    block = b"".join(_hpack_literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"),
        (b":path", b"/oms.bench.v1.OrderBench/CreateOrder"), (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    return struct.pack(">I", len(block))[1:] + bytes([1, 4]) + struct.pack(">I", sid) + block


async def open_streams(conns, k):
    for _, w in conns:
        w.write(b"".join(request_headers(2 * i + 1) for i in range(k)))
    for _, w in conns:
        await w.drain()


async def open_many(port, sslctx, n, parallel, conns, errors):
    sem = asyncio.Semaphore(parallel)

    async def one():
        async with sem:
            for attempt in range(3):
                try:
                    conns.append(await asyncio.wait_for(open_idle(port, sslctx), 30))
                    return
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        RuntimeError, ssl.SSLError) as e:
                    last = e
                    await asyncio.sleep(0.1 * (attempt + 1))
            errors.append(repr(last))

    await asyncio.gather(*(one() for _ in range(n)))


async def close_all(conns):
    for _, w in conns:
        w.close()
    for _, w in conns:
        try:
            await w.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    conns.clear()


async def measure(args, pid, port):
    sslctx = None
    if args.transport == "tls":
        sslctx = ssl.create_default_context(cafile=os.path.join(args.certs, "ca.pem"))
        sslctx.set_alpn_protocols(["h2"])
    res = {"connections_asked": args.connections}
    await asyncio.sleep(args.settle)
    res["rss_start_kib"] = rss_kib(pid)
    conns, errors = [], []
    t0 = time.monotonic()
    first = min(1000, args.connections) if args.connections > 1000 else 0
    if first:
        await open_many(port, sslctx, first, args.parallel, conns, errors)
        await asyncio.sleep(args.settle)
        res["rss_1k_kib"] = rss_kib(pid)
        res["open_1k"] = len(conns)
    await open_many(port, sslctx, args.connections - first, args.parallel, conns, errors)
    res["open_s"] = round(time.monotonic() - t0, 2)
    await asyncio.sleep(args.settle)
    res["connections"] = len(conns)
    res["errors"] = len(errors)
    res["first_errors"] = errors[:5]
    res["rss_n_kib"] = rss_kib(pid)
    # every connection still up? (a read would block on an idle connection)
    alive = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    res["alive"] = alive
    if args.streams:
        await open_streams(conns, args.streams)
        await asyncio.sleep(args.settle)
        res["rss_streams_kib"] = rss_kib(pid)
        res["streams"] = len(conns) * args.streams
        res["alive_streams"] = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
        if conns:
            res["per_stream_bytes"] = round(
                (res["rss_streams_kib"] - res["rss_n_kib"]) * 1024 / res["streams"])
    await close_all(conns)
    await asyncio.sleep(args.settle)
    res["rss_closed_kib"] = rss_kib(pid)
    n = res["connections"]
    if n:
        res["per_conn_bytes"] = round((res["rss_n_kib"] - res["rss_start_kib"]) * 1024 / n)
    if first and n > res.get("open_1k", 0):
        res["marginal_bytes"] = round(
            (res["rss_n_kib"] - res["rss_1k_kib"]) * 1024 / (n - res["open_1k"]))
    return res


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--server", required=True, help="server binary (omsd or a peer)")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra server argument (repeatable), e.g. --server-arg=--log-level=warn")
    ap.add_argument("--transport", choices=["h2c", "tls"], default="h2c")
    ap.add_argument("--certs", help="directory with ca.pem, server.pem, server.key (tls)")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=100)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--streams", type=int, default=0,
                    help="then open K request streams per connection and report RSS per stream")
    ap.add_argument("--cpu", default="0", help="taskset CPU list for the server ('' = none)")
    ap.add_argument("--json", help="write the figures to FILE ('-' = stdout)")
    args = ap.parse_args()
    if args.transport == "tls" and not args.certs:
        ap.error("--transport tls needs --certs DIR")

    nofile = raise_nofile()
    if nofile < args.connections + 64:
        sys.exit("idle_rss: RLIMIT_NOFILE is %d, need %d (raise the hard limit)" %
                 (nofile, args.connections + 64))
    argv = [args.server, "--listen", "127.0.0.1:0"]
    if args.transport == "h2c":
        argv.append("--h2c")
    else:
        argv += ["--tls-cert", os.path.join(args.certs, "server.pem"),
                 "--tls-key", os.path.join(args.certs, "server.key")]
    argv += args.server_arg
    if args.cpu:
        argv = ["taskset", "-c", args.cpu] + argv

    with tempfile.TemporaryDirectory(prefix="idle-rss.") as wd:
        p, port = start_server(argv, wd)
        try:
            res = asyncio.run(measure(args, p.pid, port))
            res["server_alive"] = p.poll() is None
        finally:
            stop_server(p)
    res.update({"transport": args.transport, "server": os.path.basename(args.server),
                "nofile": nofile})
    ok = res["connections"] == args.connections and res["server_alive"] and \
        res["alive"] == args.connections and \
        (not args.streams or res.get("alive_streams") == args.connections)
    res["ok"] = ok
    line = ("%s %s: %d/%d idle connections, RSS %d -> %d KiB (%d KiB after closing): "
            "%s bytes per connection (marginal %s)" % (
                res["server"], args.transport, res["connections"], args.connections,
                res["rss_start_kib"], res["rss_n_kib"], res["rss_closed_kib"],
                res.get("per_conn_bytes"), res.get("marginal_bytes")))
    if args.streams:
        line += "; %d open streams: %s bytes per stream" % (res.get("streams", 0),
                                                              res.get("per_stream_bytes"))
    print(line, file=sys.stderr if args.json == "-" else sys.stdout)
    if args.json:
        text = json.dumps(res, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
