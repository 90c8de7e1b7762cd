#!/usr/bin/python3
"""Slow WatchOrders subscribers: bounded server memory, and no event lost.

One WatchOrders stream (raw HTTP/2, 64 KiB stream window, the system's default
socket buffers) starts at the seq of a marker order's creation event, reads the
first event and then nothing, while 200,000 events are produced (ImportOrders on
several channels for the creations, UpdateOrderStatus(CONFIRMED) for about a
tenth of them). omsd's VmRSS is sampled every 0.1 s during the production; it
must stay below baseline + OMS_IT_WATCH_RSS_MARGIN_MB (default 64 MiB; plus the
allocator quarantine in ASan builds), the baseline being the RSS after a
warm-up of the same shape without the slow subscriber. Then the subscriber
reads: it must receive every event, seq by seq with no gap and no duplicate,
up to a closing marker, exactly the creations and updates that were made. A
RESOURCE_EXHAUSTED end (allowed by the design) is followed by a resume with
since_seq = last + 1, and counted. A subscriber that makes no progress for
OMS_IT_WATCH_STALL_S (15 s) fails the case, with omsd's SIGUSR1 state dump and
both ends of its TCP connection (ss) printed.

The socket receive buffer is the system's default: the HTTP/2 window already
bounds what is in flight to a stalled subscriber. OMS_IT_WATCH_RCVBUF=4096,
what this runner used to set, brings back the intermittent stall it caused (a
subscriber without progress for up to 120 s once it reads again, with omsd's
HTTP/2 side idle: its send window used up by bytes sitting in its socket).
Such a buffer cannot hold the loopback segments of the window its kernel
advertises, so the kernel drops them (ss: skmem d), omsd's kernel retransmits
and probes on timers that back off while the reader is away (ss: backoff,
timer:(persist,...), up to TCP_RTO_MAX, 120 s), and a reader that drains its
few KiB need not make its kernel send anything that hurries them.

The event count scales with OMS_IT_LOAD_SCALE (0.25 by default in sanitizer
builds); OMS_IT_WATCH_EVENTS sets it directly.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import h2raw  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import Failure, check, eq  # noqa: E402
from orders_it import T  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

MIB = 1024
STALL_S = float(os.environ.get("OMS_IT_WATCH_STALL_S", "15"))
RCVBUF = int(os.environ.get("OMS_IT_WATCH_RCVBUF", "0"))  # 0: the system's default
WATCH_PATH = "/oms.v1.OrderService/WatchOrders"


class RawWatch:
    """WatchOrders over a raw HTTP/2 connection whose reader can stall."""

    def __init__(self, server, since_seq, opb, rcvbuf=RCVBUF):
        self.opb = opb
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", server.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not server.h2c:
            ctx = ssl.create_default_context(cafile=server.ca_path())
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.tls = not server.h2c
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.buf = bytearray()
        self.events = []
        self.headers = None
        self.trailers = None
        self.reset = None
        self.closed = False
        self.goaway = None
        self.sid = self.conn.get_next_available_stream_id()
        hs = [(":method", "POST"), (":scheme", "https" if self.tls else "http"),
              (":path", WATCH_PATH), (":authority", "localhost:%d" % server.port),
              ("content-type", "application/grpc"), ("te", "trailers")]
        self.conn.send_headers(self.sid, hs)
        body = h2raw.grpc_frame(opb.WatchOrdersRequest(since_seq=since_seq).SerializeToString())
        self.conn.send_data(self.sid, body, end_stream=True)
        self.flush()

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    @property
    def ended(self):
        return self.trailers is not None or self.reset is not None or self.closed

    def read_some(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except OSError:
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.headers = dict(ev.headers)
                if ev.stream_ended is not None:  # Trailers-Only
                    self.trailers = self.headers
            elif isinstance(ev, h2.events.DataReceived):
                self.buf += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                self.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamReset):
                self.reset = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = (int(ev.error_code), ev.additional_data)
                self.closed = True
        self._parse()
        try:
            self.flush()
        except OSError:
            self.closed = True

    def _parse(self):
        b = self.buf
        i = 0
        ev_cls = self.opb.OrderEvent
        while len(b) - i >= 5:
            n = int.from_bytes(b[i + 1:i + 5], "big")
            if len(b) - i - 5 < n:
                break
            self.events.append(ev_cls.FromString(bytes(b[i + 5:i + 5 + n])))
            i += 5 + n
        if i:
            del b[:i]

    def flow_state(self):
        """Client-side flow control and buffer state, for a stall report."""
        try:
            st = self.conn.streams.get(self.sid)
            sw = st._inbound_window_manager.current_window_size if st else None
        except Exception:  # noqa: BLE001
            sw = None
        return ("connection window %s, stream window %s, partial message bytes %d, ended %s"
                % (getattr(self.conn, "inbound_flow_control_window", None), sw, len(self.buf),
                   self.ended))

    def status(self):
        t = self.trailers or {}
        return t.get("grpc-status"), t.get("grpc-message")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Ctx:
    pass


def server_state_dump(server, timeout=10.0):
    """omsd's SIGUSR1 state dump (every stream's flow control, every
    subscriber's cursor and wake-up state), as the lines it logged."""
    text0 = server.log_text()
    m = re.search(r"\b(\d+) workers\b", text0)
    nworkers = int(m.group(1)) if m else 1
    server.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.log_text()[len(text0):].count("state dump: worker") >= 2 * nworkers:
            break
        time.sleep(0.1)  # polls the log file: the dump has no other channel
    return [ln for ln in server.log_text()[len(text0):].splitlines() if "state dump:" in ln]


