#!/usr/bin/python3
"""omsctl, the command-line client, against a real omsd (TLS and h2c).

Per transport, one omsd (harness: omsd.py) and omsctl run as a subprocess for
every command, in human and --json mode:
  health            SERVING, --json, unknown service (exit 3)
  customers         create/get/list/suspend/activate; NOT_FOUND (3), bad email (4)
  products_stock    upsert/get/list, stock SKU DELTA, stock listing, negative stock (4)
  orders            create (--key idempotency), get, list with filters, status,
                    --expected-version mismatch (ABORTED, 4), bad transition (4),
                    cancel --reason, unknown order (3), insufficient stock (4); the
                    server's error details under the error (human) or in it (--json)
  import            a CSV with good rows, a multi-line row, malformed lines (reported
                    with their line numbers, never sent) and rows the server refuses;
                    a big CSV (several times the send buffer: flow control)
  track             bidi: ids on the command line, +ID / -ID / sub / unsub on stdin
  env_defaults      OMS_TARGET / OMS_CA instead of flags, ./certs/ca.pem as the default
                    CA, ../certs/ca.pem next to the binary, --server-name, a wrong CA
                    (exit 2, with advice, no log line), an unreadable --ca (exit 1)
                    (TLS only)
  json_errors       --json: errors as {"code","message","details"}
h2c only:
  watch_resume      watch --since 1 sees every event; omsd is stopped (SIGTERM), later
                    killed (SIGKILL), and each time restarted on the same port and
                    store; watch reconnects (note on stderr) and the
                    seqs it prints are exactly 1..N: nothing lost, nothing repeated;
                    SIGINT exits 0
  watch_filters     watch --order / --customer with --timeout (a duration: exit 0)
  unimplemented     omsd --services customers: orders commands exit 5 (UNIMPLEMENTED)
  watch_waits_for_server  watch started while the server is down waits (one note) and
                    streams once it is up
Without a server:
  help              --help and COMMAND --help for every command, exit codes documented
  usage.*           usage errors exit 1
  unreachable       a closed port: exit 2, "omsctl: UNAVAILABLE: ..." (--json: a JSON error)
  usage.unknown_option_suggests  "unknown option --traget; did you mean --target?" + one line
  version           --version

Usage:
  run_omsctl.py --omsctl build/omsctl --omsd build/omsd [--transport tls,h2c]
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

COMMANDS = ["customers", "products", "stock", "orders", "create", "cancel", "status",
            "import", "watch", "track", "health"]
CTL_TIMEOUT = float(os.environ.get("OMS_IT_CTL_TIMEOUT", "60"))
RUN = uuid.uuid4().hex[:6]


class Ctl:
    """Result of one omsctl run."""

    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err

    def json(self):
        try:
            return [json.loads(l) for l in self.out.splitlines() if l.strip()]
        except ValueError as e:
            raise h.Failure("bad JSON (%s):\n%s" % (e, self.describe()))

    def one(self):
        objs = self.json()
        check(len(objs) == 1, "want one JSON object:\n%s", self.describe())
        return objs[0]

    def describe(self):
        return "$ %s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.argv), self.rc, self.out[-3000:], self.err[-3000:])


class Env2:
    """The runner's view: omsctl path, a clean environment, the work dir."""

    def __init__(self, env, omsctl):
        self.env = env
        self.omsctl = omsctl
        self.cwd = os.path.join(env.workdir, "ctl")  # no certs/ca.pem here
        os.makedirs(self.cwd, exist_ok=True)
        self.base_env = {k: v for k, v in os.environ.items()
                         if k not in ("OMS_TARGET", "OMS_CA")}

    def run(self, args, stdin=None, extra_env=None, timeout=CTL_TIMEOUT, cwd=None):
        argv = [self.omsctl] + list(args)
        e = dict(self.base_env)
        e.update(extra_env or {})
        p = subprocess.run(h.wrap_argv(argv), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=cwd or self.cwd, env=e, timeout=timeout,
                           **h.popen_kwargs())
        r = Ctl(argv, p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"))
        check(not any(m in r.err for m in h.SANITIZER_MARKERS), "sanitizer report:\n%s",
              r.describe())
        return r

    def popen(self, args, stdin=subprocess.DEVNULL):
        argv = [self.omsctl] + list(args)
        return subprocess.Popen(h.wrap_argv(argv), stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.cwd, env=self.base_env,
                                **h.popen_kwargs())


def num(obj, key):
    """An integer field of a message printed in protobuf's JSON mapping:
    int64 values come as strings, and a field at its default (0) is left
    out."""
    return int(obj.get(key, 0))


def flags(server):
    if server.h2c:
        return ["--target", "127.0.0.1:%d" % server.port, "--h2c"]
    # the certificate names localhost (and 127.0.0.1)
    return ["--target", "localhost:%d" % server.port, "--ca", server.ca_path()]


def ok(r):
    check(r.rc == 0, "omsctl failed:\n%s", r.describe())
    return r


def fails(r, rc, code):
    check(r.rc == rc, "want exit %d (%s):\n%s", rc, code, r.describe())
    check(("omsctl: %s:" % code) in r.err, "stderr lacks 'omsctl: %s:':\n%s", code, r.describe())
    return r


def uniq(prefix):
    uniq.n += 1
    return "%s-%s-%d" % (prefix, RUN, uniq.n)


uniq.n = 0


# ------------------------------------------------------------------ fixtures


class World:
    """A customer and two products with stock, made through omsctl."""

    def __init__(self, c, server):
        f = flags(server) + ["--json"]
        self.f = f
        self.cust = ok(c.run(f + ["customers", "create", "Test Customer",
                                  uniq("cust") + "@example.com"])).one()["id"]
        self.sku_a = uniq("SKU-A")
        self.sku_b = uniq("SKU-B")
        ok(c.run(f + ["products", "upsert", self.sku_a, "Widget A", "1234"]))
        ok(c.run(f + ["products", "upsert", self.sku_b, "Widget B", "250"]))
        ok(c.run(f + ["stock", self.sku_a, "100"]))
        ok(c.run(f + ["stock", self.sku_b, "100"]))


# ------------------------------------------------------------------ no server


def case_help(c):
    r = ok(c.run(["--help"]))
    for cmd in COMMANDS:
        check(cmd in r.out, "--help does not mention %s", cmd)
    for flag in ["--target", "--ca", "--h2c", "--server-name", "--timeout", "--json"]:
        check(flag in r.out, "--help does not document %s", flag)
    for code in ["NOT_FOUND", "UNAVAILABLE", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT",
                 "FAILED_PRECONDITION", "ALREADY_EXISTS", "ABORTED", "OUT_OF_RANGE"]:
        check(code in r.out, "--help does not document the exit code of %s", code)
    for n in range(6):
        check(("\n  %d  " % n) in r.out, "--help does not document exit code %d", n)
    for cmd in COMMANDS:
        r = ok(c.run([cmd, "--help"]))
        check("Usage:" in r.out and ("omsctl [flags] " + cmd) in r.out,
              "%s --help:\n%s", cmd, r.describe())
        r2 = ok(c.run(["help", cmd]))
        eq(r2.out, r.out, "help %s vs %s --help" % (cmd, cmd))
    r = ok(c.run(["import", "--help"]))
    check("row_id,customer_id,sku,quantity" in r.out, "import --help lacks the columns")


def case_usage(c, args, needle):
    r = c.run(["--h2c", "--target", "127.0.0.1:1"] + args)
    eq(r.rc, 1, "exit status of omsctl %s (%s)" % (" ".join(args), r.describe()))
    check(needle in r.err, "stderr lacks %r:\n%s", needle, r.describe())
    eq(r.out, "", "stdout")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def case_unknown_option(c):
    """An unknown flag is named with the nearest known one, then one line
    pointing at --help: not the whole usage."""
    for args, want in ((["--traget", "x", "health"], "--traget; did you mean --target?"),
                       (["orders", "--custmer", "c-1"], "--custmer; did you mean --customer?"),
                       (["create", "c-1", "A:1", "--kye", "k"], "--kye; did you mean --key?"),
                       (["watch", "--sinc", "1"], "--sinc; did you mean --since?"),
                       (["--jsno", "health"], "--jsno; did you mean --json?")):
        r = c.run(args)
        eq(r.rc, 1, "exit status (%s)" % r.describe())
        lines = r.err.strip().splitlines()
        eq(len(lines), 2, "stderr lines (%s)" % r.describe())
        eq(lines[0], "omsctl: unknown option " + want, "first line")
        check(lines[1].startswith("Try 'omsctl ") and "--help" in lines[1], "%s", r.describe())
        eq(r.out, "", "stdout")


def case_version(c):
    import re
    r = ok(c.run(["--version"]))
    check(re.fullmatch(r"omsctl \d+\.\d+\.\d+ \(commit (unknown|[0-9a-f]{7,40}(-dirty)?)\)\n",
                       r.out), "--version printed %r", r.out)


def case_unreachable(c):
    port = free_port()  # nobody listens there now
    for args in (["customers", "get", "c-1"], ["health"], ["--json", "orders"]):
        r = c.run(["--h2c", "--target", "127.0.0.1:%d" % port] + args, timeout=30)
        if "--json" in args:
            eq(r.rc, 2, "exit status (%s)" % r.describe())
        else:
            fails(r, 2, "UNAVAILABLE")
        eq(r.out, "", "stdout of %s" % args)
    # --json: the error is one JSON object too (on stderr, like the text)
    r = c.run(["--h2c", "--target", "127.0.0.1:%d" % port, "--json", "health"], timeout=30)
    eq(r.rc, 2, "exit status (%s)" % r.describe())
    j = json.loads(r.err)
    eq(sorted(j), ["code", "details", "message"], "keys of the JSON error")
    eq((j["code"], j["details"]), ("UNAVAILABLE", []), "JSON error")
    check("connect" in j["message"], "message: %r", j["message"])
    # TLS too (the default transport)
    r = c.run(["--target", "127.0.0.1:%d" % port, "health"], timeout=30)
    fails(r, 2, "UNAVAILABLE")


# ------------------------------------------------------------------ per server


def case_health(c, server):
    r = ok(c.run(flags(server) + ["health"]))
    eq(r.out.strip(), "SERVING", "health output")
    j = ok(c.run(flags(server) + ["--json", "health"])).one()
    eq(j, {"service": "", "status": "SERVING"}, "health --json")
    fails(c.run(flags(server) + ["health", "no.such.Service"]), 3, "NOT_FOUND")


def case_customers(c, server):
    f = flags(server)
    email = uniq("ann") + "@example.com"
    j = ok(c.run(f + ["--json", "customers", "create", "Ann \"Quote\" Example", email])).one()
    cid = j["id"]
    eq(j["name"], "Ann \"Quote\" Example", "name (JSON escaping)")
    eq(j["email"], email, "email")
    eq(j["status"], "CUSTOMER_STATUS_ACTIVE", "status (enums by their full names)")
    check(num(j, "createdAt") > 0, "createdAt %r (int64 as a string)", j.get("createdAt"))
    check(isinstance(j["createdAt"], str), "int64 as a JSON string: %r", j["createdAt"])
    r = ok(c.run(f + ["customers", "get", cid]))
    for s in (cid, email, "ACTIVE", "Ann \"Quote\" Example"):
        check(s in r.out, "customers get lacks %r:\n%s", s, r.describe())
    rows = ok(c.run(f + ["--json", "customers", "list"])).json()
    check(any(x["id"] == cid for x in rows), "customers list --json lacks %s", cid)
    r = ok(c.run(f + ["customers"]))
    head = r.out.splitlines()[0].split()
    eq(head, ["ID", "NAME", "EMAIL", "STATUS"], "customers header")
    check(any(l.split()[0] == cid and l.rstrip().endswith("ACTIVE") for l in r.out.splitlines()),
          "customers list lacks %s:\n%s", cid, r.out)
    eq(ok(c.run(f + ["--json", "customers", "suspend", cid])).one()["status"],
       "CUSTOMER_STATUS_SUSPENDED",
       "after suspend")
    r = ok(c.run(f + ["customers", "activate", cid]))
    check("ACTIVE" in r.out, "activate:\n%s", r.describe())
    fails(c.run(f + ["customers", "get", "c-does-not-exist"]), 3, "NOT_FOUND")
    fails(c.run(f + ["customers", "create", "Bad Email", "not-an-email"]), 4,
          "INVALID_ARGUMENT")
    fails(c.run(f + ["customers", "create", "Again", email]), 4, "ALREADY_EXISTS")


def case_products_stock(c, server):
    f = flags(server)
    sku = uniq("SKU-P")
    j = ok(c.run(f + ["--json", "products", "upsert", sku, "Gear, large", "1999"])).one()
    eq((j["sku"], j["name"], num(j, "unitPriceCents"), num(j, "onHand")),
       (sku, "Gear, large", 1999, 0), "upsert")
    check("onHand" not in j, "a field at its default is left out: %r", j)
    r = ok(c.run(f + ["products", "get", sku]))
    check("19.99" in r.out and "Gear, large" in r.out, "products get:\n%s", r.describe())
    r = ok(c.run(f + ["products"]))
    eq(r.out.splitlines()[0].split(), ["SKU", "NAME", "PRICE", "AVAILABLE"], "products header")
    check(any(l.startswith(sku + " ") and "19.99" in l for l in r.out.splitlines()),
          "products list lacks %s:\n%s", sku, r.out)
    j = ok(c.run(f + ["--json", "stock", sku, "40"])).one()
    eq((num(j, "onHand"), num(j, "reserved"), num(j, "available")), (40, 0, 40),
       "after stock +40")
    r = ok(c.run(f + ["stock", sku, "-15"]))
    check("25" in r.out, "stock -15:\n%s", r.describe())
    r = ok(c.run(f + ["stock"]))
    eq(r.out.splitlines()[0].split(), ["SKU", "ON_HAND", "RESERVED", "AVAILABLE"],
       "stock header")
    row = [l.split() for l in r.out.splitlines() if l.startswith(sku + " ")]
    eq(row, [[sku, "25", "0", "25"]], "stock row")
    rows = ok(c.run(f + ["--json", "stock"])).json()
    mine = [x for x in rows if x["sku"] == sku]
    eq([(num(x, "onHand"), num(x, "reserved"), num(x, "available")) for x in mine],
       [(25, 0, 25)],
       "stock --json")
    fails(c.run(f + ["stock", sku, "-1000"]), 4, "FAILED_PRECONDITION")
    fails(c.run(f + ["products", "get", "NO-SUCH-SKU-" + RUN]), 3, "NOT_FOUND")
    r = c.run(f + ["products", "upsert", sku, "x", "12.5"])
    eq(r.rc, 1, "non-integer PRICE_CENTS is a usage error")


def case_orders(c, server):
    f = flags(server)
    w = World(c, server)
    key = uniq("key")
    o = ok(c.run(f + ["--json", "create", w.cust, "%s:2" % w.sku_a, "%s:3" % w.sku_b,
                      "--key", key])).one()
    oid = o["id"]
    eq((o["status"], num(o, "version"), num(o, "totalCents"), len(o["lines"])),
       ("ORDER_STATUS_PENDING", 1, 2 * 1234 + 3 * 250, 2), "created order")
    eq(ok(c.run(f + ["--json", "create", w.cust, "%s:2" % w.sku_a, "%s:3" % w.sku_b,
                     "--key", key])).one()["id"], oid, "idempotent retry")
    r = ok(c.run(f + ["orders", "get", oid]))
    for s in (oid, w.cust, "PENDING", "32.18", "24.68", "7.50", w.sku_a, w.sku_b):
        check(s in r.out, "orders get lacks %r:\n%s", s, r.describe())
    st = [x for x in ok(c.run(f + ["--json", "stock"])).json() if x["sku"] == w.sku_a]
    eq((num(st[0], "onHand"), num(st[0], "reserved"), num(st[0], "available")), (100, 2, 98),
       "stock after the order")

    # filters
    r = ok(c.run(f + ["create", w.cust, "%s:1" % w.sku_b]))  # human: "key: value" lines
    fields = dict(l.split(":", 1) for l in r.out.splitlines() if ":" in l and l[0] != " ")
    o2 = fields["id"].strip()
    eq((fields["status"].strip(), fields["total"].strip()), ("PENDING", "2.50"), "human create")
    mine = ok(c.run(f + ["--json", "orders", "--customer", w.cust])).json()
    eq([x["id"] for x in mine], [oid, o2], "orders --customer (oldest first)")
    mine = ok(c.run(f + ["--json", "orders", "list", "--customer", w.cust, "--status",
                         "PENDING", "--page-size", "1"])).json()
    eq([x["id"] for x in mine], [oid, o2], "orders list --status --page-size 1")
    t0 = num(o, "createdAt")
    mine = ok(c.run(f + ["--json", "orders", "--customer", w.cust, "--from", str(t0),
                         "--to", str(t0 + 1)])).json()
    check(oid in [x["id"] for x in mine], "orders --from/--to lacks %s", oid)
    r = ok(c.run(f + ["orders", "--customer", w.cust]))
    eq(r.out.splitlines()[0].split()[:3], ["ID", "CUSTOMER", "STATUS"], "orders header")
    check(any(l.startswith(oid + " ") and "32.18" in l for l in r.out.splitlines()),
          "orders list lacks %s:\n%s", oid, r.out)

    # the status machine
    j = ok(c.run(f + ["--json", "status", oid, "Confirmed", "--expected-version", "1"])).one()
    eq((j["status"], num(j, "version")), ("ORDER_STATUS_CONFIRMED", 2), "confirmed")
    r = fails(c.run(f + ["status", oid, "shipped", "--expected-version", "1"]), 4, "ABORTED")
    eq(r.err.splitlines(), [
        "omsctl: ABORTED: order %s is at version 2, not 1" % oid,
        "  reason VERSION_MISMATCH (oms.v1) order_id=%s version=2 expected_version=1" % oid],
       "ABORTED with its details (%s)" % r.describe())
    r = ok(c.run(f + ["status", oid, "SHIPPED", "--expected-version", "2"]))
    check("SHIPPED" in r.out, "status shipped:\n%s", r.describe())
    fails(c.run(f + ["cancel", oid]), 4, "FAILED_PRECONDITION")
    fails(c.run(f + ["status", oid, "confirmed"]), 4, "FAILED_PRECONDITION")
    eq(ok(c.run(f + ["--json", "status", oid, "delivered"])).one()["status"],
       "ORDER_STATUS_DELIVERED",
       "delivered")
    j = ok(c.run(f + ["--json", "cancel", o2, "--reason", "changed my mind",
                      "--expected-version", "1"])).one()
    eq((j["status"], j["cancelReason"]), ("ORDER_STATUS_CANCELLED", "changed my mind"),
       "cancelled")
    r = ok(c.run(f + ["orders", "get", o2]))
    check("CANCELLED" in r.out and "changed my mind" in r.out, "get cancelled:\n%s", r.out)
    mine = ok(c.run(f + ["--json", "orders", "--customer", w.cust, "--status",
                         "cancelled"])).json()
    eq([x["id"] for x in mine], [o2], "orders --status cancelled")

    # errors
    o3 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_b])).one()["id"]
    r = ok(c.run(f + ["cancel", o3, "--reason", "human cancel"]))
    check("CANCELLED" in r.out and "human cancel" in r.out, "human cancel:\n%s", r.describe())

    fails(c.run(f + ["orders", "get", "o-does-not-exist"]), 3, "NOT_FOUND")
    fails(c.run(f + ["cancel", "o-does-not-exist"]), 3, "NOT_FOUND")
    r = fails(c.run(f + ["create", w.cust, "%s:1000000" % w.sku_a]), 4, "FAILED_PRECONDITION")
    # the server's rich error details, indented under the error
    lines = r.err.splitlines()
    eq(len(lines), 3, "error + two detail lines (%s)" % r.describe())
    check(lines[1].startswith("  precondition STOCK %s: " % w.sku_a) and
          lines[1].endswith(" available, 1000000 requested"), "%s", r.describe())
    check(lines[2].startswith("  reason INSUFFICIENT_STOCK (oms.v1) sku=%s available=" % w.sku_a)
          and lines[2].endswith(" requested=1000000"), "%s", r.describe())
    r = c.run(f + ["--json", "create", w.cust, "%s:1000000" % w.sku_a])
    eq((r.rc, r.out), (4, ""), "--json insufficient stock (%s)" % r.describe())
    j = json.loads(r.err)
    eq(j["code"], "FAILED_PRECONDITION", "JSON code")
    eq([d["@type"] for d in j["details"]],
       ["type.googleapis.com/google.rpc.PreconditionFailure",
        "type.googleapis.com/google.rpc.ErrorInfo"], "JSON detail types")
    eq(j["details"][0]["violations"][0]["subject"], w.sku_a, "JSON violation subject")
    eq((j["details"][1]["reason"], j["details"][1]["metadata"]["requested"]),
       ("INSUFFICIENT_STOCK", "1000000"), "JSON ErrorInfo")
    r = fails(c.run(f + ["create", w.cust, "%s:0" % w.sku_a]), 4, "INVALID_ARGUMENT")
    eq(r.err.splitlines()[1:], ["  field lines[0].quantity: must be > 0"],
       "INVALID_ARGUMENT's field violation (%s)" % r.describe())
    fails(c.run(f + ["create", "c-does-not-exist", "%s:1" % w.sku_a]), 3, "NOT_FOUND")
    r = c.run(f + ["status", oid, "sideways"])
    eq(r.rc, 1, "unknown STATUS is a usage error (%s)" % r.describe())


