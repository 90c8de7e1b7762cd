#!/usr/bin/python3
"""Regenerates docs/RELIABILITY.md: runs each reliability test of the suite
against the built omsd, reads its figure lines ("# ...") and its pass/fail
summary, and writes one table beside what grpc-go and nghttpd promise for the
same case.

    scripts/reliability.py [--build build] [--quick] [--only NAME ...]

--quick uses the suite's (CI) sizes; without it the report's sizes: 20 kill -9
cycles, a 10-minute soak, 50 slow-subscriber runs per transport, 5 minutes per
fuzz target, 20 model-test seeds per mode. The full run takes about an hour.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
IT = os.path.join(ROOT, "tests", "integration")


def rows(build, quick):
    omsd = os.path.join(build, "omsd")
    gen = os.path.join(build, "tests", "integration", "pygen")
    base = ["--omsd", omsd, "--source-dir", ROOT, "--gen", gen]
    h2spec = os.path.join(build, "tools", "h2spec", "h2spec")
    q = quick
    return [
        ("h2spec", "HTTP/2 conformance: h2spec's 146 cases over TLS and h2c",
         [PY, os.path.join(IT, "run_h2spec.py"), *base, "--h2spec", h2spec, "--runs",
          "1" if q else "3"], {},
         "nghttpd 1.52: 145/146 (fails 5.1.1/2); grpc-go: not run by its project"),
        ("abuse", "every known HTTP/2 abuse (rapid reset, CONTINUATION, PING/SETTINGS/empty-frame "
         "floods, readers that never read, 1,000 unread 4 MiB unary calls and watch streams, HPACK "
         "churn, many connections, fd exhaustion) while a good client calls",
         [PY, os.path.join(IT, "run_stress.py"), *base], {},
         "grpc-go: flow control per stream, no per-connection send budget; nghttpd: nghttp2's "
         "flood limits"),
        ("conn_policy", "connection policy: max connections, idle, age + grace, keepalive PINGs, "
         "ping enforcement",
         [PY, os.path.join(IT, "run_conn_policy.py"), *base], {},
         "grpc-go: the same knobs (MaxConnectionIdle/Age/AgeGrace, keepalive EnforcementPolicy); "
         "nghttpd: none"),
        ("watch_slow", "a slow WatchOrders subscriber, repeated on fresh servers (TLS and h2c)",
         ["sh", os.path.join(IT, "loop_watch_slow.sh"), "3" if q else "50", "tls,h2c", build], {},
         "grpc-go: a slow stream blocks only itself (flow control)"),
        ("durability", "kill -9 under CreateOrder load, restart, check every acked order and "
         "the event seqs",
         [PY, os.path.join(IT, "run_orders_durability.py"), *base],
         {"OMS_IT_DURABILITY_CYCLES": "5" if q else "20"}, "(application level: no peer promise)"),
        ("store_faults", "a full disk (tmpfs filled mid-run) and a database locked by another "
         "process",
         [PY, os.path.join(IT, "run_store_faults.py"), *base], {},
         "(application level: no peer promise)"),
        ("model", "model-based test: seeded rounds of every oms.v1 call from 4 clients",
         [PY, os.path.join(IT, "run_orders_model.py"), *base, "--mode", "aio", "--runs",
          "1" if q else "20", "--seed", "1000"], {}, "(application level)"),
        ("model_split", "the same on the split deployment",
         [PY, os.path.join(IT, "run_orders_model.py"), *base, "--mode", "split", "--runs",
          "1" if q else "20", "--seed", "1000"], {}, "(application level)"),
        ("soak", "mixed load (every call type, churn, cancels, expiring deadlines), RSS and fds "
         "sampled each second",
         [PY, os.path.join(IT, "run_soak.py"), *base, "--timeout", "900"],
         {"OMS_IT_SOAK_SECONDS": "60" if q else "600"}, "(no peer publishes a soak figure)"),
        ("failmalloc", "failing allocator: TLS connect + unary, h2c unary, server/client/bidi "
         "streaming, WatchOrders catch-up, CreateOrder commit, drain; each rerun failing its "
         "1st..Kth server-side allocation (no crash, hang or wrong status; server goes on)",
         [os.path.join(build, "tests", "failmalloc_test"),
          os.path.join(ROOT, "scripts", "certs.sh")], {},
         "nghttp2: tests/failmalloc_test over its session API; grpc-go: none (Go cannot fail "
         "an allocation)"),
        ("fuzz", "libFuzzer targets (ASan+UBSan): http2 server (h2c, TLS) and client, deframer, "
         "oms.v1 requests, reflection, header parsers, CSV import, store records",
         ["bash", os.path.join(ROOT, "fuzz", "run.sh"), "-t", "10" if q else "300"], {},
         "nghttp2 fuzzes its session in OSS-Fuzz; grpc-go fuzzes its HTTP/2 framer"),
    ]


KEEP = "<!-- sections below are kept by scripts/reliability.py -->"
FIGURE = re.compile(r"^# (?!---|logs kept|output kept|load scale|exit status)(.*)$")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed")


class Done:
    """A run read back from its log (--from-logs)."""

    def __init__(self, stdout, returncode):
        self.stdout, self.returncode = stdout, returncode


def run(name, argv, env, log_dir, from_logs=False):
    path = os.path.join(log_dir, name + ".log")
    t0 = time.monotonic()
    if from_logs:
        with open(path) as f:
            text = f.read()
        rc = re.search(r"^# exit status (\d+) after ([\d.]+) s$", text, re.M)
        p = Done(text, int(rc.group(1)) if rc else 0)
        dt = float(rc.group(2)) if rc else 0.0
    else:
        e = dict(os.environ, **env)
        p = subprocess.run(argv, cwd=ROOT, env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        dt = time.monotonic() - t0
        with open(path, "w") as f:
            f.write(p.stdout + "# exit status %d after %.0f s\n" % (p.returncode, dt))
    figs, passed, failed = [], None, None
    for line in p.stdout.splitlines():
        m = FIGURE.match(line)
        if m and "listening on" not in line:
            figs.append(m.group(1).strip())
        m = SUMMARY.match(line)
        if m:
            passed, failed = int(m.group(1)), int(m.group(2))
        if re.match(r"^\S+: \d+ of \d+ runs passed", line) or re.search(r"\bexecs\b", line):
            figs.append(" ".join(line.split()))
    if p.returncode == 77:
        result = "skipped"
    elif p.returncode == 0:
        result = "pass" + (" (%d cases)" % passed if passed is not None else "")
    else:
        result = "FAIL (%s failed)" % (failed if failed is not None else "rc %d" % p.returncode)
    return result, figs, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "RELIABILITY.md"))
    ap.add_argument("--from-logs", action="store_true",
                    help="rewrite the report from the last run's logs, running nothing")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    log_dir = os.path.join(build, "reliability")
    os.makedirs(log_dir, exist_ok=True)
    out = []
    for name, what, argv, env, peers in rows(build, a.quick):
        if a.only and name not in a.only:
            continue
        print("== %s" % name, flush=True)
        result, figs, dt = run(name, argv, env, log_dir, a.from_logs)
        print("   %s in %.0f s" % (result, dt), flush=True)
        out.append((name, what, result, figs, dt, peers))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    lines = [
        "# Reliability report",
        "",
        "Generated by `scripts/reliability.py%s` on %s UTC, commit %s, on a 2-core machine "
        "(logs in `%s`). Each row is one runner of the test suite; *figures* are the lines "
        "it prints." % (" --quick" if a.quick else "",
                        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), commit,
                        os.path.relpath(log_dir, ROOT)),
        "",
        "| test | what it does | result | figures | time | what grpc-go / nghttpd promise |",
        "|---|---|---|---|---|---|",
    ]
    for name, what, result, figs, dt, peers in out:
        f = "<br>".join(x.replace("|", "\\|") for x in figs[:12]) or "-"
        lines.append("| %s | %s | %s | %s | %.0f s | %s |" % (name, what, result, f, dt, peers))
    lines.append("")
    # Sections written by hand (e.g. a long fuzzing run's figures) follow the
    # marker; they are kept as they are.
    kept = ""
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = f.read()
        if KEEP in old:
            kept = old[old.index(KEEP):]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + ("\n" + kept if kept else ""))
    print("wrote %s" % a.out)
    sys.exit(0 if all(r[2].startswith(("pass", "skipped")) for r in out) else 1)


if __name__ == "__main__":
    main()
