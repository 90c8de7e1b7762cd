#!/usr/bin/python3
"""gRPC-Web and the Connect protocol against the real omsd, over h2c and TLS.

Independent clients: `buf curl --protocol grpcweb|connect` (npm @bufbuild/buf,
installed by scripts/deps.sh into <build>/npm) on every oms.v1 unary and
server-streaming method; the npm @connectrpc/connect-node client with its
Connect and gRPC-Web transports over HTTP/2 and HTTP/1.1 (web_client.mjs); plain curl with
JSON; raw HTTP/2 (python3-h2,
h2raw.py) for what a client library would never send: bad base64, truncated
frames, huge declared lengths, JSON of the wrong type, unknown fields, bombs,
foreign origins. Every hostile case checks its answer and that the server
still answers afterwards; one checks that nothing was stored.

omsd runs with --cors-origin http://ok.example.
"""

import base64
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402
import h2raw  # noqa: E402

T = h.RPC_TIMEOUT
ORIGIN = "http://ok.example"
GET_CUSTOMER = "/oms.v1.CustomerService/GetCustomer"
GET_ORDER = "/oms.v1.OrderService/GetOrder"
LIST_PRODUCTS = "/oms.v1.InventoryService/ListProducts"
LIST_ORDERS = "/oms.v1.OrderService/ListOrders"


def frame(payload, flag=0):
    return struct.pack(">BI", flag, len(payload)) + payload


def frames(data):
    """[(flag, payload)] of a gRPC-Web body or Connect stream."""
    out, i = [], 0
    while i + 5 <= len(data):
        flag, n = struct.unpack(">BI", data[i:i + 5])
        out.append((flag, data[i + 5:i + 5 + n]))
        i += 5 + n
    check(i == len(data), "%d trailing bytes after the frames", len(data) - i)
    return out


def web_trailers(payload):
    d = {}
    for line in payload.decode().split("\r\n"):
        if line:
            k, v = line.split(":", 1)
            d[k.strip()] = v.strip()
    return d


def text_decode(body):
    """grpc-web-text: pieces base64-encoded one by one, padding between them;
    every 4-character group decodes alone."""
    check(len(body) % 4 == 0, "grpc-web-text body of %d characters", len(body))
    return b"".join(base64.b64decode(body[i:i + 4]) for i in range(0, len(body), 4))


class Ctx:
    def __init__(self, env, server, buf, schema):
        self.env, self.server, self.buf, self.schema = env, server, buf, schema
        self.state = {}

    # --- clients ---------------------------------------------------------
    def raw(self):
        return h2raw.H2Client("127.0.0.1", self.server.port, ca=self.server.ca_path(), timeout=T)

    def request(self, path, body=b"", ctype="application/grpc-web+proto", method="POST",
                headers=(), end=True):
        hs = [("content-type", ctype)] if ctype else []
        with self.raw() as c:
            sid = c.start(path, body=body or None, end=end, method=method,
                          content_type=None, te=False, extra=hs + list(headers))
            return c.wait_stream(sid)

    def url(self, path):
        if self.server.h2c:
            return "http://127.0.0.1:%d%s" % (self.server.port, path)
        return "https://localhost:%d%s" % (self.server.port, path)

    def buf_curl(self, protocol, path, data, timeout=None):
        argv = [self.buf, "curl", "--schema", self.schema, "--protocol", protocol, "-d",
                json.dumps(data)]
        if timeout:
            argv += ["--timeout", timeout]
        argv += ["--http2-prior-knowledge"] if self.server.h2c else [
            "--cacert", self.server.ca_path()]
        r = subprocess.run(argv + [self.url(path)], capture_output=True, text=True, timeout=T)
        return r.returncode, r.stdout, r.stderr

    def curl(self, path, body, headers=()):
        argv = ["curl", "-sS", "-i", "--max-time", str(T)]
        argv += ["--http2-prior-knowledge"] if self.server.h2c else [
            "--http2", "--cacert", self.server.ca_path()]
        for k in headers:
            argv += ["-H", k]
        argv += ["--data-binary", body, self.url(path)]
        r = subprocess.run(argv, capture_output=True, timeout=T + 5)
        check(r.returncode == 0, "curl failed: %s", r.stderr.decode(errors="replace"))
        head, _, payload = r.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hd = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        return status, hd, payload

    def curl_http1(self, path, body, headers=()):
        """Like curl(), over HTTP/1.1 (ALPN http/1.1 on TLS)."""
        argv = ["curl", "-sS", "-i", "--max-time", str(T), "--http1.1"]
        if not self.server.h2c:
            argv += ["--cacert", self.server.ca_path()]
        for k in headers:
            argv += ["-H", k]
        argv += ["--data-binary", body, self.url(path)]
        r = subprocess.run(argv, capture_output=True, timeout=T + 5)
        check(r.returncode == 0, "curl failed: %s", r.stderr.decode(errors="replace"))
        head, _, payload = r.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        hd = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        return int(lines[0].split()[1]), hd, payload

    def connect_json(self, path, obj, headers=()):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        st = self.request(path, body, "application/json", headers=headers)
        return st.http_status, st.headers, json.loads(st.data) if st.data else None

    def healthy(self):
        s = self.server
        check(s.alive(), "server died (rc=%s); log tail:\n%s", s.proc.poll(), s.log_tail(30))
        code, _, body = self.connect_json(GET_CUSTOMER, {"id": "c-1"})
        eq(code, 200, "healthy Connect GetCustomer afterwards")
        eq(body["id"], "c-1", "healthy GetCustomer id")


