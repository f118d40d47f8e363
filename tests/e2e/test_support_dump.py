"""The support dump (issue 12): `mke-audit-tap support-dump` next to a running auditor writes a
tar.gz with the version, the effective configuration, the running auditor's settings and
counters (over its admin API with a client bundle), the targets and what would be probed,
kernel facts and the auditor's recent logs. Lines containing auditID are removed unless
support_dump_include_audit_logs is true (from the admin API or the configuration file), and the
license key appears nowhere in it either way.

Real nginx, real BPF: needs root (see conftest.py)."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from conftest import LICENSE_KEY, _register, Auditor, require, run
from test_admin_api import Admin, line_for, post_items


@pytest.fixture
def admin(tmp_path, environment_ok):
    return Admin(tmp_path)


def write_log(aud, path: Path):
    """What a log collector would keep of the auditor: stderr and stdout (the audit lines)."""
    path.write_text(aud.stderr_text() + "\n"
                    + b"".join(aud.raw_lines()).decode("utf-8", "replace"))


def dump(auditor_binary, admin, tmp: Path, name: str, extra):
    out = tmp / f"{name}.tar.gz"
    cp = run([str(auditor_binary), "support-dump", "--output", str(out), *extra], timeout=60)
    raw = out.read_bytes()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for m in tar.getmembers():
            assert m.isfile(), m.name
            top, _, rest = m.name.partition("/")
            assert top.startswith("mke-audit-tap-support-dump-"), m.name
            files[rest] = tar.extractfile(m).read().decode("utf-8", "replace")
    everything = "\n".join(files.values())
    assert LICENSE_KEY not in everything, name
    import gzip
    assert LICENSE_KEY.encode() not in gzip.decompress(raw), name
    assert "PRIVATE KEY" not in everything, name
    return files, cp.stderr.decode(errors="replace")


def test_support_dump_content_and_audit_line_filtering(admin, start_server, auditor_binary,
                                                        request, tmp_path):
    require(os.geteuid() == 0, "needs root")
    nginx = start_server("nginx")
    aud = Auditor(auditor_binary, admin.args() + ["--pid", str(nginx.pid)])
    _register(request.node, aud)
    aud.start()
    aud.wait_ready()
    bundle = str(admin.homes["admin"] / "ucp-bundle-dir")
    log = tmp_path / "auditor.log"
    try:
        post_items(nginx, "dumped")
        a = line_for(aud, "dumped")
        assert a is not None, aud.diagnostics()
        write_log(aud, log)
        assert "auditID" in log.read_text() and LICENSE_KEY in log.read_text()
        common = [*admin.args(), "--pid", str(nginx.pid), "--log-file", str(log)]

        # support_dump_include_audit_logs = false (the file; the API says the same).
        files, said = dump(auditor_binary, admin, tmp_path, "without", [*common, "--bundle", bundle])
        assert {"version.txt", "config.toml", "settings.json", "metrics.txt", "doctor.txt",
                "kernel.txt", "logs.txt", "README.txt"} <= set(files), files.keys()
        assert files["version.txt"].startswith("mke-audit-tap 0.1.0\n")
        config = files["config.toml"]
        assert 'level = "metadata"' in config and "license_key = \"<masked: " in config, config
        assert f'admin_key = "{admin.pki / "server.key"}"' in config, config
        assert '"supportDumpIncludeAuditLogs":false' in files["settings.json"]
        assert "mke_audit_tap_audit_lines_total" in files["metrics.txt"], files["metrics.txt"]
        # The doctor's report, capture mode decided as the auditor decides it (no longer a fixed
        # "plaintext" whatever the mode).
        doctor = files["doctor.txt"]
        for pid in nginx.ssl_pids():
            assert f"target pid {pid} (nginx)" in doctor, doctor
        assert "TLS library OpenSSL " in doctor and "libssl.so" in doctor, doctor
        assert "capture keys (" in doctor or "capture plaintext" in doctor, doctor
        assert "probes attach: " in doctor and "\ndoctor: " in doctor, doctor
        kernel = files["kernel.txt"]
        assert "uname: Linux " in kernel and "btf (/sys/kernel/btf/vmlinux): " in kernel, kernel
        assert "kernel.unprivileged_bpf_disabled = " in kernel, kernel
        logs = files["logs.txt"]
        assert "ready: auditing" in logs, logs
        assert "auditID" not in logs, logs
        assert "containing auditID removed" in files["README.txt"], files["README.txt"]

        # The admin API turns it on: the audit lines stay, the license key is still masked.
        code, body = admin.request("admin", "PUT", data='{"supportDumpIncludeAuditLogs":true}')
        assert code == 200, body
        files, said = dump(auditor_binary, admin, tmp_path, "with-api",
                           [*common, "--bundle", bundle])
        logs = files["logs.txt"]
        assert "auditID" in logs and "/items?tag=dumped" in logs, logs
        assert "<masked>" in logs, logs
        assert "audit lines included" in files["README.txt"], files["README.txt"]

        # Without the bundle: the configuration file decides (the PUT wrote it back).
        assert "support_dump_include_audit_logs = true" in admin.config.read_text()
        files, said = dump(auditor_binary, admin, tmp_path, "with-file", common)
        assert "auditID" in files["logs.txt"] and "metrics.txt" not in files
        assert "counters: not included" in files["README.txt"]
        admin.config.write_text(admin.config.read_text().replace(
            "support_dump_include_audit_logs = true", "support_dump_include_audit_logs = false"))
        files, said = dump(auditor_binary, admin, tmp_path, "without-file", common)
        assert "auditID" not in files["logs.txt"] and "ready: auditing" in files["logs.txt"]
    finally:
        aud.stop()
    assert aud.returncode == 0, aud.diagnostics()


def test_support_dump_reads_docker_logs_of_the_container(auditor_binary, tmp_path):
    """MKE_AUDIT_TAP_CONTAINER=NAME: the logs are `docker logs` of that container (a stand-in
    docker on PATH here, which records its arguments), filtered the same way."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\n"
                      f"echo \"$@\" > {tmp_path}/docker-args\n"
                      "echo '2026-12-06T08:00:00.000000Z info ready: auditing 1 process(es)'\n"
                      "echo '{\"auditID\":\"x\",\"licenseKey\":\"" + LICENSE_KEY + "\"}'\n"
                      "echo 'on stderr' >&2\n")
    docker.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MKE_AUDIT_TAP_CONTAINER": "ucp-audit-tap"}
    config = tmp_path / "c.toml"
    for include in (False, True):
        config.write_text("[audit_log_configuration]\nlevel = \"metadata\"\n"
                          f"support_dump_include_audit_logs = {str(include).lower()}\n"
                          f"[mke_audit_tap]\nlicense_key = \"{LICENSE_KEY}\"\n")
        out = tmp_path / f"dump-{include}.tar.gz"
        run([str(auditor_binary), "support-dump", "--config", str(config), "--output", str(out)],
            env=env, timeout=60)
        assert (tmp_path / "docker-args").read_text().split() == [
            "logs", "--tail", "100000", "ucp-audit-tap"]
        with tarfile.open(out, "r:gz") as tar:
            files = {m.name.partition("/")[2]: tar.extractfile(m).read().decode()
                     for m in tar.getmembers()}
        logs = files["logs.txt"]
        assert "ready: auditing" in logs and "on stderr" in logs, logs
        assert ("auditID" in logs) == include, logs
        assert LICENSE_KEY not in "".join(files.values())
        assert "docker logs of container ucp-audit-tap" in files["README.txt"]
