"""Fixtures and helpers for the end-to-end tests of mke-audit-tap.

Real BPF, real servers (nginx, a Python ssl server, openssl s_server), real clients (curl and
Python's ssl module). Standard library plus pytest only; run with Debian's /usr/bin/python3.

Everything has a timeout: subprocess calls, socket operations, waits for readiness, for audit
lines and for process exits. Every process started here is killed when its fixture ends.

Environment:
  MAT_BINARY  the auditor (default build/mke-audit-tap, relative paths resolved from the repo root)
  MAT_CAPTURE the auditor's --capture for every test that does not choose one (default: the
              auditor's default, auto); ctest runs the suite once more with plaintext
  CI=true     missing prerequisites FAIL instead of skipping
"""

import datetime
import json
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
PY_SERVER_SCRIPT = E2E_DIR / "tls_http_server.py"
PY_CLIENT_SCRIPT = E2E_DIR / "tls_http_client.py"
CLIENT_COMM = "mat-e2e-client"  # comm the long-lived client process gives itself
IN_CI = os.environ.get("CI", "").strip().lower() == "true"

READY_TIMEOUT = 30.0  # auditor: start -> "ready" on stderr
STOP_TIMEOUT = 20.0  # auditor: signal -> exit
SERVER_START_TIMEOUT = 15.0
CLIENT_TIMEOUT = 30.0  # one curl / one raw TLS exchange
LINES_TIMEOUT = 15.0  # requests done -> expected audit lines on stdout
QUIET_PERIOD = 1.5  # no new stdout line for this long = the auditor has caught up
BIG_SIZE = 1 << 20  # large request/response bodies: many TLS records, many SSL_read/SSL_write

# A throwaway value, not a secret: it only has to come back in user.extra.licenseKey.
LICENSE_KEY = "mat-e2e-license-" + uuid.uuid4().hex[:12]

LOSS_NOTICE_TYPE = "mke-audit-tap/loss"
UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MICROS_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
SECONDS_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TIME_SLACK = 1.0  # seconds of tolerance around client-side wall-clock measurements


# --------------------------------------------------------------------------------------------
# prerequisites
# --------------------------------------------------------------------------------------------
def require(condition, reason):
    """Skip the test when `condition` is false; under CI=true fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail("prerequisite missing (CI=true, so this fails instead of skipping): " + reason,
                    pytrace=False)
    pytest.skip(reason)


def binary_path() -> Path:
    p = Path(os.environ.get("MAT_BINARY") or "build/mke-audit-tap")
    return p if p.is_absolute() else REPO_ROOT / p


@pytest.fixture(scope="session")
def environment_ok():
    require(os.geteuid() == 0, "end-to-end tests need root (BPF uprobes)")
    for tool in ("nginx", "curl", "openssl"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.access(SYSTEM_PYTHON, os.X_OK), f"{SYSTEM_PYTHON} is missing")
    return True


@pytest.fixture(scope="session")
def auditor_binary(environment_ok) -> Path:
    b = binary_path()
    require(b.is_file() and os.access(b, os.X_OK), f"auditor binary not found at {b} (MAT_BINARY)")
    return b


# --------------------------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout=CLIENT_TIMEOUT, check=True, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a mandatory timeout and a readable failure."""
    try:
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"command timed out after {timeout}s: {cmd!r}\nstderr: {e.stderr!r}",
                    pytrace=False)
    if check and cp.returncode != 0:
        pytest.fail(f"command failed rc={cp.returncode}: {cmd!r}\nstdout: {cp.stdout[-2000:]!r}\n"
                    f"stderr: {cp.stderr[-2000:]!r}", pytrace=False)
    return cp


def tail(text: str, lines: int = 200) -> str:
    parts = text.splitlines()
    if len(parts) > lines:
        return f"[... {len(parts) - lines} earlier lines]\n" + "\n".join(parts[-lines:])
    return text