# --- buf curl on every unary and server-streaming method ------------------------

def buf_method(c, protocol, tag, path, req, check_out, stream=False, timeout=None):
    rc, out, err = c.buf_curl(protocol, path, req(c.state) if callable(req) else req, timeout)
    if timeout:  # an endless stream cut by the client's deadline
        check("deadline_exceeded" in out + err, "%s: no deadline at the end: %s %s", path, out,
              err)
    else:
        check(rc == 0, "%s %s: rc %d: %s %s", protocol, path, rc, out, err)
    dec = json.JSONDecoder()
    docs, i = [], 0
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i >= len(out):
            break
        o, i = dec.raw_decode(out, i)
        docs.append(o)
    check(docs, "%s: no message in %r", path, out)
    check_out(c.state, docs if stream else docs[0])


def buf_cases(tag):
    sku, email = "WEB-%s" % tag, "web-%s@example.com" % tag

    def save(key, field):
        return lambda st, o: st.__setitem__(key, o[field])

    def has(key, field, want=None):
        def f(st, o):
            v = o if not isinstance(o, list) else next(
                (x for x in o if x.get(field) == st.get(key)), None)
            check(v is not None and v.get(field) == (want if want is not None else st[key]),
                  "%s: want %s=%r in %r", key, field, want or st.get(key), o)
        return f

    return [
        ("oms.v1.CustomerService/CreateCustomer", {"name": "Web " + tag, "email": email},
         save("cust", "id"), False, None),
        ("oms.v1.CustomerService/GetCustomer", lambda st: {"id": st["cust"]},
         has("cust", "id"), False, None),
        ("oms.v1.CustomerService/ListCustomers", {}, has("cust", "id"), True, None),
        ("oms.v1.CustomerService/SetCustomerStatus",
         lambda st: {"id": st["cust"], "status": "CUSTOMER_STATUS_ACTIVE"},
         has("cust", "id"), False, None),
        ("oms.v1.InventoryService/UpsertProduct",
         {"sku": sku, "name": "Web product", "unitPriceCents": "250"},
         lambda st, o: (eq(o["sku"], sku, "sku"), st.__setitem__("sku", sku)), False, None),
        ("oms.v1.InventoryService/GetProduct", {"sku": sku}, has("sku", "sku"), False, None),
        ("oms.v1.InventoryService/ListProducts", {}, has("sku", "sku"), True, None),
        ("oms.v1.InventoryService/AdjustStock", {"sku": sku, "delta": "10"},
         lambda st, o: eq(o["onHand"], "10", "onHand"), False, None),
        ("oms.v1.InventoryService/Reserve",
         {"orderId": "r-" + tag, "lines": [{"sku": sku, "quantity": "1"}]},
         lambda st, o: eq(o["orderId"], "r-" + tag, "reservation"), False, None),
        ("oms.v1.InventoryService/Release", {"orderId": "r-" + tag},
         lambda st, o: eq(o.get("released"), True, "released"), False, None),
        ("oms.v1.OrderService/CreateOrder",
         lambda st: {"customerId": st["cust"], "lines": [{"sku": sku, "quantity": "2"}]},
         save("order", "id"), False, None),
        ("oms.v1.OrderService/GetOrder", lambda st: {"id": st["order"]},
         lambda st, o: eq(o["totalCents"], "500", "total"), False, None),
        ("oms.v1.OrderService/UpdateOrderStatus",
         lambda st: {"id": st["order"], "status": "ORDER_STATUS_CONFIRMED"},
         lambda st, o: eq(o["status"], "ORDER_STATUS_CONFIRMED", "status"), False, None),
        ("oms.v1.OrderService/ListOrders", lambda st: {"customerId": st["cust"]},
         has("order", "id"), True, None),
        ("oms.v1.OrderService/WatchOrders", lambda st: {"orderIds": [st["order"]],
                                                         "sinceSeq": "1"},
         lambda st, o: check([e["status"] for e in o if e.get("orderId") == st["order"]] ==
                             ["ORDER_STATUS_PENDING", "ORDER_STATUS_CONFIRMED"],
                             "events %r", o), True, "3s"),
        ("oms.v1.OrderService/CancelOrder", lambda st: {"id": st["order"], "reason": "web"},
         lambda st, o: eq(o["status"], "ORDER_STATUS_CANCELLED", "status"), False, None),
    ]


