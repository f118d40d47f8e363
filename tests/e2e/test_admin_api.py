"""The admin API (issue 12): the source document's curl commands, run verbatim against the
running auditor with client bundles made here, change the level of the audit lines that follow;
refusals (no certificate, a foreign CA, a non-admin bundle) and 4xx answers change nothing;
/metrics parses as Prometheus text; the page is served; SIGHUP and a change of the file reload
the configuration and a broken file is refused with its file and line.

Real nginx, real curl, real BPF: needs root (see conftest.py)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (IN_CI, LICENSE_KEY, Auditor, curl, free_port, parse_line, require, run,
                      wait_until)

API = "/api/ucp/config/logging"
ADMIN_CN = "admin"
# The source document's commands, byte for byte (reference/mke-audit-logging.txt, "Enabling MKE
# audit logging using the API", steps 2 and 4). Only the name ucp-domain is pointed at the
# auditor, by curl's own configuration file (connect-to in $HOME/.curlrc).
DOC_EXPORT = "export DOCKER_CERT_PATH=~/ucp-bundle-dir/"
DOC_GET = ("curl --cert ${DOCKER_CERT_PATH}/cert.pem --key ${DOCKER_CERT_PATH}/key.pem "
           "--cacert ${DOCKER_CERT_PATH}/ca.pem -k -X GET "
           "https://ucp-domain/api/ucp/config/logging > auditlog.json")
DOC_PUT = ("curl --cert ${DOCKER_CERT_PATH}/cert.pem --key ${DOCKER_CERT_PATH}/key.pem "
           "--cacert ${DOCKER_CERT_PATH}/ca.pem -k -H \"Content-Type: application/json\" "
           "-X PUT --data $(cat auditlog.json) https://ucp-domain/api/ucp/config/logging")

CONFIG = """\
# mke-audit-tap e2e: an MKE configuration file with our section
[scheduling_configuration]
  enable_admin_ucp_scheduling = false

[audit_log_configuration]
  # the audit level the admin API changes
  level = "metadata"   # "", "metadata" or "request"
  support_dump_include_audit_logs = false

[mke_audit_tap]
  log_level = "INFO"
"""


def openssl(*args):
    run(["openssl", *args])


def make_cert(d: Path, name: str, cn: str, ca: str, client=True):
    ext = d / f"{name}.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   + ("extendedKeyUsage=clientAuth\n" if client else
                      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:ucp-domain\n"))
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", f"/CN={cn}",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
    openssl("x509", "-req", "-sha256", "-days", "2", "-in", str(d / f"{name}.csr"),
            "-CA", str(d / f"{ca}.pem"), "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial",
            "-extfile", str(ext), "-out", str(d / f"{name}.pem"))
    os.chmod(d / f"{name}.key", 0o600)


def make_ca(d: Path, name: str, cn: str):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
            "-subj", f"/CN={cn}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"))


class Admin:
    """The auditor with its admin listener, the bundles and a home for the document's steps."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pki = tmp / "pki"
        self.pki.mkdir()
        self.port = free_port()
        self.config = tmp / "mke-config.toml"
        self.config.write_text(CONFIG)
        make_ca(self.pki, "ca", "mke-audit-tap e2e client CA")
        make_ca(self.pki, "rogue", "some other CA")
        make_cert(self.pki, "server", "ucp-domain", "ca", client=False)
        make_cert(self.pki, "admin", ADMIN_CN, "ca")
        make_cert(self.pki, "alice", "alice", "ca")
        make_cert(self.pki, "forged", ADMIN_CN, "rogue")  # the admin's CN, the wrong CA
        self.homes = {}
        for who in ("admin", "alice", "forged"):
            home = tmp / f"home-{who}"
            bundle = home / "ucp-bundle-dir"
            bundle.mkdir(parents=True)
            (bundle / "cert.pem").write_bytes((self.pki / f"{who}.pem").read_bytes())
            (bundle / "key.pem").write_bytes((self.pki / f"{who}.key").read_bytes())
            os.chmod(bundle / "key.pem", 0o600)
            (bundle / "ca.pem").write_bytes((self.pki / "ca.pem").read_bytes())
            (home / ".curlrc").write_text(f"connect-to = ucp-domain:443:127.0.0.1:{self.port}\n"
                                          "silent\nshow-error\nmax-time = 20\n")
            self.homes[who] = home

    def args(self):
        return ["--config", str(self.config), "--license-key", LICENSE_KEY,
                "--admin-listen", f"127.0.0.1:{self.port}",
                "--admin-cert", str(self.pki / "server.pem"),
                "--admin-key", str(self.pki / "server.key"),
                "--admin-ca", str(self.pki / "ca.pem"), "--admin-subject", ADMIN_CN]

    def shell(self, who: str, script: str, check=True):
        """Runs `script` with bash in the bundle owner's home (HOME, cwd)."""
        home = self.homes[who]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
        return run(["bash", "-euc", script], cwd=str(home), env=env, check=check)

    def request(self, who, method, path=API, data=None, extra=()):
        """(status, body) of one request with `who`'s bundle (None: no certificate)."""
        cmd = ["curl", "-sk", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}",
               "-X", method, *extra]
        if who is not None:
            cmd += ["--cert", str(self.pki / f"{who}.pem"), "--key", str(self.pki / f"{who}.key")]
        if data is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        cp = run(cmd + [f"https://127.0.0.1:{self.port}{path}"], check=False,
                 input=data.encode() if isinstance(data, str) else data)
        if cp.returncode != 0:
            return None, cp.stderr.decode(errors="replace")
        body, _, code = cp.stdout.decode(errors="replace").rpartition("\n")
        return int(code), body

    def settings(self):
        code, body = self.request("admin", "GET")
        assert code == 200, (code, body)
        return json.loads(body)


