#!/usr/bin/python3
"""Store faults: the database's file system fills up, then the database is
locked by another process, mid-run, under omsd (SQLite on a small tmpfs that the test mounts and
remounts; needs root: without it the runner exits 77, which ctest reports as
skipped).

- Disk full: CreateOrder answers RESOURCE_EXHAUSTED (or UNAVAILABLE) with a
  message that says so, never INTERNAL; nothing acked is lost; the server
  stays up and reads go on; once space is freed, writes resume by themselves,
  and each refused call, retried with its idempotency key, makes its order
  exactly once.
- Locked: another process holds the database's write lock (Linux does not
  let a file system be remounted read-only while omsd has its files open):
  CreateOrder answers UNAVAILABLE after the store's busy timeout, and writes
  resume once the lock is gone.
- /readyz (--metrics-listen) answers 503 while the disk is full, 200 once
  writes resumed.
"""

import http.client
import os
import re
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402
from orders_it import T  # noqa: E402

SKIP = 77


def sh(*argv):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).returncode == 0


class Faults:
    def __init__(self, env):
        self.env = env
        self.fs = os.path.join(env.workdir, "fs")
        os.makedirs(self.fs, exist_ok=True)
        self.mounted = False

    def mount(self, size):
        self.mounted = sh("mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", self.fs)
        return self.mounted

    def remount(self, opts):
        check(sh("mount", "-o", "remount," + opts, self.fs), "remount %s failed", opts)

    def umount(self):
        if self.mounted:
            sh("umount", "-l", self.fs)
            self.mounted = False


def _create(c, a, cid, sku, key):
    try:
        return a.create_order(cid, [(sku, 1)], key=key), None
    except c.grpc.RpcError as e:
        return None, e


def _write_fault_case(env, f, server, a, c, fault, codes, needle):
    """Writes until the fault shows, checks the answers, clears the fault and
    checks that writes resume and refused keys create their orders once."""
    cu = a.new_customer()
    sku = a.new_product(100, 1000000)
    acked, refused = {}, []
    big = "x" * 200
    for i in range(5000):
        if fault == "full":  # each commit adds WAL pages: a product upsert with a long name too
            try:
                a.inv.UpsertProduct(a.ipb.UpsertProductRequest(
                    sku="FILL-%d" % i, name=big, unit_price_cents=1), timeout=T)
            except c.grpc.RpcError as e:
                check(e.code() in codes, "UpsertProduct on a %s disk: %s %r", fault, e.code(),
                      e.details())
        key = "k-%s-%d" % (fault, i)
        o, err = _create(c, a, cu.id, sku, key)
        if o:
            acked[key] = o
            continue
        check(err.code() in codes, "CreateOrder on a %s disk: %s %r (want %s)", fault,
              err.code(), err.details(), "|".join(x.name for x in codes))
        check(needle in (err.details() or "").lower(), "the %s error does not say %r: %r", fault,
              needle, err.details())
        refused.append(key)
        if len(refused) >= 5:
            break
    check(refused, "%s: 5000 orders and no fault seen", fault)
    print("# %s: %d orders acked, then %s" % (fault, len(acked), refused[0]), flush=True)
    check(server.alive(), "omsd died on a %s disk" % fault)
    # reads go on, and every acked order is there
    for key, o in list(acked.items())[-20:]:
        eq(a.get_order(o.id), o, "acked order %s on a %s disk" % (o.id, fault))
    return cu, sku, acked, refused


def _resumes(c, a, cu, sku, acked, refused, what):
    deadline = time.monotonic() + 15
    o = err = None
    while time.monotonic() < deadline:
        o, err = _create(c, a, cu.id, sku, "probe-%s" % what)
        if o:
            break
        time.sleep(0.2)
    check(o is not None, "%s: writes did not resume within 15 s: %s", what,
          err and h.rpc_error_str(err))
    for key in refused:
        o1, e1 = _create(c, a, cu.id, sku, key)
        check(o1 is not None, "%s: retry of refused key %s: %s", what, key,
              e1 and h.rpc_error_str(e1))
        o2, _ = _create(c, a, cu.id, sku, key)
        eq(o2.id, o1.id, "%s: second retry of %s" % (what, key))
    ids = [o.id for o in a.list_orders(customer_id=cu.id)]
    eq(len(ids), len(set(ids)), "%s: duplicate orders" % what)
    for key, o in acked.items():
        check(o.id in ids, "%s: acked order %s (key %s) lost", what, o.id, key)
    eq(len(ids), len(acked) + len(refused) + 1, "%s: orders of the customer" % what)


def _admin_port(server):
    m = re.search(r"admin: /metrics, /healthz, /readyz on port (\d+)", server.log_text())
    check(m is not None, "no admin line in the log")
    return int(m.group(1))


def _readyz(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=T)
    try:
        c.request("GET", "/readyz")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def disk_full(env, f):
    check(f.mount("1m"), "mount")
    server = oi.start_server(env, "omsd-full", h2c=True,
                             extra=("--store", "sqlite:" + os.path.join(f.fs, "oms.db"),
                                    "--metrics-listen", "127.0.0.1:0"))
    admin = _admin_port(server)
    a = oi.Api(env.stubs, server.channel())
    c = type("C", (), {"grpc": env.stubs.grpc})
    SC = env.stubs.grpc.StatusCode
    try:
        eq(_readyz(admin)[0], 200, "/readyz before the fault")
        cu, sku, acked, refused = _write_fault_case(
            env, f, server, a, c, "full", (SC.RESOURCE_EXHAUSTED, SC.UNAVAILABLE), "full")
        st, body = _readyz(admin)
        eq(st, 503, "/readyz with the disk full (%r)" % body)
        f.remount("size=64m")
        _resumes(c, a, cu, sku, acked, refused, "after freeing space")
        eq(_readyz(admin)[0], 200, "/readyz once writes resumed")

        # Another process takes the database's write lock and keeps it (as a
        # backup tool may). Linux refuses to remount a file system read-only
        # while omsd holds its files open for writing (EBUSY, also for a bind
        # mount), so a lock is how this test makes the database unwritable.
        db = sqlite3.connect(os.path.join(f.fs, "oms.db"), timeout=30, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        o, err = _create(c, a, cu.id, sku, "k-locked")
        dt = time.monotonic() - t0
        check(o is None, "CreateOrder succeeded while another process held the write lock")
        check(err.code() == SC.UNAVAILABLE, "CreateOrder on a locked database: %s %r",
              err.code(), err.details())
        check("locked" in (err.details() or "").lower(), "the error does not say locked: %r",
              err.details())
        print("# locked: UNAVAILABLE after %.1f s (the store's busy timeout)" % dt, flush=True)
        check(server.alive(), "omsd died on a locked database")
        db.execute("ROLLBACK")
        db.close()
        _resumes(c, a, cu, sku, acked,
                 refused + ["k-locked", "probe-after freeing space"], "after the lock")
    finally:
        a.close()
        if f.mounted:
            sh("mount", "-o", "remount,rw", f.fs)
        env.suite.stop_server(server)


def main():
    args = h.common_args(__doc__.split("\n")[0]).parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root to mount a tmpfs")
        sys.exit(SKIP)
    with h.Env("store_faults", args) as env:
        f = Faults(env)
        probe = os.path.join(env.workdir, "probe")
        os.makedirs(probe, exist_ok=True)
        if not sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe):
            print("SKIP: cannot mount a tmpfs here")
            sys.exit(SKIP)
        sh("umount", probe)
        try:
            env.suite.run("disk_full_then_locked", disk_full, env, f)
        finally:
            f.umount()


if __name__ == "__main__":
    main()
