"""`mke-audit-tap doctor` on this machine (everything works: exit 0, one line per check, with a
TLS nginx and a Go server as targets) and on simulated bad ones: capabilities dropped with
setpriv (exit 1, a FAIL line for each missing item) and a target with no TLS library."""

import re
import shutil
import subprocess

import pytest

from conftest import GoServer, children_of, require, run, stop_process

LINE = re.compile(r"^(ok   |warn |FAIL )([^:]+): (.+)$")


def doctor(binary, *args, prefix=()):
    r = subprocess.run([*prefix, str(binary), "doctor", *args], capture_output=True, text=True,
                       timeout=120)
    lines = r.stdout.splitlines()
    assert lines and lines[-1].startswith("doctor: "), f"no summary line:\n{r.stdout}\n{r.stderr}"
    checks = []
    for line in lines[:-1]:
        m = LINE.match(line)
        assert m, f"not a check line: {line!r}\n{r.stdout}"
        checks.append((m.group(1).strip(), m.group(2), m.group(3)))
    return r, checks


def find(checks, status, item, text_re=".*"):
    return [c for c in checks if c[0] == status and c[1] == item and re.search(text_re, c[2])]


def dump(r):
    return f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"


@pytest.fixture
def go_server(go_programs, tls_material):
    s = GoServer(go_programs["server"], tls_material).start()
    yield s
    s.stop()


def test_doctor_all_good(start_server, go_server, auditor_binary):
    nginx = start_server("nginx")
    r, checks = doctor(auditor_binary, "--pid", str(nginx.pid), "--pid", str(go_server.pid))
    assert r.returncode == 0, dump(r)
    assert not [c for c in checks if c[0] == "FAIL"], dump(r)
    for item, text in (("kernel BTF", "/sys/kernel/btf/vmlinux"),
                       ("kernel uprobes", ""),
                       ("kernel BPF ring buffer", "supported"),
                       ("kernel BPF programs", r"\d+ programs loaded"),
                       ("kernel BTF tracepoints", "sock_send_length"),
                       ("kernel syscall tracepoints", "sys_enter_read"),
                       ("kernel BPF ring buffer map", "mapped"),
                       ("kernel uprobe attach", "uprobe and a uretprobe"),
                       ("capability CAP_BPF", ""), ("capability CAP_PERFMON", ""),
                       ("capability CAP_SYS_ADMIN", ""),
                       ("OpenSSL calibration helper", "mke-audit-tap-sslcal")):
        assert find(checks, "ok", item, text), f"no ok line for {item}:\n{dump(r)}"
    # Every nginx worker (they do the TLS work): library and version, probe plan, keys capture,
    # and a real attach.
    workers = children_of(nginx.pid)
    assert workers
    for pid in [nginx.pid, *workers]:
        item = f"target pid {pid} (nginx)"
        assert find(checks, "ok", item, r"TLS library OpenSSL \S*libssl\.so\.\S+ \(OpenSSL \d"), \
            dump(r)
        assert find(checks, "ok", item, r"probes on \S*libssl\.so\.\S+: .*SSL_read"), dump(r)
        assert find(checks, "ok", item, r"capture keys .*OpenSSL layout calibrated"), dump(r)
        assert find(checks, "ok", item, r"probes attach: \d+ uprobes on 1 TLS stack"), dump(r)
    item = f"target pid {go_server.pid} (mat-go-server)"
    assert find(checks, "ok", item, r"TLS library Go crypto/tls in the executable \(go1\."), dump(r)
    assert find(checks, "ok", item, r"probes: .*crypto/tls\.\(\*Conn\)\.Read"), dump(r)
    assert find(checks, "ok", item, r"capture keys .*writeKeyLog"), dump(r)
    assert find(checks, "ok", item, r"probes attach: \d+ uprobes"), dump(r)

    # --capture plaintext: the per-call probes, said so.
    r, checks = doctor(auditor_binary, "--capture", "plaintext", "--pid", str(go_server.pid))
    assert r.returncode == 0, dump(r)
    assert find(checks, "ok", f"target pid {go_server.pid} (mat-go-server)",
                r"^capture plaintext \(--capture plaintext"), dump(r)

    # Nothing stays attached and the targets still serve.
    run(["curl", "-sk", "-o", "/dev/null", nginx.url("/after-doctor")])
    run(["curl", "-sk", "-o", "/dev/null", go_server.url("/after-doctor")])