@pytest.fixture
def admin(tmp_path, environment_ok):
    return Admin(tmp_path)


def start(auditor_binary, admin, server, request):
    aud = Auditor(auditor_binary, admin.args() + ["--pid", str(server.pid)])
    from conftest import _register
    _register(request.node, aud)
    aud.start()
    aud.wait_ready()
    return aud


def audit_lines(aud):
    out = []
    for raw in aud.raw_lines():
        pl = parse_line(raw)
        if pl.is_audit:
            out.append(pl)
    return out


def post_items(server, tag):
    body = json.dumps({"name": "widget", "tag": tag}).encode()
    return curl(server, [f"/items?tag={tag}"], method="POST", data=body,
                headers=["Content-Type: application/json"])[0]


def line_for(aud, tag, timeout=15.0):
    """The audit line of POST /items?tag=TAG, waited for."""
    uri = f"/items?tag={tag}"
    found = []

    def seen():
        found[:] = [l for l in audit_lines(aud) if l.audit.get("requestURI") == uri]
        return bool(found)

    wait_until(seen, timeout)
    return found[0].audit if found else None


def test_document_curl_steps_change_the_level(admin, start_server, auditor_binary, request):
    require(os.geteuid() == 0, "needs root")
    nginx = start_server("nginx")
    aud = start(auditor_binary, admin, nginx, request)
    try:
        # Step 2, verbatim: GET into auditlog.json. One compact line, MKE's document.
        admin.shell("admin", DOC_EXPORT + "\n" + DOC_GET)
        doc = (admin.homes["admin"] / "auditlog.json").read_text()
        assert doc == ('{"logLevel":"INFO","auditLevel":"metadata",'
                       '"supportDumpIncludeAuditLogs":false}\n'), doc

        sent = post_items(nginx, "before")
        a = line_for(aud, "before")
        assert a is not None, f"no line at metadata\n{aud.diagnostics()}"
        assert a["level"] == "metadata" and "requestObject" not in a, a

        # Step 3: edit auditLevel; step 4, verbatim: PUT --data $(cat auditlog.json).
        admin.shell("admin", "sed -i 's/\"auditLevel\":\"metadata\"/\"auditLevel\":\"request\"/'"
                    " auditlog.json")
        put = admin.shell("admin", DOC_EXPORT + "\n" + DOC_PUT)
        assert json.loads(put.stdout)["auditLevel"] == "request", put.stdout
        assert admin.settings()["auditLevel"] == "request"

        post_items(nginx, "at-request")
        a = line_for(aud, "at-request")
        assert a is not None, f"no line at request\n{aud.diagnostics()}"
        assert a["level"] == "request", a
        assert a.get("requestObject") == {"name": "widget", "tag": "at-request"}, a

        # Written back: the one line changed, comments and other sections kept.
        text = admin.config.read_text()
        assert text == CONFIG.replace('level = "metadata"', 'level = "request"'), text

        # none: every probe detached, no line for what follows.
        admin.shell("admin", "sed -i 's/\"auditLevel\":\"request\"/\"auditLevel\":\"none\"/'"
                    " auditlog.json")
        put = admin.shell("admin", DOC_EXPORT + "\n" + DOC_PUT)
        assert json.loads(put.stdout)["auditLevel"] == "", put.stdout
        before = len(audit_lines(aud))
        post_items(nginx, "at-none")
        aud.wait_quiet(timeout=4)
        time.sleep(1.0)
        assert line_for(aud, "at-none", timeout=0.5) is None, aud.diagnostics()
        assert len(audit_lines(aud)) == before, aud.diagnostics()
        code, metrics = admin.request("admin", "GET", "/metrics")
        assert code == 200 and "mke_audit_tap_capture_attached 0" in metrics, metrics
        assert 'level = ""' in admin.config.read_text()

        # And back to metadata: probes attached again.
        code, body = admin.request("admin", "PUT", data='{"auditLevel":"metadata"}')
        assert code == 200, body
        post_items(nginx, "again")
        a = line_for(aud, "again")
        assert a is not None, f"no line after re-attaching\n{aud.diagnostics()}"
        assert a["level"] == "metadata" and "requestObject" not in a, a
    finally:
        aud.stop()
    assert aud.returncode == 0, aud.diagnostics()
    assert LICENSE_KEY not in aud.stderr_text()
    assert "PRIVATE KEY" not in aud.stderr_text()


