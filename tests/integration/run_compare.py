#!/usr/bin/python3
"""bench/compare --quick --no-peers against this build's omsd and oms-bench.

Benchmarks are not tests, but the harness must not rot: this runs
`bench/compare --quick --no-peers --no-install --out TMP --omsd OMSD
--oms-bench OMS_BENCH` and checks that it
  - exits 0 within --timeout, having written TMP/DATE.json and TMP/DATE.md
    (and TMP/DATE.svg when gnuplot is installed);
  - reports sane figures for omsd: every h2c case and the TLS unary cases
    present, non-zero, with 0 errors (h2load failures, grpc-status check,
    oms-bench error counts), latency percentiles ordered;
  - lists no problems (no sanitizer report from omsd either);
  - leaves no process behind: compare runs with a marker in its environment,
    which every process it starts inherits, and no process may carry it
    once compare has exited.
Figures are not compared with any threshold (sanitizer builds are slow).

Usage:
  run_compare.py --omsd build/omsd --oms-bench build/oms-bench [--timeout 400]
"""

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from omsd import Suite, check, default_source_dir  # noqa: E402

MARK = "OMS_COMPARE_TEST_MARK"


def marked_pids(mark):
    pids = []
    needle = ("%s=%s" % (MARK, mark)).encode()
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(d[6:]))
        except OSError:
            pass
    return pids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--omsd", required=True)
    ap.add_argument("--oms-bench", required=True)
    ap.add_argument("--source-dir", default=default_source_dir())
    ap.add_argument("--timeout", type=float, default=400)
    ap.add_argument("--keep", action="store_true", help="keep the output directory")
    a = ap.parse_args()

    suite = Suite("bench_compare")
    out = tempfile.mkdtemp(prefix="oms-it-compare-")
    mark = uuid.uuid4().hex
    env = dict(os.environ, **{MARK: mark})
    argv = [os.path.join(a.source_dir, "bench", "compare"), "--quick", "--no-peers",
            "--no-install", "--out", out, "--date", "test", "--omsd", a.omsd,
            "--oms-bench", a.oms_bench]
    print("# $ " + " ".join(argv), flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        log, _ = p.communicate(timeout=a.timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)  # compare's trap stops what it started
        try:
            log, _ = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            log, _ = p.communicate()
        rc = None
    log = log.decode(errors="replace")
    dt = time.monotonic() - t0
    suite.record("compare.exit", rc == 0, "exit status %s after %.0f s; output:\n%s" % (
        rc, dt, log[-6000:]))
    print("# compare took %.0f s" % dt, flush=True)

    res = None
    try:
        with open(os.path.join(out, "test.json")) as f:
            res = json.load(f)
        suite.record("compare.json", True)
    except (OSError, ValueError) as e:
        suite.record("compare.json", False, str(e))
    suite.record("compare.markdown", os.path.isfile(os.path.join(out, "test.md")),
                 "no test.md")
    # The plot is part of the report: gnuplot missing is a failure, not a skip.
    gnuplot = subprocess.call(["sh", "-c", "command -v gnuplot"], stdout=subprocess.DEVNULL) == 0
    suite.record("compare.gnuplot", gnuplot,
                 "gnuplot not installed (apt install gnuplot-nox, or run scripts/deps.sh)")
    if res is not None and res.get("nghttpd", {}).get("skipped") is None and gnuplot:
        suite.record("compare.svg", os.path.isfile(os.path.join(out, "test.svg")), "no test.svg")

    if res is not None:
        def figures():
            check(not res["problems"], "problems: %s", res["problems"])
            om = res["servers"].get("omsd", {})
            want = {"h2c": ["h2load_unary", "bench_unary", "lat_h2load", "lat_bench",
                            "stream", "bidi"],
                    "tls": ["h2load_unary", "bench_unary"]}
            key = {"h2load_unary": "req_per_s", "bench_unary": "calls_per_s",
                   "stream": "messages_per_s", "bidi": "ops_per_s"}
            for tr, cases in want.items():
                for c in cases:
                    r = om.get(tr, {}).get(c)
                    check(r is not None, "omsd %s %s missing", tr, c)
                    check(r.get("errors") == 0, "omsd %s %s: errors %s", tr, c, r)
                    if c in key:
                        check(r[key[c]] > 0, "omsd %s %s: %s = %s", tr, c, key[c], r[key[c]])
                    if c.startswith("h2load") or c == "lat_h2load":
                        check(r["succeeded"] > 0 and r["failed"] == 0,
                              "omsd %s %s: h2load %s", tr, c, r)
                        check(r.get("grpc_ok_server_count", 0) >= r["succeeded"],
                              "omsd %s %s: grpc-status check %s", tr, c, r)
                    if c.startswith("lat"):
                        lat = r["latency_us"]
                        check(0 < lat["p50"] <= lat["p99"] and lat["mean"] > 0,
                              "omsd %s %s: latency %s", tr, c, lat)
            t = {x["figure"]: x for x in res["targets"]}
            check(len(t) >= 5, "targets table: %s", res["targets"])
            m = res["machine"]
            check(m.get("cores") and m.get("kernel") and m.get("packages"),
                  "machine info: %s", m)

        suite.run("compare.figures", figures)

    left = marked_pids(mark)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    suite.record("compare.no_leftover_processes", not left, "left running: %s" % left)
    if a.keep or suite.failed:
        print("# output kept in %s" % out)
    else:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    sys.exit(suite.finish())


if __name__ == "__main__":
    main()
