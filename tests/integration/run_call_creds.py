#!/usr/bin/python3
"""Call credentials of the C clients: --token, --token-file and $OMS_TOKEN.

omsctl, oms-interop-client and oms-bench put the token in every call's
"authorization: Bearer TOKEN" header (rpc_channel_config.token, a client
interceptor in src/rpc). The server is ref_server.py (python grpcio) started
with --log-metadata authorization, which logs what each call carried; per
transport (TLS, h2c):

  omsctl.flag         --token T: the Health/Check call carries "Bearer T"
  omsctl.file         --token-file F (token with surrounding whitespace)
  omsctl.env          $OMS_TOKEN
  omsctl.flag_wins    --token beats $OMS_TOKEN
  omsctl.none         no token: no authorization header at all
  interop.token       oms-interop-client --token: every call of empty_unary
                      and large_unary
  bench.token_file    oms-bench --token-file: every OrderBench call of a short run

and without a server (each exits as a usage error, never echoing the token):
  usage.both          --token and --token-file together
  usage.missing_file  --token-file of a file that does not exist
  usage.empty_file    an empty token file
  usage.bad_token     a token with a newline (not a header value)

Usage:
  run_call_creds.py --omsctl build/omsctl --client build/oms-interop-client
                    --oms-bench build/oms-bench
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omsd as h  # noqa: E402
from omsd import check, eq  # noqa: E402

TIMEOUT = 60


class Tools:
    def __init__(self, env, a):
        self.env = env
        self.omsctl = os.path.abspath(a.omsctl)
        self.client = os.path.abspath(a.client)
        self.bench = os.path.abspath(a.oms_bench)
        self.base_env = {k: v for k, v in os.environ.items()
                         if k not in ("OMS_TARGET", "OMS_CA", "OMS_TOKEN")}

    def run(self, argv, extra_env=None):
        e = dict(self.base_env)
        e.update(extra_env or {})
        p = subprocess.run(h.wrap_argv(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, cwd=self.env.workdir,
                           timeout=TIMEOUT, **h.popen_kwargs())
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        check(not any(m in err for m in h.SANITIZER_MARKERS), "sanitizer report:\n%s", err)
        return p.returncode, out, err


def ctl_target(server):
    if server.h2c:
        return ["--target", "127.0.0.1:%d" % server.port, "--h2c"]
    return ["--target", "localhost:%d" % server.port, "--ca", server.ca_path()]


def auth_lines(server, since):
    """The md lines the server logged after the first `since`: (method, value)."""
    lines = [l for l in server.log_text().splitlines() if l.startswith("md ")]
    out = []
    for l in lines[since:]:
        _, method, kv = l.split(" ", 2)
        out.append((method, kv[len("authorization="):]))
    return out


def md_count(server):
    return len([l for l in server.log_text().splitlines() if l.startswith("md ")])


def ctl_health(t, server, args, extra_env=None):
    """omsctl ... health; returns the authorization values of its calls."""
    before = md_count(server)
    rc, out, err = t.run([t.omsctl] + ctl_target(server) + list(args) + ["health"], extra_env)
    eq(rc, 0, "omsctl health exit status (stderr %r)" % err)
    check("SERVING" in out, "omsctl health printed %r", out)
    got = auth_lines(server, before)
    check(got and all(m == "/grpc.health.v1.Health/Check" for m, _ in got),
          "calls seen: %r", got)
    return [v for _, v in got]


def case_ctl_flag(t, server):
    eq(ctl_health(t, server, ["--token", "tok-flag"]), ["Bearer tok-flag"], "authorization")


def case_ctl_file(t, server):
    path = os.path.join(t.env.workdir, "token.txt")
    with open(path, "w") as f:
        f.write("  tok.file-123\n\n")
    eq(ctl_health(t, server, ["--token-file", path]), ["Bearer tok.file-123"], "authorization")


def case_ctl_env(t, server):
    eq(ctl_health(t, server, [], {"OMS_TOKEN": "tok-env"}), ["Bearer tok-env"], "authorization")


def case_ctl_flag_wins(t, server):
    eq(ctl_health(t, server, ["--token", "tok-a"], {"OMS_TOKEN": "tok-b"}), ["Bearer tok-a"],
       "authorization")


def case_ctl_none(t, server):
    eq(ctl_health(t, server, []), ["-"], "authorization (none)")


def case_interop(t, server):
    if server.h2c:
        base = ["--server_host", "127.0.0.1", "--server_port", str(server.port),
                "--use_tls", "false"]
    else:
        base = ["--server_host", "localhost", "--server_port", str(server.port),
                "--use_tls", "true", "--ca_file", server.ca_path()]
    for case in ("empty_unary", "large_unary"):
        before = md_count(server)
        rc, out, err = t.run([t.client] + base + ["--test_case", case, "--token", "tok-interop"])
        eq(rc, 0, "oms-interop-client %s (stdout %r, stderr %r)" % (case, out, err))
        got = auth_lines(server, before)
        check(len(got) >= 1 and all(v == "Bearer tok-interop" for _, v in got),
              "calls seen: %r", got)


def case_bench(t, server):
    path = os.path.join(t.env.workdir, "bench-token")
    with open(path, "w") as f:
        f.write("tok-bench\n")
    before = md_count(server)
    rc, out, err = t.run([t.bench] + ctl_target(server)
                         + ["--call", "unary", "--duration", "0.3", "--warmup", "0",
                            "--concurrency", "2", "--token-file", path])
    eq(rc, 0, "oms-bench exit status (stderr %r)" % err)
    got = auth_lines(server, before)
    check(len(got) >= 2, "few calls seen: %r", got[:5])
    bad = [x for x in got if x[1] != "Bearer tok-bench"]
    check(not bad, "%d of %d calls without the token: %r", len(bad), len(got), bad[:3])


def case_usage(t, args, want, secret=None):
    rc, out, err = t.run([t.omsctl, "--h2c", "--target", "127.0.0.1:1"] + args + ["health"])
    eq(rc, 1, "omsctl exit status (stderr %r)" % err)
    check(want in err, "stderr %r lacks %r", err, want)
    if secret:
        check(secret not in err and secret not in out, "the token was echoed: %r", err)
    # The same resolution in the two other programs: usage errors, exit 2.
    for argv in ([t.client, "--use_tls", "false", "--server_port", "1"],
                 [t.bench, "--h2c", "--target", "127.0.0.1:1"]):
        rc, out, err = t.run(argv + args)
        eq(rc, 2, "%s exit status (stderr %r)" % (os.path.basename(argv[0]), err))
        check(want in err, "%s: stderr %r lacks %r", os.path.basename(argv[0]), err, want)
        if secret:
            check(secret not in err and secret not in out, "the token was echoed: %r", err)


def main():
    p = h.common_args(__doc__.split("\n")[0])
    p.add_argument("--omsctl", required=True)
    p.add_argument("--client", required=True, help="oms-interop-client")
    p.add_argument("--oms-bench", required=True)
    args = p.parse_args()
    args.server = "ref"  # the server that shows what the clients sent
    for exe in (args.omsctl, args.client, args.oms_bench):
        if not os.access(exe, os.X_OK):
            print("not found or not executable: %s" % exe)
            print("0 passed, 1 failed")
            sys.exit(1)
    with h.Env("call_creds", args) as env:
        t = Tools(env, args)
        run = env.suite.run
        missing = os.path.join(env.workdir, "no-such-file")
        empty = os.path.join(env.workdir, "empty-token")
        with open(empty, "w") as f:
            f.write(" \n")
        run("usage.both", case_usage, t, ["--token", "x", "--token-file", empty], "not both")
        run("usage.missing_file", case_usage, t, ["--token-file", missing], "no-such-file")
        run("usage.empty_file", case_usage, t, ["--token-file", empty], "empty")
        run("usage.bad_token", case_usage, t, ["--token", "SECRET\nVALUE"], "printable",
            secret="SECRET")
        for tr in env.transports:
            server = env.server(h2c=(tr == "h2c"),
                                extra_args=["--log-metadata", "authorization"])
            run("%s.omsctl.flag" % tr, case_ctl_flag, t, server)
            run("%s.omsctl.file" % tr, case_ctl_file, t, server)
            run("%s.omsctl.env" % tr, case_ctl_env, t, server)
            run("%s.omsctl.flag_wins" % tr, case_ctl_flag_wins, t, server)
            run("%s.omsctl.none" % tr, case_ctl_none, t, server)
            run("%s.interop.token" % tr, case_interop, t, server)
            run("%s.bench.token_file" % tr, case_bench, t, server)
            env.suite.stop_server(server)


if __name__ == "__main__":
    main()
