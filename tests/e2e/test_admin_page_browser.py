"""The settings page in a real browser (issue 12): headless Chromium (Debian's chromium), driven
over the DevTools protocol with python3-websocket, selects Request and clicks Save, and the next
audit lines are at request level; Chromium without a client certificate is refused by the
auditor's TLS handshake. The browser reaches the page through a small local proxy in this test
that presents the admin's client certificate to the auditor (as a browser with the bundle
installed would).

MAT_SCREENSHOT=FILE also saves a screenshot of the page there (docs/admin-page.png is one).

Real nginx, real BPF: needs root (see conftest.py)."""

import base64
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import LICENSE_KEY, _register, Auditor, free_port, require, stop_process, wait_until
from test_admin_api import Admin, line_for, post_items

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def admin(tmp_path, environment_ok):
    return Admin(tmp_path)


class ClientCertProxy:
    """http://127.0.0.1:PORT/... -> https://auditor/... with the admin's client certificate."""

    def __init__(self, admin: Admin, who="admin"):
        ctx = ssl.create_default_context(cafile=str(admin.pki / "ca.pem"))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(admin.pki / f"{who}.pem"), str(admin.pki / f"{who}.key"))
        target = admin.port

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPSConnection("127.0.0.1", target, context=ctx, timeout=20)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept")}
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() in ("content-type", "cache-control"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Chromium:
    """Headless Chromium with a fresh profile, driven over the DevTools protocol."""

    def __init__(self, tmp: Path):
        import websocket
        self.tmp = tmp
        self.debug_port = free_port()
        profile = tmp / "chromium-profile"
        profile.mkdir()
        self.log = open(tmp / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--ignore-certificate-errors",
             f"--user-data-dir={profile}", f"--remote-debugging-port={self.debug_port}",
             "--remote-allow-origins=*", "--window-size=1100,760", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)}, start_new_session=True)
        pages = []

        def page_listed():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.debug_port}/json/list",
                                            timeout=2) as r:
                    pages[:] = [t for t in json.load(r) if t.get("type") == "page"]
                return bool(pages)
            except OSError:
                return self.proc.poll() is not None

        if not wait_until(page_listed, 30, 0.2) or not pages:
            self.stop()
            pytest.fail("chromium did not start:\n" + self.logs(), pytrace=False)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1100, height=760,
                  deviceScaleFactor=1, mobile=False)

    def logs(self):
        try:
            return (self.tmp / "chromium.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise TimeoutError(method)

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def navigate(self, url):
        """Page.navigate's answer: errorText is set when the page could not be loaded."""
        return self.call("Page.navigate", url=url)

    def click(self, element_id):
        """A real mouse click in the middle of the element."""
        box = self.eval(f"(() => {{ const e = document.getElementById({json.dumps(element_id)});"
                        "e.scrollIntoView(); const r = e.getBoundingClientRect();"
                        "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                      button="left", clickCount=1)

    def screenshot(self, path: Path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def stop(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def chromium(tmp_path, environment_ok):
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (Debian's chromium package)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        require(False, "python3-websocket is needed to drive chromium")
    browser = Chromium(tmp_path)
    yield browser
    browser.stop()


def test_page_in_chromium_sets_request_level(admin, start_server, auditor_binary, request,
                                             chromium):
    nginx = start_server("nginx")
    aud = Auditor(auditor_binary, admin.args() + ["--pid", str(nginx.pid)])
    _register(request.node, aud)
    aud.start()
    aud.wait_ready()
    proxy = ClientCertProxy(admin)
    try:
        # Without a client certificate: Chromium straight to the auditor is refused.
        nav = chromium.navigate(f"https://127.0.0.1:{admin.port}/")
        time.sleep(1.0)
        text = chromium.eval("document.body ? document.body.innerText : ''") or ""
        assert nav.get("errorText") or "Audit Logs" not in text, (nav, text[:300])
        assert "Audit Logs" not in text, text[:300]
        assert admin.settings()["auditLevel"] == "metadata"

        # With the admin's certificate (through the proxy): the page loads at metadata.
        nav = chromium.navigate(f"http://127.0.0.1:{proxy.port}/")
        assert not nav.get("errorText"), nav
        assert wait_until(lambda: chromium.eval(
            "!!document.getElementById('level-metadata') && "
            "document.getElementById('level-metadata').checked"), 15), chromium.logs()
        post_items(nginx, "page-before")
        a = line_for(aud, "page-before")
        assert a is not None and a["level"] == "metadata" and "requestObject" not in a, a

        # Select Request, Save.
        chromium.click("level-request")
        assert chromium.eval("document.getElementById('level-request').checked")
        chromium.click("save")
        assert wait_until(lambda: chromium.eval(
            "document.getElementById('status').textContent") == "Saved", 15), chromium.eval(
            "document.getElementById('status').textContent")
        assert admin.settings()["auditLevel"] == "request"

        post_items(nginx, "page-after")
        a = line_for(aud, "page-after")
        assert a is not None, aud.diagnostics()
        assert a["level"] == "request", a
        assert a.get("requestObject") == {"name": "widget", "tag": "page-after"}, a

        # The counters table refreshes from /metrics: it shows the new level and the lines.
        assert wait_until(lambda: 'audit_level{level="request"}\t1' in chromium.eval(
            "document.getElementById('counters').innerText"), 10), chromium.eval(
            "document.getElementById('counters').innerText")
        # The whole page for the screenshot, which shows no secret.
        chromium.call("Emulation.setDeviceMetricsOverride", width=1100, height=1400,
                      deviceScaleFactor=1, mobile=False)
        chromium.eval("window.scrollTo(0, 0)")
        html = chromium.eval("document.documentElement.outerHTML")
        assert LICENSE_KEY not in html and "PRIVATE KEY" not in html
        shot = Path(os.environ.get("MAT_SCREENSHOT") or (admin.tmp / "admin-page.png"))
        chromium.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        proxy.stop()
        aud.stop()
    assert aud.returncode == 0, aud.diagnostics()
