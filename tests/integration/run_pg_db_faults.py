#!/usr/bin/python3
"""omsd on a PostgreSQL database that refuses writes or connections.

- read_only: `ALTER SYSTEM SET default_transaction_read_only = on` and a
  reload while omsd serves: CreateOrder and AdjustStock fail UNAVAILABLE
  (SQLSTATE 25006), never INTERNAL; GetOrder, GetProduct and ListOrders still
  answer; after `ALTER SYSTEM RESET` and a reload writes succeed again by
  themselves; every refused key then gives one order; orders, stock and the
  event table agree (events 1..N gap-free, one per order).
- conn_limit_at_start: a role with CONNECTION LIMIT 1 whose slot another
  session holds: omsd exits non-zero (not a signal) before listening, naming
  the server and "too many connections".
- conn_limit_reconnect: omsd serving as that role; other sessions take every
  slot (CONNECTION LIMIT = their number) and omsd's own backends are
  terminated: its reconnects are refused (53300, in its log), calls fail
  UNAVAILABLE and omsd stays up; once the limit is lifted it serves again by
  itself and nothing acked is lost.
- disk_full (run alone with --disk-full; needs root to mount a tmpfs, else
  exits 77, which ctest reports as skipped): the database's tables live in a
  tablespace on a 1 MiB tmpfs (`ALTER DATABASE ... SET default_tablespace`
  before omsd creates them); CreateOrder until the file system is full: the
  refused calls get RESOURCE_EXHAUSTED (SQLSTATE 53100), reads still answer,
  omsd stays up; the tmpfs grown (remount size=64m), writes succeed again by
  themselves; every refused key then gives one order; orders, stock and
  events agree.
"""

import os
import pwd
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
import run_store_faults as sf  # noqa: E402  (Faults: a tmpfs mounted for the test)
from omsd import check, eq  # noqa: E402

SKIP = 77
BOUND_S = 20  # how long a fault or its end may take to show (reconnect backoff <= 2 s)


