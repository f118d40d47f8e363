"""MKE audit semantics end to end: nginx (TLS) in front of a stand-in for the Docker, MKE and
Kubernetes APIs (api_backend.py), real BPF, real TLS clients.

- request level carries requestObject, metadata level does not;
- object ids come from the real responses (objectRef.uid), never names;
- Kubernetes verbs and objectRef come from the path;
- a watch is written at ResponseStarted while its stream is still open;
- secrets sent to every redacted endpoint reach no output of the tool, at every level and format.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest

from conftest import (E2E_DIR, SYSTEM_PYTHON, TlsClient, _read_line_with_timeout, free_port,
                      http_request, make_auditor, parse_line, run, stop_process, tail,
                      wait_until)

CONTAINER_ID = "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2"
SECRET_ID = "ktnbjxoalbkvbvedmg1urrz8h"
SERVICE_ID = "9mnpnzenvg8p8tdbtq4wvbkcz"
K8S_UID = "6f3bfa7f-4f1e-4b4f-9d9e-0e7f2c1b5a11"

FRONT_CONF = """\
user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp_client_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port} ssl{http2};
        ssl_certificate {cert};
        ssl_certificate_key {key};{client_auth}
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


class ApiFront:
    """nginx with TLS in front of a plain-HTTP backend script (api_backend.py here);
    subclasses choose another backend, its arguments and the nginx configuration."""

    name = "nginx+api_backend"
    backend_script = "api_backend.py"
    conf_template = FRONT_CONF

    def __init__(self, workdir: Path, tls, http2=False, client_ca=None, verify="on"):
        """client_ca: a CA file; nginx then asks for client certificates (ssl_verify_client
        `verify`: on requires ones the CA signed, optional_no_ca takes any)."""
        self.http2 = http2
        self.client_ca = client_ca
        self.verify = verify
        self.workdir = workdir
        self.tls = tls
        self.port = 0
        self.proc = None
        self.backend = None
        self._backend_log = None
        self.log_files = []

    @property
    def pid(self):
        return self.proc.pid

    def backend_args(self, d: Path) -> List[str]:
        """Extra arguments of the backend script (files it needs are written into d)."""
        return []

    def started(self):
        """Called once nginx accepts TLS connections."""

    def start(self):
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        backend_port = free_port()
        self._backend_log = open(d / "backend.log", "wb")
        self.backend = subprocess.Popen(
            [SYSTEM_PYTHON, "-u", str(E2E_DIR / self.backend_script), "--port", str(backend_port),
             *self.backend_args(d)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._backend_log,
            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
        line = _read_line_with_timeout(self.backend.stdout, 15)
        assert line and line.startswith(b"listening"), f"backend did not start: {line!r}"
        self.port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(self.conf_template.format(
            d=d, port=self.port, backend=backend_port, cert=self.tls.cert, key=self.tls.key,
            http2=" http2" if self.http2 else "",
            client_auth=(f"\n        ssl_client_certificate {self.client_ca};\n        "
                         f"ssl_verify_client {self.verify};" if self.client_ca else "")))
        self.log_files = [d / "error.log", d / "backend.log"]
        run(["nginx", "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)], timeout=15)
        self.proc = subprocess.Popen(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c",
                                      str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._accepts, 15, 0.1):
            raise AssertionError(f"nginx front did not accept TLS connections\n{self.logs()}")
        self.started()
        return self

    def _accepts(self):
        try:
            TlsClient(self, timeout=2).close()
            return True
        except OSError:
            return False

    def logs(self):
        return "\n".join(f"--- {p.name} ---\n" + tail(p.read_text(errors="replace"), 80)
                         for p in self.log_files if p.exists())

    def stop(self):
        if self.proc:
            stop_process(self.proc, 15)
        if self.backend:
            try:
                self.backend.stdin.close()
            except OSError:
                pass
            stop_process(self.backend)
            self.backend.stdout.close()
        if self._backend_log:
            self._backend_log.close()


@pytest.fixture
def api_front(tmp_path, tls_material, environment_ok):
    front = ApiFront(tmp_path / "front", tls_material).start()
    yield front
    front.stop()


def exchange(front, method, uri, body=b"", headers=()):
    """One request on its own TLS connection; returns (status, client port)."""
    with TlsClient(front) as c:
        c.send(http_request(method, uri, body, headers))
        r = c.read_response(method)
        return r.code, c.local_port


def run_auditor(front, binary, level, fmt="mke", extra=()):
    # make_auditor starts from --level metadata; a later --level wins.
    aud = make_auditor(binary, [front.pid], (), ["--level", level, "--format", fmt] + list(extra))
    aud.start()
    aud.wait_ready()
    return aud


def audit_lines(aud, want, timeout=15):
    aud.wait_quiet(at_least=want, timeout=timeout)
    parsed = [parse_line(raw) for raw in aud.raw_lines()]
    bad = [p for p in parsed if p.error]
    assert not bad, f"not JSON lines: {[p.raw for p in bad]}\n{aud.diagnostics()}"
    return [p.obj for p in parsed]


def by_uri(lines, uri, key="audit"):
    found = [ln[key] if key else ln for ln in lines
             if (ln[key] if key else ln).get("requestURI") == uri]
    assert len(found) == 1, f"want one line for {uri}, got {len(found)}: {found}"
    return found[0]


JSON_CT = ["Content-Type: application/json"]


def test_request_level_payload_object_ids_and_kubernetes_verbs(api_front, auditor_binary):
    aud = run_auditor(api_front, auditor_binary, "request")
    try:
        sent = [
            ("POST", "/v1.41/containers/create?name=web",
             json.dumps({"Image": "nginx", "Cmd": ["echo", "a&b"]}).encode()),
            ("POST", "/v1.41/services/create", json.dumps({"Name": "svc-name"}).encode()),
            ("POST", f"/v1.41/services/{SERVICE_ID}/update?version=3",
             json.dumps({"Name": "svc-name"}).encode()),
            ("POST", "/api/v1/namespaces/default/configmaps",
             json.dumps({"kind": "ConfigMap", "metadata": {"name": "cm"},
                         "data": {"k": "v"}}).encode()),
            ("GET", "/api/v1/namespaces/default/pods", b""),
            ("GET", "/api/v1/namespaces/default/pods/p1/log", b""),
            ("DELETE", "/apis/apps/v1/namespaces/default/deployments/d1", b""),
            ("POST", "/v1.41/containers/prune", b"not json at all"),
        ]
        for method, uri, body in sent:
            code, _ = exchange(api_front, method, uri, body, JSON_CT if body[:1] == b"{" else ())
            assert code in (200, 201), (method, uri, code)
        lines = audit_lines(aud, len(sent))
    finally:
        rc = aud.stop()
    assert rc == 0, aud.diagnostics()
    assert len(lines) == len(sent), aud.diagnostics()

    create = by_uri(lines, "/v1.41/containers/create?name=web")
    assert create["verb"] == "POST" and create["kind"] == "docker-swarm"
    assert create["level"] == "request"
    assert create["requestObject"] == {"Image": "nginx", "Cmd": ["echo", "a&b"]}
    assert create["objectRef"]["uid"] == CONTAINER_ID
    assert create["responseStatus"]["code"] == 201

    service = by_uri(lines, "/v1.41/services/create")
    assert service["objectRef"]["uid"] == SERVICE_ID
    assert "svc-name" not in json.dumps(service.get("objectRef"))  # ids, never names
    update = by_uri(lines, f"/v1.41/services/{SERVICE_ID}/update?version=3")
    assert update["objectRef"]["uid"] == SERVICE_ID

    cm = by_uri(lines, "/api/v1/namespaces/default/configmaps")
    assert cm["kind"] == "kubernetes" and cm["verb"] == "create"
    assert cm["objectRef"] == {"apiVersion": "v1", "namespace": "default",
                               "resource": "configmaps", "uid": K8S_UID}
    assert by_uri(lines, "/api/v1/namespaces/default/pods")["verb"] == "list"
    log = by_uri(lines, "/api/v1/namespaces/default/pods/p1/log")
    assert log["verb"] == "get" and log["objectRef"]["subresource"] == "log"
    assert "name" not in log["objectRef"]
    dep = by_uri(lines, "/apis/apps/v1/namespaces/default/deployments/d1")
    assert dep["verb"] == "delete" and dep["objectRef"]["apiGroup"] == "apps"
    assert by_uri(lines, "/v1.41/containers/prune")["requestObject"] == "not json at all"


def test_metadata_level_has_no_payload(api_front, auditor_binary):
    aud = run_auditor(api_front, auditor_binary, "metadata")
    try:
        code, _ = exchange(api_front, "POST", "/v1.41/containers/create",
                           json.dumps({"Image": "busybox"}).encode(), JSON_CT)
        assert code == 201
        lines = audit_lines(aud, 1)
    finally:
        aud.stop()
    line = by_uri(lines, "/v1.41/containers/create")
    assert "requestObject" not in line
    assert line["objectRef"]["uid"] == CONTAINER_ID
    assert line["level"] == "metadata"


def test_watch_is_written_at_response_started_while_it_streams(api_front, auditor_binary):
    aud = run_auditor(api_front, auditor_binary, "metadata")
    client = TlsClient(api_front)
    try:
        client.send(http_request("GET", "/api/v1/namespaces/default/pods?watch=true"))
        head = client.file.readline()
        assert b" 200 " in head, head
        # The stream is still open: the line must already be there.
        lines = audit_lines(aud, 1, timeout=10)
        line = by_uri(lines, "/api/v1/namespaces/default/pods?watch=true")
        assert line["stage"] == "ResponseStarted"
        assert line["verb"] == "watch"
        assert line["responseStatus"]["code"] == 200
    finally:
        client.close()
        aud.stop()
    # Closing the stream adds no second line for the same request.
    final = [parse_line(raw).obj for raw in aud.raw_lines()]
    assert len([ln for ln in final
                if ln["audit"]["requestURI"] == "/api/v1/namespaces/default/pods?watch=true"]) == 1


def test_response_timeout_writes_request_received_then_the_late_response(api_front,
                                                                        auditor_binary):
    aud = run_auditor(api_front, auditor_binary, "metadata", extra=["--response-timeout", "1"])
    client = TlsClient(api_front)
    try:
        client.send(http_request("GET", "/v1.41/slow?x=1"))
        # Before the answer (4 s), the timeout (1 s, checked every second) writes the request.
        early = audit_lines(aud, 1, timeout=3.5)
        assert len(early) == 1, aud.diagnostics()
        first = early[0]["audit"]
        assert first["stage"] == "RequestReceived" and "responseStatus" not in first
        assert first["requestURI"] == "/v1.41/slow?x=1"
        assert client.read_response().code == 200
        lines = audit_lines(aud, 2)
    finally:
        client.close()
        aud.stop()
    assert len(lines) == 2, aud.diagnostics()
    late = lines[1]["audit"]
    assert late["stage"] == "ResponseComplete" and late["responseStatus"]["code"] == 200
    assert late["auditID"] == first["auditID"]


def test_k8s_format_event_lines(api_front, auditor_binary):
    aud = run_auditor(api_front, auditor_binary, "request", fmt="k8s")
    try:
        exchange(api_front, "POST", "/api/v1/namespaces/default/configmaps",
                 json.dumps({"kind": "ConfigMap", "data": {"a": "b"}}).encode(), JSON_CT)
        exchange(api_front, "GET", "/v1.41/containers/json?all=1")
        raw = audit_lines(aud, 2)
    finally:
        aud.stop()
    assert len(raw) == 2
    for ev in raw:
        assert ev["apiVersion"] == "audit.k8s.io/v1" and ev["kind"] == "Event"
        assert ev["level"] == "Request"
    cm = by_uri(raw, "/api/v1/namespaces/default/configmaps", key=None)
    assert cm["verb"] == "create" and cm["objectRef"]["resource"] == "configmaps"
    assert cm["requestObject"]["data"] == {"a": "b"}
    assert cm["responseStatus"]["code"] == 201


# Every redacted endpoint and sensitive field, each carrying a value that must never show up.
SECRETS = {f"s3cr3t-{i}-{os.urandom(4).hex()}" for i in range(12)}
S = sorted(SECRETS)


def secret_requests():
    return [
        ("POST", "/v1.41/secrets/create", {"Name": "db", "Data": S[0]}, ()),
        ("POST", f"/v1.41/secrets/{SECRET_ID}/update?version=1", {"Name": "db", "Data": S[1]}, ()),
        ("POST", "/v1.41/swarm/join", {"JoinToken": S[2], "RemoteAddrs": ["127.0.0.1:2377"]}, ()),
        ("POST", "/v1.41/swarm/update?version=1", {"JoinTokens": {"Worker": S[3]}}, ()),
        ("POST", "/auth/login", {"username": "alice", "password": S[4]}, ()),
        ("POST", "/api/v1/namespaces/default/secrets",
         {"kind": "Secret", "data": {"k": S[5]}, "stringData": {"p": S[6]}}, ()),
        ("PUT", "/api/v1/namespaces/default/secrets/s1", {"kind": "Secret", "data": {"k": S[5]}}, ()),
        ("PATCH", "/api/v1/namespaces/default/secrets/s1", {"stringData": {"p": S[6]}}, ()),
        ("POST", "/v1.41/swarm/init", {"ListenAddr": "127.0.0.1:2377",
                                       "CAConfig": {"SigningCAKey": S[7]}}, ()),
        ("POST", "/v1.41/swarm/unlock", {"UnlockKey": S[8]}, ()),
        ("POST", "/v1.41/configs/create", {"Name": "c", "Data": S[9]}, ()),
        ("GET", "/v1.41/images/json", None,
         (f"Authorization: Bearer {S[10]}", f"Cookie: session={S[11]}",
          f"X-Registry-Auth: {S[10]}")),
        ("POST", "/api/v1/namespaces/default/configmaps",
         {"kind": "ConfigMap", "stringData": {"p": S[6]}}, ()),
    ]


@pytest.mark.parametrize("level,fmt", [("metadata", "mke"), ("request", "mke"),
                                       ("metadata", "k8s"), ("request", "k8s")])
def test_secrets_reach_no_output(api_front, auditor_binary, level, fmt):
    aud = run_auditor(api_front, auditor_binary, level, fmt=fmt, extra=["--log-level", "debug"])
    reqs = secret_requests()
    try:
        for method, uri, body, headers in reqs:
            data = json.dumps(body).encode() if body is not None else b""
            ctype = ["Content-Type: application/json"] if body is not None else []
            if "patch" in method.lower():
                ctype = ["Content-Type: application/merge-patch+json"]
            exchange(api_front, method, uri, data, ctype + list(headers))
        lines = audit_lines(aud, len(reqs))
    finally:
        rc = aud.stop()
    assert rc == 0
    assert len(lines) == len(reqs), aud.diagnostics()  # redacted calls are still audited
    everything = b"".join(aud.raw_lines()).decode() + "\n" + aud.stderr_text()
    leaked = [s for s in SECRETS if s in everything]
    assert not leaked, f"secret values leaked at level={level} format={fmt}"
    if level == "request":
        key = None if fmt == "k8s" else "audit"
        login = by_uri(lines, "/auth/login", key=key)
        assert login.get("requestObject") == "[REDACTED by mke-audit-tap]"
        cm = by_uri(lines, "/api/v1/namespaces/default/configmaps", key=key)
        assert cm["requestObject"]["kind"] == "ConfigMap"  # the rest of the body stays