def connect_node(c, transport, http_version="2"):
    """web_client.mjs: unary, error code and details, a stream, WatchOrders,
    over HTTP/2 or HTTP/1.1."""
    modules = os.path.dirname(os.path.dirname(os.path.dirname(c.buf)))  # <npm>/node_modules/.bin/buf
    argv = ["node", os.path.join(h.HERE, "web_client.mjs"), "--modules", modules, "--schema",
            c.schema, "--base-url", c.url(""), "--transport", transport,
            "--http-version", http_version]
    if not c.server.h2c:
        argv += ["--ca", c.server.ca_path()]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=T * 2)
    check(r.returncode == 0, "web_client.mjs --transport %s: rc %d\n%s%s", transport,
          r.returncode, r.stdout, r.stderr)
    eq(r.stdout.count("ok "), 6 if transport == "connect" and http_version == "2" else 5,
       "steps passed")


# --- gRPC-Web on the wire -----------------------------------------------------------

def grpcweb_unary_binary(c):
    st = c.request(GET_CUSTOMER, frame(b"\x0a\x03c-1"), headers=[("x-grpc-web", "1")])
    eq(st.http_status, 200, "status")
    eq(st.headers.get("content-type"), "application/grpc-web+proto", "content-type")
    check(st.trailers is None, "HTTP trailers sent: %r", st.trailers)
    fr = frames(st.data)
    eq([f for f, _ in fr], [0, 0x80], "frame flags")
    check(b"Ada Lovelace" in fr[0][1], "message %r", fr[0][1])
    eq(web_trailers(fr[1][1]).get("grpc-status"), "0", "grpc-status")


def grpcweb_text_stream(c):
    body = base64.b64encode(frame(b""))
    st = c.request(LIST_PRODUCTS, body, "application/grpc-web-text")
    eq(st.http_status, 200, "status")
    eq(st.headers.get("content-type"), "application/grpc-web-text+proto", "content-type")
    fr = frames(text_decode(st.data))
    check(len(fr) >= 7 and all(f == 0 for f, _ in fr[:-1]), "flags %r", [f for f, _ in fr])
    eq(fr[-1][0], 0x80, "last frame is the trailer frame")
    eq(web_trailers(fr[-1][1]).get("grpc-status"), "0", "grpc-status")


def grpcweb_text_request_in_pieces(c):
    """The request body split inside a base64 group and as two padded texts."""
    whole = frame(b"\x0a\x03c-2")
    text = base64.b64encode(whole[:4]) + base64.b64encode(whole[4:])
    with c.raw() as cl:
        sid = cl.start(GET_CUSTOMER, None, end=False, content_type="application/grpc-web-text",
                       te=False)
        for i in range(0, len(text), 3):
            cl.send_data(sid, text[i:i + 3])
        cl.end(sid)
        st = cl.wait_stream(sid)
    fr = frames(text_decode(st.data))
    check(b"Grace Hopper" in fr[0][1], "message %r", fr)
    eq(web_trailers(fr[-1][1]).get("grpc-status"), "0", "grpc-status")