def test_refusals_and_errors_change_nothing(admin, start_server, auditor_binary, request):
    nginx = start_server("nginx")
    aud = start(auditor_binary, admin, nginx, request)
    try:
        want = admin.settings()
        assert want["auditLevel"] == "metadata"
        config_before = admin.config.read_text()

        # No client certificate, or one of another CA (even with the admin's CN): no answer.
        for who in (None, "forged"):
            code, body = admin.request(who, "GET")
            assert code is None or code in (401, 403), (who, code, body)
            code, body = admin.request(who, "PUT", data='{"auditLevel":"request"}')
            assert code is None or code in (401, 403), (who, code, body)
        # The document's PUT with the forged bundle fails as well.
        admin.shell("forged", "echo '{\"auditLevel\":\"request\"}' > auditlog.json")
        cp = admin.shell("forged", DOC_EXPORT + "\n" + DOC_PUT, check=False)
        assert cp.returncode != 0, cp.stdout

        # A non-admin bundle reads but does not change.
        code, body = admin.request("alice", "GET")
        assert code == 200 and json.loads(body) == want, (code, body)
        code, body = admin.request("alice", "PUT", data='{"auditLevel":"request"}')
        assert code == 403 and "error" in json.loads(body), (code, body)

        # 4xx with a JSON error.
        cases = [("POST", '{"auditLevel":"request"}', 405),
                 ("DELETE", None, 405),
                 ("PUT", '{"auditLevel":"request"', 400),
                 ("PUT", '{"auditLevel":"request","colour":"blue"}', 400),
                 ("PUT", '{"auditLevel":"verbose"}', 400),
                 ("PUT", '{"logLevel":"LOUD"}', 400),
                 ("PUT", '["request"]', 400),
                 ("PUT", '{"auditLevel":"request","pad":"' + "x" * 40000 + '"}', 413)]
        for method, data, status in cases:
            code, body = admin.request("admin", method, data=data)
            assert code == status, (method, (data or "")[:60], code, body[:200])
            assert "error" in json.loads(body), body
        code, body = admin.request("admin", "GET", "/nothing")
        assert code == 404, code

        assert admin.settings() == want
        assert admin.config.read_text() == config_before
        # Still at metadata: a request gets a metadata line.
        post_items(nginx, "after-refusals")
        a = line_for(aud, "after-refusals")
        assert a is not None and a["level"] == "metadata" and "requestObject" not in a, a
    finally:
        aud.stop()
    assert aud.returncode == 0, aud.diagnostics()


