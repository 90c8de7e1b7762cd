"""A headless Chromium driven over the DevTools protocol, for the web page's
browser tests (Debian's chromium and python3-websocket; no npm).

    with Browser(workdir) as b:
        page = b.open("https://127.0.0.1:PORT/")
        page.wait("document.querySelectorAll('#orders tbody tr').length > 0")
        page.eval("document.querySelector('#create-btn').click()")

wait() polls the expression inside the page (every 50 ms, up to a timeout)
and returns its first truthy value: a wait on a condition, not a sleep.
Self-signed test certificates are accepted (--ignore-certificate-errors).
Console errors and uncaught exceptions of the page are collected in
page.errors.
"""

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time

import websocket

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LISTEN_RE = re.compile(r"DevTools listening on (ws://\S+)")


class CdpError(Exception):
    pass


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session
        self.errors = []

    def call(self, method, **params):
        return self.b.call(method, params, session=self.session)

    def eval(self, expr, timeout=30):
        r = self.b.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True,
                                             "returnByValue": True},
                        session=self.session, timeout=timeout)
        if "exceptionDetails" in r:
            raise CdpError("page exception: %s" % json.dumps(r["exceptionDetails"])[:600])
        return r.get("result", {}).get("value")

    def wait(self, cond, timeout=20, what=None):
        expr = """new Promise((resolve) => {
            const end = Date.now() + %d;
            const tick = () => {
                let v; try { v = (%s); } catch (e) { v = undefined; }
                if (v) return resolve({ok: v});
                if (Date.now() > end) return resolve({timeout: true});
                setTimeout(tick, 50);
            };
            tick();
        })""" % (int(timeout * 1000), cond)
        r = self.eval(expr, timeout=timeout + 10)
        if not r or r.get("timeout"):
            raise CdpError("timed out after %ss waiting for %s" % (timeout, what or cond))
        return r["ok"]


class Browser:
    def __init__(self, workdir, width=1000, height=800):
        self.workdir = workdir
        self.size = (width, height)
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=self.workdir)
        argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                "--user-data-dir=" + self.profile, "--ignore-certificate-errors",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only",
                "--window-size=%d,%d" % self.size, "about:blank"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        url = self._read_url(timeout=60)
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        return self

    def _read_url(self, timeout):
        buf = b""
        end = time.monotonic() + timeout
        fd = self.proc.stderr.fileno()
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            m = LISTEN_RE.search(buf.decode(errors="replace"))
            if m:
                return m.group(1)
        raise CdpError("chromium did not start: %s" % buf.decode(errors="replace")[-2000:])

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.settimeout(timeout)
        self.ws.send(json.dumps(msg))
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise CdpError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            self._event(r)

    def _event(self, r):
        self.events.append(r)
        page = getattr(self, "page", None)
        if not page or r.get("sessionId") != page.session:
            return
        if r.get("method") == "Runtime.exceptionThrown":
            page.errors.append(json.dumps(r["params"]["exceptionDetails"])[:500])
        elif r.get("method") == "Runtime.consoleAPICalled" and r["params"]["type"] == "error":
            page.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                        for a in r["params"]["args"]))

    def open(self, url):
        t = self.call("Target.createTarget", {"url": "about:blank"})
        s = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True})
        self.page = Page(self, s["sessionId"])
        self.page.call("Runtime.enable")
        self.page.call("Page.enable")
        self.page.call("Page.navigate", url=url)
        self.page.wait("document.readyState === 'complete'", what="the page to load")
        return self.page

    def __exit__(self, et, ev, tb):
        try:
            if self.ws:
                self.ws.close()
        finally:
            if self.proc and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, 15)
                    self.proc.wait(10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
                    self.proc.wait(10)
            if self.proc:
                self.proc.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)
