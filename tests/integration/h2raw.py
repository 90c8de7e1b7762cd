"""A small raw HTTP/2 client (python3-h2 over socket/ssl) for wire-level checks:
gRPC framing by hand, malformed requests, resets, and raw frame parsing.
"""

import gzip
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}


def grpc_frame(msg, compressed=False):
    """gRPC length-prefixed message (compressed: the flag only; gzip yourself)."""
    return struct.pack(">BI", 1 if compressed else 0, len(msg)) + msg


def grpc_frame_gzip(msg):
    return grpc_frame(gzip.compress(msg), compressed=True)


def parse_grpc_messages(data):
    """-> list of (compressed_flag, payload bytes); raises on a truncated frame."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError("truncated gRPC prefix (%d bytes left)" % (len(data) - i))
        flag, n = struct.unpack(">BI", data[i:i + 5])
        if len(data) - i - 5 < n:
            raise ValueError("truncated gRPC message: want %d, have %d" % (n, len(data) - i - 5))
        out.append((flag, data[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def connect(host, port, ca=None, alpn=("h2",), server_hostname="localhost", timeout=10.0):
    """TCP (h2c) or TLS socket. ca=None -> plaintext."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ca is None:
        return sock
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx.wrap_socket(sock, server_hostname=server_hostname)


class StreamResult:
    def __init__(self, sid):
        self.sid = sid
        self.headers = None      # dict of the first HEADERS block
        self.header_list = None
        self.trailers = None     # dict of the trailing HEADERS block
        self.data = b""
        self.data_frames = 0
        self.ended = False
        self.trailers_only = False
        self.reset = None        # RST_STREAM error code received
        self.events = []

    @property
    def http_status(self):
        if self.headers and ":status" in self.headers:
            return int(self.headers[":status"])
        return None

    def _meta(self):
        if self.trailers is not None:
            return self.trailers
        if self.trailers_only:
            return self.headers
        return {}

    @property
    def grpc_status(self):
        v = self._meta().get("grpc-status")
        return int(v) if v is not None else None

    @property
    def grpc_message(self):
        return self._meta().get("grpc-message")

    def messages(self):
        return parse_grpc_messages(self.data)

    @property
    def done(self):
        return self.ended or self.reset is not None

    def describe(self):
        return ("stream %d: headers=%r trailers=%r trailers_only=%s data=%dB reset=%r ended=%s"
                % (self.sid, self.headers, self.trailers, self.trailers_only, len(self.data),
                   self.reset, self.ended))


def _hdict(hs):
    d = {}
    for k, v in hs:
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode(errors="replace") if isinstance(v, bytes) else v
        d[k] = v
    return d


class H2Client:
    def __init__(self, host, port, ca=None, authority=None, timeout=10.0, alpn=("h2",),
                 validate=False):
        self.host, self.port, self.tls = host, port, ca is not None
        self.sock = connect(host, port, ca=ca, alpn=alpn, timeout=timeout)
        self.timeout = timeout
        self.authority = authority or ("localhost:%d" % port)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate,
                                        validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.streams = {}
        self.goaway = None       # (error_code, last_stream_id, debug)
        self.closed = False
        self.remote_settings = {}
        self.settings_acked = False
        self.flush()

    # ------------------------------------------------------------------ send
    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                self.closed = True  # the peer went away; readers see .closed/.goaway

    def grpc_headers(self, path, content_type="application/grpc", extra=(), method="POST",
                     te=True):
        hs = [(":method", method), (":scheme", "https" if self.tls else "http"),
              (":path", path), (":authority", self.authority)]
        if content_type is not None:
            hs.append(("content-type", content_type))
        if te:
            hs.append(("te", "trailers"))
        hs += list(extra)
        return hs

    def start(self, path, body=None, end=True, **kw):
        """Opens a stream; body (bytes) is sent as DATA; end half-closes."""
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = StreamResult(sid)
        hs = self.grpc_headers(path, **kw)
        self.conn.send_headers(sid, hs, end_stream=end and body is None)
        if body is not None:
            self.send_data(sid, body, end=end)
        self.flush()
        return sid

    def send_headers(self, sid, headers, end=False):
        self.streams.setdefault(sid, StreamResult(sid))
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()

    def send_data(self, sid, data, end=False):
        # respect the peer's flow control window, reading to get WINDOW_UPDATEs
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while True:
            if not view:
                if end:
                    self.conn.end_stream(sid)
                break
            win = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                self.flush()
                if time.monotonic() > deadline:
                    raise TimeoutError("flow control window stayed closed")
                self._read_once(0.2)
                continue
            n = min(win, len(view))
            last = n == len(view)
            self.conn.send_data(sid, view[:n].tobytes(), end_stream=end and last)
            view = view[n:]
            self.flush()
            if last:
                break
        self.flush()

    def end(self, sid):
        self.conn.end_stream(sid)
        self.flush()

    def reset(self, sid, code=h2.errors.ErrorCodes.CANCEL):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def ping(self, data=b"12345678"):
        self.conn.ping(data)
        self.flush()

    # ------------------------------------------------------------------ receive
    def _read_once(self, timeout):
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError("server sent invalid HTTP/2: %r" % (e,))
        for ev in events:
            self._on_event(ev)
        try:
            self.flush()
        except OSError:
            self.closed = True
        return True

    def _on_event(self, ev):
        sid = getattr(ev, "stream_id", None)
        st = self.streams.get(sid) if sid else None
        if st is not None:
            st.events.append(ev)
        if isinstance(ev, h2.events.ResponseReceived):
            st.headers = _hdict(ev.headers)
            st.header_list = ev.headers
            if ev.stream_ended is not None:
                st.trailers_only = True
                st.ended = True
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(ev, h2.events.TrailersReceived):
            st.trailers = _hdict(ev.headers)
            if ev.stream_ended is not None:
                st.ended = True
        elif isinstance(ev, h2.events.DataReceived):
            st.data += ev.data
            st.data_frames += 1
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended is not None:
                st.ended = True
        elif isinstance(ev, h2.events.StreamEnded):
            if st:
                st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st:
                st.reset = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (int(ev.error_code), ev.last_stream_id, ev.additional_data)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            self.settings_acked = True

    def wait(self, pred, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._read_once(min(left, 0.5)):
                return pred()
        return True

    def wait_stream(self, sid, timeout=None):
        st = self.streams[sid]
        ok = self.wait(lambda: st.done or self.goaway is not None, timeout)
        if not ok:
            raise AssertionError("no complete answer on stream %d within %.0fs: %s"
                                 % (sid, timeout or self.timeout, st.describe()))
        return st

    def wait_settings(self, timeout=None):
        self.wait(lambda: self.remote_settings or self.settings_acked, timeout)
        return self.remote_settings

    def close(self):
        try:
            if not self.closed:
                self.conn.close_connection()
                self.flush()
        except Exception:
            pass
        try:
            self.sock.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def parse_frames(data):
    """Raw bytes from a server -> list of (type, flags, stream_id, payload)."""
    out, i = [], 0
    while len(data) - i >= 9:
        n = int.from_bytes(data[i:i + 3], "big")
        t, fl = data[i + 3], data[i + 4]
        sid = int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF
        if len(data) - i - 9 < n:
            break
        out.append((t, fl, sid, data[i + 9:i + 9 + n]))
        i += 9 + n
    return out


def read_all(sock, timeout=5.0, limit=1 << 20):
    """Reads until EOF/reset or timeout. -> (bytes, closed: bool)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return buf, False
        except ssl.SSLWantReadError:
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return buf, True
        if not d:
            return buf, True
        buf += d
    return buf, False
