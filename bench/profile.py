#!/usr/bin/python3
"""Where omsd's time goes per unary call: perf record on omsd under h2load.

    bench/profile.py --omsd build-compare/omsd                 # h2c
    bench/profile.py --omsd build-compare/omsd --tls --json /tmp/prof.json

Starts omsd on 127.0.0.1:0 pinned to CPU 0 (--log-level warn), drives it with
`h2load -t1 -c50 -m20` unary CreateOrder (the gRPC-framed body bench/compare
uses) pinned to CPU 1, and after a 1-second warm-up records omsd for
--seconds (default 4) with `perf record --call-graph dwarf -F 999 -p PID`.
Needs linux-perf (installed with apt-get when missing and root).

Each sample is put in one category by its innermost frame:
  syscalls/kernel   the kernel (socket reads and writes, wake-ups, faults)
  malloc/free       glibc's allocator (malloc, free, calloc, realloc and
                    their internals); split further by the first caller
                    outside libc: nghttp2, or oms (rpc/http2/app)
  nghttp2           libnghttp2, split by the API function it was entered
                    through: nghttp2_session_mem_recv (frame parsing, HPACK
                    decoding, header validation, stream creation),
                    nghttp2_session_mem_send (HPACK encoding, frame
                    serialization), anything else (submit, stream lookups)
  openssl           libssl and libcrypto (TLS records, AES-GCM)
  protobuf-c        libprotobuf-c (pack, unpack, sizes)
  libc (other)      memcpy, string functions, printf, ...
  oms: http2        omsd's functions named http2_* (connection glue)
  oms: rpc          rpc_* (gRPC calls, framing, status, arenas)
  oms: app          everything else in omsd (OrderBench handlers, the
                    mutex-protected order map)
  libuv, other
and the time per call is omsd's CPU time over the window divided by the
calls h2load completed in it. Output: a markdown table on stdout (and --json).
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import importlib.machinery  # noqa: E402

compare = importlib.machinery.SourceFileLoader(
    "compare", os.path.join(HERE, "compare")).load_module()

MALLOC = {"malloc", "_int_malloc", "free", "_int_free", "calloc", "__libc_calloc", "realloc",
          "_int_realloc", "unlink_chunk.constprop.0", "unlink_chunk", "malloc_consolidate",
          "cfree@GLIBC_2.2.5", "cfree", "__GI___libc_malloc", "__GI___libc_free",
          "__libc_malloc", "__libc_free", "tcache_get", "tcache_put", "_int_free_merge_chunk",
          "_int_free_create_chunk", "sysmalloc", "__libc_realloc", "alloc_perturb"}
ORDER = ["syscalls/kernel", "malloc/free (called by nghttp2)", "malloc/free (called by oms)",
         "malloc/free (other)", "nghttp2: receive (frames, HPACK decode, header checks)",
         "nghttp2: send (HPACK encode, frames)", "nghttp2: submit and other", "openssl",
         "protobuf-c", "libc (other)", "oms: http2",
         "oms: rpc", "oms: app", "libuv", "other"]

FRAME_RE = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def classify_dso(dso):
    d = os.path.basename(dso)
    if "kernel" in dso or dso.startswith("["):
        return "kernel" if "vdso" not in dso else "libc"
    if d.startswith("libnghttp2"):
        return "nghttp2"
    if d.startswith("libprotobuf-c"):
        return "protobuf-c"
    if d.startswith("libc.so") or d.startswith("libc-"):
        return "libc"
    if d.startswith("libuv"):
        return "libuv"
    if d.startswith("omsd"):
        return "oms"
    if d.startswith("libssl") or d.startswith("libcrypto"):
        return "openssl"
    return "other"


def oms_part(sym):
    s = sym.split("+")[0]
    if s.startswith("http2"):
        return "oms: http2"
    if s.startswith("rpc"):
        return "oms: rpc"
    return "oms: app"


def sym_name(s):
    return s.split("+0x")[0].replace(" (inlined)", "")


def resolve_inlined(frames):
    """perf prints inlined frames as 'sym (inlined)': they belong to the dso of
    the next real frame (the function they were inlined into)."""
    out = list(frames)
    nxt = None
    for i in range(len(out) - 1, -1, -1):
        sym, dso = out[i]
        if dso == "inlined":
            out[i] = (sym, nxt or "unknown")
        else:
            nxt = dso
    return out


def categorize(frames):
    """frames: [(sym, dso)] innermost first."""
    if not frames:
        return "other"
    sym, dso = frames[0]
    kind = classify_dso(dso)
    if sym_name(sym).startswith(("__mem", "__str", "mem", "str")) and kind == "oms":
        kind = "libc"  # an inlined libc string function (perf's attribution)
    if kind == "kernel":
        return "syscalls/kernel"
    if kind == "libc" and sym_name(sym) in MALLOC:
        for s, d in frames[1:]:
            k = classify_dso(d)
            if k == "libc":
                continue
            if k == "nghttp2":
                return "malloc/free (called by nghttp2)"
            if k == "oms":
                return "malloc/free (called by oms)"
            break
        return "malloc/free (other)"
    if kind == "libc":
        return "libc (other)"
    if kind == "oms":
        return oms_part(sym)
    if kind == "openssl":
        return "openssl"
    if kind == "nghttp2":
        # the outermost named nghttp2 function on the stack: the API entry point
        entry = None
        for sy, d in frames:
            if classify_dso(d) == "nghttp2" and sym_name(sy).startswith("nghttp2_"):
                entry = sym_name(sy)
        if entry == "nghttp2_session_mem_recv":
            return "nghttp2: receive (frames, HPACK decode, header checks)"
        if entry == "nghttp2_session_mem_send":
            return "nghttp2: send (HPACK encode, frames)"
        return "nghttp2: submit and other"
    return kind if kind in ("protobuf-c", "libuv") else "other"


def parse_perf_script(text):
    counts = collections.Counter()
    top = collections.Counter()
    frames, in_sample = [], False
    for line in text.splitlines():
        if not line.strip():
            if in_sample:
                frames = resolve_inlined(frames)
                c = categorize(frames)
                counts[c] += 1
                if frames:
                    sy, d = sym_name(frames[0][0]), os.path.basename(frames[0][1])
                    if sy.startswith(("__mem", "__str")):
                        d = "libc.so.6"
                    top[(sy, d)] += 1
            frames, in_sample = [], False
            continue
        if not line.startswith((" ", "\t")):
            in_sample = True
            frames = []
            continue
        m = FRAME_RE.match(line)
        if m:
            frames.append((m.group(1), m.group(2)))
    if in_sample:
        counts[categorize(resolve_inlined(frames))] += 1
    return counts, top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--omsd", required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--json")
    ap.add_argument("--keep", help="keep perf.data here")
    a = ap.parse_args()
    if not shutil.which("perf"):
        if os.geteuid() == 0:
            subprocess.call(["apt-get", "install", "-y", "-qq", "linux-perf"],
                            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if not shutil.which("perf"):
            sys.exit("profile: perf is missing (apt-get install linux-perf)")

    import atexit

    atexit.register(compare.cleanup)
    signal.signal(signal.SIGTERM, compare._on_signal)
    signal.signal(signal.SIGINT, compare._on_signal)
    wd = tempfile.mkdtemp(prefix="oms-profile.")
    try:
        certs = os.path.join(wd, "certs")
        subprocess.run(["bash", os.path.join(compare.ROOT, "scripts", "certs.sh"), certs],
                       check=True, stderr=subprocess.DEVNULL)
        args = argparse.Namespace(load_cpu=compare.LOAD_CPU, oms_bench=None,
                                  start_timeout=60)
        B = compare.Bench(args, certs, wd)
        argv = B.server_argv(os.path.abspath(a.omsd), "omsd", a.tls)
        srv = compare.Server("omsd", argv, wd).start(60)
        try:
            B.h2load(srv, a.tls, ["-c50", "-m20", "-D", "1"])
            total = a.seconds + 2
            load = compare.spawn(compare.taskset(compare.LOAD_CPU, [
                "h2load", "-t1", "-c50", "-m20", "-D", compare.h2d(total), "--log-file=" +
                os.path.join(wd, "req.log"), "-d", B.body,
                "-H", "content-type: application/grpc", "-H", "te: trailers",
                B.url(srv.port, a.tls, compare.CREATE_PATH)]), subprocess.PIPE,
                subprocess.PIPE)
            time.sleep(1)
            data = os.path.join(a.keep or wd, "perf.data")
            t0 = compare.cpu_ticks(srv.p.pid)
            w0 = time.time()
            subprocess.run(["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "999",
                            "-o", data, "-p", str(srv.p.pid), "--", "sleep", str(a.seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            w1 = time.time()
            t1 = compare.cpu_ticks(srv.p.pid)
            out, err = load.communicate(timeout=total + 30)
            compare._children.remove(load)
        finally:
            srv.stop()
        # calls completed inside the perf window, from h2load's per-request log
        calls = 0
        with open(os.path.join(wd, "req.log")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[1] == "200":
                    end = (int(p[0]) + int(p[2])) / 1e6
                    if w0 <= end <= w1:
                        calls += 1
        script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,event,ip,sym,dso"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        counts, top = parse_perf_script(script.decode(errors="replace"))
    finally:
        shutil.rmtree(wd, ignore_errors=True)

    n = sum(counts.values())
    cpu_s = (t1 - t0) if t0 is not None and t1 is not None else None
    us_per_call = cpu_s * 1e6 / calls if cpu_s and calls else None
    res = {"transport": "tls" if a.tls else "h2c", "window_s": round(w1 - w0, 2),
           "calls": calls, "calls_per_s": round(calls / (w1 - w0)),
           "server_cpu_s": cpu_s, "server_cpu": round(cpu_s / (w1 - w0), 3) if cpu_s else None,
           "us_per_call": round(us_per_call, 2) if us_per_call else None, "samples": n,
           "categories": {}, "top": []}
    cats = ORDER + sorted(k for k in counts if k not in ORDER)
    print("omsd %s unary CreateOrder under h2load -c50 -m20: %d calls/s, %s cores of "
          "server CPU, %.2f µs of server CPU per call (%d samples)\n" % (
              res["transport"], res["calls_per_s"], res["server_cpu"], us_per_call or 0, n))
    print("| where | share | µs per call |")
    print("|---|---|---|")
    for c in cats:
        if not counts.get(c):
            continue
        share = counts[c] / n
        res["categories"][c] = round(share, 4)
        print("| %s | %.1f %% | %s |" % (c, 100 * share,
                                          "%.2f" % (share * us_per_call) if us_per_call else "–"))
    print("\n| top functions (self time) | library | share |")
    print("|---|---|---|")
    for (s, d), k in top.most_common(12):
        res["top"].append({"sym": s, "dso": d, "share": round(k / n, 4)})
        print("| %s | %s | %.1f %% |" % ("(internal, no symbols)" if s == "[unknown]" else "`%s`" % s, d, 100 * k / n))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
