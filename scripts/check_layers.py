#!/usr/bin/env python3
"""Checks the layering of src/ (STYLE.md §1, DESIGN.md) on every #include.

Rules, for every .c and .h under src/, tools/ and examples/:
  1. A directory includes only the layers it may depend on (LAYERS below:
     programs (omsd, omsctl, bench, interop-client) -> services -> orders ->
     store / rpc -> http2 -> http1 -> base; no upward include). A layer is a directory
     under src/, or a sub-directory listed on its own (services/interop);
     every directory under src/ must be listed.
  2. A layer's internal headers stay inside it: "X/foo_int.h", any header of
     X that includes one (orders/hub.h includes orders_int.h, so it is
     internal too) or includes a private library below, only from src/X and
     the layers under it (services/svc_int.h from services/interop).
  3. Third-party libraries stay where STYLE.md puts them (PRIVATE_LIBS below):
     nghttp2 in http2; OpenSSL in http2 and auth; SQLite and libpq in store.
  4. examples/ include only what cmake/install.cmake installs.

Why a check and not include directories: nghttp2.h, openssl/*.h and sqlite3.h
live in /usr/include, on every compiler's default search path, so no
target_include_directories/PRIVATE link can hide them; and a quoted include
resolves next to the including file first, so "../http2/http2_int.h" builds
whatever the include directories say. Only a look at the source stops both.

Prints one line per violation (file:line: rule) and exits 1 if any; 0 and a
summary otherwise. --root points at another tree (the self-test plants
violations in a copy).
"""
import argparse
import os
import re
import sys

# Layer -> the layers its files may include (itself always). Generated code
# (google/, grpc/, oms/ from proto/) is allowed where GENERATED says so.
# Below the line are the test services and, on top, the programs: nothing
# includes a program, and programs do not include each other.
LAYERS = {
    "base": set(),
    # http2 serves HTTP/1.1 on its port with http1's request parser
    # (http1/parse.h); http1 knows nothing of http2.
    "http2": {"base", "http1"},
    "http1": {"base"},
    "rpc": {"base", "http2", "pbjson"},  # pbjson: Connect's JSON messages
    "store": {"base"},
    "auth": {"base"},
    "authz": {"base", "rpc"},
    "authn": {"base", "rpc", "auth", "authz"},
    "metrics": {"base", "rpc"},
    # protobuf's canonical JSON mapping on protobuf-c descriptors (jansson)
    "pbjson": {"base"},
    # the live order page's files, embedded at build time (web/)
    "web": {"base"},
    "orders": {"base", "rpc", "store"},
    # grpc.testing.TestService and oms.bench.v1.OrderBench; services/ holds
    # what they share (services.h, svc_int.h).
    "services": {"base", "rpc"},
    "services/interop": {"base", "rpc", "services"},
    "services/orderbench": {"base", "rpc", "services"},
    # The programs.
    "omsd": {"base", "http1", "http2", "rpc", "store", "auth", "authz", "authn", "metrics",
             "orders", "services", "web"},
    "omsctl": {"base", "rpc", "auth", "pbjson"},
    "bench": {"base", "rpc"},  # oms-bench, the load generator
    "interop-client": {"base", "rpc"},
}
GENERATED = {"google", "grpc", "oms"}  # proto packages' include roots
GENERATED_USERS = {"rpc", "orders", "services/interop", "services/orderbench", "omsd", "omsctl",
                   "bench", "interop-client"}

# Third-party header (prefix) -> the layers that may include it.
PRIVATE_LIBS = {
    "nghttp2/": {"http2"},
    "openssl/": {"http2", "auth"},
    "sqlite3.h": {"store"},
    "libpq-fe.h": {"store"},
    "zlib.h": {"rpc"},
    "jansson.h": {"auth", "pbjson"},
    "http_parser.h": {"http1"},
}

# What cmake/install.cmake installs: all an example may include from oms.
INSTALLED = {"base/export.h", "base/log.h", "http2/http2.h", "rpc/rpc.h", "rpc/rpc_client.h",
             "rpc/health.h", "rpc/reflection.h", "rpc/trace.h", "metrics/metrics.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(dirpath):
    """The layer of a directory given relative to src/ ("services/interop",
    "rpc"): the longest LAYERS key it is or lies under, or None."""
    parts = dirpath.split("/") if dirpath else []
    for n in range(len(parts), 0, -1):
        key = "/".join(parts[:n])
        if key in LAYERS:
            return key
    return None


def within(layer, outer):
    """True if layer is outer or a layer under it (services/interop in services)."""
    return layer == outer or (layer is not None and layer.startswith(outer + "/"))


def private_lib(inc):
    """The PRIVATE_LIBS key inc belongs to, or None."""
    for lib in PRIVATE_LIBS:
        if inc == lib or (lib.endswith("/") and inc.startswith(lib)):
            return lib
    return None


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1), m.group(2)