def grpcweb_error(c, path, body, want_code, want_msg, ctype="application/grpc-web+proto"):
    st = c.request(path, body, ctype)
    eq(st.http_status, 200, "status")
    fr = frames(text_decode(st.data) if "text" in ctype else st.data)
    check(fr and fr[-1][0] == 0x80, "no trailer frame: %r", fr)
    t = web_trailers(fr[-1][1])
    code, msg = int(t["grpc-status"]), urllib.parse.unquote(t.get("grpc-message", ""))
    eq(code, want_code, "grpc-status (message %r)" % msg)
    check(want_msg in msg, "grpc-message %r lacks %r", msg, want_msg)


def grpcweb_not_found(c):
    grpcweb_error(c, GET_ORDER, frame(b"\x0a\x04o-99"), 5, "not found")


def grpcweb_unknown_method(c):
    grpcweb_error(c, "/oms.v1.OrderService/Nope", frame(b""), 12, "unknown method")


def grpcweb_client_streaming_refused(c):
    grpcweb_error(c, "/oms.v1.OrderService/ImportOrders", frame(b""), 12,
                  "unary and server-streaming calls only")
    grpcweb_error(c, "/oms.v1.OrderService/TrackOrders", frame(b""), 12,
                  "unary and server-streaming calls only")


def grpcweb_bad_base64(c):
    grpcweb_error(c, GET_CUSTOMER, b"AAAA*AAA", 3, "not base64", "application/grpc-web-text")
    grpcweb_error(c, GET_CUSTOMER, b"AAAAAAUKA2MtMQ==A", 3, "not base64",
                  "application/grpc-web-text")


def grpcweb_truncated_frame(c):
    grpcweb_error(c, GET_CUSTOMER, struct.pack(">BI", 0, 10) + b"\x0a\x03", 13,
                  "ended inside a message")
    grpcweb_error(c, GET_CUSTOMER, b"\x00\x00", 13, "ended inside a message")


def grpcweb_huge_length(c):
    grpcweb_error(c, GET_CUSTOMER, struct.pack(">BI", 0, 0xFFFFFFFF) + b"x", 8, "larger than max")


def grpcweb_bad_flag(c):
    grpcweb_error(c, GET_CUSTOMER, struct.pack(">BI", 0x80, 0), 13, "compression flag")


# --- Connect on the wire ---------------------------------------------------------------

def curl_json_get_order(c):
    status, hd, body = c.curl(GET_CUSTOMER, '{"id":"c-1"}', ["content-type: application/json"])
    eq(status, 200, "status")
    eq(hd.get("content-type"), "application/json", "content-type")
    eq(json.loads(body)["name"], "Ada Lovelace", "name")
    status, hd, body = c.curl(GET_ORDER, '{"id":"o-999"}', ["content-type: application/json"])
    eq(status, 404, "status of an unknown order")
    eq(json.loads(body), {"code": "not_found", "message": "order o-999 not found"}, "error body")


def connect_proto_unary(c):
    st = c.request(GET_CUSTOMER, b"\x0a\x03c-1", "application/proto",
                   headers=[("connect-protocol-version", "1")])
    eq(st.http_status, 200, "status")
    eq(st.headers.get("content-type"), "application/proto", "content-type")
    check(st.data.startswith(b"\x0a\x03c-1"), "bare message %r", st.data)


def connect_gzip_request(c):
    body = gzip.compress(json.dumps({"id": "c-1"}).encode())
    st = c.request(GET_CUSTOMER, body, "application/json", headers=[("content-encoding", "gzip")])
    eq(st.http_status, 200, "status")
    eq(json.loads(st.data)["id"], "c-1", "id")
    st = c.request(GET_CUSTOMER, b"not gzip", "application/json",
                   headers=[("content-encoding", "gzip")])
    eq(json.loads(st.data)["code"], "internal", "corrupt gzip")
    st = c.request(GET_CUSTOMER, b"{}", "application/json", headers=[("content-encoding", "br")])
    eq((st.http_status, json.loads(st.data)["code"]), (501, "unimplemented"), "unknown encoding")


