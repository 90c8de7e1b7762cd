#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests and demos (Debian's `postgresql`).

    pgtmp.py run -- CMD ARGS...    start a server, run CMD with OMS_TEST_PG_URL
                                   set to its URL, stop and remove the server;
                                   exits with CMD's status
    pgtmp.py start --dir DIR       start a server under DIR (must not exist),
      [--owner PID]                print its URL (also in DIR/url); it runs until
    pgtmp.py stop --dir DIR        stops it and removes DIR (or, with --owner,
                                   until process PID is gone, however it ended)

As a module: `with PgTmp() as pg: pg.url` (tests/integration use this).

The server: initdb into a temporary directory (trust auth, superuser `oms`,
database `oms`, UTF8, C collation), listening on a unix socket in that
directory and on a free 127.0.0.1 port. fsync stays on: the store's tests
exercise durable commits. When run as root (PostgreSQL refuses to), the server
runs as the unprivileged `postgres` system user the package created; the
directory is handed to it and removed afterwards. Readiness is `pg_ctl start
-w` (it polls the server with a bound), never a sleep.

A missing PostgreSQL is an error (exit 1 with the install hint), not a skip:
`make test` must not go green without the PostgreSQL suites.
"""

import argparse
import glob
import os
import pwd
import select
import shutil
import socket
import subprocess
import sys
import tempfile

START_TIMEOUT = int(os.environ.get("OMS_PG_START_TIMEOUT", "60"))


def pg_bindir():
    """The newest /usr/lib/postgresql/N/bin with initdb, or None."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        return None
    return max(dirs, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgTmp:
    """A server in its own directory. start() / stop(), or a with block."""

    def __init__(self, root=None):
        self.bindir = pg_bindir()
        if not self.bindir:
            raise RuntimeError("PostgreSQL not found under /usr/lib/postgresql/*/bin: "
                               "run scripts/deps.sh (Debian package postgresql)")
        self.root = root
        self.port = None
        self.url = None
        self._user = None
        self._started = False

    def _as_user(self, argv):
        if self._user is None:
            return argv
        return ["runuser", "-u", self._user, "--"] + argv

    def _run(self, argv, **kw):
        return subprocess.run(self._as_user(argv), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **kw)

    def start(self):
        if self.root is None:
            self.root = tempfile.mkdtemp(prefix="oms-pg-")
        else:
            os.makedirs(self.root)
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "sock")
        os.mkdir(self.sock)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` user to run "
                                   "PostgreSQL as (install the postgresql package)")
            self._user = "postgres"
            for d in (self.root, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o755)  # the tests (root) reach the socket directory
        try:
            r = self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "oms",
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            if r.returncode != 0:
                raise RuntimeError("initdb failed:\n" + r.stdout)
            self.port = free_port()
            self._opts = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=200 "
                          "-c shared_buffers=32MB" % (self.port, self.sock))
            self.server_start()
            r = self._run([os.path.join(self.bindir, "createdb"), "-h", self.sock,
                           "-p", str(self.port), "-U", "oms", "oms"])
            if r.returncode != 0:
                raise RuntimeError("createdb failed:\n" + r.stdout)
        except BaseException:
            self.stop()
            raise
        self.url = "postgresql://oms@127.0.0.1:%d/oms" % self.port
        return self

    def new_db(self, name):
        """Creates database `name` (if missing); returns its URL."""
        r = self._run([os.path.join(self.bindir, "psql"), "-h", self.sock, "-p", str(self.port),
                       "-U", "oms", "-d", "oms", "-tAc",
                       "SELECT 1 FROM pg_database WHERE datname = '%s'" % name])
        if r.stdout.strip() != "1":
            r = self._run([os.path.join(self.bindir, "createdb"), "-h", self.sock,
                           "-p", str(self.port), "-U", "oms", name])
            if r.returncode != 0:
                raise RuntimeError("createdb %s failed:\n%s" % (name, r.stdout))
        return "postgresql://oms@127.0.0.1:%d/%s" % (self.port, name)

    def log(self):
        try:
            with open(os.path.join(self.root, "log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def server_start(self):
        """Starts the server (again, after server_stop) on the same port and
        socket; returns once it accepts connections (pg_ctl -w)."""
        r = self._run([os.path.join(self.bindir, "pg_ctl"), "start", "-w",
                       "-t", str(START_TIMEOUT), "-D", self.data,
                       "-l", os.path.join(self.root, "log"), "-o", self._opts])
        self._started = True
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed:\n%s\n%s" % (r.stdout, self.log()))

    def server_stop(self, mode="fast"):
        """Stops the server, keeping its data (a restart: server_start)."""
        r = self.pg_ctl("stop", "-m", mode)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl stop failed:\n" + r.stdout)

    def pg_ctl(self, *args):
        """Runs pg_ctl ARGS on this server's data directory (restart, stop...)."""
        return self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w",
                          "-t", str(START_TIMEOUT)] + list(args))

    def stop(self):
        if self._started:
            self.pg_ctl("stop", "-m", "immediate")
            self._started = False
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def watch_owner(self, pid=None):
        """Leaves a detached watchdog (outside the caller's process tree, so a
        runner killing that tree does not take it along) that stops this
        server and removes its directory once process `pid` (default: this
        one) is gone, however it ended; a clean stop() leaves it nothing to
        do. Waits on a pidfd: no polling loop, no sleep."""
        pid = pid or os.getpid()
        child = os.fork()
        if child:
            os.waitpid(child, 0)
            return
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            fd = os.pidfd_open(pid)
            select.select([fd], [], [])
            if os.path.isdir(self.data):
                self._started = True
                self.stop()
        finally:
            os._exit(0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("argv", nargs=argparse.REMAINDER)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--owner", type=int, default=0,
                   help="stop the server and remove DIR once process OWNER is gone")
    t = sub.add_parser("stop")
    t.add_argument("--dir", required=True)
    a = ap.parse_args()
    try:
        if a.cmd == "run":
            argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            if not argv:
                ap.error("run: a command is required")
            with PgTmp() as pg:
                pg.watch_owner()  # a runner's timeout kill must not leak the server
                env = dict(os.environ, OMS_TEST_PG_URL=pg.url)
                return subprocess.call(argv, env=env)
        if a.cmd == "start":
            pg = PgTmp(os.path.abspath(a.dir)).start()
            if a.owner:
                pg.watch_owner(a.owner)
            with open(os.path.join(pg.root, "url"), "w") as f:
                f.write(pg.url + "\n")
            print(pg.url)
            return 0
        pg = PgTmp(os.path.abspath(a.dir))
        pg.data = os.path.join(pg.root, "data")
        pg._user = "postgres" if os.geteuid() == 0 else None
        pg._started = os.path.isdir(pg.data)
        pg.stop()
        return 0
    except RuntimeError as e:
        print("pgtmp: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