def sources(top):
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(root, f)


def internal_headers(src):
    """Layer-relative names ("orders/hub.h") of every internal header: *_int.h,
    a header that includes a private library (so http2.h including nghttp2.h
    would make it internal, and rpc's include of it an error), and, to a
    fixed point, any header that includes an internal one."""
    internal = set()
    headers = {}
    for path in sources(src):
        if not path.endswith(".h"):
            continue
        name = os.path.relpath(path, src).replace(os.sep, "/")
        d = os.path.dirname(name)
        if not d:
            continue
        incs = list(includes(path))
        headers[name] = [inc if "/" in inc else f"{d}/{inc}" for _, q, inc in incs if q == '"']
        if name.endswith("_int.h") or any(private_lib(inc) for _, _, inc in incs):
            internal.add(name)
    changed = True
    while changed:
        changed = False
        for name, incs in headers.items():
            # Within a layer only: rpc.h including an http2 internal is rpc.h's
            # violation (reported there), not a reason to hide rpc.h.
            layer = layer_of(os.path.dirname(name))
            if name not in internal and any(i in internal and
                                            layer_of(os.path.dirname(i)) == layer
                                            for i in incs):
                internal.add(name)
                changed = True
    return internal


def check(root):
    src = os.path.join(root, "src")
    internal = internal_headers(src)
    problems = []
    files = 0
    for top in ("src", "tools", "examples"):
        d = os.path.join(root, top)
        if not os.path.isdir(d):
            continue
        for path in sources(d):
            files += 1
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            layer = layer_of("/".join(parts[1:-1])) if top == "src" else None
            for n, quote, inc in includes(path):
                where = f"{rel}:{n}: #include {quote}{inc}{'>' if quote == '<' else quote}"
                lib = private_lib(inc)
                if lib is not None and layer not in PRIVATE_LIBS[lib]:
                    problems.append(f"{where}: {lib.rstrip('/')} is private to "
                                    f"{', '.join(sorted(PRIVATE_LIBS[lib]))} (STYLE.md §1)")
                if quote != '"':
                    continue
                # Resolve "../x/y.h" and same-directory includes to "dir/file"
                # relative to src/.
                target = os.path.normpath(os.path.join(os.path.dirname(rel), inc))
                tparts = target.split(os.sep)
                if len(tparts) >= 3 and tparts[0] == "src" and os.path.exists(
                        os.path.join(root, target)):
                    name = "/".join(tparts[1:])
                elif "/" in inc and inc.split("/")[0] in LAYERS:
                    name = os.path.normpath(inc)
                else:
                    name = None  # local to tools/examples, or generated
                if top == "examples":
                    if name is not None and name not in INSTALLED:
                        problems.append(f"{where}: examples use only the installed headers")
                    continue
                if name is None:
                    if top == "src" and inc.split("/")[0] in GENERATED and \
                            layer not in GENERATED_USERS:
                        problems.append(f"{where}: {layer} does not use generated code")
                    continue
                tlayer = layer_of(os.path.dirname(name)) or name.split("/")[0]
                if top != "src":
                    if name in internal:
                        problems.append(f"{where}: {name} is internal to src/{tlayer}")
                    continue
                if tlayer == layer:
                    continue
                if name in internal and not within(layer, tlayer):
                    problems.append(f"{where}: {name} is internal to src/{tlayer}")
                elif name not in internal and tlayer not in LAYERS.get(layer, set()):
                    problems.append(f"{where}: {layer} may not depend on {tlayer} "
                                    "(layers point down: DESIGN.md)")
    unknown = sorted(os.path.relpath(r, src).replace(os.sep, "/")
                     for r, _, _ in os.walk(src) if r != src and
                     os.path.relpath(r, src).replace(os.sep, "/") not in LAYERS)
    for d in unknown:
        problems.append(f"src/{d}: a layer check_layers.py does not know; add it to LAYERS")
    return files, len(internal), problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    a = ap.parse_args()
    files, internal, problems = check(a.root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering violations in {files} files")
        return 1
    print(f"layering ok: {files} files, {internal} internal headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