def connect_get(c):
    q = urllib.parse.urlencode({"connect": "v1", "encoding": "json",
                                "message": json.dumps({"id": "c-1"})})
    st = c.request(GET_CUSTOMER + "?" + q, method="GET", ctype=None)
    eq(st.http_status, 200, "GET json")
    eq(json.loads(st.data)["id"], "c-1", "id")
    msg = base64.urlsafe_b64encode(b"\x0a\x03c-2").rstrip(b"=").decode()
    st = c.request(GET_CUSTOMER + "?encoding=proto&base64=1&message=" + msg, method="GET",
                   ctype=None)
    eq(st.http_status, 200, "GET proto")
    check(b"Grace Hopper" in st.data, "body %r", st.data)
    st = c.request("/oms.v1.OrderService/CancelOrder?encoding=json&message=%7B%7D", method="GET",
                   ctype=None)
    eq(st.http_status, 501, "GET of a method with side effects")
    check("POST" in json.loads(st.data)["message"], "message %r", st.data)
    st = c.request(GET_CUSTOMER + "?encoding=json", method="GET", ctype=None)
    eq(json.loads(st.data)["code"], "invalid_argument", "GET without message")


def connect_errors(c):
    code, _, body = c.connect_json("/oms.v1.Nope/Nope", {})
    eq((code, body["code"]), (501, "unimplemented"), "unknown method")
    code, _, body = c.connect_json(LIST_PRODUCTS, {})
    eq((code, body["code"]), (501, "unimplemented"), "unary protocol on a streaming method")
    code, _, body = c.connect_json(GET_CUSTOMER, {"id": "c-1"},
                                   headers=[("connect-protocol-version", "2")])
    eq((code, body["code"]), (400, "invalid_argument"), "protocol version 2")
    code, _, body = c.connect_json(GET_CUSTOMER, {"id": "c-1"},
                                   headers=[("connect-timeout-ms", "soon")])
    eq((code, body["code"]), (400, "invalid_argument"), "bad timeout")


def connect_hostile_json(c):
    cases = [
        ({"id": 5}, "id"),                        # wrong type
        ({"id": "c-1", "bogus": 1}, "bogus"),     # unknown field
        (b'{"id": "c-1"', ""),                    # truncated JSON
        (b'{"id": "\xff\xfe"}', ""),              # not UTF-8
        (b"[" * 100000, ""),                      # deep nesting
        (b'{"id": "a\\u0000b"}', ""),             # NUL
        ({"sku": "SKU-001", "delta": 1e300}, "delta"),  # out of range
    ]
    for body, field in cases:
        code, _, err = c.connect_json(GET_CUSTOMER if field != "delta"
                                      else "/oms.v1.InventoryService/AdjustStock", body)
        eq((code, err["code"]), (400, "invalid_argument"), "answer to %r" % (body,)[:60])
        check(field in err.get("message", ""), "message %r lacks the field %r", err, field)
    # a huge number on a streaming method's request (Connect stream, JSON)
    st = c.request(LIST_ORDERS, frame(b'{"pageSize": 1e400}'), "application/connect+json")
    end = frames(st.data)[-1]
    eq(end[0], 2, "end-stream flag")
    eq(json.loads(end[1])["error"]["code"], "invalid_argument", "huge number")


def count_orders(c):
    st = c.request(LIST_ORDERS, frame(b"{}"), "application/connect+json")
    fr = frames(st.data)
    eq(fr[-1][0], 2, "end-stream flag")
    check("error" not in json.loads(fr[-1][1]), "ListOrders failed: %r", fr[-1][1])
    return len(fr) - 1