def test_doctor_without_capabilities(start_server, auditor_binary):
    require(shutil.which("setpriv"), "setpriv (util-linux) is needed")
    nginx = start_server("nginx")
    # CAP_CHECKPOINT_RESTORE too: it opens /proc/PID/map_files as CAP_SYS_ADMIN does.
    r, checks = doctor(auditor_binary, "--pid", str(nginx.pid),
                       prefix=["setpriv", "--bounding-set",
                               "-sys_admin,-bpf,-perfmon,-checkpoint_restore", "--"])
    assert r.returncode == 1, dump(r)
    assert find(checks, "FAIL", "capability CAP_SYS_ADMIN", "uprobe is refused"), dump(r)
    assert find(checks, "warn", "capability CAP_BPF", "cannot be loaded"), dump(r)
    assert find(checks, "warn", "capability CAP_PERFMON", "cannot be attached"), dump(r)
    assert find(checks, "FAIL", "kernel BPF programs", "cannot load .*CAP_BPF"), dump(r)
    assert find(checks, "FAIL", "kernel BPF ring buffer", "not permitted"), dump(r)
    # The targets' libraries are mapped but cannot be opened without CAP_SYS_ADMIN.
    assert find(checks, "FAIL", f"target pid {nginx.pid} (nginx)", "cannot be opened"), dump(r)
    # Things that do not depend on capabilities still pass.
    assert find(checks, "ok", "kernel BTF"), dump(r)
    assert r.stdout.splitlines()[-1].startswith("doctor: ") and "failure(s)" in r.stdout


def test_doctor_target_without_tls(auditor_binary, tmp_path):
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        r, checks = doctor(auditor_binary, "--pid", str(sleeper.pid))
        assert r.returncode == 1, dump(r)
        assert find(checks, "FAIL", f"target pid {sleeper.pid} (sleep)",
                    r"no supported TLS library: .*not a Go .*it will not be audited"), dump(r)
        # The kernel is fine: only the target fails.
        assert [c for c in checks if c[0] == "FAIL"] == find(checks, "FAIL",
                                                              f"target pid {sleeper.pid} (sleep)")
    finally:
        stop_process(sleeper)


def test_doctor_no_targets_and_missing_ones(auditor_binary):
    r, checks = doctor(auditor_binary)
    assert r.returncode == 0, dump(r)
    assert find(checks, "warn", "targets", "none given"), dump(r)
    r, checks = doctor(auditor_binary, "--comm", "mat-no-such")
    assert r.returncode == 0, dump(r)
    assert find(checks, "warn", "targets", "no running process matches --comm mat-no-such")
    r = subprocess.run([str(auditor_binary), "doctor", "--capture", "bogus"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "capture" in r.stderr, dump(r)


def test_doctor_without_the_calibration_helper(start_server, auditor_binary, tmp_path):
    """A copy of the binary without mke-audit-tap-sslcal beside it: OpenSSL targets cannot get
    keys capture. auto falls back to plaintext (a warning, exit 0); --capture keys fails."""
    nginx = start_server("nginx")
    lonely = tmp_path / "mke-audit-tap"
    shutil.copy(auditor_binary, lonely)
    r, checks = doctor(lonely, "--pid", str(nginx.pid))
    assert r.returncode == 0, dump(r)
    assert find(checks, "warn", "OpenSSL calibration helper", "plaintext fallback"), dump(r)
    item = f"target pid {nginx.pid} (nginx)"
    assert find(checks, "warn", item,
                r"^capture plaintext fallback .*keys capture not possible: .*calibration failed"), \
        dump(r)
    assert find(checks, "ok", item, r"probes attach: \d+ uprobes"), dump(r)
    r, checks = doctor(lonely, "--capture", "keys", "--pid", str(nginx.pid))
    assert r.returncode == 1, dump(r)
    assert find(checks, "FAIL", item, r"keys capture not possible .*will not be audited"), dump(r)


def test_doctor_on_a_kernel_without_socket_tracepoints(start_server, auditor_binary):
    """Before Linux 6.3 (simulated: the tracepoints hidden by a test-only variable): a warning,
    not a failure; the target gets the per-call capture."""
    nginx = start_server("nginx")
    r, checks = doctor(auditor_binary, "--pid", str(nginx.pid),
                       prefix=("env", "MKE_AUDIT_TAP_TEST_NO_SOCK_TRACEPOINTS=1"))
    assert r.returncode == 0, dump(r)
    assert find(checks, "warn", "kernel socket tracepoints", "keys capture is off"), dump(r)
    assert find(checks, "ok", "kernel BTF tracepoints", "inet_sock_set_state"), dump(r)
    assert not find(checks, "ok", "kernel BTF tracepoints", "sock_send_length"), dump(r)
    worker = children_of(nginx.pid)[0]
    assert find(checks, "warn", f"target pid {worker} (nginx)",
                "plaintext fallback.*sock_send_length"), dump(r)
    assert find(checks, "ok", f"target pid {worker} (nginx)", "probes attach"), dump(r)
