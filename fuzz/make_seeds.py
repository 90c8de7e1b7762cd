#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Seeds are small, meaningful inputs a target would see from a real peer:
HTTP/2 frames made with python3-h2 (Debian's; run with /usr/bin/python3),
gRPC messages encoded by hand (protobuf wire format), CSV files, store blobs.
Each seed's name says what it is. Regression seeds (inputs that found a bug)
live next to them as regress_*, written here too so that the corpus can be
regenerated from this script alone. Everything is deterministic except the
TLS ClientHello seeds (their randoms change on every run).

    /usr/bin/python3 fuzz/make_seeds.py [OUTDIR]   (default: fuzz/corpus)
"""
import base64
import gzip
import hashlib
import hmac
import json
import os
import ssl
import struct
import sys
import zlib

import h2.config
import h2.connection
import h2.events

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "corpus")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- protobuf wire format -------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_int(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, v):
    if isinstance(v, str):
        v = v.encode()
    return varint(num << 3 | 2) + varint(len(v)) + v


def grpc_msg(body, compressed=None):
    """Length-prefixed message; compressed: None, 'gzip' or 'deflate'."""
    flag = 0
    if compressed == "gzip":
        body, flag = gzip.compress(body, mtime=0), 1
    elif compressed == "deflate":
        body, flag = zlib.compress(body), 1
    return bytes([flag]) + struct.pack(">I", len(body)) + body


# --- messages -----------------------------------------------------------------

def simple_request(size=10, payload=b"hello", status=None):
    m = f_int(1, 0) + f_int(2, size) + f_bytes(3, f_int(1, 0) + f_bytes(2, payload))
    if status:
        m += f_bytes(7, f_int(1, status[0]) + f_bytes(2, status[1]))
    return m


def streaming_output_request(sizes, interval_us=0):
    m = f_int(1, 0)
    for s in sizes:
        m += f_bytes(2, f_int(1, s) + f_int(2, interval_us))
    return m


def refl_request(kind, arg=None):
    host = f_bytes(1, "localhost")
    if kind == "list":
        return host + f_bytes(7, "*")
    if kind == "file":
        return host + f_bytes(3, arg)
    if kind == "symbol":
        return host + f_bytes(4, arg)
    if kind == "ext":
        return host + f_bytes(5, f_bytes(1, arg[0]) + f_int(2, arg[1]))
    if kind == "extnums":
        return host + f_bytes(6, arg)
    raise ValueError(kind)


REFL_REQUESTS = [
    ("list_services", refl_request("list")),
    ("file_by_filename", refl_request("file", "oms/v1/order.proto")),
    ("file_missing", refl_request("file", "nope.proto")),
    ("symbol_service", refl_request("symbol", "oms.v1.OrderService")),
    ("symbol_method", refl_request("symbol", "oms.v1.OrderService.CreateOrder")),
    ("symbol_field", refl_request("symbol", "grpc.testing.SimpleRequest.response_size")),
    ("symbol_leading_dot", refl_request("symbol", ".grpc.health.v1.Health")),
    ("extension", refl_request("ext", ("google.protobuf.MessageOptions", 1000))),
    ("extension_numbers", refl_request("extnums", "google.protobuf.FieldOptions")),
    ("empty_request", b""),
]


# --- HTTP/2 client bytes (what a client sends after the preface) ------------------


def h2_client(requests, extra=None):
    """requests: list of (path, headers, body, end). Returns the bytes after
    the preface: SETTINGS, HEADERS, DATA (and any extra frames)."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                            header_encoding=None))
    c.initiate_connection()
    for path, hdrs, body, end in requests:
        sid = c.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", "localhost"), ("content-type", "application/grpc"),
                   ("te", "trailers")] + list(hdrs)
        c.send_headers(sid, headers, end_stream=(end and not body))
        if body:
            c.send_data(sid, body, end_stream=end)
    if extra:
        extra(c)
    data = c.data_to_send()
    assert data.startswith(PREFACE)
    return data[len(PREFACE):]


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def h2_server_seeds():
    tsvc = "/grpc.testing.TestService/"
    seeds = {
        "settings_only": h2_client([]),
        "unary_call": h2_client([(tsvc + "UnaryCall", [], grpc_msg(simple_request()), True)]),
        "unary_call_gzip": h2_client([(tsvc + "UnaryCall",
                                       [("grpc-encoding", "gzip"),
                                        ("grpc-accept-encoding", "gzip,deflate")],
                                       grpc_msg(simple_request(), "gzip"), True)]),
        "unary_call_deflate": h2_client([(tsvc + "UnaryCall", [("grpc-encoding", "deflate")],
                                          grpc_msg(simple_request(), "deflate"), True)]),
        "unary_call_status": h2_client([(tsvc + "UnaryCall", [],
                                         grpc_msg(simple_request(status=(13, "bad \u00e9 %"))),
                                         True)]),
        "unary_metadata_timeout": h2_client([(tsvc + "UnaryCall",
                                              [("grpc-timeout", "100m"),
                                               ("x-grpc-test-echo-initial", "hi"),
                                               ("x-grpc-test-echo-trailing-bin", "AAEC"),
                                               ("custom-bin", "//79"), ("user-agent", "fuzz")],
                                              grpc_msg(simple_request()), True)]),
        "empty_call": h2_client([(tsvc + "EmptyCall", [], grpc_msg(b""), True)]),
        "streaming_output": h2_client([(tsvc + "StreamingOutputCall", [],
                                        grpc_msg(streaming_output_request([10, 0, 100])), True)]),
        "streaming_input": h2_client([(tsvc + "StreamingInputCall", [],
                                       grpc_msg(f_bytes(1, f_bytes(2, b"x" * 20))) * 3, True)]),
        "full_duplex_open": h2_client([(tsvc + "FullDuplexCall", [],
                                        grpc_msg(streaming_output_request([5, 5])), False)]),
        "half_duplex": h2_client([(tsvc + "HalfDuplexCall", [],
                                   grpc_msg(streaming_output_request([1])) * 2, True)]),
        "health_check": h2_client([("/grpc.health.v1.Health/Check", [],
                                    grpc_msg(f_bytes(1, "")), True)]),
        "health_watch": h2_client([("/grpc.health.v1.Health/Watch", [],
                                    grpc_msg(f_bytes(1, "nope")), True)]),
        "reflection_list": h2_client([("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                       [], grpc_msg(refl_request("list")), True)]),
        "unknown_method": h2_client([("/oms.v1.Nope/Nope", [], grpc_msg(b""), True)]),
        "bad_content_type": h2_client([(tsvc + "UnaryCall", [("content-type", "text/plain")],
                                        b"", True)]),
        "too_big_message": h2_client([(tsvc + "UnaryCall", [],
                                       b"\x00\x7f\xff\xff\xff" + b"x" * 16, True)]),
        "truncated_message": h2_client([(tsvc + "UnaryCall", [], b"\x00\x00\x00\x01\x00ab", True)]),
        "bad_compressed_flag": h2_client([(tsvc + "UnaryCall", [], b"\x07\x00\x00\x00\x00", True)]),
        "compressed_without_encoding": h2_client([(tsvc + "UnaryCall", [],
                                                   grpc_msg(simple_request(), "gzip"), True)]),
        "two_streams_reset": h2_client(
            [(tsvc + "UnaryCall", [], grpc_msg(simple_request()), False),
             (tsvc + "FullDuplexCall", [], b"", False)],
            extra=lambda c: c.reset_stream(1, 8)),
        "ping_window_goaway": h2_client(
            [(tsvc + "StreamingOutputCall", [],
              grpc_msg(streaming_output_request([40000, 40000])), True)],
            extra=lambda c: (c.ping(b"12345678"), c.increment_flow_control_window(100000),
                             c.increment_flow_control_window(100000, stream_id=1),
                             c.close_connection())),
    }
    # hand-built frames nghttp2 must refuse or ignore
    seeds["raw_priority_unknown_frames"] = (
        frame(4, 0, 0) + frame(2, 0, 1, b"\x00\x00\x00\x00\x10") + frame(0xfa, 0, 0, b"junk")
        + frame(8, 0, 0, b"\x00\x00\x10\x00"))
    seeds["raw_continuation"] = (
        frame(4, 0, 0) + frame(1, 0, 1, b"\x82\x86") + frame(9, 0, 1, b"\x84") + frame(9, 4, 1, b""))
    seeds["raw_settings_bad"] = frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff") + frame(4, 1, 0, b"x")
    # HTTP/1.1 on the same port (a request line instead of the preface)
    health = b"/grpc.health.v1.Health/Check"
    seeds["h1_get_pipelined"] = (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
                                 b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    seeds["h1_post_grpc_chunked"] = (
        b"POST " + health + b" HTTP/1.1\r\nHost: h\r\ncontent-type: application/grpc\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\n\x00\x00\x00\x00\x00\r\n0\r\nx-t: 1\r\n\r\n")
    seeds["h1_post_grpc_web"] = (
        b"POST " + health + b" HTTP/1.1\r\nHost: h\r\ncontent-type: application/grpc-web+proto\r\n"
        b"x-grpc-web: 1\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00")
    seeds["h1_smuggle_cl_te"] = (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    seeds["h1_bad_chunk"] = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"fffffffffffffffffff\r\nx\r\n")
    return seeds


# --- HTTP/2 server bytes for the client target -------------------------------------


def h2_client_target_seeds():
    """The client target opens stream 1 (body sent, half-closed) and stream 3
    (still sending) before reading; answer them as a server would."""
    cli = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                              header_encoding=None))
    cli.initiate_connection()
    for end in (True, False):
        sid = cli.get_next_available_stream_id()
        cli.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                               (":path", "/grpc.testing.TestService/FullDuplexCall"),
                               (":authority", "fuzz"), ("content-type", "application/grpc"),
                               ("te", "trailers")])
        cli.send_data(sid, grpc_msg(b"\x08\x01"), end_stream=end)
    request_bytes = cli.data_to_send()

    def server(answer):
        s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding=None))
        s.initiate_connection()
        s.receive_data(request_bytes)
        answer(s)
        return s.data_to_send()

    ok = [(":status", "200"), ("content-type", "application/grpc")]
    trailers = [("grpc-status", "0"), ("grpc-message", "ok")]

    def full(s):
        for sid in (1, 3):
            s.send_headers(sid, ok)
            s.send_data(sid, grpc_msg(b"\x0a\x03abc"))
            s.send_headers(sid, trailers, end_stream=True)

    def trailers_only(s):
        s.send_headers(1, ok + [("grpc-status", "5"), ("grpc-message", "not%20found")],
                       end_stream=True)

    def reset(s):
        s.send_headers(1, ok)
        s.reset_stream(3, 7)

    def goaway(s):
        s.send_headers(1, ok)
        s.close_connection(error_code=0, last_stream_id=1)

    def ping_window(s):
        s.ping(b"abcdefgh")
        s.increment_flow_control_window(1 << 20)
        s.increment_flow_control_window(1 << 20, stream_id=3)
        s.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1,
                           h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})

    def big_data(s):
        s.send_headers(1, ok)
        s.send_data(1, grpc_msg(b"z" * 3000))
        s.send_data(1, b"", end_stream=True)

    return {
        "response_full": server(full),
        "trailers_only": server(trailers_only),
        "rst_stream": server(reset),
        "goaway": server(goaway),
        "ping_window_settings": server(ping_window),
        "big_data": server(big_data),
        "settings_only": server(lambda s: None),
        "push_promise_refused": server(lambda s: None) + frame(5, 4, 1, b"\x00\x00\x00\x02\x82"),
    }