def tcp_state(w):
    """Both ends of w's TCP connection as ss(8) shows them: queues, windows,
    timers (a zero-window persist timer would show here)."""
    port = w.sock.getsockname()[1]
    try:
        out = subprocess.run(["ss", "-tnoim", "( sport = :%d or dport = :%d )" % (port, port)],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        out = "ss: %s" % e
    return "\n".join("#   " + ln for ln in out.splitlines())


def setup(c):
    env = c.env
    c.server = oi.start_server(env, "omsd-watch-%s-%d" % (c.tr, c.run), h2c=(c.tr == "h2c"),
                               extra=["--no-demo-data"])
    c.api = oi.api_for(env, c.server)
    c.customers = [c.api.new_customer().id for _ in range(8)]
    c.sku = c.api.new_product(1, 10 ** 12)
    c.made = []  # (order_id, version) of every event produced
    c.lock = threading.Lock()


def _rows(c, n, tag):
    opb = c.api.opb
    line = [opb.CreateOrderLine(sku=c.sku, quantity=1)]
    for i in range(n):
        yield opb.ImportOrderRow(row_id="%s-%d" % (tag, i), order=opb.CreateOrderRequest(
            customer_id=c.customers[i % len(c.customers)], lines=line))


def produce(c, n_events, nthreads=4, batch=5000):
    """Produces about n_events events: creations by ImportOrders on nthreads
    channels, ~1/10 as CONFIRMED updates. Records every event's (order, version)."""
    n_updates = n_events // 10
    n_create = n_events - n_updates
    per = [n_create // nthreads + (1 if i < n_create % nthreads else 0) for i in range(nthreads)]
    created = [[] for _ in range(nthreads)]
    errs = []
    upd_q = []
    upd_lock = threading.Lock()
    done_creating = threading.Event()
    chans = [c.server.channel() for _ in range(nthreads + 2)]

    def importer(i):
        api = oi.Api(c.S, chans[i])
        left, k = per[i], 0
        while left > 0:
            n = min(batch, left)
            s = api.ord.ImportOrders(_rows(c, n, "t%d-%d" % (i, k)), timeout=T * 6)
            bad = [r for r in s.results if r.code != 0]
            if bad:
                raise Failure("ImportOrders: %d rows failed, e.g. %s" % (len(bad), bad[0]))
            ids = [r.order_id for r in s.results]
            created[i].extend(ids)
            with upd_lock:
                upd_q.extend(ids[:: max(1, n_create // max(1, n_updates))])
            left -= n
            k += 1

    updated = []

    def updater(j):
        api = oi.Api(c.S, chans[nthreads + j])
        while True:
            with upd_lock:
                if len(updated) >= n_updates:
                    return
                oid = upd_q.pop() if upd_q else None
                if oid:
                    updated.append(oid)
            if oid is None:
                if done_creating.is_set():
                    return
                time.sleep(0.01)
                continue
            r = api.update(oid, c.api.opb.ORDER_STATUS_CONFIRMED)
            if r.version != 2:
                raise Failure("update of %s answered version %d" % (oid, r.version))

    def wrap(fn, i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=wrap, args=(importer, i), daemon=True) for i in range(nthreads)]
    us = [threading.Thread(target=wrap, args=(updater, j), daemon=True) for j in range(2)]
    for t in ts + us:
        t.start()
    for t in ts:
        t.join()
    done_creating.set()
    for t in us:
        t.join()
    for ch in chans:
        ch.close()
    if errs:
        raise errs[0]
    with c.lock:
        for lst in created:
            c.made.extend((o, 1) for o in lst)
        c.made.extend((o, 2) for o in updated)
    return sum(len(x) for x in created), len(updated)


def marker(c):
    o = c.api.create_order(c.customers[0], [(c.sku, 1)])
    it = c.api.ord.WatchOrders(c.api.opb.WatchOrdersRequest(order_ids=[o.id], since_seq=1),
                               timeout=T)
    try:
        e = next(it)
    finally:
        it.cancel()
    eq((e.order_id, e.version), (o.id, 1), "marker event")
    return o.id, e.seq


def _read_all(c, w, first_seq, last_id, idx):
    """Reads subscriber w up to the closing marker; resumes after RESOURCE_EXHAUSTED."""
    opb = c.api.opb
    resumed = 0
    evs = w.events
    deadline = time.monotonic() + T * 6
    progress_n, progress_t = len(evs), time.monotonic()
    while not (evs and evs[-1].order_id == last_id):
        if time.monotonic() > deadline:
            raise Failure("subscriber %d: %d events within %.0fs" % (idx, len(evs), T * 6))
        if len(evs) != progress_n:
            progress_n, progress_t = len(evs), time.monotonic()
        elif time.monotonic() - progress_t > STALL_S and not w.ended:
            # stalled: describe the client's side, then nudge with one more commit
            diag = w.flow_state()
            dump = server_state_dump(c.server)
            print("# stall: subscriber %d is 127.0.0.1:%d; omsd state dump (SIGUSR1):\n#   %s"
                  % (idx, w.sock.getsockname()[1], "\n#   ".join(dump)), flush=True)
            print("# stall: the subscriber's TCP connection (ss -tnoim):\n" + tcp_state(w),
                  flush=True)
            violations = [ln for ln in dump if "VIOLATION" in ln]
            n0 = len(evs)
            nudge = c.api.create_order(c.customers[0], [(c.sku, 1)])
            t1 = time.monotonic()
            while time.monotonic() - t1 < 5 and len(evs) == n0 and not w.ended:
                w.read_some(0.5)
            raise Failure("subscriber %d stalled for %.0fs after %d of %d events (last seq %d; "
                          "client side: %s); after one more commit (%s) it %s; %d invariant "
                          "violations in omsd's state dump%s"
                          % (idx, STALL_S, n0, c.expect_total, evs[-1].seq if evs else 0, diag,
                             nudge.id, "resumed (%d more events)" % (len(evs) - n0)
                             if len(evs) > n0 else "stayed stalled", len(violations),
                             ": " + violations[0] if violations else ""))
        if w.ended:
            code, msg = w.status()
            if code == "8" and evs:  # RESOURCE_EXHAUSTED: resume with since_seq = last + 1
                resumed += 1
                w.close()
                w = RawWatch(c.server, evs[-1].seq + 1, opb)
                w.events = evs
                continue
            raise Failure("subscriber %d's stream ended after %d events: grpc-status %s %r, "
                          "reset %s, goaway %s" % (idx, len(evs), code, msg, w.reset, w.goaway))
        w.read_some(0.5)
    w.close()
    return evs, resumed


def slow_subscriber(c):
    env, opb = c.env, c.api.opb
    n_events = int(os.environ.get("OMS_IT_WATCH_EVENTS", "0")) or max(
        2000, int(200000 * c.scale))
    nsubs = int(os.environ.get("OMS_IT_WATCH_SUBSCRIBERS", "8"))
    margin_mb = int(os.environ.get("OMS_IT_WATCH_RSS_MARGIN_MB", "96"))
    if oi.is_sanitized(env.args.omsd):
        margin_mb += 64 + 32  # redzones and allocator metadata; quarantine capped at 32 MiB
    # a short warm-up of the same shape: pools, connections, prepared statements
    t0 = time.monotonic()
    wc, wu = produce(c, 2000)
    warm_s = time.monotonic() - t0
    time.sleep(0.3)
    base = c.server.rss_kb()
    bound = base + margin_mb * MIB
    print("# warm-up: %d creations + %d updates in %.1fs; baseline RSS %.1f MiB, bound %.1f MiB"
          % (wc, wu, warm_s, base / MIB, bound / MIB), flush=True)
    first_id, first_seq = marker(c)
    subs = [RawWatch(c.server, first_seq, opb) for _ in range(nsubs)]
    try:
        for i, w in enumerate(subs):
            deadline = time.monotonic() + T
            while not w.events and not w.ended and time.monotonic() < deadline:
                w.read_some(0.5)
            check(w.events and w.events[0].order_id == first_id,
                  "subscriber %d: first event %s, status %s", i, w.events[:1], w.status())
        # from here on the subscribers read nothing
        c.made = []
        rss = oi.RssSampler(c.server, 0.1).start()
        t0 = time.monotonic()
        try:
            nc, nu = produce(c, n_events)
        finally:
            rss.stop()
        prod_s = time.monotonic() - t0
        last_id, last_seq = marker(c)
        peak = rss.max_kb
        print("# produced %d events (%d creations, %d updates) in %.1fs (%.0f events/s) with %d "
              "stalled subscribers; RSS peak %.1f MiB (baseline %.1f, +%.1f MiB; bound %.1f MiB)"
              % (nc + nu, nc, nu, prod_s, (nc + nu) / prod_s, nsubs, peak / MIB, base / MIB,
                 (peak - base) / MIB, bound / MIB), flush=True)
        eq(last_seq - first_seq, nc + nu + 1, "seqs committed between the two markers")
        c.expect_total = last_seq - first_seq + 1
        check(peak <= bound, "omsd RSS peaked at %.1f MiB with %d stalled WatchOrders subscribers, "
              "above the bound %.1f MiB (baseline %.1f + %d MiB)", peak / MIB, nsubs, bound / MIB,
              base / MIB, margin_mb)
        for i, w in enumerate(subs):
            check(not w.ended, "subscriber %d's stream ended while stalled: status %s, reset %s, "
                  "goaway %s", i, w.status(), w.reset, w.goaway)
        # now they read everything, one after the other
        want = sorted(c.made)
        P, C_ = opb.ORDER_STATUS_PENDING, opb.ORDER_STATUS_CONFIRMED
        for i, w in enumerate(subs):
            t0 = time.monotonic()
            evs, resumed = _read_all(c, w, first_seq, last_id, i)
            print("# subscriber %d then read %d events in %.1fs (%d resumes after "
                  "RESOURCE_EXHAUSTED)" % (i, len(evs), time.monotonic() - t0, resumed), flush=True)
            oi.check_consecutive([e.seq for e in evs], first_seq, "subscriber %d" % i)
            got = sorted((e.order_id, e.version) for e in evs[1:-1])
            eq(len(got), len(want), "subscriber %d: events between the markers" % i)
            check(got == want, "subscriber %d: the events received are not the events produced", i)
            wrong = [e for e in evs if (e.version, e.status) not in ((1, P), (2, C_))]
            check(not wrong, "subscriber %d: unexpected event contents: %s", i, wrong[:2])
            subs[i] = None
            del evs
    finally:
        for w in subs:
            if w is not None:
                w.close()



def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=1,
                   help="run the slow-subscriber case N times per transport, each on a fresh omsd "
                        "(a stall hunt: tests/integration/loop_watch_slow.sh)")
    args = p.parse_args()
    if oi.is_sanitized(args.omsd):
        # ASan keeps freed memory in a quarantine (256 MiB by default): cap it so
        # that RSS still tells a bounded server from a growing one
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                      ":quarantine_size_mb=32").lstrip(":")
    with h.Env("orders_watch", args) as env:
        scale = oi.load_scale(args)
        print("# load scale %.2f" % scale, flush=True)
        for tr in env.transports:
            for k in range(args.repeat):
                c = Ctx()
                c.env, c.tr, c.S, c.scale, c.run = env, tr, env.stubs, scale, k
                name = tr if args.repeat == 1 else "%s.%d" % (tr, k + 1)
                if not env.suite.run("%s.setup" % name, setup, c):
                    continue
                env.suite.run("%s.slow_subscriber" % name, slow_subscriber, c)
                c.api.close()
                env.suite.stop_server(c.server)


if __name__ == "__main__":
    main()
