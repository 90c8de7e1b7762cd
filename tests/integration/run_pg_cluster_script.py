#!/usr/bin/python3
"""scripts/cluster.sh (`make cluster`) end to end, with omsctl as a user runs it.

- script: starts scripts/cluster.sh (TLS, free ports) and waits for its
  "cluster ready: A,B,C" line; omsctl against all three (`--target A,B,C`)
  lists the demo customers and stock (seeded once, not three times); a
  `omsctl watch` on instance B sees an order created with omsctl on instance
  C, then orders created round robin over all three; SIGTERM to the script:
  it exits 0, every omsd it started and the PostgreSQL postmaster are gone,
  its directory removed.
- ctrl_c: SIGINT to the script's process group (a terminal's Ctrl-C): the
  same clean end (the instances, in sessions of their own, get one SIGTERM
  from the script and drain).
- killed: the script kill -9ed (no cleanup of its own): its omsd instances
  (setpriv --pdeathsig) and PostgreSQL (pgtmp.py --owner) still go away.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

START_S = 120  # PostgreSQL initdb + three instances on a loaded machine
GONE_S = 30


class Cluster:
    """scripts/cluster.sh in its own session; stdout read line by line."""

    def __init__(self, env, name):
        self.env = env
        self.dir = None  # the script's own /tmp/oms-cluster.XXXXXX, from its stderr
        self.errpath = os.path.join(env.workdir, name + ".stderr")
        self.err = open(self.errpath, "wb")
        argv = ["bash", os.path.join(env.args.source_dir, "scripts", "cluster.sh"),
                "--build", os.path.dirname(env.args.omsd), "--ports", "0,0,0",
                "--certs", env.certs, "--", "--workers", "1"]
        # SIGINT as a terminal has it (a shell's background job starts with it ignored)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                      signal.SIG_DFL))
        self.buf = b""
        self.lines = []

    def stderr(self):
        self.err.flush()
        with open(self.errpath, errors="replace") as f:
            return f.read()[-3000:]

    def read_until(self, pat, timeout):
        """Reads stdout lines until one matches pat; returns the match."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                self.lines.append(line)
                m = re.match(pat, line)
                if m:
                    return m
            left = deadline - time.monotonic()
            check(left > 0, "no line %r within %ds; stdout %s; stderr:\n%s",
                  pat, timeout, self.lines, self.stderr())
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    check(False, "cluster.sh ended (rc %s) before %r; stderr:\n%s",
                          self.proc.wait(), pat, self.stderr())
                self.buf += chunk

    def pids(self):
        """The omsd pids the script announced, and the postmaster's pid."""
        err = self.stderr()
        omsd = [int(p) for p in re.findall(r"omsd \d pid (\d+)", err)]
        m = re.search(r"\(data in (\S+)/pg\)", err)
        check(m, "no data directory in the script's stderr:\n%s", err)
        self.dir = m.group(1)
        with open(os.path.join(self.dir, "pg", "data", "postmaster.pid")) as f:
            return omsd, int(f.readline())

    def check_clean_end(self, how, omsd_pids, pg_pid):
        """After `how` the script exits 0, having stopped every omsd and the
        postmaster and removed its directory."""
        rc = self.proc.wait(GONE_S + 30)
        eq(rc, 0, "cluster.sh exit status after %s (stderr:\n%s)" % (how, self.stderr()))
        eq(wait_gone(omsd_pids + [pg_pid], GONE_S), [], "processes left running after " + how)
        check(not os.path.exists(self.dir), "%s is left behind", self.dir)
        check("cluster: stopped" in self.stderr(), "no 'stopped' line:\n%s", self.stderr())

    def kill(self):
        """SIGKILL to whatever is left in the script's session."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids, timeout):
    """Waits on pidfds until every pid has exited; returns those still there."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    fds = {}
    for p in left:
        try:
            fds[p] = os.pidfd_open(p)
        except OSError:
            pass
    try:
        while left and time.monotonic() < deadline:
            r, _, _ = select.select([fds[p] for p in left if p in fds], [], [],
                                    max(0.0, min(1.0, deadline - time.monotonic())))
            left = [p for p in left if alive(p)]
    finally:
        for fd in fds.values():
            os.close(fd)
    return left