def test_metrics_parse_and_the_page(admin, start_server, auditor_binary, request):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        require(False, "python3-prometheus-client is needed to parse /metrics")
    nginx = start_server("nginx")
    aud = start(auditor_binary, admin, nginx, request)
    try:
        post_items(nginx, "metrics")
        assert line_for(aud, "metrics") is not None, aud.diagnostics()
        code, text = admin.request("alice", "GET", "/metrics")
        assert code == 200, text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        lines = families["mke_audit_tap_audit_lines"].samples
        assert lines[0].value >= 1, text
        assert families["mke_audit_tap_records"].samples[0].value > 0, text
        reasons = {s.labels["reason"] for s in families["mke_audit_tap_losses"].samples}
        assert {"ringbuf_drops", "truncated_calls", "untracked_calls"} <= reasons, reasons
        # Every reason the loss notices on stdout use, the output's included (issue 13).
        lost = {s.labels["reason"]: s.value for s in families["mke_audit_tap_lost"].samples}
        assert {"output_buffer_full", "output_write_failed", "ringbuf_drops", "stream_gaps",
                "http_parse_errors"} <= set(lost), lost
        assert lost["output_buffer_full"] == 0, lost
        assert families["mke_audit_tap_output_queued_bytes"].samples[0].value >= 0, text
        assert families["mke_audit_tap_loss_notices"].samples[0].value == 0, text
        targets = families["mke_audit_tap_target_info"].samples
        assert {s.labels["comm"] for s in targets} == {"nginx"}, text
        assert families["mke_audit_tap_targets"].samples[0].value == len(targets) >= 1
        level = {s.labels["level"]: s.value for s in families["mke_audit_tap_audit_level"].samples}
        assert level == {"none": 0, "metadata": 1, "request": 0}, level
        # Lines by level and kind; per-target capture mode; probes; connections tracked now.
        kinds = {(s.labels["level"], s.labels["kind"]): s.value
                 for s in families["mke_audit_tap_audit_lines_by_kind"].samples}
        assert set(kinds) == {(l, k) for l in ("metadata", "request")
                              for k in ("docker-swarm", "kubernetes")}, kinds
        assert kinds[("metadata", "docker-swarm")] >= 1, kinds  # POST /items is no k8s call
        assert sum(kinds.values()) == lines[0].value, (kinds, text)
        assert kinds[("request", "docker-swarm")] + kinds[("request", "kubernetes")] == 0, kinds
        # The default capture (auto): keys for nginx (keys+plaintext while connections older
        # than the auditor are bridged).
        assert {s.labels["capture_mode"] for s in targets} <= {"keys", "keys+plaintext"}, text
        probes = families["mke_audit_tap_probes_attached"].samples
        uprobes = {s.labels["pid"]: s.value for s in probes if s.labels["kind"] == "uprobe"}
        assert set(uprobes) == {s.labels["pid"] for s in targets}, text
        assert all(v > 0 for v in uprobes.values()), text
        assert [s.value for s in probes if s.labels["kind"] == "tracepoint"][0] > 0, text
        assert families["mke_audit_tap_connections_tracked"].samples[0].value >= 0, text

        code, page = admin.request("alice", "GET", "/")
        assert code == 200
        for text in ("Admin Settings", "Audit Logs", "Configure Audit Log Level", "None",
                     "Metadata", "Request", "Save", "support-dump", API, "/metrics"):
            assert text in page, text
        assert not re.search(r"(src|href)=\"(https?:)?//", page), "external asset in the page"
    finally:
        aud.stop()


def test_reload_on_sighup_and_on_change(admin, start_server, auditor_binary, request):
    nginx = start_server("nginx")
    aud = start(auditor_binary, admin, nginx, request)
    try:
        assert admin.settings()["auditLevel"] == "metadata"
        # A change of the file is picked up without a signal.
        admin.config.write_text(CONFIG.replace('level = "metadata"', 'level = "request"'))
        assert wait_until(lambda: admin.settings()["auditLevel"] == "request", 10), \
            aud.diagnostics()
        post_items(nginx, "reloaded")
        a = line_for(aud, "reloaded")
        assert a is not None and a.get("requestObject") == {"name": "widget", "tag": "reloaded"}

        # A broken file: the running configuration stays, the log names file and line.
        broken = CONFIG.replace('level = "metadata"', 'level = "loud"')
        admin.config.write_text(broken)
        os.kill(aud.proc.pid, signal.SIGHUP)
        pattern = re.compile(re.escape(str(admin.config)) + r": line 7: level")
        assert wait_until(lambda: pattern.search(aud.stderr_text()), 10), aud.diagnostics()
        assert admin.settings()["auditLevel"] == "request"
        assert aud.proc.poll() is None

        # SIGHUP rereads a fixed file: the log level too.
        fixed = CONFIG.replace('log_level = "INFO"', 'log_level = "debug"')
        stamp = admin.config.stat().st_mtime_ns
        admin.config.write_text(fixed)
        os.kill(aud.proc.pid, signal.SIGHUP)
        assert wait_until(lambda: admin.settings() == {
            "logLevel": "DEBUG", "auditLevel": "metadata",
            "supportDumpIncludeAuditLogs": False}, 10), aud.diagnostics()
        assert stamp is not None
    finally:
        aud.stop()
    assert aud.returncode == 0, aud.diagnostics()
