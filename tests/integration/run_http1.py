#!/usr/bin/python3
"""HTTP/1.1 beside HTTP/2 on omsd's port (issue 17, part 1).

- Debian's curl --http1.1 over TLS (ALPN http/1.1) and in cleartext (the
  request line told from the HTTP/2 preface): answered over HTTP/1.1,
  keep-alive, a gRPC request gets HTTP 505 with a text body.
- On the same port, HTTP/2 clients go on as before: curl --http2 (ALPN h2
  preferred when both are offered), nghttp, grpcio's health check.
- Hostile HTTP/1.1 input from raw sockets (smuggling with both
  Content-Length and Transfer-Encoding, bad chunks, obs-fold, NUL, a chunk
  size overflowing 64 bits, too big heads, too many fields, a body over
  --http1-max-body, slowloris against --http1-header-timeout): a clear 4xx
  and the connection closed; the server stays up and still serves gRPC.
- Pipelined requests are answered in order; a request split byte by byte
  parses as one; the oms_http1_* metric families count what happened.
Every case waits on what the server does (bytes, EOF) with a deadline.
"""

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

T = 10
HEALTH = "/grpc.health.v1.Health/Check"
ADMIN_RE = re.compile(r"admin: /metrics, /healthz, /readyz on port (\d+)")