def ctl(env, targets, *args, timeout=60):
    r = subprocess.run([env.args.omsctl, "--target", targets, "--ca",
                        os.path.join(env.certs, "ca.pem"), "--json"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "omsctl %s: rc %d: %s %s", " ".join(args), r.returncode, out,
          r.stderr.decode(errors="replace"))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Watch:
    """`omsctl --json watch` on one target, its events read as they come."""

    def __init__(self, env, target):
        self.proc = subprocess.Popen(
            [env.args.omsctl, "--target", target, "--ca", os.path.join(env.certs, "ca.pem"),
             "--json", "watch", "--since", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.events = []

    def until(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not pred(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return pred(self.events)
                self.buf += chunk
                while b"\n" in self.buf:
                    line, self.buf = self.buf.split(b"\n", 1)
                    self.events.append(json.loads(line))
        return True

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


def script(env):
    c = Cluster(env, "cluster")
    watch = None
    try:
        m = c.read_until(r"cluster ready: (\S+)$", START_S)
        targets = m.group(1).split(",")
        eq(len(targets), 3, "targets in %r" % m.group(0))
        eq(len(set(targets)), 3, "three distinct ports")
        omsd_pids, pg_pid = c.pids()
        eq(len(omsd_pids), 3, "omsd pids announced")
        print("# cluster %s, omsd %s, postmaster %d" % (targets, omsd_pids, pg_pid), flush=True)
        all3 = ",".join(targets)
        custs = ctl(env, all3, "customers")
        eq(sorted(x["email"] for x in custs),
           ["ada@example.com", "alan@example.com", "grace@example.com"],
           "the demo customers, once")
        stock = {p["sku"]: p for p in ctl(env, all3, "stock")}
        eq(int(stock["SKU-001"]["onHand"]), 500, "SKU-001 seeded once")

        watch = Watch(env, targets[1])
        o = ctl(env, targets[2], "create", "c-1", "SKU-001:2", "--key", "cluster-first")[0]
        check(watch.until(lambda evs: any(e.get("orderId") == o["id"] for e in evs)),
              "the watch on %s never saw %s created on %s: %s", targets[1], o["id"], targets[2],
              watch.events)
        made = [o["id"]]
        for i in range(6):  # round robin over the three
            made.append(ctl(env, all3, "create", "c-2", "SKU-002:1")[0]["id"])
        check(watch.until(lambda evs: set(made) <= {e.get("orderId") for e in evs}),
              "the watch saw %s of %s", [e.get("orderId") for e in watch.events], made)
        seqs = [int(e["seq"]) for e in watch.events]
        eq(seqs, sorted(set(seqs)), "seq order, no duplicate")
        stock = {p["sku"]: p for p in ctl(env, targets[0], "stock")}
        eq(int(stock["SKU-001"].get("reserved", 0)), 2, "SKU-001 reserved")
        watch.stop()
        watch = None

        c.proc.send_signal(signal.SIGTERM)
        c.check_clean_end("SIGTERM", omsd_pids, pg_pid)
    finally:
        if watch:
            watch.proc.kill()
        c.kill()


def ended(env, how):
    """The script ended by a terminal's Ctrl-C (SIGINT to its process group:
    a clean end) or by kill -9 of the script alone (no trap runs: the
    instances and PostgreSQL must still go)."""
    c = Cluster(env, "cluster-" + how)
    try:
        c.read_until(r"cluster ready: (\S+)$", START_S)
        omsd_pids, pg_pid = c.pids()
        if how == "ctrl-c":
            os.killpg(c.proc.pid, signal.SIGINT)
            c.check_clean_end("Ctrl-C", omsd_pids, pg_pid)
        else:
            os.kill(c.proc.pid, signal.SIGKILL)
            c.proc.wait()
            eq(wait_gone(omsd_pids + [pg_pid], GONE_S), [],
               "processes left running after kill -9 of the script")
    finally:
        c.kill()
        if how == "kill-9" and c.dir:  # the instances' logs: the script removed nothing
            shutil.rmtree(c.dir, ignore_errors=True)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--omsctl", required=True)
    args = p.parse_args()
    with h.Env("pg_cluster_script", args) as env:
        env.suite.run("cluster_sh.script", script, env)
        env.suite.run("cluster_sh.ctrl_c", ended, env, "ctrl-c")
        env.suite.run("cluster_sh.killed", ended, env, "kill-9")


if __name__ == "__main__":
    main()