def connect_nothing_stored(c):
    before = count_orders(c)
    bad = [
        {"customerId": "c-1", "lines": "x"},
        {"customerId": "c-1", "lines": [{"sku": "SKU-001", "quantity": "1e999"}]},
        {"customerId": "c-1", "lines": [{"sku": "SKU-001", "quantity": "1", "x": 1}]},
    ]
    for b in bad:
        code, _, err = c.connect_json("/oms.v1.OrderService/CreateOrder", b)
        eq((code, err["code"]), (400, "invalid_argument"), "CreateOrder %r" % (b,))
    grpcweb_error(c, "/oms.v1.OrderService/CreateOrder", struct.pack(">BI", 0, 50) + b"\x0a",
                  13, "ended inside a message")
    eq(count_orders(c), before, "orders after the hostile creates")


def error_details(c):
    """Rich error details: Connect's "details", gRPC-Web's trailer."""
    bad = {"customerId": "c-1", "lines": [{"sku": "SKU-001", "quantity": "0"}]}
    code, hd, err = c.connect_json("/oms.v1.OrderService/CreateOrder", bad)
    eq((code, err["code"]), (400, "invalid_argument"), "quantity 0")
    eq([d["type"] for d in err.get("details", [])], ["google.rpc.BadRequest"], "details")
    check(b"lines[0].quantity" in base64.b64decode(err["details"][0]["value"]), "detail %r", err)
    check(not any("details" in k for k in hd), "details also as a header: %r", hd)
    st = c.request("/oms.v1.OrderService/CreateOrder",
                   frame(b"\x0a\x03c-1\x12\x0b\x0a\x07SKU-001\x10\x00"))
    t = web_trailers(frames(st.data)[-1][1])
    eq(t.get("grpc-status"), "3", "grpc-status")
    check(t.get("grpc-status-details-bin"), "no details in the trailer frame: %r", t)


def connect_stream(c):
    st = c.request(LIST_PRODUCTS, frame(b"{}"), "application/connect+json",
                   headers=[("connect-protocol-version", "1")])
    eq(st.http_status, 200, "status")
    eq(st.headers.get("content-type"), "application/connect+json", "content-type")
    fr = frames(st.data)
    check(all(f == 0 for f, _ in fr[:-1]) and len(fr) >= 7, "flags %r", [f for f, _ in fr])
    check(json.loads(fr[0][1])["sku"].startswith("SKU-"), "first product %r", fr[0][1])
    eq(fr[-1][0], 2, "end-stream flag")
    eq(json.loads(fr[-1][1]), {"metadata": {}}, "end-stream message")
    # proto, and an error in the end-stream message
    st = c.request("/oms.v1.CustomerService/ListCustomers", frame(b""), "application/connect+proto")
    fr = frames(st.data)
    check(b"Ada Lovelace" in fr[0][1], "first customer %r", fr[0][1])
    st = c.request(GET_ORDER, frame(b'{"id":"o-404"}'), "application/connect+json")
    end = frames(st.data)[-1]
    eq(end[0], 2, "end-stream flag")
    eq(json.loads(end[1])["error"]["code"], "not_found", "error in the end-stream message")


def connect_stream_deadline(c):
    st = c.request("/oms.v1.OrderService/WatchOrders", frame(b"{}"), "application/connect+json",
                   headers=[("connect-timeout-ms", "300")])
    end = frames(st.data)[-1]
    eq(end[0], 2, "end-stream flag")
    eq(json.loads(end[1])["error"]["code"], "deadline_exceeded", "deadline")


# --- CORS -----------------------------------------------------------------------------------

def cors_preflight(c):
    st = c.request(GET_CUSTOMER, method="OPTIONS", ctype=None, headers=[
        ("origin", ORIGIN), ("access-control-request-method", "POST"),
        ("access-control-request-headers", "x-grpc-web,content-type,x-tenant")])
    eq(st.http_status, 204, "preflight of an allowed origin")
    eq(st.headers.get("access-control-allow-origin"), ORIGIN, "allow-origin")
    allowed = st.headers.get("access-control-allow-headers", "")
    for want in ("x-grpc-web", "x-user-agent", "grpc-timeout", "authorization",
                 "connect-protocol-version", "connect-timeout-ms", "x-tenant"):
        check(want in allowed.split(","), "%s not in allow-headers %r", want, allowed)
    check("POST" in st.headers.get("access-control-allow-methods", ""), "methods")
    check(st.headers.get("access-control-max-age"), "max-age")
    st = c.request(GET_CUSTOMER, method="OPTIONS", ctype=None, headers=[
        ("origin", "http://evil.example"), ("access-control-request-method", "POST")])
    eq(st.http_status, 403, "preflight of a foreign origin")
    check("access-control-allow-origin" not in st.headers, "allow-origin for a foreign origin")