def write_csv(c, name, text):
    path = os.path.join(c.cwd, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def case_import(c, server):
    f = flags(server)
    w = World(c, server)
    csv = ("row_id,customer_id,sku,quantity,idempotency_key\n"      # 1 header
           "r1,{c},{a},1\n"                                          # 2 two-line row
           "r1,{c},{b},2\n"                                          # 3
           "r2,{c},{a},many\n"                                       # 4 malformed
           "r3,c-nobody,{a},1\n"                                     # 5 server: NOT_FOUND
           "\n"                                                      # 6 blank
           "just garbage\n"                                          # 7 malformed
           "r4,{c},{b},1,{k}\n"                                      # 8 keyed
           "r5,{c},{a},0\n"                                          # 9 server: INVALID_ARGUMENT
           "r6,{c},{a},1\n"                                          # 10 bad row: line 11
           "r6,{c},{b}\n"                                            # 11 malformed
           "r7,{c},{b},1").format(c=w.cust, a=w.sku_a, b=w.sku_b, k=uniq("key"))  # 12, no EOL
    path = write_csv(c, "orders.csv", csv)
    r = c.run(f + ["--json", "import", path])
    eq(r.rc, 4, "import with failed rows exits 4 (%s)" % r.describe())
    objs = r.json()
    summary = objs[-1].get("summary")
    check(summary is not None, "no summary last:\n%s", r.describe())
    rows = {o["row_id"]: o for o in objs[:-1]}
    eq(sorted(rows), ["just garbage", "r1", "r2", "r3", "r4", "r5", "r6", "r7"],
       "one result per row")
    for rid in ("r1", "r4", "r7"):
        eq(rows[rid]["code"], "OK", "%s code (%s)" % (rid, rows[rid]))
        check(rows[rid]["order_id"], "%s has no order id", rid)
    eq(rows["r2"]["code"], "INVALID_ARGUMENT", "r2")
    check(rows["r2"].get("local") and rows["r2"]["line"] == 4 and "line 4" in
          rows["r2"]["message"], "r2 names line 4: %s", rows["r2"])
    check("line 7" in rows["just garbage"]["message"], "garbage line: %s", rows["just garbage"])
    check("line 11" in rows["r6"]["message"] and rows["r6"].get("local"),
          "r6 names line 11: %s", rows["r6"])
    eq(rows["r3"]["code"], "NOT_FOUND", "r3 (unknown customer)")
    eq(rows["r5"]["code"], "INVALID_ARGUMENT", "r5 (quantity 0)")
    check(not rows["r5"].get("local"), "r5 is the server's verdict: %s", rows["r5"])
    eq(summary, {"rows": 8, "received": 5, "created": 3, "failed": 5, "local_failed": 3,
                  "skipped": 0},
       "summary")
    o = ok(c.run(f + ["--json", "orders", "get", rows["r1"]["order_id"]])).one()
    eq(sorted((l["sku"], num(l, "quantity")) for l in o["lines"]),
       sorted([(w.sku_a, 1), (w.sku_b, 2)]),
       "the two-line row is one order")
    # r6 was never sent: its good first line made no order
    mine = ok(c.run(f + ["--json", "orders", "--customer", w.cust])).json()
    eq(len(mine), 3, "orders made by the import")

    # human mode, rows all good: exit 0, a line per row, the summary
    good = "r1,{c},{a},1\nr2,{c},{b},1\n".format(c=w.cust, a=w.sku_a, b=w.sku_b)
    r = ok(c.run(f + ["import", write_csv(c, "good.csv", good)]))
    lines = r.out.splitlines()
    eq(len(lines), 3, "human import lines (%s)" % r.describe())
    check(lines[0].split()[:2] == ["r1", "OK"] and lines[1].split()[:2] == ["r2", "OK"],
          "human rows:\n%s", r.out)
    check("2 rows: 2 created, 0 failed" in lines[2], "human summary:\n%s", r.out)
    # stdin
    r = ok(c.run(f + ["import", "-"], stdin=good.encode()))
    check("2 created" in r.out, "import -:\n%s", r.describe())
    r = c.run(f + ["import", os.path.join(c.cwd, "no-such.csv")])
    eq(r.rc, 1, "missing file")
    # found by fuzz/omsctl_csv: a row whose first line is short, then another
    # line of the same row (omsctl crashed on a NULL customer_id)
    short = "r1,{c}\nr1,{c},{a},1\nr2,{c},{a},1\n".format(c=w.cust, a=w.sku_a)
    r = c.run(f + ["--json", "import", write_csv(c, "short.csv", short)])
    eq(r.rc, 4, "import of a short first line exits 4 (%s)" % r.describe())
    rows = {o["row_id"]: o for o in r.json()[:-1]}
    eq(rows["r1"]["code"], "INVALID_ARGUMENT", "short row r1 (%s)" % rows["r1"])
    check("line 1" in rows["r1"]["message"] and rows["r1"].get("local"),
          "r1 names line 1: %s", rows["r1"])
    eq(rows["r2"]["code"], "OK", "r2 after the short row")


def case_import_not_utf8(c, server):
    """A line that is not UTF-8 fails locally (as a NUL does): sent, it would
    make the server refuse the whole import (proto3 strings), rows before it
    included. It fails the open row, or stands alone when none is open."""
    f = flags(server)
    w = World(c, server)
    data = (b"x\xc0\xaf,c-1,SKU-X,1\n"                                     # 1 alone
            + "r1,{c},{a},1\n".format(c=w.cust, a=w.sku_a).encode()       # 2 OK
            + "r2,{c},{a},1\n".format(c=w.cust, a=w.sku_a).encode()       # 3 r2 ...
            + b"r2,c-\xff\xfe,SKU-X,1\n"                                   # 4 ... fails
            + "r3,{c},{b},1\n".format(c=w.cust, b=w.sku_b).encode())      # 5 OK
    path = os.path.join(c.cwd, "latin1.csv")
    with open(path, "wb") as fh:
        fh.write(data)
    r = c.run(f + ["--json", "import", path])
    eq(r.rc, 4, "failed rows exit 4 (%s)" % r.describe())
    objs = r.json()
    rows = {o["row_id"]: o for o in objs[:-1]}
    eq(sorted(rows), ["line-1", "r1", "r2", "r3"], "one result per row")
    eq((rows["r1"]["code"], rows["r3"]["code"]), ("OK", "OK"), "the good rows")
    for rid, line in (("line-1", 1), ("r2", 4)):
        eq(rows[rid]["code"], "INVALID_ARGUMENT", rid)
        check(rows[rid].get("local") and "line %d: not UTF-8 text" % line in rows[rid]["message"],
              "%s: a local verdict naming line %d: %s", rid, line, rows[rid])
    eq(objs[-1]["summary"]["created"], 2, "created")


def case_import_big(c, server):
    """Far more than the call's send buffer (256 KiB): the file is read as the
    stream drains (RPC_AGAIN / on_ready), every row gets a result."""
    f = flags(server)
    n = 6000
    pad = "x" * 50  # row_ids of 60 bytes: the server allows 64
    with open(os.path.join(c.cwd, "big.csv"), "w") as fh:
        for i in range(n):
            fh.write("big-%05d-%s,c-nobody-%s,SKU-NONE,1\n" % (i, pad, RUN))
    r = c.run(f + ["--json", "import", os.path.join(c.cwd, "big.csv")], timeout=120)
    eq(r.rc, 4, "every row fails (unknown customer) (%s)" % r.describe()[:2000])
    objs = r.json()
    eq(objs[-1]["summary"]["received"], n, "rows received")
    eq(objs[-1]["summary"]["failed"], n, "rows failed")
    eq(objs[-1]["summary"].get("skipped", 0), 0, "rows skipped")
    ids = [o["row_id"] for o in objs[:-1]]
    eq(ids, ["big-%05d-%s" % (i, pad) for i in range(n)], "results in order")


class Reader:
    """Reads a child's stdout lines in a thread; wait_for() polls them."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.err = []
        self.eof = False  # stdout closed: no more lines will come
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._run, args=(proc.stdout, self.lines), daemon=True)
        self.te = threading.Thread(target=self._run, args=(proc.stderr, self.err), daemon=True)
        self.t.start()
        self.te.start()

    def _run(self, f, into):
        for raw in iter(f.readline, b""):
            with self.cv:
                into.append(raw.decode(errors="replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            if into is self.lines:
                self.eof = True
            self.cv.notify_all()

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    if self.eof:
                        self.te.join(2)
                    raise h.Failure("%s waiting for %s; stdout:\n%s\nstderr:\n%s" % (
                        "omsctl exited" if self.eof else "timed out", what,
                        "\n".join(self.lines[-30:]), "\n".join(self.err[-30:])))
                self.cv.wait(min(left, 0.2))

    def events(self):
        with self.cv:
            return [json.loads(l) for l in self.lines if l.strip()]

    def finish(self, timeout=15):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise h.Failure("omsctl did not exit; stderr:\n%s" % "\n".join(self.err[-30:]))
        self.t.join(5)
        self.te.join(5)
        san = [l for l in self.err if any(m in l for m in h.SANITIZER_MARKERS)]
        check(not san, "sanitizer report from omsctl:\n%s", "\n".join(self.err[-60:]))
        return rc


def stop_child(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def case_track(c, server):
    f = flags(server)
    w = World(c, server)
    o1 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    o2 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    o3 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    # --since 1 replays each subscribed order's history: seeing its creation
    # event proves the subscription is in place before anything changes
    p = c.popen(f + ["--json", "track", "--since", "1", o1], stdin=subprocess.PIPE)
    rd = Reader(p)
    try:
        def seen(oid, status):
            return lambda ls: any(e["orderId"] == oid and e["status"] == status
                                  for e in map(json.loads, ls))
        rd.wait_for(seen(o1, "ORDER_STATUS_PENDING"), 20, "o1's creation (replay)")
        ok(c.run(f + ["status", o1, "confirmed"]))
        rd.wait_for(seen(o1, "ORDER_STATUS_CONFIRMED"), 20, "o1 confirmed (live)")
        p.stdin.write(("+%s\n" % o2).encode())
        p.stdin.flush()
        rd.wait_for(seen(o2, "ORDER_STATUS_PENDING"), 20, "o2 after '+o2'")
        p.stdin.write(("unsub %s\nsub %s\n" % (o1, o3)).encode())
        p.stdin.flush()
        rd.wait_for(seen(o3, "ORDER_STATUS_PENDING"), 20, "o3 after 'sub o3'")
        ok(c.run(f + ["status", o1, "shipped"]))   # unsubscribed: not shown
        ok(c.run(f + ["cancel", o2]))
        rd.wait_for(seen(o2, "ORDER_STATUS_CANCELLED"), 20, "o2 cancelled")
        p.stdin.write(b"bogus command\n")
        p.stdin.flush()
        ok(c.run(f + ["cancel", o3]))
        rd.wait_for(seen(o3, "ORDER_STATUS_CANCELLED"), 20, "o3 cancelled")
        check(not seen(o1, "ORDER_STATUS_SHIPPED")(rd.lines), "o1 event after unsub:\n%s",
              "\n".join(rd.lines))
        evs = rd.events()
        for e in evs:
            for k in ("seq", "orderId", "customerId", "status", "version", "at"):
                check(k in e, "event lacks %s: %s", k, e)
            # previousStatus is left out at its default: only a creation has none
            check(("previousStatus" in e) == (e["status"] != "ORDER_STATUS_PENDING"),
                  "previousStatus of %s", e)
        # EOF half-closes; the server may end the stream then (exit 0), else SIGINT does
        p.stdin.close()
        try:
            rc = p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            rc = rd.finish()
        eq(rc, 0, "track exit status (stderr: %s)" % "\n".join(rd.err))
        check(any("unknown command" in l for l in rd.err), "no complaint about 'bogus command'")
    finally:
        stop_child(p)
    # human mode, ids only from the command line, stdin at EOF from the start
    p = c.popen(f + ["track", "--since", "1", o1], stdin=subprocess.PIPE)
    rd = Reader(p)
    try:
        rd.wait_for(lambda ls: any("SHIPPED" in l and o1 in l for l in ls), 20,
                    "o1's history in human form")
        p.send_signal(signal.SIGINT)
        eq(rd.finish(), 0, "track exit status after SIGINT")
    finally:
        stop_child(p)


def case_env_defaults(c, server):
    e = {"OMS_TARGET": "localhost:%d" % server.port, "OMS_CA": server.ca_path()}
    r = ok(c.run(["health"], extra_env=e))
    eq(r.out.strip(), "SERVING", "health via OMS_TARGET/OMS_CA")
    # a flag beats the environment
    r = c.run(["--target", "127.0.0.1:%d" % free_port(), "health"], extra_env=e)
    fails(r, 2, "UNAVAILABLE")
    # without OMS_CA, ./certs/ca.pem is the default CA when it exists
    d = os.path.join(c.cwd, "with-certs")
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)
    with open(server.ca_path(), "rb") as src, open(os.path.join(d, "certs", "ca.pem"), "wb") as dst:
        dst.write(src.read())
    t = {"OMS_TARGET": e["OMS_TARGET"]}
    ok(c.run(["health"], extra_env=t, cwd=d))
    fails(c.run(["health"], extra_env=t), 2, "UNAVAILABLE")  # system roots: not our CA
    # --server-name: the name checked against the certificate (and sent as SNI)
    ip = ["--target", "127.0.0.1:%d" % server.port, "--ca", server.ca_path()]
    ok(c.run(ip + ["--server-name", "localhost", "health"]))
    fails(c.run(ip + ["--server-name", "wrong.example", "health"]), 2, "UNAVAILABLE")
    # a CA that did not sign the server's certificate
    other = os.path.join(c.cwd, "other-ca")
    h.make_certs(c.env.args.source_dir, other)
    fails(c.run(["--target", "localhost:%d" % server.port, "--ca",
                 os.path.join(other, "ca.pem"), "health"]), 2, "UNAVAILABLE")
    r = c.run(["--target", "localhost:%d" % server.port, "--ca", "/no/such/ca.pem", "health"])
    eq(r.rc, 1, "unreadable --ca (%s)" % r.describe())
    # a TLS failure says what to do, and no library log line leaks into stderr
    r = fails(c.run(["--target", "localhost:%d" % server.port, "--ca",
                     os.path.join(other, "ca.pem"), "health"]), 2, "UNAVAILABLE")
    check("certificate verify failed" in r.err and "pass --ca" in r.err and "OMS_CA" in r.err,
          "TLS failure without advice:\n%s", r.describe())
    for line in r.err.strip().splitlines():
        check(line.startswith("omsctl: "), "a line that is not omsctl's on stderr: %r", line)
    # no --ca, OMS_CA or ./certs/ca.pem: ../certs/ca.pem next to the binary
    inst = os.path.join(c.cwd, "install")
    os.makedirs(os.path.join(inst, "bin"), exist_ok=True)
    os.makedirs(os.path.join(inst, "certs"), exist_ok=True)
    import shutil
    shutil.copy(c.omsctl, os.path.join(inst, "bin", "omsctl"))
    shutil.copy(server.ca_path(), os.path.join(inst, "certs", "ca.pem"))
    argv = [os.path.join(inst, "bin", "omsctl"), "health"]
    p = subprocess.run(h.wrap_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=c.cwd, env=dict(c.base_env, OMS_TARGET=t["OMS_TARGET"]),
                       timeout=CTL_TIMEOUT, **h.popen_kwargs())
    eq((p.returncode, p.stdout.strip()), (0, b"SERVING"),
       "health with the CA next to the binary (stderr %r)" % p.stderr[-1000:])


def case_unimplemented(c, env):
    """A server without the order service: UNIMPLEMENTED is 'another server
    error', exit 5."""
    s = env.server(h2c=True, extra_args=["--services", "customers"], name="customers-only")
    try:
        f = flags(s)
        fails(c.run(f + ["orders"]), 5, "UNIMPLEMENTED")
        fails(c.run(f + ["create", "c-1", "SKU-1:1"]), 5, "UNIMPLEMENTED")
        ok(c.run(f + ["customers"]))
    finally:
        env.suite.stop_server(s)


class FixedPortServer(h.Server):
    """omsd on a chosen port, so that a restart keeps the address (and, with the
    same name, the work dir and hence ./oms.db)."""

    def __init__(self, *a, port=0, incarnation=0, **kw):
        super().__init__(*a, **kw)
        self.fixed_port = port
        if incarnation:
            self.log_path = os.path.join(self.workdir, "server.%d.log" % incarnation)

    def argv(self):
        a = super().argv()
        a[a.index("--listen") + 1] = "127.0.0.1:%d" % self.fixed_port
        return a


def start_fixed(env, name, port, incarnation):
    deadline = time.monotonic() + 15
    while True:
        s = FixedPortServer(env.args.server, env.args.omsd, env.args.source_dir, env.workdir,
                            h2c=True, certs=env.certs, name=name, grace=1, port=port,
                            incarnation=incarnation)
        env.suite.servers.append(s)
        try:
            s.start()
        except h.ServerError:
            env.suite.servers.remove(s)
            if port and time.monotonic() < deadline:
                time.sleep(0.3)
                continue
            raise
        print("# %s listening on 127.0.0.1:%d pid %d" % (name, s.port, s.proc.pid), flush=True)
        return s


def case_watch_resume(c, env):
    s1 = start_fixed(env, "watch-restart", 0, 0)
    port = s1.port
    f = flags(s1)
    w = World(c, s1)
    o1 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    p = c.popen(f + ["--json", "watch", "--since", "1"])
    rd = Reader(p)
    s2 = None
    try:
        rd.wait_for(lambda ls: any(json.loads(l)["orderId"] == o1 for l in ls), 20,
                    "the replay up to o1")
        ok(c.run(f + ["status", o1, "confirmed"]))
        rd.wait_for(lambda ls: any(json.loads(l)["orderId"] == o1 and
                                   json.loads(l)["status"] == "ORDER_STATUS_CONFIRMED" for l in ls), 20,
                    "o1 confirmed, live")
        env.suite.stop_server(s1)
        s2 = start_fixed(env, "watch-restart", port, 1)
        # events committed before watch is back: it must pick them up by since_seq
        ok(c.run(f + ["status", o1, "shipped"]))
        o2 = ok(c.run(f + ["--json", "create", w.cust, "%s:2" % w.sku_b])).one()["id"]
        ok(c.run(f + ["cancel", o2, "--reason", "test"]))
        rd.wait_for(lambda ls: any(json.loads(l)["orderId"] == o2 and
                                   json.loads(l)["status"] == "ORDER_STATUS_CANCELLED" for l in ls), 30,
                    "events after the restart")
        # connection loss without a goodbye: kill -9, then the same again
        s2.proc.kill()
        s2.proc.wait()
        env.suite.servers.remove(s2)
        s2._log.close()
        s3 = start_fixed(env, "watch-restart", port, 2)
        s2 = s3
        ok(c.run(f + ["status", o1, "delivered"]))
        rd.wait_for(lambda ls: any(json.loads(l)["orderId"] == o1 and
                                   json.loads(l)["status"] == "ORDER_STATUS_DELIVERED" for l in ls), 30,
                    "events after kill -9 and restart")
        p.send_signal(signal.SIGINT)
        eq(rd.finish(), 0, "watch exit status after SIGINT")
        seqs = [int(e["seq"]) for e in rd.events()]
        eq(seqs, list(range(1, len(seqs) + 1)), "seqs (gap-free from 1, no repeat)")
        notes = [l for l in rd.err if "reconnecting" in l]
        check(len(notes) >= 2, "want a reconnect note per outage on stderr: %s", rd.err)
        mine = [(e["orderId"], e["status"]) for e in rd.events()
                if e["orderId"] in (o1, o2)]
        eq(mine, [(o1, "ORDER_STATUS_PENDING"), (o1, "ORDER_STATUS_CONFIRMED"), (o1, "ORDER_STATUS_SHIPPED"), (o2, "ORDER_STATUS_PENDING"),
                  (o2, "ORDER_STATUS_CANCELLED"), (o1, "ORDER_STATUS_DELIVERED")], "o1/o2 events")
    finally:
        stop_child(p)
        env.suite.stop_server(s2 or s1)


def wait_stderr(rd, needle, timeout, what):
    deadline = time.monotonic() + timeout
    with rd.cv:
        while not any(needle in l for l in rd.err):
            left = deadline - time.monotonic()
            if left <= 0 or rd.eof:
                raise h.Failure("%s waiting for %s; stderr:\n%s" % (
                    "omsctl exited" if rd.eof else "timed out", what, "\n".join(rd.err[-30:])))
            rd.cv.wait(min(left, 0.2))


def case_watch_waits_for_server(c, env):
    """watch against a server that is down waits for it with backoff (one note on
    stderr), as its help says, and streams once it is up."""
    port = free_port()
    f = ["--target", "127.0.0.1:%d" % port, "--h2c"]
    p = c.popen(f + ["--json", "watch", "--since", "1"])
    rd = Reader(p)
    s = None
    try:
        wait_stderr(rd, "reconnecting", 20, "the first reconnect note")
        check(p.poll() is None, "watch exited: %s", rd.err)
        s = start_fixed(env, "watch-late", port, 0)
        w = World(c, s)
        o1 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
        rd.wait_for(lambda ls: any(json.loads(l)["orderId"] == o1 for l in ls), 30,
                    "o1's event once the server is up")
        p.send_signal(signal.SIGINT)
        eq(rd.finish(), 0, "watch exit status after SIGINT")
        notes = [l for l in rd.err if "reconnecting" in l]
        check(1 <= len(notes) <= 3, "want one note for the outage, not one per attempt: %s",
              rd.err)
    finally:
        stop_child(p)
        if s:
            env.suite.stop_server(s)


def case_json_errors(c, server):
    """--json: a failed call prints {"code","message","details"} on stderr."""
    r = c.run(flags(server) + ["--json", "customers", "get", "no-such-customer"])
    eq(r.rc, 3, "exit status (%s)" % r.describe())
    eq(r.out, "", "stdout")
    j = json.loads(r.err)
    eq((j["code"], j["details"]), ("NOT_FOUND", []), "JSON error (%s)" % r.describe())
    check("no-such-customer" in j["message"], "message %r", j["message"])


def case_watch_filters(c, server):
    f = flags(server)
    w = World(c, server)
    o1 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    o2 = ok(c.run(f + ["--json", "create", w.cust, "%s:1" % w.sku_a])).one()["id"]
    ok(c.run(f + ["status", o2, "confirmed"]))
    # --timeout on a stream is a duration: it ends with exit 0
    r = ok(c.run(f + ["--json", "--timeout", "2", "watch", "--order", o2, "--since", "1"]))
    eq([(e["orderId"], e["status"]) for e in r.json()], [(o2, "ORDER_STATUS_PENDING"), (o2, "ORDER_STATUS_CONFIRMED")],
       "watch --order")
    r = ok(c.run(f + ["--timeout", "2", "watch", "--customer", w.cust, "--since", "1"]))
    lines = r.out.splitlines()
    eq(len(lines), 3, "human watch --customer lines (%s)" % r.describe())
    check(o1 in lines[0] and "PENDING" in lines[0] and o2 in lines[2] and "CONFIRMED" in lines[2],
          "human watch:\n%s", r.out)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--omsctl", required=True, help="path to the omsctl binary")
    args = p.parse_args()
    if not os.access(args.omsctl, os.X_OK):
        print("omsctl not found or not executable: %s" % args.omsctl)
        print("0 passed, 1 failed")
        sys.exit(1)
    omsctl = os.path.abspath(args.omsctl)
    with h.Env("omsctl", args) as env:
        c = Env2(env, omsctl)
        run = env.suite.run
        run("help", case_help, c)
        run("usage.no_command", case_usage, c, [], "Usage")
        run("usage.unknown_command", case_usage, c, ["frobnicate"], "unknown command")
        run("usage.unknown_option", case_usage, c, ["orders", "--nope", "1"], "unknown option")
        run("usage.bad_line", case_usage, c, ["create", "c-1", "SKU"], "SKU:QTY")
        run("usage.missing_args", case_usage, c, ["customers", "create", "x"], "EMAIL")
        run("usage.bad_timeout", case_usage, c, ["--timeout", "soon", "health"], "--timeout")
        run("usage.bad_since", case_usage, c, ["watch", "--since", "x"], "--since")
        run("unreachable", case_unreachable, c)
        run("usage.unknown_option_suggests", case_unknown_option, c)
        run("version", case_version, c)
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"))
            run("%s.health" % tr, case_health, c, server)
            run("%s.json_errors" % tr, case_json_errors, c, server)
            run("%s.customers" % tr, case_customers, c, server)
            run("%s.products_stock" % tr, case_products_stock, c, server)
            run("%s.orders" % tr, case_orders, c, server)
            run("%s.import" % tr, case_import, c, server)
            run("%s.import_big" % tr, case_import_big, c, server)
            run("%s.import_not_utf8" % tr, case_import_not_utf8, c, server)
            run("%s.track" % tr, case_track, c, server)
            if tr == "tls":
                run("tls.env_defaults", case_env_defaults, c, server)
            else:
                run("h2c.watch_filters", case_watch_filters, c, server)
            env.suite.stop_server(server)
        if "h2c" in env.transports:
            run("h2c.watch_resume", case_watch_resume, c, env)
            run("h2c.unimplemented", case_unimplemented, c, env)
            run("h2c.watch_waits_for_server", case_watch_waits_for_server, c, env)


if __name__ == "__main__":
    main()
