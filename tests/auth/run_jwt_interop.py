#!/usr/bin/python3
"""src/auth against another JWT implementation (PyJWT, Debian's python3-jwt).

Both ways: tokens minted by `omsctl token` must verify with PyJWT, and tokens
(and a JWKS document) made by PyJWT must verify with src/auth, through
tests/auth/jwt_check.c. Also the refusals on tokens PyJWT can produce
(alg none, expired, wrong iss/aud, unknown kid) and the HS256-with-the-RSA-
public-key forgery, built here with hmac since PyJWT refuses to make it.

    /usr/bin/python3 tests/auth/run_jwt_interop.py --omsctl BIN --check BIN --keys DIR

Prints one PASS/FAIL line per case and "N passed, M failed"; exit 1 on any
failure, PyJWT or cryptography missing included (scripts/deps.sh installs them).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
except ImportError as e:  # pragma: no cover
    print("FAIL setup.imports: %s (apt install python3-jwt python3-cryptography, or run "
          "scripts/deps.sh)" % e)
    print("0 passed, 1 failed")
    sys.exit(1)

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS", name)
    else:
        failed += 1
        print("FAIL", name, detail)
    return ok


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumbprint(jwk):
    """RFC 7638 over the required members of a public JWK (dict)."""
    req = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    canon = {m: jwk[m] for m in req[jwk["kty"]]}
    text = json.dumps(canon, separators=(",", ":"), sort_keys=True).encode()
    return b64u(hashlib.sha256(text).digest())


def to_jwk(alg, pub):
    cls = {"RS256": jwt.algorithms.RSAAlgorithm, "ES256": jwt.algorithms.ECAlgorithm,
           "EdDSA": jwt.algorithms.OKPAlgorithm}[alg]
    return json.loads(cls.to_jwk(pub))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--omsctl", required=True)
    ap.add_argument("--check", required=True)
    ap.add_argument("--keys", required=True, help="tests/auth/keys")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="oms-jwt-interop-")
    try:
        return run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    secret = b"interop-secret-0123456789abcdefghij"
    secret_file = os.path.join(tmp, "secret")
    with open(secret_file, "wb") as f:
        f.write(secret + b"\n")

    algs = {"RS256": "rsa", "ES256": "ec", "EdDSA": "ed25519"}
    priv, pub, pub_pem = {}, {}, {}
    for alg, name in algs.items():
        with open(os.path.join(a.keys, name + ".key"), "rb") as f:
            priv[alg] = f.read()
        with open(os.path.join(a.keys, name + ".pub"), "rb") as f:
            pub_pem[alg] = f.read()
        pub[alg] = serialization.load_pem_public_key(pub_pem[alg])
    bundle = os.path.join(tmp, "pubs.pem")
    with open(bundle, "wb") as f:
        f.write(b"".join(pub_pem.values()))

    def c_verify(tok, *extra):
        r = subprocess.run([a.check, *extra, tok], capture_output=True, text=True)
        return r.returncode, r.stdout.strip()

    # --- omsctl token -> PyJWT --------------------------------------------------
    for alg in list(algs) + ["HS256"]:
        key = secret_file if alg == "HS256" else os.path.join(a.keys, algs[alg] + ".key")
        r = subprocess.run([a.omsctl, "token", "--key", key, "--sub", "alice", "--scope",
                            "orders:read orders:write", "--customer", "c-1", "--iss", "oms",
                            "--aud", "oms-api", "--ttl", "10m"], capture_output=True, text=True)
        if not check("omsctl token %s exits 0" % alg, r.returncode == 0, r.stderr):
            continue
        tok = r.stdout.strip()
        vkey = secret if alg == "HS256" else pub[alg]
        try:
            claims = jwt.decode(tok, vkey, algorithms=[alg], audience="oms-api", issuer="oms")
            hdr = jwt.get_unverified_header(tok)
        except Exception as e:  # noqa: BLE001
            check("PyJWT verifies omsctl's %s token" % alg, False, repr(e))
            continue
        check("PyJWT verifies omsctl's %s token" % alg,
              claims["sub"] == "alice" and claims["scope"] == "orders:read orders:write" and
              claims["customer_id"] == "c-1" and claims["exp"] - claims["iat"] == 600 and
              abs(claims["iat"] - time.time()) < 60 and hdr["alg"] == alg, str(claims))
        if alg != "HS256":
            check("omsctl's %s kid is the RFC 7638 thumbprint" % alg,
                  hdr.get("kid") == thumbprint(to_jwk(alg, pub[alg])), str(hdr))
        else:
            check("omsctl's HS256 token has no kid", "kid" not in hdr, str(hdr))
        # and src/auth agrees on it
        extra = ["--secret", secret_file] if alg == "HS256" else ["--keys", bundle]
        rc, out = c_verify(tok, *extra, "--iss", "oms", "--aud", "oms-api")
        check("src/auth verifies omsctl's %s token" % alg,
              rc == 0 and "scopes=orders:read,orders:write" in out, out)

    # omsctl token's refusals and --json
    def omsctl(*args):
        return subprocess.run([a.omsctl, *args], capture_output=True, text=True)
    ec_key = os.path.join(a.keys, "ec.key")
    short = os.path.join(tmp, "short")
    with open(short, "wb") as f:
        f.write(b"0123456789abcdef0123456789abcde\n")  # 31 bytes
    for name, args in [
            ("a key of another type", ["--key", ec_key, "--alg", "RS256", "--sub", "a"]),
            ("HS256 with a PEM key", ["--key", ec_key, "--alg", "HS256", "--sub", "a"]),
            ("a public key", ["--key", os.path.join(a.keys, "ec.pub"), "--sub", "a"]),
            ("a short secret", ["--key", short, "--sub", "a"]),
            ("a secret file for ES256", ["--key", secret_file, "--sub", "a", "--alg", "ES256"]),
            ("no --sub", ["--key", ec_key]),
            ("a bad --ttl", ["--key", ec_key, "--sub", "a", "--ttl", "1y"]),
            ("a zero --ttl", ["--key", ec_key, "--sub", "a", "--ttl", "0"]),
            ("an unknown --alg", ["--key", ec_key, "--sub", "a", "--alg", "none"]),
            ("a missing key file", ["--key", os.path.join(tmp, "nope"), "--sub", "a"])]:
        r = omsctl("token", *args)
        check("omsctl token refuses %s (exit 1, a reason)" % name,
              r.returncode == 1 and r.stdout == "" and r.stderr.startswith("omsctl: "),
              "%d %r" % (r.returncode, r.stderr))
    r = omsctl("--json", "token", "--key", ec_key, "--sub", "a", "--ttl", "2d", "--kid", "mine")
    try:
        j = json.loads(r.stdout)
        hdr, claims = jwt.get_unverified_header(j["token"]), jwt.decode(
            j["token"], pub["ES256"], algorithms=["ES256"])
        ok = hdr["kid"] == "mine" and claims["exp"] == j["expires_at"] and \
            claims["exp"] - claims["iat"] == 2 * 86400
    except (ValueError, KeyError, jwt.PyJWTError) as e:
        ok, r.stderr = False, repr(e)
    check("omsctl --json token: token, expires_at, --kid, --ttl 2d", ok, r.stdout + r.stderr)

    # --- PyJWT -> src/auth --------------------------------------------------------
    now = int(time.time())
    payload = {"sub": "bob", "iss": "idp", "aud": ["other", "oms-api"], "iat": now, "nbf": now,
               "exp": now + 300, "scope": "inventory:read", "customer_id": "c-9"}
    for alg in algs:
        tok = jwt.encode(payload, priv[alg], algorithm=alg)
        rc, out = c_verify(tok, "--keys", bundle, "--iss", "idp", "--aud", "oms-api")
        check("src/auth verifies PyJWT's %s token" % alg,
              rc == 0 and "alg=%s sub=bob" % alg in out and "customer=c-9" in out and
              "scopes=inventory:read" in out, out)
        rc, out = c_verify(tok, "--keys", bundle, "--iss", "other-idp")
        check("PyJWT %s token, wrong issuer" % alg, rc == 1 and out.startswith("fail -7"), out)
        rc, out = c_verify(tok, "--keys", bundle, "--aud", "nope")
        check("PyJWT %s token, wrong audience" % alg, rc == 1 and out.startswith("fail -8"), out)
        old = dict(payload, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        rc, out = c_verify(jwt.encode(old, priv[alg], algorithm=alg), "--keys", bundle)
        check("PyJWT %s token, expired" % alg, rc == 1 and out.startswith("fail -5"), out)

    tok = jwt.encode(payload, secret, algorithm="HS256")
    rc, out = c_verify(tok, "--secret", secret_file)
    check("src/auth verifies PyJWT's HS256 token", rc == 0 and "alg=HS256" in out, out)
    rc, out = c_verify(tok, "--keys", bundle)
    check("PyJWT HS256 token refused without a secret", rc == 1 and out.startswith("fail -2"), out)
    rc, out = c_verify(jwt.encode(payload, None, algorithm="none"), "--keys", bundle, "--secret",
                       secret_file)
    check("PyJWT alg none refused", rc == 1 and out.startswith("fail -2"), out)

    # HS256 keyed with the RSA public key's PEM text (the algorithm confusion
    # forgery; PyJWT refuses to make it, so by hand).
    for key in (pub_pem["RS256"], pub_pem["RS256"].strip()):
        msg = (b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
               b64u(json.dumps(payload).encode()))
        forged = msg + "." + b64u(hmac.new(key, msg.encode(), hashlib.sha256).digest())
        rc, out = c_verify(forged, "--keys", bundle)
        check("HS256 forged with the RSA public key refused", rc == 1 and
              out.startswith("fail -2"), out)

    # --- a JWKS made by PyJWT -------------------------------------------------------
    keys = []
    for i, alg in enumerate(algs):
        jwk = to_jwk(alg, pub[alg])
        jwk.update(kid="k%d" % i, use="sig", alg=alg)
        keys.append(jwk)
    jwks = os.path.join(tmp, "jwks.json")
    with open(jwks, "w") as f:
        json.dump({"keys": keys}, f, indent=2)
    r = subprocess.run([a.check, "--keys", jwks], capture_output=True, text=True)
    check("PyJWT's JWKS loads (3 keys)", r.returncode == 0 and "3 keys" in r.stdout, r.stdout)
    for i, alg in enumerate(algs):
        tok = jwt.encode(payload, priv[alg], algorithm=alg, headers={"kid": "k%d" % i})
        rc, out = c_verify(tok, "--keys", jwks)
        check("JWKS kid k%d verifies PyJWT's %s token" % (i, alg),
              rc == 0 and "kid=k%d" % i in out, out)
        tok = jwt.encode(payload, priv[alg], algorithm=alg, headers={"kid": "k9"})
        rc, out = c_verify(tok, "--keys", jwks)
        check("unknown kid refused (%s)" % alg, rc == 1 and out.startswith("fail -4"), out)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