def cors_actual(c):
    for ctype, body in (("application/grpc-web+proto", frame(b"\x0a\x03c-1")),
                        ("application/json", b'{"id":"c-1"}')):
        st = c.request(GET_CUSTOMER, body, ctype, headers=[("origin", ORIGIN)])
        eq(st.headers.get("access-control-allow-origin"), ORIGIN, "allow-origin " + ctype)
        eq(st.headers.get("vary"), "Origin", "vary")
        exp = st.headers.get("access-control-expose-headers", "").split(",")
        for want in ("grpc-status", "grpc-message", "grpc-status-details-bin"):
            check(want in exp, "%s not exposed: %r", want, exp)
        st = c.request(GET_CUSTOMER, body, ctype, headers=[("origin", "http://evil.example")])
        eq(st.http_status, 200, "a foreign origin is still answered (the browser refuses it)")
        check(not any(k.startswith("access-control-") for k in st.headers),
              "CORS headers for a foreign origin: %r", st.headers)


def auth_on(c, secret):
    """With authentication on, the web protocols go through the same
    interceptors: no token is refused in each protocol's form, a token with
    the method's scope is let through."""
    import jwt
    now = int(time.time())
    tok = jwt.encode({"sub": "web-it", "iat": now - 2, "exp": now + 600,
                      "scope": "customers:read"}, secret, algorithm="HS256")
    code, _, err = c.connect_json(GET_CUSTOMER, {"id": "c-1"})
    eq((code, err["code"]), (401, "unauthenticated"), "Connect without a token")
    grpcweb_error(c, GET_CUSTOMER, frame(b"\x0a\x03c-1"), 16, "")
    auth = [("authorization", "Bearer " + tok)]
    code, _, body = c.connect_json(GET_CUSTOMER, {"id": "c-1"}, headers=auth)
    eq((code, body.get("id")), (200, "c-1"), "Connect with a token")
    st = c.request(GET_CUSTOMER, frame(b"\x0a\x03c-1"), headers=auth)
    eq(web_trailers(frames(st.data)[-1][1]).get("grpc-status"), "0", "gRPC-Web with a token")
    st = c.request(GET_CUSTOMER + "?encoding=json&message=%7B%22id%22%3A%22c-2%22%7D",
                   method="GET", ctype=None, headers=auth)
    eq(st.http_status, 200, "Connect GET with a token")
    code, _, err = c.connect_json(GET_ORDER, {"id": "o-1"}, headers=auth)
    eq((code, err["code"]), (403, "permission_denied"), "a scope the token lacks")


def connect_client_stream(c):
    """Connect's client streaming (ImportOrders, connect+json): every row in
    one request body, the summary and the end-of-stream message back; over
    HTTP/2 and HTTP/1.1 (chunked answer)."""
    def env(obj, flags=0):
        b = json.dumps(obj).encode()
        return bytes([flags]) + struct.pack(">I", len(b)) + b
    rows = [{"rowId": "r%d" % i, "order": {"customerId": "c-1", "lines": [
        {"sku": "SKU-00%d" % (i + 1), "quantity": "1"}]}} for i in range(2)]
    rows.append({"rowId": "bad", "order": {"customerId": "c-404", "lines": [
        {"sku": "SKU-001", "quantity": "1"}]}})
    path = os.path.join(c.env.workdir, "import-rows.bin")
    with open(path, "wb") as f:
        f.write(b"".join(env(r) for r in rows))
    body = "@" + path  # binary: curl reads it from the file
    hdrs = ["content-type: application/connect+json", "connect-protocol-version: 1"]
    for send in (c.curl, c.curl_http1):
        status, hd, payload = send("/oms.v1.OrderService/ImportOrders", body, hdrs)
        eq(status, 200, "status")
        eq(hd.get("content-type"), "application/connect+json", "content-type")
        msgs = []
        while payload:
            flags, n = payload[0], struct.unpack(">I", payload[1:5])[0]
            msgs.append((flags, json.loads(payload[5:5 + n])))
            payload = payload[5 + n:]
        eq([f for f, _ in msgs], [0, 2], "a message, then the end of the stream")
        summary, end = msgs[0][1], msgs[1][1]
        eq((summary["received"], summary["created"], summary["failed"]), ("3", "2", "1"),
           "rows received, created, failed")
        eq([r.get("code", 0) for r in summary["results"]], [0, 0, 5], "row codes")
        check("error" not in end, "end of stream: %s", end)


