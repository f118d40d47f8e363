"""HTTP/2 over TLS end to end: nginx with http2 (negotiated by ALPN) in front of the API
stand-in, real BPF, real curl --http2, including several streams multiplexed on one connection.
The real kubectl over HTTP/2 is in test_kubectl.py."""

import json
import shutil
import subprocess

import pytest

from conftest import parse_line, require
from test_audit_semantics import ApiFront, K8S_UID, by_uri, run_auditor


@pytest.fixture
def h2_front(tmp_path, tls_material, environment_ok):
    front = ApiFront(tmp_path / "front", tls_material, http2=True).start()
    yield front
    front.stop()


def curl_h2(front, paths, *extra):
    """One curl process; with several paths, -Z multiplexes them on one HTTP/2 connection."""
    cmd = ["curl", "-sk", "--http2", "--max-time", "20", "-Z"]
    for p in paths:
        cmd += ["-o", "/dev/null", f"https://127.0.0.1:{front.port}{p}"]
    cmd += list(extra) + ["-w", "%{http_version} %{http_code} %{local_port}\\n"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split() for line in out.strip().splitlines()]


def test_http2_streams_each_audited_once(h2_front, auditor_binary):
    require(shutil.which("curl"), "curl is needed")
    aud = run_auditor(h2_front, auditor_binary, "request")
    try:
        single = curl_h2(h2_front, ["/api/v1/namespaces/default/pods?limit=1"])
        post = curl_h2(h2_front, ["/api/v1/namespaces/default/configmaps"], "-X", "POST", "-H",
                       "Content-Type: application/json", "--data-binary",
                       json.dumps({"kind": "ConfigMap", "data": {"a": "b"}}))
        multi = curl_h2(h2_front, [f"/v1.41/containers/json?n={i}" for i in range(4)])
        aud.wait_quiet(at_least=6)
    finally:
        assert aud.stop() == 0, aud.diagnostics()
    for version, _code, _port in single + post + multi:
        assert version == "2", "test set-up: HTTP/2 was not negotiated"
    ports = {port for _v, _c, port in multi}
    assert len(ports) == 1, f"test set-up: curl did not multiplex ({ports})"
    shared_port = ports.pop()
    lines = [parse_line(r).obj for r in aud.raw_lines()]
    assert len(lines) == 6, aud.diagnostics()
    pods = by_uri(lines, "/api/v1/namespaces/default/pods?limit=1")
    assert pods["verb"] == "list" and pods["responseStatus"]["code"] == 200
    assert pods["sourceIPs"] == [f"127.0.0.1:{single[0][2]}"]
    cm = by_uri(lines, "/api/v1/namespaces/default/configmaps")
    assert cm["verb"] == "create" and cm["objectRef"]["uid"] == K8S_UID
    assert cm["requestObject"] == {"kind": "ConfigMap", "data": {"a": "b"}}
    for i in range(4):
        line = by_uri(lines, f"/v1.41/containers/json?n={i}")
        assert line["verb"] == "GET" and line["responseStatus"]["code"] == 200
        assert line["sourceIPs"] == [f"127.0.0.1:{shared_port}"]