def maps_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def children_of(pid: int) -> List[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def parse_micros(ts: str) -> float:
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def parse_seconds(ts: str) -> float:
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# TLS material (generated per session in a tmp dir, never stored in the tree)
# --------------------------------------------------------------------------------------------
@dataclass
class TlsMaterial:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory, environment_ok) -> TlsMaterial:
    d = tmp_path_factory.mktemp("pki")
    ext = d / "server.ext"
    ext.write_text("basicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
         "-subj", "/CN=mke-audit-tap e2e throwaway CA", "-keyout", str(d / "ca.key"),
         "-out", str(d / "ca.pem")])
    run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-subj", "/CN=localhost", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr")])
    run(["openssl", "x509", "-req", "-sha256", "-days", "2", "-in", str(d / "server.csr"),
         "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
         "-extfile", str(ext), "-out", str(d / "server.pem")])
    for f in ("ca.key", "server.key"):
        os.chmod(d / f, 0o600)
    return TlsMaterial(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


def client_context(tls: TlsMaterial) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --------------------------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------------------------
def stop_process(proc: subprocess.Popen, sig=signal.SIGTERM,
                 timeout: float = 10.0) -> Optional[int]:
    """Signal, wait, then SIGKILL. Returns the exit code (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return None
    except ProcessLookupError:
        return proc.poll()


class Server:
    """Base of the TLS servers under audit."""

    name = "server"
    supports_bodies = True  # POST/PUT/DELETE with bodies, chunked uploads
    supports_pipelining = True

    def __init__(self, workdir: Path, tls: TlsMaterial):
        self.workdir = workdir
        self.tls = tls
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.log_files: List[Path] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def ssl_pids(self) -> List[int]:
        """The processes that do the TLS work (workers for nginx)."""
        return [self.pid]

    def logs(self) -> str:
        out = []
        for f in self.log_files:
            try:
                out.append(f"--- {f.name} ---\n" + tail(f.read_text(errors="replace"), 80))
            except OSError:
                pass
        return "\n".join(out)

    def wait_accepting(self, timeout=SERVER_START_TIMEOUT):
        ctx = client_context(self.tls)

        def handshake_ok():
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited early rc={self.proc.returncode}\n{self.logs()}",
                            pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return True
            except OSError:
                return False

        if not wait_until(handshake_ok, timeout, 0.1):
            pytest.fail(f"{self.name} did not accept TLS on port {self.port} within {timeout}s\n"
                        f"{self.logs()}", pytrace=False)

    def assert_uses_system_libssl(self):
        for pid in self.ssl_pids():
            maps = maps_of(pid)
            assert re.search(r"/libssl\.so\.3\b", maps), (
                f"{self.name} pid {pid} does not map libssl.so.3; the test would not exercise the "
                f"OpenSSL probes. Mapped libraries:\n"
                + "\n".join(sorted({l.split()[-1] for l in maps.splitlines() if ".so" in l})))

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 10)


NGINX_CONF = """\
user root;
worker_processes 2;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format mat '$remote_addr:$remote_port $request_method "$request_uri" $status '
                   '$msec $request_time $request_length $bytes_sent';
    access_log {d}/access.log mat;
    client_body_temp_path {d}/tmp_client_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    default_type text/plain;
    sendfile off;
    keepalive_timeout 65s;
    keepalive_requests 1000;
    client_max_body_size 10m;

    # Plain-HTTP sink behind /upload: proxy_pass makes the TLS front read the whole request body
    # before it answers (a bare "return" may answer before a large upload has arrived).
    server {{
        listen 127.0.0.1:{backend_port};
        access_log off;
        location = /upload_sink {{ return 200 'received\\n'; }}
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;

        location = /hello  {{ return 200 'hello\\n'; }}
        location = /search {{ return 200 'results\\n'; }}
        location /pipe/    {{ return 200 'pipe\\n'; }}
        location = /big    {{ alias {d}/big.bin; }}
        location = /items  {{
            if ($request_method = POST) {{ return 201 '{{"id":"1"}}'; }}
            return 404 'not found\\n';
        }}
        location /items/ {{
            if ($request_method = DELETE) {{ return 204; }}
            return 200 '{{"id":"1"}}';
        }}
        location = /upload {{
            proxy_pass http://127.0.0.1:{backend_port}/upload_sink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /_ping {{ return 200 'OK'; }}
        location ~ ^/v[0-9]+\\.[0-9]+/(_ping|version) {{ return 200 'OK'; }}
        location / {{ return 404 'not found\\n'; }}
    }}
}}
"""


class NginxServer(Server):
    name = "nginx"

    def start(self):
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "big.bin").write_bytes(b"B" * BIG_SIZE)
        self.port = free_port()
        backend = free_port()
        while backend == self.port:
            backend = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=self.port, backend_port=backend,
                                          cert=self.tls.cert, key=self.tls.key))
        self.log_files = [d / "error.log", d / "stderr.log", d / "access.log"]
        run(["nginx", "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)], timeout=15)
        self._stderr = open(d / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        self.wait_accepting()
        if not wait_until(lambda: len(children_of(self.pid)) >= 2, 10):
            pytest.fail(f"nginx master {self.pid} has no 2 workers: {children_of(self.pid)}\n"
                        f"{self.logs()}", pytrace=False)
        return self

    def ssl_pids(self):
        return children_of(self.pid)

    def stop(self):
        super().stop()
        if getattr(self, "_stderr", None):
            self._stderr.close()


class PythonServer(Server):
    name = "python-ssl"

    def start(self):
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        self.log_files = [d / "python-server.log"]
        self._stderr = open(d / "python-server.log", "wb")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-u", str(PY_SERVER_SCRIPT), "--port", "0",
             "--cert", str(self.tls.cert), "--key", str(self.tls.key), "--big-size", str(BIG_SIZE)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
        line = _read_line_with_timeout(self.proc.stdout, SERVER_START_TIMEOUT)
        m = re.match(rb"listening (\d+)", line or b"")
        if not m:
            stop_process(self.proc)
            pytest.fail(f"python server did not report its port: {line!r}\n{self.logs()}",
                        pytrace=False)
        self.port = int(m.group(1))
        self.wait_accepting()
        return self

    def stop(self):
        super().stop()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_stderr", None):
            self._stderr.close()


class SServer(Server):
    """openssl s_server -WWW: one connection at a time, GET only, HTTP/1.0 answers delimited by
    connection close, always status 200 (a missing file yields an error text with 200)."""

    name = "openssl-s_server"
    supports_bodies = False
    supports_pipelining = False

    def start(self):
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "www").mkdir(exist_ok=True)
        (d / "www" / "hello.txt").write_text("hello from s_server\n")
        (d / "www" / "second.txt").write_text("second\n")
        self.port = free_port()
        self.log_files = [d / "s_server.log"]
        self._log = open(d / "s_server.log", "wb")
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}",
             "-cert", str(self.tls.cert), "-key", str(self.tls.key), "-WWW", "-quiet",
             "-naccept", "1000", *getattr(self, "extra_args", [])],
            cwd=str(d / "www"), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.wait_accepting()
        return self

    def stop(self):
        super().stop()
        if getattr(self, "_log", None):
            self._log.close()


def _read_line_with_timeout(stream, timeout: float) -> Optional[bytes]:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return stream.readline()
    finally:
        sel.close()


@pytest.fixture
def start_server(tmp_path, tls_material, request):
    """start_server("nginx"|"python"|"s_server") -> a started Server; stopped at teardown."""
    started = []

    def _start(kind: str) -> Server:
        cls = {"nginx": NginxServer, "python": PythonServer, "s_server": SServer}[kind]
        srv = cls(tmp_path / f"{kind}-{len(started)}", tls_material)
        started.append(srv)
        _register(request.node, srv)
        return srv.start()

    yield _start
    for srv in started:
        srv.stop()


# --------------------------------------------------------------------------------------------
# the auditor
# --------------------------------------------------------------------------------------------
class Auditor:
    """mke-audit-tap under test: started, waited on for "ready", stopped with a signal.

    stdout is read (as bytes, line by line) and stderr is kept, each in its own thread, so the
    auditor can never block on a full pipe and a failure can show what it said."""

    def __init__(self, binary: Path, args: List[str]):
        self.binary = binary
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self._stdout: List[tuple] = []  # (monotonic time, raw bytes incl. newline)
        self._stderr: List[str] = []
        self._ready = threading.Event()
        self._threads: List[threading.Thread] = []
        self.returncode: Optional[int] = None
        self.stop_signal: Optional[int] = None
        self.stop_timed_out = False
        self.ready_at: Optional[float] = None
        self.env: Optional[dict] = None  # extra environment variables

    @property
    def cmdline(self) -> str:
        return " ".join([str(self.binary)] + self.args)

    def start(self):
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen([str(self.binary)] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, env=env)
        for target in (self._pump_stdout, self._pump_stderr):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _pump_stdout(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._lock:
                self._stdout.append((time.monotonic(), raw))

    def _pump_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._stderr.append(text)
            if "ready" in text and not self._ready.is_set():
                self.ready_at = time.monotonic()
                self._ready.set()

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None:
                self._join_pumps()
                pytest.fail(f"auditor exited (rc={self.proc.returncode}) before writing 'ready'"
                            f"\n{self.diagnostics()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"auditor did not write 'ready' to stderr within {timeout}s"
                            f"\n{self.diagnostics()}", pytrace=False)
        return self

    # ---- output so far ----
    def raw_lines(self) -> List[bytes]:
        with self._lock:
            return [raw for _, raw in self._stdout]

    def stderr_text(self) -> str:
        with self._lock:
            return "\n".join(self._stderr)

    def count(self) -> int:
        with self._lock:
            return len(self._stdout)

    def wait_for_lines(self, pred: Callable[[List[bytes]], bool], timeout=LINES_TIMEOUT) -> bool:
        """Wait (bounded) until pred(raw stdout lines) holds; False on timeout or auditor exit."""
        return wait_until(lambda: pred(self.raw_lines()) or self.proc.poll() is not None,
                          timeout) and pred(self.raw_lines())

    def wait_quiet(self, at_least=0, timeout=LINES_TIMEOUT, quiet=QUIET_PERIOD):
        """Wait until at least `at_least` lines have arrived and then none for `quiet` seconds
        (bounded by `timeout`). Returns the line count; never fails by itself."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with self._lock:
                n = len(self._stdout)
                last = self._stdout[-1][0] if self._stdout else self.ready_at or 0.0
            if n >= at_least and time.monotonic() - last >= quiet:
                break
            time.sleep(0.05)
        return self.count()

    # ---- stopping ----
    def stop(self, sig=signal.SIGINT, timeout=STOP_TIMEOUT) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stop_signal = sig
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop_timed_out = True
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self._join_pumps()
        self.returncode = self.proc.returncode
        return self.returncode

    def _join_pumps(self):
        for t in self._threads:
            t.join(timeout=5)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._join_pumps()

    def diagnostics(self, stdout_lines=60) -> str:
        raws = self.raw_lines()
        shown = raws[-stdout_lines:]
        out = [f"auditor: {self.cmdline}",
               f"auditor exit: rc={self.proc.returncode if self.proc else None}"
               f" stop_signal={self.stop_signal} stop_timed_out={self.stop_timed_out}",
               f"--- auditor stderr ---\n{tail(self.stderr_text(), 150)}",
               f"--- auditor stdout ({len(raws)} lines"
               + (f", last {len(shown)} shown" if len(shown) < len(raws) else "") + ") ---"]
        out += [r.decode("utf-8", "replace").rstrip("\n") for r in shown]
        return "\n".join(out)


@pytest.fixture
def start_auditor(auditor_binary, request):
    """start_auditor(pids=[..], comms=[..], extra=[..]) -> a ready Auditor; killed at teardown."""
    started = []

    def _start(pids=(), comms=(), extra=(), wait_ready=True) -> Auditor:
        aud = make_auditor(auditor_binary, pids, comms, extra)
        started.append(aud)
        _register(request.node, aud)
        aud.start()
        if wait_ready:
            aud.wait_ready()
        return aud

    yield _start
    for aud in started:
        aud.kill()


def make_auditor(binary, pids=(), comms=(), extra=()) -> Auditor:
    args = ["--level", "metadata", "--license-key", LICENSE_KEY]
    for p in pids:
        args += ["--pid", str(p)]
    for c in comms:
        args += ["--comm", c]
    capture = os.environ.get("MAT_CAPTURE", "")
    if capture and not any(str(a).startswith("--capture") for a in extra):
        args += ["--capture", capture]
    return Auditor(binary, args + list(extra))


# Failure reports get the auditor's and the servers' output as extra sections.
def _register(node, obj):
    if not hasattr(node, "_mat_objects"):
        node._mat_objects = []
    node._mat_objects.append(obj)


def _diag_objects(item):
    objs = list(getattr(item, "_mat_objects", []))
    for v in getattr(item, "funcargs", {}).values():
        objs += list(getattr(v, "diag_objects", lambda: [])())
    return objs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when not in ("setup", "call") or not rep.failed:
        return
    seen = set()
    already = str(rep.longrepr)
    for obj in _diag_objects(item):
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Auditor) and obj.cmdline not in already:
            rep.sections.append(("mke-audit-tap", obj.diagnostics()))
        elif isinstance(obj, Server):
            rep.sections.append((f"{obj.name} logs", obj.logs()))


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One HTTP request the test sent, and what its audit line must say."""

    method: str
    uri: str
    client_port: int
    t_sent: float  # wall clock just before the client started
    t_done: float  # wall clock once the client had its answer (or gave up)
    code: Optional[int] = None  # status the client received; None: no response
    ignored: bool = False  # on the ignore list: no audit line
    how: str = ""

    @property
    def source_ip(self) -> str:
        return f"127.0.0.1:{self.client_port}"


def curl(server: Server, paths: List[str], method: Optional[str] = None,
         data: Optional[bytes] = None, data_file: Optional[Path] = None, headers=(),
         ignored=False, extra=()) -> List[Sent]:
    """One curl process (HTTP/1.1, keep-alive between its URLs). Returns one Sent per URL.
    extra: more curl options (TLS versions and cipher suites)."""
    cmd = ["curl", "-sk", "--http1.1", "--max-time", str(int(CLIENT_TIMEOUT) - 5),
           "-w", "%{http_code} %{local_port} %{num_connects}\\n", *extra]
    if method:
        cmd += ["-X", method]
    for h in headers:
        cmd += ["-H", h]
    inp = None
    if data is not None:
        cmd += ["--data-binary", "@-"]
        inp = data
    elif data_file is not None:
        cmd += ["--data-binary", f"@{data_file}"]
    for p in paths:
        cmd += ["-o", "/dev/null", server.url(p)]
    t0 = time.time()
    cp = run(cmd, input=inp, timeout=CLIENT_TIMEOUT)
    t1 = time.time()
    rows = cp.stdout.decode().split()
    assert len(rows) == 3 * len(paths), f"unexpected curl -w output {cp.stdout!r} for {cmd!r}"
    out = []
    for i, p in enumerate(paths):
        code, port, _ = (int(x) for x in rows[3 * i:3 * i + 3])
        assert port > 0 and code > 0, f"curl {cmd!r} got no answer: {cp.stdout!r} {cp.stderr!r}"
        out.append(Sent(method or ("POST" if inp is not None or data_file else "GET"), p, port, t0,
                        t1, code, ignored, how="curl"))
    return out


def client_process(tls: TlsMaterial, requests, delay=2.5, comm=CLIENT_COMM) -> List[Sent]:
    """Requests from a separate, long-lived client process named `comm` (so the auditor can
    target the client with --comm). `requests`: [(server, method, uri)], one connection each."""
    cmd = [SYSTEM_PYTHON, str(PY_CLIENT_SCRIPT), "--comm", comm, "--delay", str(delay),
           "--ca", str(tls.ca)] + [f"{srv.port}:{m}:{u}" for srv, m, u in requests]
    cp = run(cmd, timeout=CLIENT_TIMEOUT + delay, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHONDONTWRITEBYTECODE": "1"})
    out = []
    for line in cp.stdout.decode().splitlines():
        r = json.loads(line)
        out.append(Sent(r["method"], r["uri"], r["local_port"], r["t0"], r["t1"], r["code"],
                        how=f"client process {comm}"))
    assert len(out) == len(requests), f"client process answered {len(out)}/{len(requests)}"
    return out


@dataclass
class RawResponse:
    code: int
    headers: dict
    body: bytes


def read_response(f, request_method="GET") -> RawResponse:
    """Reads one HTTP/1.x response from a buffered binary file; skips 1xx interim answers."""
    while True:
        status = f.readline(65536)
        if not status:
            raise ConnectionError("connection closed before a response")
        parts = status.decode("latin-1").split(" ", 2)
        code = int(parts[1])
        headers = {}
        while True:
            line = f.readline(65536)
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if 100 <= code < 200:
            continue
        if request_method == "HEAD" or code in (204, 304):
            return RawResponse(code, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int(f.readline(65536).split(b";")[0].strip(), 16)
                if size == 0:
                    while f.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += f.read(size)
                f.readline(65536)
            return RawResponse(code, headers, bytes(body))
        if "content-length" in headers:
            n = int(headers["content-length"])
            body = f.read(n)
            if len(body) != n:
                raise ConnectionError(f"short body {len(body)}/{n}")
            return RawResponse(code, headers, body)
        return RawResponse(code, headers, f.read())


class TlsClient:
    """A raw HTTP/1.1 client over one TLS connection (Python's ssl): pipelining, partial writes,
    requests left without an answer."""

    def __init__(self, server: Server, timeout=CLIENT_TIMEOUT):
        self.server = server
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.sock = client_context(server.tls).wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.settimeout(timeout)
        self.local_port = self.sock.getsockname()[1]
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_response(self, method="GET") -> RawResponse:
        return read_response(self.file, method)

    def close(self):
        try:
            self.file.close()
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_request(method: str, uri: str, body: bytes = b"", headers=()) -> bytes:
    head = [f"{method} {uri} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: mat-e2e"]
    head += list(headers)
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def pipelined_gets(server: Server, uris: List[str]) -> List[Sent]:
    """All requests in ONE sendall on ONE connection, then all responses read."""
    t0 = time.time()
    with TlsClient(server) as c:
        c.send(b"".join(http_request("GET", u) for u in uris))
        responses = [c.read_response() for _ in uris]
        t1 = time.time()
        port = c.local_port
    return [Sent("GET", u, port, t0, t1, r.code, how="pipelined") for u, r in zip(uris, responses)]


# --------------------------------------------------------------------------------------------
# audit line analysis
# --------------------------------------------------------------------------------------------
@dataclass
class ParsedLine:
    raw: str
    obj: Optional[dict] = None
    error: Optional[str] = None
    key_orders: List[List[str]] = field(default_factory=list)

    @property
    def audit(self) -> dict:
        return self.obj.get("audit", {}) if isinstance(self.obj, dict) else {}

    @property
    def is_audit(self) -> bool:
        return isinstance(self.obj, dict) and self.obj.get("msg") == "audit" and \
            isinstance(self.obj.get("audit"), dict)

    @property
    def is_loss_notice(self) -> bool:
        """The in-band loss notice (README "Losses are announced"): no auditID, counts by reason."""
        return isinstance(self.obj, dict) and self.obj.get("type") == LOSS_NOTICE_TYPE and \
            "auditID" not in self.raw and isinstance(self.obj.get("counts"), dict)

    def key(self):
        a = self.audit
        src = a.get("sourceIPs")
        src = tuple(_hashable(x) for x in src) if isinstance(src, list) else (_hashable(src),)
        return (_hashable(a.get("verb")), _hashable(a.get("requestURI")), src)

    @property
    def source(self):
        src = self.audit.get("sourceIPs")
        return _hashable(src[0]) if isinstance(src, list) and src else None


def _hashable(v):
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    return json.dumps(v, sort_keys=True)


def parse_line(raw: bytes) -> ParsedLine:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return ParsedLine(raw=repr(raw), error=f"not UTF-8: {e}")
    if not text.endswith("\n"):
        return ParsedLine(raw=text, error="line not terminated by a newline")
    text = text[:-1]
    orders: List[List[str]] = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        orders.append(keys)
        return dict(pairs)

    try:
        obj = json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as e:
        return ParsedLine(raw=text, error=f"not JSON: {e}")
    if not isinstance(obj, dict):
        return ParsedLine(raw=text, obj=None, error="not a JSON object")
    return ParsedLine(raw=text, obj=obj, key_orders=orders)


def go_json(obj) -> str:
    """How Go's encoding/json (as logrus uses it) writes `obj`: compact, keys sorted, UTF-8 raw,
    & < > U+2028 U+2029 escaped. Valid for the ASCII content these tests produce."""
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(ch, esc)
    return s


def format_problems(problems: List[str], limit=40) -> str:
    shown = problems[:limit]
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n".join("  - " + p for p in shown) + more


def check_line_format(pl: ParsedLine) -> List[str]:
    """Format checks every audit line must pass, whatever the request."""
    p = []
    if pl.error:
        return [f"{pl.error}: {pl.raw[:300]!r}"]
    for keys in pl.key_orders:
        if keys != sorted(keys, key=lambda k: k.encode("utf-8")):
            p.append(f"keys not sorted byte-wise: {keys} in {pl.raw[:200]}")
        if len(set(keys)) != len(keys):
            p.append(f"duplicate keys {keys}")
    for ch in "&<>":
        if ch in pl.raw:
            p.append(f"raw '{ch}' in line (Go escapes it as \\u00{ord(ch):02x}): {pl.raw[:300]}")
    if pl.raw != go_json(pl.obj):
        p.append(f"line is not byte-identical to Go-style compact JSON:\n      got:  {pl.raw}"
                 f"\n      want: {go_json(pl.obj)}")
    o = pl.obj
    if set(o) != {"audit", "level", "msg", "time"}:
        p.append(f"envelope keys {sorted(o)} != ['audit','level','msg','time']")
    if o.get("level") != "info" or o.get("msg") != "audit":
        p.append(f"envelope level/msg = {o.get('level')!r}/{o.get('msg')!r}, want info/audit")
    if not isinstance(o.get("time"), str) or not SECONDS_TS.match(o["time"]):
        p.append(f"envelope time {o.get('time')!r} is not RFC3339 seconds UTC")
    a = pl.audit
    if not isinstance(a, dict):
        return p + ["audit is not an object"]
    for k in ("auditID", "kind", "level", "metadata", "requestReceivedTimestamp", "requestURI",
              "sourceIPs", "stage", "stageTimestamp", "timestamp", "user", "verb"):
        if k not in a:
            p.append(f"audit.{k} missing")
    if not UUID_V4.match(str(a.get("auditID", ""))):
        p.append(f"auditID {a.get('auditID')!r} is not a lowercase UUID v4")
    if a.get("kind") != "docker-swarm":
        p.append(f"kind {a.get('kind')!r} != 'docker-swarm' (non-Kubernetes path)")
    if a.get("level") != "metadata":
        p.append(f"audit.level {a.get('level')!r} != 'metadata'")
    if a.get("metadata") != {"creationTimestamp": None}:
        p.append(f"metadata {a.get('metadata')!r} != {{'creationTimestamp': None}}")
    if "requestObject" in a:
        p.append("requestObject present at level metadata")
    rrt = a.get("requestReceivedTimestamp")
    if not isinstance(rrt, str) or not MICROS_TS.match(rrt):
        p.append(f"requestReceivedTimestamp {rrt!r} is not UTC with six fractional digits")
    stage = a.get("stage")
    for k in ("stageTimestamp", "timestamp"):
        v = a.get(k)
        if stage == "ResponseComplete":
            if not isinstance(v, str) or not MICROS_TS.match(v):
                p.append(f"{k} {v!r} at ResponseComplete is not UTC with six fractional digits")
        elif v is not None and (not isinstance(v, str) or not MICROS_TS.match(v)):
            p.append(f"{k} {v!r} is neither null nor UTC with six fractional digits")
    if isinstance(rrt, str) and MICROS_TS.match(rrt):
        st = a.get("stageTimestamp")
        if isinstance(st, str) and MICROS_TS.match(st) and parse_micros(st) < parse_micros(rrt):
            p.append(f"stageTimestamp {st} before requestReceivedTimestamp {rrt}")
        t = o.get("time")
        if isinstance(t, str) and SECONDS_TS.match(t) and \
                parse_seconds(t) < int(parse_micros(rrt)):
            p.append(f"envelope time {t} before requestReceivedTimestamp {rrt}")
    user = a.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("extra"), dict):
        p.append(f"user {user!r} has no extra object")
    elif user["extra"].get("licenseKey") != [LICENSE_KEY]:
        p.append(f"user.extra.licenseKey {user['extra'].get('licenseKey')!r} != [{LICENSE_KEY!r}]")
    src = a.get("sourceIPs")
    if not (isinstance(src, list) and len(src) == 1 and isinstance(src[0], str)
            and re.match(r"^127\.0\.0\.1:\d+$", src[0])):
        p.append(f"sourceIPs {src!r} is not ['127.0.0.1:PORT']")
    return p


def check_against_sent(pl: ParsedLine, s: Sent) -> List[str]:
    """The fields an audit line must have for the request `s`."""
    a = pl.audit
    p = []
    who = f"{s.method} {s.uri} from :{s.client_port} ({s.how})"
    if a.get("verb") != s.method:
        p.append(f"{who}: verb {a.get('verb')!r}")
    if a.get("requestURI") != s.uri:
        p.append(f"{who}: requestURI {a.get('requestURI')!r}")
    if a.get("sourceIPs") != [s.source_ip]:
        p.append(f"{who}: sourceIPs {a.get('sourceIPs')!r} != [{s.source_ip!r}]")
    if s.code is not None:
        if a.get("stage") != "ResponseComplete":
            p.append(f"{who}: stage {a.get('stage')!r} != 'ResponseComplete'")
        rs = a.get("responseStatus")
        if not isinstance(rs, dict) or rs.get("code") != s.code:
            p.append(f"{who}: responseStatus {rs!r}, client saw {s.code}")
        ann = a.get("annotations") or {}
        if isinstance(ann, dict) and ann.get("mke-audit-tap/incomplete"):
            p.append(f"{who}: marked incomplete ({ann!r}) although the exchange was complete "
                     f"on the wire")
    else:
        if a.get("stage") != "RequestReceived":
            p.append(f"{who}: stage {a.get('stage')!r} != 'RequestReceived' (no response was sent)")
        if "responseStatus" in a:
            p.append(f"{who}: responseStatus {a.get('responseStatus')!r} although no response")
    rrt = a.get("requestReceivedTimestamp")
    if isinstance(rrt, str) and MICROS_TS.match(rrt):
        t = parse_micros(rrt)
        if not (s.t_sent - TIME_SLACK <= t <= s.t_done + TIME_SLACK):
            p.append(f"{who}: requestReceivedTimestamp {rrt} outside the client's window "
                     f"[{_iso(s.t_sent)}, {_iso(s.t_done)}] (+-{TIME_SLACK}s)")
    return p


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AuditRun:
    """What one auditor run produced, and what the test sent during it."""

    auditor: Auditor
    sent: List[Sent]
    servers: List[Server] = field(default_factory=list)
    lines: Optional[List[ParsedLine]] = None  # None: parse the auditor's stdout

    def __post_init__(self):
        if self.lines is None:
            self.lines = [parse_line(r) for r in self.auditor.raw_lines()]

    def only(self, pred: Callable[[Sent], bool]) -> "AuditRun":
        """The requests matching `pred` and the audit lines from their client connections."""
        sent = [s for s in self.sent if pred(s)]
        sources = {s.source_ip for s in sent}
        lines = [l for l in self.lines if l.is_audit and l.source in sources]
        return AuditRun(self.auditor, sent, self.servers, lines)

    def diag_objects(self):
        return [self.auditor] + list(self.servers)

    @property
    def audit_lines(self) -> List[ParsedLine]:
        return [l for l in self.lines if l.is_audit]

    @property
    def expected(self) -> List[Sent]:
        return [s for s in self.sent if not s.ignored]

    def fail(self, what: str, problems: List[str]):
        pytest.fail(f"{what}:\n{format_problems(problems)}\n\nsent:\n"
                    + "\n".join(f"  {s.method} {s.uri} :{s.client_port} -> {s.code}"
                                f"{' (not audited)' if s.ignored else ''} [{s.how}]"
                                for s in self.sent)
                    + f"\n\n{self.auditor.diagnostics()}", pytrace=False)

    # ---- checks shared by the test modules: problems_*() list, check_*() fail on any ----
    def problems_only_json_lines(self) -> List[str]:
        bad = [f"line {i + 1}: {l.error}: {l.raw[:300]!r}" for i, l in enumerate(self.lines)
               if l.error]
        bad += [f"line {i + 1}: JSON but not an audit line (nor a loss notice): {l.raw[:300]}"
                for i, l in enumerate(self.lines)
                if not l.error and not l.is_audit and not l.is_loss_notice]
        return bad

    def problems_one_line_per_request(self) -> List[str]:
        want = Counter((s.method, s.uri, (s.source_ip,)) for s in self.expected)
        got = Counter(l.key() for l in self.audit_lines)
        problems = []
        for k in sorted(set(want) | set(got), key=str):
            if want[k] != got[k] and want[k] == 0:
                problems.append(f"unexpected line(s) (verb, requestURI, sourceIPs) = {k}: {got[k]}")
            elif want[k] != got[k]:
                problems.append(f"(verb, requestURI, sourceIPs) = {k}: want {want[k]} line(s), "
                                f"got {got[k]}")
        not_audited = {(s.uri, s.source_ip) for s in self.sent if s.ignored}
        for l in self.audit_lines:
            if (_hashable(l.audit.get("requestURI")), l.source) in not_audited:
                problems.append(f"request that must not be audited was audited: {l.raw}")
        if len(self.audit_lines) != len(self.expected):
            problems.append(f"{len(self.audit_lines)} audit lines for {len(self.expected)} "
                            f"audited requests")
        return problems

    def problems_format(self) -> List[str]:
        problems = []
        for i, l in enumerate(self.audit_lines):
            problems += [f"line {i + 1}: {x}" for x in check_line_format(l)]
        return problems

    def problems_fields(self) -> List[str]:
        by_key = {}
        for l in self.audit_lines:
            by_key.setdefault(l.key(), []).append(l)
        problems = []
        for s in self.expected:
            cands = by_key.get((s.method, s.uri, (s.source_ip,)), [])
            if not cands:
                problems.append(f"{s.method} {s.uri} from :{s.client_port}: no audit line with "
                                f"this verb, requestURI and sourceIPs")
                continue
            problems += check_against_sent(cands.pop(0), s)
        return problems

    def problems_unique_ids(self) -> List[str]:
        ids = Counter(l.audit.get("auditID") for l in self.audit_lines)
        return [f"auditID {k!r} used {n} times" for k, n in ids.items() if n > 1]

    def problems_clean_exit(self) -> List[str]:
        a = self.auditor
        problems = []
        if a.stop_timed_out:
            problems.append(f"did not exit within {STOP_TIMEOUT}s of signal {a.stop_signal}")
        if a.returncode != 0:
            problems.append(f"exit code {a.returncode}, want 0 after signal {a.stop_signal}")
        return problems

    CHECKS = [
        ("auditor must flush and exit 0 on SIGINT/SIGTERM", "problems_clean_exit"),
        ("stdout must carry audit lines only", "problems_only_json_lines"),
        ("audit line format", "problems_format"),
        ("exactly one audit line per non-ignored request", "problems_one_line_per_request"),
        ("audit line fields", "problems_fields"),
        ("auditIDs must be unique", "problems_unique_ids"),
    ]

    def check(self, *names):
        groups = [(title, getattr(self, fn)()) for title, fn in self.CHECKS if fn in names]
        groups = [(t, p) for t, p in groups if p]
        if not groups:
            return
        if len(groups) == 1:
            self.fail(*groups[0])
        self.fail("; ".join(t for t, _ in groups),
                  [f"[{t}] {x}" for t, p in groups for x in p])

    def check_clean_exit(self):
        self.check("problems_clean_exit")

    def check_only_json_lines(self):
        self.check("problems_only_json_lines")

    def check_format(self):
        self.check("problems_format")

    def check_one_line_per_request(self):
        self.check("problems_one_line_per_request")

    def check_fields(self):
        self.check("problems_fields")

    def check_unique_ids(self):
        self.check("problems_unique_ids")

    def check_all(self):
        """Every check; one failure listing the problems of all of them."""
        self.check(*(fn for _, fn in self.CHECKS))


def finish(auditor: Auditor, sent: List[Sent], servers=(), sig=signal.SIGINT) -> AuditRun:
    """Wait until the expected lines arrived and output went quiet, stop the auditor, parse."""
    expected = sum(1 for s in sent if not s.ignored)
    auditor.wait_quiet(at_least=expected, timeout=LINES_TIMEOUT)
    auditor.stop(sig)
    return AuditRun(auditor, list(sent), list(servers))


# --------------------------------------------------------------------------------------------
# Go programs (tests/e2e/go_https_server, go_no_tls), built once per session with golang-go
# --------------------------------------------------------------------------------------------
def go_env(tmp):
    # Offline and hermetic: stdlib only, caches in tmp, no toolchain download, no telemetry.
    env = dict(os.environ)
    env.update(HOME=str(tmp / "home"), GOCACHE=str(tmp / "gocache"), GOPATH=str(tmp / "gopath"),
               GOPROXY="off", GOFLAGS="-mod=mod", GO111MODULE="on", GOWORK="off", GOENV="off",
               GOTOOLCHAIN="local", GOTELEMETRY="off", CGO_ENABLED="0")
    return env


@pytest.fixture(scope="session")
def go_programs(tmp_path_factory, environment_ok):
    """{"server": unstripped, "stripped": -s -w (no .symtab, no DWARF), "notls": no crypto/tls}"""
    require(shutil.which("go"), "Debian's golang-go is needed to build the Go test programs")
    tmp = tmp_path_factory.mktemp("go")
    out = {}
    for name, src, flags in (("server", "go_https_server", []),
                             ("stripped", "go_https_server", ["-ldflags=-s -w"]),
                             ("notls", "go_no_tls", [])):
        exe = tmp / f"mat-go-{name}"
        r = subprocess.run(["go", "build", *flags, "-o", str(exe), "."], cwd=E2E_DIR / src,
                           env=go_env(tmp), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"go build of {src} failed:\n{r.stdout}\n{r.stderr}"
        out[name] = exe
    return out


class GoServer:
    def __init__(self, exe, tls):
        self.exe, self.tls = exe, tls
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen([str(self.exe), "127.0.0.1:0", str(self.tls.cert),
                                      str(self.tls.key)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        line = _read_line_with_timeout(self.proc.stdout, SERVER_START_TIMEOUT)
        m = re.match(rb"listening 127\.0\.0\.1:(\d+)", line or b"")
        assert m, f"Go server did not start: {line!r}"
        self.port = int(m.group(1))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc:
            stop_process(self.proc)