def curl(*args):
    """Runs curl; returns (exit status, stdout, stderr)."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(T)] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=T + 5)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def read_until_eof(sk, deadline=T):
    """Everything the server sends until it closes (or the deadline)."""
    sk.settimeout(deadline)
    data = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            b = sk.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not b:
            break
        data += b
    return data


def raw(server, payload, byte_by_byte=False):
    """Sends payload on a fresh cleartext connection; returns all the server
    answered until it closed."""
    with socket.create_connection((server.host, server.port), timeout=T) as sk:
        if byte_by_byte:
            for i in range(len(payload)):
                sk.sendall(payload[i:i + 1])
        else:
            sk.sendall(payload)
        return read_until_eof(sk)


def curl_tls(env, server):
    url = "https://localhost:%d%s" % (server.port, HEALTH)
    ca = os.path.join(env.certs, "ca.pem")
    rc, out, err = curl("--http1.1", "-v", "--cacert", ca, "-X", "POST",
                        "-H", "content-type: application/grpc", "--data-binary", "",
                        "-w", "\\n%{http_code} %{http_version}", url, url)
    eq(rc, 0, "curl --http1.1 exit status (%s)" % err[-300:])
    check("ALPN: server accepted http/1.1" in err, "ALPN http/1.1 not accepted: %s", err[-600:])
    check("Re-using existing connection" in err, "two requests, not one connection: %s",
          err[-600:])
    eq(out.count("505 1.1"), 2, "two answers over HTTP/1.1: %r" % out)
    check("gRPC (application/grpc) needs HTTP/2" in out, "no text body: %r", out)
    # a plain GET: the rpc layer's answer to what is not gRPC
    rc, out, err = curl("--http1.1", "--cacert", ca, "-w", "\\n%{http_code}", url)
    eq((rc, out.rsplit("\n", 1)[-1]), (0, "405"), "GET over HTTP/1.1")
    # offered both, h2 is chosen
    rc, out, err = curl("--http2", "-v", "--cacert", ca, "-o", "/dev/null", url)
    check("ALPN: server accepted h2" in err, "h2 not preferred: %s", err[-600:])
    h.health_check(env, server, "grpc health over HTTP/2")


def curl_cleartext(env, server):
    url = "http://127.0.0.1:%d%s" % (server.port, HEALTH)
    rc, out, err = curl("--http1.1", "-H", "content-type: application/grpc", "--data-binary", "",
                        "-w", "\\n%{http_code} %{http_version}", url)
    eq(rc, 0, "curl --http1.1 cleartext exit status (%s)" % err[-300:])
    check(out.endswith("505 1.1"), "cleartext HTTP/1.1: %r", out)
    rc, out, err = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}",
                        url)
    eq((rc, out), (0, "2"), "curl --http2-prior-knowledge on the same port")
    # Upgrade: h2c is not honoured: a plain HTTP/1.1 answer
    rc, out, err = curl("--http2", "-v", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        url)
    eq((rc, out), (0, "405 1.1"), "curl --http2 (Upgrade: h2c) answered over HTTP/1.1")
    p = subprocess.run(["nghttp", "-v", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=T)
    check(b":status: 405" in p.stdout, "nghttp (h2c) on the same port: %r", p.stdout[-400:])
    h.health_check(env, server, "grpc health over HTTP/2")


def hostile(env, server):
    """Each bad request: its status, then the connection closed."""
    cases = [
        ("CL+TE", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE+CL", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 4\r\n\r\n0\r\n\r\n", 400),
        ("TE gzip", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
        ("two CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
         b"\r\nab", 400),
        ("bad chunk", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\nx\r\n", 400),
        ("chunk overflow", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"10000000000000000000\r\nx\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400),
        ("NUL", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 400),
        ("big head", b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n", 431),
        ("many fields", b"GET / HTTP/1.1\r\nHost: h\r\n" +
         b"".join(b"X-%d: v\r\n" % i for i in range(40)) + b"\r\n", 431),
        ("big body", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n", 413),
    ]
    for name, payload, status in cases:
        data = raw(server, payload)
        want = b"HTTP/1.1 %d " % status
        check(data.startswith(want), "%s: got %r", name, data[:80])
        check(b"connection: close\r\n" in data, "%s: no connection: close", name)
    # slowloris: a head that never ends
    with socket.create_connection((server.host, server.port), timeout=T) as sk:
        sk.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
        t0 = time.monotonic()
        data = read_until_eof(sk)
        took = time.monotonic() - t0
    check(data.startswith(b"HTTP/1.1 408 "), "slowloris got %r", data[:80])
    check(0.5 < took < 5, "408 after %.1f s with --http1-header-timeout 1", took)
    # binary garbage is not HTTP/1.1: handed to HTTP/2, which says GOAWAY
    data = raw(server, b"\x16\x03\x01\x00\x05hello")
    check(b"HTTP/1.1" not in data and len(data) > 0, "garbage got %r", data[:80])
    check(server.alive(), "omsd died")
    h.health_check(env, server, "grpc health over HTTP/2")


def pipelining(env, server):
    req = (b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
           b"POST " + HEALTH.encode() + b" HTTP/1.1\r\nHost: h\r\ncontent-type: application/grpc\r\n"
           b"Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00"
           b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    data = raw(server, req)
    statuses = re.findall(rb"HTTP/1\.1 (\d\d\d) ", data)
    eq(statuses, [b"405", b"505", b"405"], "pipelined answers in order")
    data = raw(server, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
               byte_by_byte=True)
    check(data.startswith(b"HTTP/1.1 405 "), "byte by byte: %r", data[:80])
    # python's http.client: keep-alive, chunked request body
    c = http.client.HTTPConnection(server.host, server.port, timeout=T)
    try:
        for _ in range(3):
            c.request("POST", HEALTH, body=iter([b"\x00\x00", b"\x00\x00\x00"]),
                      headers={"content-type": "application/grpc"}, encode_chunked=True)
            r = c.getresponse()
            body = r.read()
            eq(r.status, 505, "http.client status")
            check(b"needs HTTP/2" in body, "http.client body %r", body)
    finally:
        c.close()


def metrics(env, server):
    m = ADMIN_RE.search(server.log_text())
    check(m is not None, "no admin line in the server log")
    c = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=T)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()

    def val(name):
        mm = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        check(mm is not None, "no %s in /metrics", name)
        return float(mm.group(1))

    # the cases above: curl 2, hostile 14 (13 refused + slowloris), pipelining 3
    eq(val("oms_http1_connections_total"), 19, "HTTP/1.1 connections")
    # curl 2, the two bad chunks (refused mid-body), pipelining 3 + 1 + 3
    eq(val("oms_http1_requests_total"), 11, "HTTP/1.1 requests")
    eq(val("oms_http1_refused_total"), 14, "refused HTTP/1.1 requests")
    mm = re.search(r'^oms_http2_connections_closed_total\{reason="protocol_error"\} (\S+)$', text,
                   re.M)
    check(mm is not None and float(mm.group(1)) >= 13, "refused connections by reason: %s",
          mm and mm.group(0))
    mm = re.search(r'^oms_http2_connections_closed_total\{reason="keepalive_timeout"\} (\S+)$',
                   text, re.M)
    check(mm is not None and float(mm.group(1)) >= 1, "the 408 by reason: %s", mm and mm.group(0))


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    with h.Env("http1", args) as env:
        su = env.suite
        tls = env.server(h2c=False, name="tls")
        try:
            su.run("curl_tls", curl_tls, env, tls)
        finally:
            su.stop_server(tls)
        # The page off: a GET that is no RPC gets rpc's 405, which closes the
        # connection (integration.web.page serves the page over HTTP/1.1).
        clear = env.server(h2c=True, name="cleartext",
                           extra_args=["--web", "off",
                                       "--http1-header-timeout", "1", "--http1-max-head", "2K",
                                       "--http1-max-headers", "32", "--http1-max-body", "64K",
                                       "--metrics-listen", "127.0.0.1:0"])
        try:
            su.run("curl_cleartext", curl_cleartext, env, clear)
            su.run("hostile", hostile, env, clear)
            su.run("pipelining", pipelining, env, clear)
            su.run("metrics", metrics, env, clear)
        finally:
            su.stop_server(clear)


if __name__ == "__main__":
    main()
