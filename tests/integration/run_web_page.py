#!/usr/bin/python3
"""The live order page (issue 17 §5) against the real omsd: its files over
HTTP/2 (curl), then a real browser (Debian's headless chromium over the
DevTools protocol, cdp.py) using it over TLS: the page lists orders, shows
an order made elsewhere within a second, creates, confirms, ships and
cancels, resumes after a server restart without missing an event (changes
made while it was away arrive by since_seq replay), works with a keyboard
and on a phone-sized screen, and with authentication on once a token is
entered. --web off and --web-root are checked too. A screenshot of the page
is kept in $OMS_IT_ARTIFACTS (default ./artifacts).

    run_web_page.py --omsd build/omsd [--source-dir .] [--gen DIR]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402
import omsd as h  # noqa: E402
import orders_it as oi  # noqa: E402
from omsd import check, eq  # noqa: E402

CURL = shutil.which("curl") or "/usr/bin/curl"
SCOPES = "orders:admin customers:read inventory:read"


def curl(server, path, *args):
    """(status, headers dict, body) of a request to server over HTTP/2."""
    scheme = "https" if server.transport == "tls" else "http"
    argv = [CURL, "-sS", "-o", "-", "-D", "/dev/stderr", "--max-time", "20"]
    argv += ["--http2", "--cacert", server.ca_path()] if scheme == "https" else [
        "--http2-prior-knowledge"]
    r = subprocess.run(argv + list(args) + ["%s://127.0.0.1:%d%s" % (scheme, server.port, path)],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "curl failed: %s", r.stderr.decode(errors="replace")[-500:])
    lines = r.stderr.decode(errors="replace").splitlines()
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, r.stdout


def files_over_http2(env):
    s = oi.start_server(env, "files", h2c=True)
    st, hd, body = curl(s, "/")
    eq(st, 200, "GET /")
    eq(hd.get("content-type"), "text/html; charset=utf-8", "content-type")
    check(b"<!doctype html>" in body and b"/app.js" in body, "the page: %r", body[:200])
    check("default-src 'none'" in hd.get("content-security-policy", ""), "CSP: %s", hd)
    eq(hd.get("x-content-type-options"), "nosniff", "nosniff")
    etag = hd.get("etag")
    check(etag and etag.startswith('"'), "ETag: %s", etag)
    st, hd, body = curl(s, "/", "-H", "if-none-match: " + etag)
    eq(st, 304, "If-None-Match")
    eq(body, b"", "304 body")
    st, hd, body = curl(s, "/app.js", "-I")  # curl -I prints the headers as its body
    eq(st, 200, "HEAD /app.js")
    check(body.startswith(b"HTTP/2 200") and b"<" not in body, "HEAD sent a body: %r", body[-80:])
    check(int(hd.get("content-length", "0")) > 1000, "HEAD length: %s", hd)
    for bad in ("/nope.html", "/../etc/passwd", "/%2e%2e/x", "/.git/config", "/app.js/"):
        st, _, _ = curl(s, bad, "--path-as-is")
        eq(st, 404, "GET %s" % bad)
    st, _, _ = curl(s, "/", "-X", "DELETE")
    eq(st, 405, "DELETE /")
    # A Connect GET still reaches its method (the page's rule is for other paths).
    st, hd, body = curl(s, "/oms.v1.CustomerService/GetCustomer?encoding=json&message=%7B%7D")
    eq(st, 400, "Connect GET with an empty id")
    check(b"invalid_argument" in body, "Connect error body: %r", body)
    env.suite.stop_server(s)


def files_over_http1(env):
    """The page over HTTP/1.1 too: ALPN http/1.1 on TLS, and cleartext."""
    for h2c in (False, True):
        s = oi.start_server(env, "files-h1-%s" % ("h2c" if h2c else "tls"), h2c=h2c)
        scheme = "http" if h2c else "https"
        url = "%s://127.0.0.1:%d" % (scheme, s.port)
        argv = [CURL, "-sS", "--http1.1", "--max-time", "20", "-o", "/dev/null", "-w",
                "%{http_code} %{http_version} %{content_type} %{num_connects}\\n"]
        if not h2c:
            argv += ["--cacert", s.ca_path()]
        r = subprocess.run(argv + ["-o", "/dev/null", "-o", "/dev/null", url + "/",
                                   url + "/app.js", url + "/app.css"],
                           capture_output=True, timeout=30, text=True)
        eq(r.returncode, 0, "curl --http1.1: %s" % r.stderr[-300:])
        got = r.stdout.split("\n")[:3]
        eq([g.split(" ")[:3] for g in got],
           [["200", "1.1", "text/html;"], ["200", "1.1", "text/javascript;"],
            ["200", "1.1", "text/css;"]], "the page's files over HTTP/1.1")
        eq([g.split(" ")[-1] for g in got], ["1", "0", "0"], "one kept-alive connection")
        env.suite.stop_server(s)


def web_off_and_root(env):
    s = oi.start_server(env, "web-off", h2c=True, extra=["--web", "off"])
    st, _, body = curl(s, "/")
    eq(st, 405, "GET / with --web off")
    env.suite.stop_server(s)
    root = tempfile.mkdtemp(prefix="webroot-", dir=env.workdir)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><p>dev copy</p>")
    s = oi.start_server(env, "web-root", h2c=True, extra=["--web-root", root])
    st, _, body = curl(s, "/")
    eq((st, body), (200, b"<!doctype html><p>dev copy</p>"), "--web-root")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><p>edited</p>")
    st, _, body = curl(s, "/")
    eq(body, b"<!doctype html><p>edited</p>", "read again on each request")
    st, _, _ = curl(s, "/app.js")
    eq(st, 404, "a file the directory does not have")
    env.suite.stop_server(s)


def rows(page):
    """{order id: status} as the page shows them."""
    return page.eval("""Object.fromEntries([...document.querySelectorAll('#orders tbody tr')]
        .map(tr => [tr.id.replace('order-', ''), tr.querySelector('.status').textContent]))""")


def wait_status(page, oid, status, timeout=10):
    page.wait("(document.querySelector('#order-%s .status') || {}).textContent === '%s'"
              % (oid, status), timeout=timeout, what="order %s %s on the page" % (oid, status))


def click(page, oid, label):
    page.eval("document.querySelector('#order-%s button[aria-label^=\"%s \"]').click()"
              % (oid, label))


def state(page):
    return page.eval("document.getElementById('stream-state').className")


def screenshot(page, name):
    """Saves the page as PNG under $OMS_IT_ARTIFACTS (default ./artifacts,
    the build tree's test directory under ctest); returns the path."""
    import base64
    d = os.environ.get("OMS_IT_ARTIFACTS") or os.path.join(os.getcwd(), "artifacts")
    os.makedirs(d, exist_ok=True)
    png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    check(png.startswith(b"\x89PNG") and len(png) > 5000, "not a screenshot: %d bytes", len(png))
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(png)
    return path


def browser_session(env):
    s = oi.start_server(env, "page")
    port = s.port  # the restart below takes the same one: the page's URL
    api = oi.api_for(env, s)
    cust = api.new_customer(name="Grace <b>Hopper</b>")  # shown as text, never markup
    sku = api.new_product(1250, 100)
    early = api.create_order(cust.id, [(sku, 2)])

    with cdp.Browser(env.workdir) as b:
        page = b.open("https://127.0.0.1:%d/" % port)
        page.wait("document.getElementById('stream-state').classList.contains('state-live')",
                  what="the live stream")
        wait_status(page, early.id, "PENDING")
        # the choices load beside the stream: wait for this test's customer and SKU
        page.wait("document.querySelector('#customer option[value=\"%s\"]') && "
                  "document.querySelector('#sku option[value=\"%s\"]')" % (cust.id, sku),
                  what="the customer and product choices")
        check(page.eval("document.querySelector('#customer').textContent.includes("
                        "'Grace <b>Hopper</b>')"), "the customer's name as text")
        check(not page.eval("document.querySelector('#customer b')"), "no markup injected")

        # An order made elsewhere shows up within a second.
        t0 = time.monotonic()
        other = api.create_order(cust.id, [(sku, 1)])
        wait_status(page, other.id, "PENDING")
        lag = time.monotonic() - t0
        print("# an order made over gRPC appeared on the page after %.0f ms" % (lag * 1000))
        check(lag < 1.0 or oi.is_sanitized(env.args.omsd), "took %.2fs", lag)

        # Create from the page, with the keyboard: Enter in the quantity field.
        page.eval("""(() => { const f = document.getElementById('create-form');
            f.customer.value = %r; f.sku.value = %r; f.qty.value = '3'; f.qty.focus(); })()"""
                  % (cust.id, sku))
        before = set(rows(page))
        page.call("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter",
                  windowsVirtualKeyCode=13, text="\r")
        page.call("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter",
                  windowsVirtualKeyCode=13)
        page.wait("document.querySelectorAll('#orders tbody tr').length > %d" % len(before),
                  what="the order made on the page")
        made = [o for o in rows(page) if o not in before]
        eq(len(made), 1, "orders made by one Enter")
        mine = made[0]
        o = api.get_order(mine)
        eq((o.customer_id, o.lines[0].sku, o.lines[0].quantity, o.total_cents),
           (cust.id, sku, 3, 3750), "the stored order")

        # Confirm, ship, and cancel from the page; the server agrees.
        click(page, mine, "Confirm")
        wait_status(page, mine, "CONFIRMED")
        click(page, mine, "Ship")
        wait_status(page, mine, "SHIPPED")
        click(page, other.id, "Cancel")
        wait_status(page, other.id, "CANCELLED")
        eq(api.get_order(mine).status, api.opb.ORDER_STATUS_SHIPPED, "server: shipped")
        eq(api.get_order(other.id).status, api.opb.ORDER_STATUS_CANCELLED, "server: cancelled")
        # A change the page did not make, with a stale version: the page's
        # Confirm of `early` now fails ABORTED and it shows the server's state.
        api.update(early.id, api.opb.ORDER_STATUS_CONFIRMED)
        wait_status(page, early.id, "CONFIRMED")
        seq_before = int(page.eval("document.body.dataset.lastSeq"))
        shot = screenshot(page, "web_page.png")
        print("# screenshot: %s" % shot)

        # The server goes away: the page says so, and resumes when it is back.
        env.suite.stop_server(s)
        page.wait("document.getElementById('stream-state').classList.contains('state-down') ||"
                  "document.getElementById('stream-state').classList.contains('state-connecting')",
                  what="the page noticing the server is gone")
        s2 = oi.start_server(env, "page", port=port, incarnation=1)
        api.close()
        api = oi.api_for(env, s2)
        # Changes made right away, most likely before the page is back: it
        # must learn of them from the replay (since_seq), not from a new list.
        while_away = api.create_order(cust.id, [(sku, 4)])
        api.cancel(early.id)
        wait_status(page, while_away.id, "PENDING", timeout=30)
        wait_status(page, early.id, "CANCELLED", timeout=30)
        page.wait("document.getElementById('stream-state').classList.contains('state-live')",
                  what="live again")
        seq_after = int(page.eval("document.body.dataset.lastSeq"))
        eq(seq_after, seq_before + 2, "every event after the restart, none twice")
        check(not page.errors, "page errors: %s", page.errors)

        # A phone-sized screen: no horizontal scrolling, orders as cards.
        page.call("Emulation.setDeviceMetricsOverride", width=375, height=740,
                  deviceScaleFactor=2, mobile=True)
        page.wait("document.documentElement.scrollWidth <= 375", what="no horizontal scroll")
        eq(page.eval("getComputedStyle(document.querySelector('#orders tbody tr')).display"),
           "block", "orders as cards on a phone")
        # Every action is a real, focusable button with a name.
        check(page.eval("[...document.querySelectorAll('button')].every(b => b.tabIndex >= 0"
                        " && (b.getAttribute('aria-label') || b.textContent).trim())"),
              "buttons reachable by keyboard and named")
    api.close()
    env.suite.stop_server(s2)


def with_authentication(env):
    secret = os.urandom(32)
    path = os.path.join(env.workdir, "jwt.secret")
    with open(path, "wb") as f:
        f.write(secret)
    s = oi.start_server(env, "page-auth", extra=["--jwt-secret-file", path])
    import jwt
    now = int(time.time())
    tok = jwt.encode({"sub": "web-test", "iat": now - 2, "exp": now + 600, "scope": SCOPES},
                     secret, algorithm="HS256")
    with cdp.Browser(env.workdir) as b:
        page = b.open("https://127.0.0.1:%d/" % s.port)
        page.wait("document.getElementById('stream-state').textContent === 'not authorized'",
                  what="the page asking for a token")
        page.eval("document.getElementById('token').value = %r;"
                  "document.querySelector('#auth-form button').click()" % tok)
        page.wait("document.getElementById('stream-state').classList.contains('state-live')",
                  what="live with the token")
        page.wait("document.querySelectorAll('#sku option').length > 0",
                  what="products listed with the token")
        check(page.eval("sessionStorage.getItem('oms.token') === %r" % tok),
              "the token kept for the tab only")
    env.suite.stop_server(s)


def main():
    p = h.common_args(__doc__)
    args = p.parse_args()
    with h.Env("web_page", args) as env:
        env.suite.run("files_over_http2", files_over_http2, env)
        env.suite.run("files_over_http1", files_over_http1, env)
        env.suite.run("web_off_and_root", web_off_and_root, env)
        env.suite.run("browser_session", browser_session, env)
        env.suite.run("with_authentication", with_authentication, env)


if __name__ == "__main__":
    main()