# --- TLS ----------------------------------------------------------------------


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        s.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# --- JWT (fuzz/jwt.c) -------------------------------------------------------------


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt_seeds():
    """Byte 0 picks the mode of fuzz/jwt.c (| 4: issuer/audience checked)."""
    with open(os.path.join(ROOT, "jwt", "secret"), "rb") as f:
        secret = f.read().rstrip(b"\n")
    with open(os.path.join(ROOT, "jwt", "keys.pem"), "rb") as f:
        pem = f.read()

    def hs256(header, payload):
        msg = b64u(header) + b"." + b64u(payload)
        return msg + b"." + b64u(hmac.new(secret, msg, hashlib.sha256).digest())

    def js(o):
        return json.dumps(o, separators=(",", ":")).encode()

    hdr = js({"alg": "HS256", "typ": "JWT"})
    full = js({"sub": "alice", "iss": "fuzz-iss", "aud": ["x", "fuzz-aud"], "scope": "a:b c",
               "customer_id": "c-1", "iat": 1799999990, "nbf": 1799999990, "exp": 4102444800})
    # 0/4: tokens as they come
    write("jwt", "hs256_ok", b"\x00" + hs256(hdr, full))
    write("jwt", "hs256_ok_strict", b"\x04" + hs256(hdr, full))
    write("jwt", "bearer_value", b"\x00Bearer " + hs256(hdr, full))
    write("jwt", "alg_none", b"\x00" + b64u(js({"alg": "none"})) + b"." + b64u(full) + b".")
    write("jwt", "es256_kid_unsigned",
          b"\x00" + b64u(js({"alg": "ES256", "kid": "k1"})) + b"." + b64u(full) + b"." +
          b64u(b"\x01" * 64))
    write("jwt", "expired", b"\x00" + hs256(hdr, js({"exp": 1000})))
    # 1/5: header NUL payload, signed by the target
    write("jwt", "signed_full", b"\x01" + hdr + b"\x00" + full)
    write("jwt", "signed_full_strict", b"\x05" + hdr + b"\x00" + full)
    write("jwt", "signed_scp", b"\x01" + js({"exp": 4102444800, "scp": ["a", "b"], "aud": "y"}))
    write("jwt", "signed_nested",
          b"\x01" + js({"exp": 4102444800, "x": [[[{"y": [1.5, None, True]}]]]}))
    write("jwt", "signed_dup", b"\x01" + b'{"exp":4102444800,"exp":1}')
    # 2: keys files
    write("jwt", "keys_pem", b"\x02" + pem)
    ders = [base64.b64decode(b"".join(blk.split(b"-----")[1].split()))
            for blk in pem.split(b"-----BEGIN")[1:]]
    ec = next(d for d in ders if len(d) == 91)   # P-256 SPKI: point in the last 65 bytes
    ed = next(d for d in ders if len(d) == 44)   # Ed25519 SPKI: key in the last 32 bytes
    jwks = {"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "e1", "use": "sig", "alg": "ES256",
         "x": b64u(ec[-64:-32]).decode(), "y": b64u(ec[-32:]).decode()},
        {"kty": "OKP", "crv": "Ed25519", "kid": "d1", "x": b64u(ed[-32:]).decode()},
        {"kty": "RSA", "kid": "r1", "n": b64u(b"\xc1" + b"\x01" * 255).decode(), "e": "AQAB"}]}
    write("jwt", "keys_jwks", b"\x02" + js(jwks))
    # 3: base64url
    write("jwt", "b64_text", b"\x03" + b64u(b"any bytes \xff\x00"))
    write("jwt", "b64_bad_bits", b"\x03QR")