CASES = [
    ("grpcweb.unary_binary", grpcweb_unary_binary),
    ("grpcweb.text_stream", grpcweb_text_stream),
    ("grpcweb.text_request_in_pieces", grpcweb_text_request_in_pieces),
    ("grpcweb.not_found", grpcweb_not_found),
    ("grpcweb.unknown_method", grpcweb_unknown_method),
    ("grpcweb.client_streaming_refused", grpcweb_client_streaming_refused),
    ("grpcweb.bad_base64", grpcweb_bad_base64),
    ("grpcweb.truncated_frame", grpcweb_truncated_frame),
    ("grpcweb.huge_declared_length", grpcweb_huge_length),
    ("grpcweb.bad_flag", grpcweb_bad_flag),
    ("connect.curl_json", curl_json_get_order),
    ("connect.proto_unary", connect_proto_unary),
    ("connect.gzip_request", connect_gzip_request),
    ("connect.get", connect_get),
    ("connect.errors", connect_errors),
    ("connect.hostile_json", connect_hostile_json),
    ("connect.nothing_stored", connect_nothing_stored),
    ("connect.error_details", error_details),
    ("connect.stream", connect_stream),
    ("connect.stream_deadline", connect_stream_deadline),
    ("connect.client_stream", connect_client_stream),
    ("cors.preflight", cors_preflight),
    ("cors.actual", cors_actual),
]


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--buf", help="the buf binary (npm @bufbuild/buf)")
    args = p.parse_args()
    with h.Env("web", args) as env:
        # --buf (this build's npm tree), else the default build's (a second
        # build dir such as build-asan shares it), else PATH.
        cands = [args.buf, os.path.join(args.source_dir, "build/npm/node_modules/.bin/buf"),
                 shutil.which("buf")]
        buf = next((b for b in cands if b and os.access(b, os.X_OK)), None)
        check(buf, "buf not found (--buf %s): scripts/deps.sh installs it with npm", args.buf)
        schema = os.path.join(env.workdir, "oms.binpb")
        subprocess.run(["protoc", "-I", os.path.join(args.source_dir, "proto"), "-I",
                        "/usr/include", "--include_imports", "--descriptor_set_out", schema,
                        "oms/v1/customer.proto", "oms/v1/inventory.proto", "oms/v1/order.proto"],
                       check=True)
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"), extra_args=["--cors-origin", ORIGIN])
            c = Ctx(env, server, buf, schema)
            for protocol in ("grpcweb", "connect"):
                c.state = {}
                tag = "%s-%s" % (tr, protocol)
                for path, req, chk, stream, timeout in buf_cases(tag):
                    env.suite.run("%s.buf.%s.%s" % (tr, protocol, path.split("/")[1]), buf_method,
                                  c, protocol, tag, "/" + path, req, chk, stream, timeout)
            for transport in ("connect", "grpcweb"):
                for hv in ("2", "1.1"):
                    env.suite.run("%s.connect_node.%s.http%s" % (tr, transport, hv),
                                  connect_node, c, transport, hv)
            for name, fn in CASES:
                def body(fn=fn):
                    fn(c)
                    c.healthy()
                env.suite.run("%s.%s" % (tr, name), body)
            env.suite.stop_server(server)
        secret_path = os.path.join(env.workdir, "jwt.secret")
        secret = os.urandom(32)
        with open(secret_path, "wb") as f:
            f.write(secret)
        server = env.server(h2c=True, name="omsd-auth", extra_args=[
            "--cors-origin", ORIGIN, "--jwt-secret-file", secret_path])
        env.suite.run("auth.web_protocols", auth_on, Ctx(env, server, buf, schema), secret)
        env.suite.stop_server(server)


if __name__ == "__main__":
    main()
