#!/usr/bin/python3
"""Checks contrib/: the Grafana dashboard is valid JSON with the structure
Grafana imports (panels with unique ids, grid positions, Prometheus targets
with non-empty expressions) and covers what issue 15 asks (request rates,
error ratio, latency percentiles via histogram_quantile, subscribers and catch-up reads,
commit latency); the systemd unit is Type=notify with reload, a stop timeout
above omsd's default --grace, and the hardening options; the sample
environment file defines every variable the unit uses."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
omsd = sys.argv[2] if len(sys.argv) > 2 else None  # the built omsd, for systemd-analyze
failed = []


def check(cond, what):
    print("%s %s" % ("PASS" if cond else "FAIL", what))
    if not cond:
        failed.append(what)


with open(os.path.join(src, "contrib", "grafana", "oms.json")) as f:
    d = json.load(f)
check(isinstance(d.get("title"), str) and d.get("uid"), "dashboard title and uid")
check(isinstance(d.get("schemaVersion"), int), "schemaVersion")
panels = d.get("panels", [])
ids = [p.get("id") for p in panels]
check(len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), "unique panel ids")
check(all({"x", "y", "w", "h"} <= set(p.get("gridPos", {})) for p in panels), "gridPos everywhere")
check(all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels), "panels fit 24 columns")
exprs = []
for p in panels:
    if p.get("type") == "row":
        continue
    ts = p.get("targets", [])
    check(ts and all(t.get("expr", "").strip() for t in ts), "panel %r has queries" % p.get("title"))
    check(p.get("datasource", {}).get("type") == "prometheus", "panel %r on prometheus" % p.get("title"))
    exprs += [t["expr"] for t in ts]
    for t in ts:
        e = t["expr"]
        check(e.count("(") == e.count(")") and e.count("{") == e.count("}"),
              "balanced expression in %r" % p.get("title"))
text = "\n".join(exprs)
for want, what in [(r"rate\(grpc_server_handled_total", "request rate"),
                   (r"grpc_code!~", "error ratio"),
                   (r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(grpc_server_handling_seconds_bucket",
                    "latency percentiles"),
                   (r"subscribers", "subscribers"), (r"oms_events_store_reads_total", "store catch-up reads"),
                   (r"commit", "commit latency")]:
    check(re.search(want, text), "dashboard shows %s" % what)
vars_ = [v["name"] for v in d.get("templating", {}).get("list", [])]
check("instance" in vars_ and "job" in vars_, "job and instance variables")

with open(os.path.join(src, "contrib", "systemd", "omsd.service")) as f:
    unit = f.read()
kv = {}
for line in unit.splitlines():
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        kv.setdefault(k.strip(), []).append(v.strip())
for k, v in [("Type", "notify"), ("ExecReload", "/bin/kill -HUP $MAINPID"),
             ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
             ("KillSignal", "SIGTERM")]:
    check(v in kv.get(k, []), "unit %s=%s" % (k, v))
check(int(kv["TimeoutStopSec"][0]) > 10, "TimeoutStopSec above the default --grace")
check(any("/var/lib/oms" in v for v in kv.get("ReadWritePaths", [])), "ReadWritePaths: the store")
used = set(re.findall(r"\$\{?(OMSD_[A-Z_]+)", unit))
with open(os.path.join(src, "contrib", "systemd", "omsd.env")) as f:
    env = f.read()
defined = set(re.findall(r"^(OMSD_[A-Z_]+)=", env, re.M))
check(used and used <= defined, "omsd.env defines %s" % sorted(used))

# systemd's own parser on the unit (Debian's systemd package: every directive
# known, every value valid), with ExecStart pointed at the built omsd since
# verify also wants the binary to exist.
tool = shutil.which("systemd-analyze")
check(tool is not None, "systemd-analyze is installed (scripts/deps.sh: systemd)")
if tool and omsd:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "omsd.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/omsd", os.path.abspath(omsd)))
        r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0 and not r.stderr.strip(),
              "systemd-analyze verify accepts the unit: rc %d %s" % (r.returncode, r.stderr.strip()))
print("%d failed" % len(failed))
sys.exit(1 if failed else 0)