# --- main -----------------------------------------------------------------------


def main():
    srv = h2_server_seeds()
    for name, data in srv.items():
        write("h2_server", name, data)
        # TLS target: byte 0 even = the same bytes inside TLS records after a
        # real handshake
        write("h2_server_tls", "tls_" + name, b"\x00" + data)
    # byte 0 odd = raw bytes to the TLS layer from the first byte on
    hello = client_hello()
    write("h2_server_tls", "raw_client_hello", b"\x01" + hello)
    write("h2_server_tls", "raw_client_hello_truncated", b"\x01" + hello[:60])
    write("h2_server_tls", "raw_h2c_preface_on_tls", b"\x01" + PREFACE + frame(4, 0, 0))
    write("h2_server_tls", "raw_alert", b"\x01\x15\x03\x03\x00\x02\x02\x28")

    for name, data in h2_client_target_seeds().items():
        write("h2_client", name, data)
    # found by this fuzzer: a header block whose every field was dropped
    # (here stream 3's trailers, two dynamic-table indexes) reached
    # deliver_headers() with no buffer: NULL + 0 (UBSan, src/http2/stream.c)
    write("h2_client", "regress_empty_header_block", base64.b64decode(
        "AAAqBAAAAAAAAAEAABAAAAIAAAAAAAQAAP//AAUAAEAAAAgAAAAAAAMAAABkAAYAAQAAAAAOAQQAAAABiF+LHXXQ"
        "Yg0mPUxNZWQAAAoAAAAAAAEAAABBBQIAAAAAAAAAAQUAAAABQIiaysiyEjXaj4EHQImaysi1JUIHMX+CP18AAP//"
        "//8CAQQAAAADiMAABQoDYWJjAAACAQUAAAADv74="))

    # deframer: byte 0 = encoding (bits 0-1) | chunk size (bits 2-4) | limit (bits 5-7)
    body = simple_request(size=100, payload=b"abc" * 30)
    big_limit = 6 << 5
    for enc_i, enc in ((0, None), (1, "gzip"), (2, "deflate")):
        for chunk_i in (0, 3, 7):
            opt = bytes([enc_i | chunk_i << 2 | big_limit])
            write("grpc_deframe", f"{enc or 'identity'}_chunk{chunk_i}",
                  opt + grpc_msg(body, enc) + grpc_msg(b"", None) + grpc_msg(b"xy", enc))
    write("grpc_deframe", "zip_bomb", bytes([1 | 7 << 2 | 2 << 5]) +
          grpc_msg(b"\x00" * 100000, "gzip"))
    write("grpc_deframe", "too_big", bytes([0 | 7 << 2 | 1 << 5]) + b"\x00\x00\x00\x00\x05hello")
    write("grpc_deframe", "bad_flag", bytes([0 | 2 << 2 | big_limit]) + b"\x02\x00\x00\x00\x00")
    bad_crc = gzip.compress(b"hello", mtime=0)[:-8] + b"XXXX" + struct.pack("<I", 5)
    write("grpc_deframe", "corrupt_gzip", bytes([1 | 7 << 2 | big_limit]) +
          b"\x01" + struct.pack(">I", len(bad_crc)) + bad_crc)
    write("grpc_deframe", "trailing_after_gzip", bytes([1 | 7 << 2 | big_limit]) +
          b"\x01" + struct.pack(">I", len(gzip.compress(b"hi", mtime=0)) + 3) +
          gzip.compress(b"hi", mtime=0) + b"abc")
    write("grpc_deframe", "unknown_encoding", bytes([3 | 7 << 2 | big_limit]) +
          grpc_msg(body, "gzip"))

    # oms requests: byte 0 = method index (customer 0-3, inventory 4-9, order 10-17)
    line = lambda sku, q: f_bytes(2, f_bytes(1, sku) + f_int(2, q))
    create = f_bytes(1, "c-1") + line("sku-1", 2) + line("sku-2", 1) + f_bytes(3, "key-1")
    oms = {
        "create_customer": (0, f_bytes(1, "Ada Lovelace") + f_bytes(2, "ada@example.com")),
        "get_customer": (1, f_bytes(1, "c-1")),
        "list_customers": (2, b""),
        "set_customer_status": (3, f_bytes(1, "c-1") + f_int(2, 2)),
        "upsert_product": (4, f_bytes(1, "sku-1") + f_bytes(2, "Widget") + f_int(3, 1999)),
        "get_product": (5, f_bytes(1, "sku-1")),
        "adjust_stock": (7, f_bytes(1, "sku-1") + f_int(2, 10)),
        "reserve": (8, f_bytes(1, "o-1") + f_bytes(2, f_bytes(1, "sku-1") + f_int(2, 1))),
        "release": (9, f_bytes(1, "o-1")),
        "create_order": (10, create),
        "create_order_dup_sku": (10, f_bytes(1, "c-1") + line("a", 1) + line("a", 2)),
        "create_order_bad_qty": (10, f_bytes(1, "c-1") + line("a", -5)),
        "create_order_utf8": (10, f_bytes(1, "c-\u00e9") + line("sku\u00ff", 1)),
        "get_order": (11, f_bytes(1, "o-1")),
        "cancel_order": (12, f_bytes(1, "o-1") + f_bytes(2, "changed my mind")),
        "update_status": (13, f_bytes(1, "o-1") + f_int(2, 2) + f_int(3, 1)),
        "list_orders": (14, f_bytes(1, "c-1") + f_int(2, 1) + f_int(3, 1) + f_int(4, 2) + f_int(5, 10)),
        "import_row": (15, f_bytes(1, "row-1") + f_bytes(2, create)),
        "watch_orders": (16, f_bytes(1, "c-1") + f_bytes(2, "o-1") + f_bytes(2, "o-2")),
        "track_subscribe": (17, f_bytes(1, f_bytes(1, "o-1"))),
        "track_unsubscribe": (17, f_bytes(2, f_bytes(1, "o-1"))),
    }
    for name, (idx, m) in oms.items():
        write("oms_requests", name, bytes([idx]) + m)

    # reflection: byte 0 bit 0 = v1alpha, bit 1 = keep the stream open
    for name, m in REFL_REQUESTS:
        write("reflection", "v1_" + name, b"\x00" + grpc_msg(m))
        write("reflection", "v1alpha_" + name, b"\x01" + grpc_msg(m))
    write("reflection", "v1_all_in_one_stream",
          b"\x00" + b"".join(grpc_msg(m) for _, m in REFL_REQUESTS))
    write("reflection", "v1_open_stream", b"\x02" + grpc_msg(REFL_REQUESTS[0][1]))

    # header value parsers: byte 0 = parser (0 timeout, 1 percent, 2 base64,
    # 3 metadata key NUL value, 4 encoding list)
    parsers = {
        "timeout_ms": (0, b"100m"), "timeout_hours": (0, b"99999999H"), "timeout_nanos": (0, b"1n"),
        "timeout_bad": (0, b"12x"), "timeout_too_long": (0, b"123456789S"),
        "percent_plain": (1, b"hello world"), "percent_escapes": (1, b"caf%C3%A9 100%25"),
        "percent_bad_escape": (1, b"%G1%4"), "base64_padded": (2, b"AAECAw=="),
        "base64_unpadded": (2, b"AAECAw"), "base64_bad": (2, b"A===") ,
        "md_bin_key": (3, b"custom-bin\x00AAEC"), "md_reserved": (3, b"grpc-timeout\x001S"),
        "md_bad_key": (3, b"Bad Key\x00v"), "encoding_list": (4, b"identity, gzip;q=1 ,deflate"),
        "encoding_one": (4, b"GZIP"),
    }
    for name, (k, v) in parsers.items():
        write("rpc_parsers", name, bytes([k]) + v)

    # omsctl CSV: byte 0 bit 0 = --json
    csv = {
        "header_and_rows": b"row_id,customer_id,sku,quantity,idempotency_key\n"
                           b"r1,c-1,sku-1,2,k1\nr1,c-1,sku-2,1,k1\nr2,c-2,sku-1,5\n",
        "comments_blank_spaces": b"# orders\n\n  r1 , c-1 , sku-1 , 3 \r\n\t\nr2,c-1,sku-1,1\n",
        "malformed_rows": b"r1,c-1,sku-1,x\n,c-1,sku,1\nr2,c-1\nr3,c-1,a,1,k,extra\nr4,,,1\n",
        "row_differs": b"r1,c-1,a,1,k1\nr1,c-2,b,1,k1\nr2,c-1,a,1,k1\nr2,c-1,b,1,k2\n",
        "nul_byte": b"r1,c-1,a,1\nr1,c-1,b\x00,1\n\x00\nr2,c,a,1\n",
        "no_final_newline": b"r1,c-1,a,1",
        # found by this fuzzer: a row whose first line had too few fields,
        # then a second line of the same row (strcmp on a NULL customer_id)
        "regress_short_first_line": b"r1,c1\nr1,c1,sku,1\n",
    }
    for name, data in csv.items():
        write("omsctl_csv", name, b"\x00" + data)
        write("omsctl_csv", name + "_json", b"\x01" + data)

    # store lines blobs: [len][sku][quantity le64][unit price le64]...
    def blob(lines):
        out = b""
        for sku, q, p in lines:
            out += bytes([len(sku)]) + sku + struct.pack("<qq", q, p)
        return out
    write("store_lines", "one_line", blob([(b"sku-1", 2, 1999)]))
    write("store_lines", "three_lines", blob([(b"a", 1, 1), (b"b" * 64, 10, 0), (b"", 0, -1)]))
    write("store_lines", "empty", b"")
    write("store_lines", "sku_too_long", bytes([65]) + b"x" * 81)
    write("store_lines", "truncated", blob([(b"sku", 1, 2)])[:-3])

    jwt_seeds()


if __name__ == "__main__":
    main()
