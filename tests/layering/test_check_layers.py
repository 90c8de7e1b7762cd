#!/usr/bin/env python3
"""Proves scripts/check_layers.py catches what it is for.

Copies the tree's src/, tools/ and examples/ sources into a temp dir, checks
the copy passes, then plants one violation at a time (appending an #include
to a real file, or adding a file) and checks that the script exits 1 and names
the file, line and rule; the file is restored before the next case. Prints
PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

# (name, file relative to the root, line appended, text the report must hold
# [, where the report must point when not at the planted line's file])
CASES = [
    ("rpc includes http2's internal header", "src/rpc/call.c",
     '#include "http2/http2_int.h"', "http2/http2_int.h is internal to src/http2"),
    ("rpc reaches http2_int.h through a relative path", "src/rpc/call.c",
     '#include "../http2/http2_int.h"', "http2/http2_int.h is internal to src/http2"),
    ("omsd includes a header that includes an internal one (orders/hub.h)", "src/omsd/omsd.c",
     '#include "orders/hub.h"', "orders/hub.h is internal to src/orders"),
    ("orders includes nghttp2", "src/orders/orders.c",
     "#include <nghttp2/nghttp2.h>", "nghttp2 is private to http2"),
    ("rpc includes OpenSSL", "src/rpc/channel.c",
     "#include <openssl/ssl.h>", "openssl is private to auth, http2"),
    ("orders includes SQLite", "src/orders/orders.c",
     "#include <sqlite3.h>", "sqlite3.h is private to store"),
    ("omsd includes libpq", "src/omsd/omsd.c",
     "#include <libpq-fe.h>", "libpq-fe.h is private to store"),
    ("rpc's public header includes nghttp2", "src/rpc/rpc.h",
     "#include <nghttp2/nghttp2.h>", "nghttp2 is private to http2"),
    ("http2's public header includes nghttp2, so rpc's include of it leaks nghttp2",
     "src/http2/http2.h", "#include <nghttp2/nghttp2.h>",
     "#include \"http2/http2.h\": http2/http2.h is internal to src/http2",
     "src/rpc/rpc.h:"),
    ("http2 includes rpc (upward)", "src/http2/stream.c",
     '#include "rpc/rpc.h"', "http2 may not depend on rpc"),
    ("store includes orders (upward)", "src/store/record.c",
     '#include "orders/orders.h"', "store may not depend on orders"),
    ("an example includes a header that is not installed", "examples/hello/server.c",
     '#include "rpc/rpc_int.h"', "examples use only the installed headers"),
    ("the protoc plugin includes an internal header", "tools/protoc-gen-omsrpc/main.c",
     '#include "rpc/rpc_int.h"', "rpc/rpc_int.h is internal to src/rpc"),
    ("a service includes omsd (upward)", "src/services/orderbench/orderbench_store.c",
     '#include "omsd/omsd_auth.h"', "services/orderbench may not depend on omsd"),
    ("a service includes orders (not below services)", "src/services/interop/interop_service.c",
     '#include "orders/orders.h"', "services/interop may not depend on orders"),
    ("one service includes another's internal header",
     "src/services/interop/interop_service.c",
     '#include "services/orderbench/orderbench_int.h"',
     "services/orderbench/orderbench_int.h is internal to src/services/orderbench"),
    ("omsd includes a service's internal header", "src/omsd/omsd.c",
     '#include "services/orderbench/orderbench_int.h"',
     "services/orderbench/orderbench_int.h is internal to src/services/orderbench"),
    ("omsd includes the services' shared internal header", "src/omsd/omsd.c",
     '#include "services/svc_int.h"', "services/svc_int.h is internal to src/services"),
    ("a program includes another program", "src/omsctl/omsctl.c",
     '#include "omsd/omsd_admin.h"', "omsctl may not depend on omsd"),
    ("the load generator includes the OrderBench service", "src/bench/run.c",
     '#include "services/services.h"', "bench may not depend on services"),
    ("the interop client includes an unlisted layer (store)",
     "src/interop-client/interop_client.c",
     '#include "store/store.h"', "interop-client may not depend on store"),
    ("a new layer the check does not know", "src/newlayer/x.c",
     '#include "base/log.h"', "src/newlayer: a layer check_layers.py does not know"),
    ("a new directory under services the check does not know", "src/services/newsvc/x.c",
     '#include "base/log.h"', "src/services/newsvc: a layer check_layers.py does not know"),
]

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail.strip()}" if detail else ""), flush=True)


def run(script, root):
    p = subprocess.run([sys.executable, script, "--root", root], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    script = os.path.join(a.source_dir, "scripts", "check_layers.py")
    tmp = tempfile.mkdtemp(prefix="oms-layers-")
    try:
        for top in ("src", "tools", "examples"):
            shutil.copytree(os.path.join(a.source_dir, top), os.path.join(tmp, top),
                            ignore=lambda d, names: [n for n in names if not (
                                n.endswith((".c", ".h")) or os.path.isdir(os.path.join(d, n)))])
        rc, out = run(script, tmp)
        check("the unmodified tree passes", rc == 0 and "layering ok" in out, out)
        for name, rel, line, want, *at in CASES:
            path = os.path.join(tmp, rel)
            existed = os.path.exists(path)
            saved = open(path).read() if existed else None
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a") as f:
                f.write("\n" + line + "\n")
            rc, out = run(script, tmp)
            where = at[0] if at else f"{rel}:"
            check(f"caught: {name}", rc == 1 and want in out
                  and (where in out or not existed), f"rc {rc}: {out}")
            if existed:
                with open(path, "w") as f:
                    f.write(saved)
            else:
                shutil.rmtree(os.path.dirname(path))
        rc, out = run(script, tmp)
        check("the restored tree passes again", rc == 0, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
