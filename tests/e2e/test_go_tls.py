"""Go's crypto/tls end to end: a small Go HTTPS server (go_https_server/, Go's net/http, which
serves HTTP/2 by ALPN by default) built here with Debian's golang-go, with and without its
symbol table, and real curl over HTTP/1.1 and HTTP/2. Also: a target that cannot be audited
(a Go program without crypto/tls, a program with neither Go nor OpenSSL) is reported in one
clear line and skipped while the others are audited."""

import json
import shutil
import subprocess
import time

import pytest

from conftest import GoServer, make_auditor, parse_line, require, stop_process
from test_audit_semantics import by_uri


@pytest.fixture
def go_server(go_programs, tls_material):
    servers = []

    def _start(kind="server"):
        s = GoServer(go_programs[kind], tls_material).start()
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.stop()


def curl(server, paths, *extra, version="--http1.1"):
    """One curl process (-Z: several paths share one connection when HTTP/2 multiplexes).
    Returns [(http_version, code, local_port, body)] in order."""
    cmd = ["curl", "-s", "--cacert", str(server.tls.ca), version, "--max-time", "20", "-Z"]
    outs = []
    for p in paths:
        cmd += ["-o", "/dev/stdout", server.url(p)]
    cmd += list(extra) + ["-w", "\\n@@ %{http_version} %{http_code} %{local_port}\\n"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    body = []
    for line in out.splitlines():
        if line.startswith("@@ "):
            v, code, port = line.split()[1:]
            outs.append((v, int(code), int(port), "\n".join(body).strip()))
            body = []
        elif line:
            body.append(line)
    return outs


def run_go_auditor(binary, pids, level="request", extra=()):
    aud = make_auditor(binary, pids, (), ["--level", level] + list(extra))
    aud.start()
    aud.wait_ready()
    return aud


@pytest.mark.parametrize("kind", ["server", "stripped"])
def test_go_server_http1_and_http2(kind, go_server, auditor_binary):
    require(shutil.which("curl"), "curl is needed")
    srv = go_server(kind)
    aud = run_go_auditor(auditor_binary, [srv.pid])
    try:
        h1_get = curl(srv, ["/v1.41/containers/json?all=1&filters=%7B%7D"])
        h1_post = curl(srv, ["/v1.41/containers/create?name=web"], "-X", "POST", "-H",
                       "Content-Type: application/json", "--data-binary",
                       json.dumps({"Image": "busybox", "Cmd": ["true"]}))
        h1_stream = curl(srv, ["/stream?n=3"])
        h2_multi = curl(srv, [f"/api/v1/namespaces/ns{i}/pods" for i in range(3)],
                        version="--http2")
        h2_404 = curl(srv, ["/status/404"], version="--http2")
        h2_post = curl(srv, ["/api/v1/namespaces/default/configmaps"], "-X", "POST", "-H",
                       "Content-Type: application/json", "--data-binary",
                       json.dumps({"kind": "ConfigMap", "data": {"k": "v"}}), version="--http2")
        aud.wait_quiet(at_least=8)
    finally:
        assert aud.stop() == 0, aud.diagnostics()
    for v, _c, _p, _b in h1_get + h1_post + h1_stream:
        assert v == "1.1"
    for v, _c, _p, _b in h2_multi + h2_404 + h2_post:
        assert v == "2", "test set-up: HTTP/2 was not negotiated with the Go server"
    assert len({p for _v, _c, p, _b in h2_multi}) == 1, "test set-up: curl did not multiplex"

    err = aud.stderr_text()
    plan = [ln for ln in err.splitlines() if "probe plan for Go program" in ln]
    assert len(plan) == 1, err
    assert "crypto/tls.(*Conn).Read" in plan[0] and "emulated" in plan[0]
    assert ("pclntab" if kind == "stripped" else "ELF symbols") in plan[0], plan[0]
    assert f"auditing pid {srv.pid}" in err

    parsed = [parse_line(r) for r in aud.raw_lines()]
    assert not [p for p in parsed if p.error], aud.diagnostics()
    lines = [p.obj for p in parsed]
    assert len(lines) == 8, aud.diagnostics()

    get = by_uri(lines, "/v1.41/containers/json?all=1&filters=%7B%7D")
    assert (get["verb"], get["kind"], get["responseStatus"]["code"]) == ("GET", "docker-swarm",
                                                                          200)
    assert get["sourceIPs"] == [f"127.0.0.1:{h1_get[0][2]}"]
    post = by_uri(lines, "/v1.41/containers/create?name=web")
    assert post["verb"] == "POST" and post["responseStatus"]["code"] == 201
    assert post["objectRef"]["uid"] == json.loads(h1_post[0][3])["Id"]
    assert post["requestObject"] == {"Image": "busybox", "Cmd": ["true"]}
    assert post["sourceIPs"] == [f"127.0.0.1:{h1_post[0][2]}"]
    assert by_uri(lines, "/stream?n=3")["responseStatus"]["code"] == 200
    for i, (_v, _c, port, _b) in enumerate(h2_multi):
        pods = by_uri(lines, f"/api/v1/namespaces/ns{i}/pods")
        assert (pods["verb"], pods["kind"]) == ("list", "kubernetes")
        assert pods["objectRef"] == {"apiVersion": "v1", "namespace": f"ns{i}",
                                     "resource": "pods"}
        assert pods["sourceIPs"] == [f"127.0.0.1:{port}"]
    assert by_uri(lines, "/status/404")["responseStatus"]["code"] == 404
    cm = by_uri(lines, "/api/v1/namespaces/default/configmaps")
    assert cm["verb"] == "create" and cm["requestObject"] == {"kind": "ConfigMap",
                                                              "data": {"k": "v"}}
    assert len({ln["audit"]["auditID"] for ln in lines}) == 8


def test_unsupported_targets_reported_and_skipped(go_server, go_programs, auditor_binary,
                                                   tmp_path):
    require(shutil.which("curl"), "curl is needed")
    srv = go_server("server")
    notls = subprocess.Popen([str(go_programs["notls"])], stdout=subprocess.DEVNULL,
                             start_new_session=True)
    # Neither Go nor OpenSSL: a copy of sleep under a name of our own.
    plain_exe = tmp_path / "mat-plain-sleep"
    shutil.copy(shutil.which("sleep"), plain_exe)
    plain = subprocess.Popen([str(plain_exe), "300"], start_new_session=True)
    try:
        time.sleep(0.3)
        aud = run_go_auditor(auditor_binary, [notls.pid, plain.pid, srv.pid], level="metadata")
        try:
            got = curl(srv, ["/v1.41/services"])
            aud.wait_quiet(at_least=1)
        finally:
            assert aud.stop() == 0, aud.diagnostics()
    finally:
        stop_process(notls)
        stop_process(plain)
    assert got[0][1] == 200
    err = aud.stderr_text().splitlines()
    about_notls = [ln for ln in err if f"pid {notls.pid} " in ln]
    assert len(about_notls) == 1, "\n".join(err)
    assert "not audited" in about_notls[0]
    assert str(go_programs["notls"]) in about_notls[0]
    assert "does not use crypto/tls" in about_notls[0]
    about_plain = [ln for ln in err if f"pid {plain.pid} " in ln]
    assert len(about_plain) == 1, "\n".join(err)
    assert "not audited" in about_plain[0] and str(plain_exe) in about_plain[0]
    assert "not a Go program" in about_plain[0] or "no Go build info" in about_plain[0], \
        about_plain[0]
    lines = [parse_line(r).obj for r in aud.raw_lines()]
    assert len(lines) == 1 and lines[0]["audit"]["requestURI"] == "/v1.41/services"