def psql(env, sql, db="oms", user="oms"):
    """Runs one SQL statement as `user` on `db`; returns its output (-tA)."""
    r = subprocess.run([os.path.join(env.pg.bindir, "psql"), "-X", "-h", "127.0.0.1",
                        "-p", str(env.pg.port), "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1",
                        "-tAc", sql], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    check(r.returncode == 0, "psql %r: %s", sql, r.stdout)
    return r.stdout.strip()


class Holder:
    """A psql session that holds one connection until closed."""

    def __init__(self, env, db, user):
        self.p = subprocess.Popen(
            [os.path.join(env.pg.bindir, "psql"), "-X", "-h", "127.0.0.1", "-p",
             str(env.pg.port), "-U", user, "-d", db, "-tA"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PGAPPNAME="holder"))
        self.p.stdin.write("SELECT 'held';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()  # the answer: the connection is there
        check(line == "held\n", "holder session: %r", line)

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(30)


def check_consistent(env, api, db, cust, sku, keys_to_ids):
    """Orders, stock and events of database db agree with the acked orders."""
    ids = set(keys_to_ids.values())
    eq(len(ids), len(keys_to_ids), "one order per key")
    listed = {o.id for o in api.list_orders(customer_id=cust.id, timeout=60)}
    eq(listed, ids, "orders stored = orders acked")
    eq(api.product(sku).reserved, len(ids), "stock reserved = orders")
    n, lo, hi = psql(env, "SELECT count(*), min(seq), max(seq) FROM events", db=db).split("|")
    eq((int(n), int(lo), int(hi)), (len(ids), 1, len(ids)), "events: one per order, 1..N gap-free")


def create_until(api, cust, sku, keys, pred, what):
    """CreateOrder with fresh keys until pred(code or None) holds (bounded);
    returns {key: id} of the acked ones and {key: code} of the refused."""
    acked, refused = {}, {}
    deadline = time.monotonic() + BOUND_S
    while True:
        key = "%s-%d" % (keys, len(acked) + len(refused))
        try:
            acked[key] = api.create_order(cust.id, [(sku, 1)], key=key, timeout=10).id
            code = None
        except api.grpc.RpcError as e:
            refused[key] = e
            code = e.code()
        if pred(code):
            return acked, refused
        check(time.monotonic() < deadline, "%s: not within %ds (last %s)", what, BOUND_S, code)


def read_only(env):
    SC = env.stubs.grpc.StatusCode
    url = env.pg.new_db("ro")
    server = oi.start_server(env, "omsd-ro", h2c=True, extra=["--store", url, "--workers", "1"])
    api = oi.api_for(env, server)
    try:
        cust = api.new_customer()
        sku = api.new_product(100, 100000)
        acked, _ = create_until(api, cust, sku, "before", lambda c: c is None, "first order")
        psql(env, "ALTER SYSTEM SET default_transaction_read_only = on")
        psql(env, "SELECT pg_reload_conf()")
        more, refused = create_until(api, cust, sku, "ro", lambda c: c is not None,
                                     "a refused write after the reload")
        acked.update(more)
        for i in range(5):  # from now on every write is refused, the same way
            key = "ro-more-%d" % i
            e = oi.expect_error(api.grpc, lambda: api.create_order(cust.id, [(sku, 1)], key=key),
                                SC.UNAVAILABLE, what="CreateOrder, read-only")
            refused[key] = e
        first = next(iter(refused.values()))
        eq(first.code(), SC.UNAVAILABLE, "the first refused write: %s" % first.details())
        print("# read-only: %s %r" % (first.code().name, first.details()), flush=True)
        # the client hears what kind of failure it is, not PostgreSQL's text
        for e in refused.values():
            check("read-only" in e.details() and "transaction" not in e.details() and
                  "ERROR" not in e.details(), "message: %r" % e.details())
        oi.expect_error(api.grpc, lambda: api.adjust(sku, 5), SC.UNAVAILABLE,
                        what="AdjustStock, read-only")
        # reads go on
        some = next(iter(acked.values()))
        eq(api.get_order(some).id, some, "GetOrder while read-only")
        eq(api.product(sku).reserved, len(acked), "GetProduct while read-only")
        eq(len(api.list_orders(customer_id=cust.id)), len(acked), "ListOrders while read-only")
        check(server.alive(), "omsd exited while the database was read-only")

        psql(env, "ALTER SYSTEM RESET default_transaction_read_only")
        psql(env, "SELECT pg_reload_conf()")
        after, _ = create_until(api, cust, sku, "after", lambda c: c is None,
                                "a write after read-only was lifted")
        acked.update(after)
        for key in refused:  # refused before COMMIT: each key now makes its order
            acked[key] = api.create_order(cust.id, [(sku, 1)], key=key).id
        check_consistent(env, api, "ro", cust, sku, acked)
        print("# %d orders, %d writes refused while read-only" % (len(acked), len(refused)),
              flush=True)
    finally:
        psql(env, "ALTER SYSTEM RESET default_transaction_read_only")
        psql(env, "SELECT pg_reload_conf()")
        api.close()
    env.suite.stop_server(server)


def lim_db(env):
    """The role `lim` (not a superuser: CONNECTION LIMIT binds it) owning
    database `lim`; returns its URL."""
    if psql(env, "SELECT 1 FROM pg_roles WHERE rolname = 'lim'") != "1":
        psql(env, "CREATE ROLE lim LOGIN")
        psql(env, "CREATE DATABASE lim OWNER lim")
    psql(env, "ALTER ROLE lim CONNECTION LIMIT -1")
    return "postgresql://lim@127.0.0.1:%d/lim" % env.pg.port


def conn_limit_at_start(env):
    url = lim_db(env)
    holder = Holder(env, "lim", "lim")
    try:
        psql(env, "ALTER ROLE lim CONNECTION LIMIT 1")
        r = subprocess.run([env.args.omsd, "--listen", "127.0.0.1:0", "--h2c", "--store", url],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           cwd=env.workdir)
    finally:
        holder.close()
        psql(env, "ALTER ROLE lim CONNECTION LIMIT -1")
    out = r.stdout.decode(errors="replace")
    check(r.returncode > 0, "omsd must exit non-zero (not by a signal), rc=%d: %s",
          r.returncode, out[-800:])
    check("listening on" not in out, "it must not listen: %s", out[-800:])
    check("too many connections" in out, "the message says why: %s", out[-800:])
    check("127.0.0.1:%d" % env.pg.port in out, "the message names the server: %s", out[-800:])
    print("# %s" % [l for l in out.splitlines() if "too many" in l][:1], flush=True)


def conn_limit_reconnect(env):
    SC = env.stubs.grpc.StatusCode
    url = lim_db(env)
    server = oi.start_server(env, "omsd-lim", h2c=True, extra=["--store", url, "--workers", "1"])
    api = oi.api_for(env, server)
    holders = []
    try:
        cust = api.new_customer()
        sku = api.new_product(100, 100000)
        acked, _ = create_until(api, cust, sku, "before", lambda c: c is None, "first order")
        holders = [Holder(env, "lim", "lim") for _ in range(2)]
        psql(env, "ALTER ROLE lim CONNECTION LIMIT 2")  # the holders have every slot
        n = psql(env, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE usename = 'lim' AND application_name = 'omsd'")
        check(int(n) >= 2, "omsd's backends terminated: %s", n)
        # calls fail until the log shows a refused reconnect, and after it
        more, refused = create_until(
            api, cust, sku, "full",
            lambda c: c is not None and "too many connections" in server.log_text(),
            "a reconnect refused for the connection limit")
        acked.update(more)
        codes = {e.code() for e in refused.values()}
        eq(codes, {SC.UNAVAILABLE}, "CreateOrder codes while the slots are taken")
        oi.expect_error(api.grpc, lambda: api.get_order(next(iter(acked.values()))),
                        SC.UNAVAILABLE, what="GetOrder while the slots are taken")
        check(server.alive(), "omsd exited while the connection limit was reached")
        print("# refused: %r" % next(iter(refused.values())).details(), flush=True)

        psql(env, "ALTER ROLE lim CONNECTION LIMIT -1")
        after, again = create_until(api, cust, sku, "after", lambda c: c is None,
                                    "a write after the limit was lifted")
        acked.update(after)
        refused.update(again)
        for key in refused:  # never committed, or committed: one order per key
            acked[key] = api.create_order(cust.id, [(sku, 1)], key=key).id
        check_consistent(env, api, "lim", cust, sku, acked)
    finally:
        for x in holders:
            x.close()
        psql(env, "ALTER ROLE lim CONNECTION LIMIT -1")
        api.close()
    env.suite.stop_server(server)


def disk_full(env, fs):
    SC = env.stubs.grpc.StatusCode
    check(fs.mount("1m"), "mount a 1 MiB tmpfs")
    os.chmod(env.workdir, 0o755)  # PostgreSQL (the `postgres` user as root) reaches fs/ts
    ts = os.path.join(fs.fs, "ts")
    os.mkdir(ts)
    pw = pwd.getpwnam("postgres")
    os.chown(ts, pw.pw_uid, pw.pw_gid)
    psql(env, "CREATE TABLESPACE small LOCATION '%s'" % ts)
    url = env.pg.new_db("dfull")
    psql(env, "ALTER DATABASE dfull SET default_tablespace = small")
    server = oi.start_server(env, "omsd-full", h2c=True, extra=["--store", url, "--workers", "1"])
    api = oi.api_for(env, server)
    try:
        cust = api.new_customer()
        sku = api.new_product(100, 10_000_000)
        n = psql(env, "SELECT count(*) FROM pg_class c JOIN pg_tablespace t "
                      "ON c.reltablespace = t.oid WHERE t.spcname = 'small'", db="dfull")
        check(int(n) > 0, "omsd's tables in the small tablespace: %s", n)
        # fill it (about 1,200 one-line orders fill the 1 MiB)
        acked, refused = {}, {}
        deadline = time.monotonic() + 60
        while not refused:
            check(time.monotonic() < deadline, "the tablespace never filled: %d orders",
                  len(acked))
            key = "fill-%d" % len(acked)
            try:
                acked[key] = api.create_order(cust.id, [(sku, 1)], key=key, timeout=10).id
            except api.grpc.RpcError as e:
                refused[key] = e
        e = next(iter(refused.values()))
        eq(e.code(), SC.RESOURCE_EXHAUSTED, "the first refused write: %s" % e.details())
        check("disk full" in e.details() and "/" not in e.details().split(":", 1)[-1],
              "message without PostgreSQL's text or a path: %r" % e.details())
        print("# full after %d orders: %s %r" % (len(acked), e.code().name, e.details()),
              flush=True)
        for i in range(3):
            key = "full-%d" % i
            refused[key] = oi.expect_error(
                api.grpc, lambda: api.create_order(cust.id, [(sku, 1)], key=key),
                SC.RESOURCE_EXHAUSTED, what="CreateOrder, disk full")
        some = next(iter(acked.values()))
        eq(api.get_order(some).id, some, "GetOrder while full")
        eq(api.product(sku).reserved, len(acked), "GetProduct while full")
        check(server.alive(), "omsd exited while the disk was full")
        fs.remount("size=64m")
        after, _ = create_until(api, cust, sku, "after", lambda c: c is None,
                                "a write after the disk was grown")
        acked.update(after)
        for key in refused:
            acked[key] = api.create_order(cust.id, [(sku, 1)], key=key).id
        check_consistent(env, api, "dfull", cust, sku, acked)
    finally:
        api.close()
    env.suite.stop_server(server)
    psql(env, "DROP DATABASE dfull")
    psql(env, "DROP TABLESPACE small")


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--disk-full", action="store_true",
                   help="only the disk_full case (root: mounts a tmpfs; else exit 77)")
    args = p.parse_args()
    if args.disk_full and os.geteuid() != 0:
        print("SKIP: needs root to mount a tmpfs")
        sys.exit(SKIP)
    if not args.disk_full:
        oi.run_on_pg("pg_db_faults", args, [("pg.read_only", read_only),
                                            ("pg.conn_limit_at_start", conn_limit_at_start),
                                            ("pg.conn_limit_reconnect", conn_limit_reconnect)])
        return  # (Env exits the process with the suite's status)
    with h.Env("pg_db_faults", args) as env:
        fs = sf.Faults(env)
        if not fs.mount("1m"):
            print("SKIP: cannot mount a tmpfs here")
            sys.exit(SKIP)
        fs.umount()
        oi.use_pg(env)
        try:
            env.suite.run("pg.disk_full", disk_full, env, fs)
        finally:
            env.pg_stop()  # before the tablespace's file system goes
            fs.umount()


if __name__ == "__main__":
    main()
