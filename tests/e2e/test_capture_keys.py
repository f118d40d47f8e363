"""End-to-end: the keys capture (--capture auto, the default). The TLS secrets are taken once per
handshake, the socket's encrypted bytes are copied in the kernel and decrypted in the auditor.

Ground truth comes from outside the auditor: nginx's access log and what the clients saw. The
per-request cost claim is checked with the kernel's own run counts of the auditor's uprobe
programs (kernel.bpf_stats_enabled): none may run for a request on an established connection.
"""

import json
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BIG_SIZE, CLIENT_TIMEOUT, LINES_TIMEOUT, AuditRun, GoServer, NginxServer,
                      SServer,
                      Sent, TlsClient, client_context, curl, finish, http_request, make_auditor,
                      parse_line, require, run, wait_until)

KEYS = ["--capture", "auto"]

# (name, curl options): every suite the issue names, each negotiated for real.
SUITES = [
    ("tls13-aes128gcm", ["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"]),
    ("tls13-aes256gcm", ["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"]),
    ("tls13-chacha20", ["--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"]),
    ("tls12-aes128gcm", ["--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                         "ECDHE-RSA-AES128-GCM-SHA256"]),
    ("tls12-aes256gcm", ["--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                         "ECDHE-RSA-AES256-GCM-SHA384"]),
    ("tls12-chacha20", ["--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                        "ECDHE-RSA-CHACHA20-POLY1305"]),
    ("tls12-aes128cbc-sha", ["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-SHA"]),
    ("tls12-aes256cbc-sha384", ["--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                                "ECDHE-RSA-AES256-SHA384"]),
]

JSON_HEADERS = ["Content-Type: application/json", "Expect:"]


def access_log_requests(server) -> list:
    """(method, uri, status, peer) of every request nginx logged (the e2e log format:
    $remote_addr:$remote_port $request_method "$request_uri" $status ...)."""
    out = []
    text = (server.workdir / "access.log").read_text(errors="replace")
    for m in re.finditer(r'^(\S+) ([A-Z]+) "([^"]*)" (\d{3}) ', text, re.M):
        out.append((m.group(2), m.group(3), int(m.group(4)), m.group(1)))
    return out


def check_against_access_log(run_: AuditRun, server, uris):
    """Every request nginx served for `uris` has exactly one audit line with its method, URI,
    status and peer, and there is no other line for them."""
    logged = [r for r in access_log_requests(server) if r[1] in uris]
    got = [(l.audit.get("verb"), l.audit.get("requestURI"),
            (l.audit.get("responseStatus") or {}).get("code"),
            (l.audit.get("sourceIPs") or [None])[0]) for l in run_.audit_lines
           if l.audit.get("requestURI") in uris]
    assert logged, "nginx logged none of the requests (test set-up problem)"
    assert sorted(logged) == sorted(got), (
        f"nginx served {sorted(logged)}\nthe audit says {sorted(got)}\n"
        f"{run_.auditor.diagnostics()}")


# --------------------------------------------------------------------------------------------
# every cipher suite, TLS 1.2 and 1.3, against nginx
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def suites_run(auditor_binary, tls_material, tmp_path_factory):
    server = NginxServer(tmp_path_factory.mktemp("nginx-suites"), tls_material)
    auditor = None
    try:
        server.start()
        auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
        auditor.wait_ready()
        sent = []
        for name, opts in SUITES:
            sent += curl(server, [f"/hello?suite={name}", f"/items?suite={name}"], extra=opts)
            sent += curl(server, [f"/items?suite={name}"], method="POST",
                         data=b'{"name":"' + name.encode() + b'"}', headers=JSON_HEADERS,
                         extra=opts)
        payloads = tmp_path_factory.mktemp("payloads")
        big = payloads / "big.json"
        big.write_bytes(b'{"blob":"' + b"y" * (BIG_SIZE - 12) + b'"}')
        sent += curl(server, ["/big"])  # 1 MiB answer
        sent += curl(server, ["/upload"], method="POST", data_file=big,
                     headers=["Content-Type: application/json", "Expect:"])  # 1 MiB request
        return finish(auditor, sent, [server], sig=signal.SIGINT), server
    finally:
        if auditor is not None:
            auditor.kill()
        server.stop()


def test_every_suite_audited_once_with_the_right_fields(suites_run):
    run_, _ = suites_run
    run_.check_all()


def test_every_suite_agrees_with_nginx_access_log(suites_run):
    run_, server = suites_run
    uris = {s.uri for s in run_.sent}
    check_against_access_log(run_, server, uris)


def test_nginx_was_audited_through_keys_not_per_call_probes(suites_run):
    run_, _ = suites_run
    err = run_.auditor.stderr_text()
    assert re.search(r"keys capture", err), f"no keys capture for nginx:\n{err[-3000:]}"
    assert not re.search(r"per-call probes for pid", err), (
        f"nginx fell back to per-call probes:\n{err[-3000:]}")


# --------------------------------------------------------------------------------------------
# no uprobe runs for a request on an established connection
# --------------------------------------------------------------------------------------------
class BpfStats:
    """kernel.bpf_stats_enabled on for the test (run counts of BPF programs), restored after."""

    def __enter__(self):
        self.path = Path("/proc/sys/kernel/bpf_stats_enabled")
        self.before = self.path.read_text().strip()
        self.path.write_text("1\n")
        return self

    def __exit__(self, *exc):
        self.path.write_text(self.before + "\n")

    @staticmethod
    def programs() -> list:
        return json.loads(run(["bpftool", "--json", "prog", "show"], timeout=30).stdout)

    @staticmethod
    def run_counts(ids: set) -> dict:
        """{program name: run count} of the uprobe programs (kprobe type) among ids."""
        counts = {}
        for p in BpfStats.programs():
            if p.get("id") in ids and p.get("type") == "kprobe":
                counts[p.get("name")] = counts.get(p.get("name"), 0) + p.get("run_cnt", 0)
        return counts


@pytest.mark.parametrize("kind", ["nginx", "go"])
def test_no_uprobe_runs_per_request_once_the_handshake_is_done(auditor_binary, tls_material,
                                                                tmp_path, request, kind):
    require(subprocess.run(["bpftool", "version"], capture_output=True).returncode == 0,
            "bpftool is needed to read the programs' run counts")
    if kind == "go":
        server = GoServer(request.getfixturevalue("go_programs")["server"], tls_material).start()
    else:
        server = NginxServer(tmp_path / "nginx", tls_material).start()
    # Debian's bpftool does not name a program's owner: the auditor's programs are the ones
    # loaded while it starts.
    before = {p["id"] for p in BpfStats.programs()}
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
    try:
        auditor.wait_ready()
        ours = {p["id"] for p in BpfStats.programs()} - before
        with BpfStats():
            with TlsClient(server) as c:
                sent = []
                t0 = time.time()
                c.send(http_request("GET", "/hello?first"))
                sent.append(Sent("GET", "/hello?first", c.local_port, t0, time.time(),
                                 c.read_response().code))
                time.sleep(0.3)  # the server's side of the handshake is over
                before = BpfStats.run_counts(ours)
                assert before, f"no uprobe program among the auditor's ({len(ours)} programs)"
                for i in range(20):
                    t0 = time.time()
                    c.send(http_request("GET", f"/hello?n={i}"))
                    sent.append(Sent("GET", f"/hello?n={i}", c.local_port, t0, time.time(),
                                     c.read_response().code))
                after = BpfStats.run_counts(ours)
        ran = {k: after.get(k, 0) - before.get(k, 0) for k in after
               if after.get(k, 0) != before.get(k, 0)}
        assert not ran, f"uprobe programs ran during 20 keep-alive requests: {ran}"
        run_ = finish(auditor, sent, [server] if kind == "nginx" else [])
        run_.check_all()
    finally:
        auditor.kill()
        server.stop()


# --------------------------------------------------------------------------------------------
# resumption, KeyUpdate, connections older than the auditor
# --------------------------------------------------------------------------------------------
def _resumed_pair(server, version) -> list:
    """Two connections, the second resuming the first one's session (Python's ssl)."""
    ctx = client_context(server.tls)
    ctx.minimum_version = ctx.maximum_version = version
    sent, session = [], None
    for i in range(2):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        try:
            t0 = time.time()
            uri = f"/hello?resume={version.name}&conn={i}"
            s.sendall(http_request("GET", uri, headers=["Connection: close"]))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            code = int(data.split(b" ", 2)[1])
            sent.append(Sent("GET", uri, s.getsockname()[1], t0, time.time(), code,
                             how=f"resumed={s.session_reused}"))
            if i == 1:
                assert s.session_reused, f"{version.name}: the second connection did not resume"
            session = s.session
        finally:
            s.close()
    return sent


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
def test_resumed_sessions_are_audited(auditor_binary, tls_material, tmp_path, version):
    server = NginxServer(tmp_path / "nginx", tls_material).start()
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
    try:
        auditor.wait_ready()
        sent = _resumed_pair(server, version)
        run_ = finish(auditor, sent, [server])
        run_.check_all()
        check_against_access_log(run_, server, {s.uri for s in sent})
    finally:
        auditor.kill()
        server.stop()


def test_key_update_mid_connection(auditor_binary, tls_material, tmp_path):
    """openssl s_client's K command: a KeyUpdate that asks the peer to update too, so both
    directions change keys between the two requests."""
    server = NginxServer(tmp_path / "nginx", tls_material).start()
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
    try:
        auditor.wait_ready()
        proc = subprocess.Popen(
            # Interactive (no -quiet, no -ign_eof): only then does it take the K command.
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_3", "-crlf",
             "-servername", "localhost"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.time()
        try:
            for line in (b"GET /hello?ku=1 HTTP/1.1\n", b"Host: 127.0.0.1\n", b"\n"):
                proc.stdin.write(line)
            proc.stdin.flush()
            time.sleep(0.5)
            proc.stdin.write(b"K\n")  # KeyUpdate, update_requested
            proc.stdin.flush()
            time.sleep(0.5)
            for line in (b"GET /hello?ku=2 HTTP/1.1\n", b"Host: 127.0.0.1\n",
                         b"Connection: close\n", b"\n"):
                proc.stdin.write(line)
            proc.stdin.flush()
            time.sleep(1.0)  # the answer, then nginx closes; EOF on stdin ends s_client
            out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
        t1 = time.time()
        codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3})", out)]
        assert codes == [200, 200], f"s_client saw {out!r} {err!r}"
        assert b"KEYUPDATE" in err or b"KEYUPDATE" in out, f"no key update sent: {err!r}"
        lines = [l for l in auditor.raw_lines()]
        finish_run = finish(auditor, [], [server])
        got = sorted(l.audit.get("requestURI") for l in finish_run.audit_lines)
        assert got == ["/hello?ku=1", "/hello?ku=2"], (
            f"audit lines {got} ({len(lines)} raw)\n{auditor.diagnostics()}")
        check_against_access_log(finish_run, server, {"/hello?ku=1", "/hello?ku=2"})
        assert t0 <= t1
    finally:
        auditor.kill()
        server.stop()


def test_connection_older_than_the_auditor_is_bridged(auditor_binary, tls_material, tmp_path):
    """A keep-alive connection opened before the auditor started has no handshake to take
    secrets from: the per-call probes cover it, and go once it is closed."""
    server = NginxServer(tmp_path / "nginx", tls_material).start()
    old = TlsClient(server)
    auditor = None
    try:
        old.send(http_request("GET", "/hello?before-auditor"))
        assert old.read_response().code == 200
        auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
        auditor.wait_ready()
        sent = []
        for i in range(2):
            t0 = time.time()
            old.send(http_request("GET", f"/hello?old={i}"))
            sent.append(Sent("GET", f"/hello?old={i}", old.local_port, t0, time.time(),
                             old.read_response().code, how="pre-existing"))
        with TlsClient(server) as new:
            t0 = time.time()
            new.send(http_request("GET", "/hello?new"))
            sent.append(Sent("GET", "/hello?new", new.local_port, t0, time.time(),
                             new.read_response().code))
        old.close()
        assert wait_until(lambda: "per-call probes detached" in auditor.stderr_text(), 15), (
            f"the per-call probes were not detached after the old connection closed\n"
            f"{auditor.diagnostics()}")
        run_ = finish(auditor, sent, [server])
        run_.check_all()
    finally:
        old.close()
        if auditor is not None:
            auditor.kill()
        server.stop()


# --------------------------------------------------------------------------------------------
# a kernel without the socket tracepoints (before Linux 6.3): per-call probes, nothing lost
# --------------------------------------------------------------------------------------------
NO_SOCK_TRACEPOINTS = {"MKE_AUDIT_TAP_TEST_NO_SOCK_TRACEPOINTS": "1"}


def loaded_program_names(pid) -> set:
    """Names of the BPF programs process `pid` holds (its fds' prog_id)."""
    ids = set()
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            m = re.search(r"^prog_id:\s*(\d+)", fdinfo.read_text(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    progs = json.loads(run(["bpftool", "--json", "prog", "show"], timeout=30).stdout)
    return {p.get("name", "") for p in progs if p["id"] in ids}


def test_kernel_without_socket_tracepoints_falls_back_to_per_call_probes(
        auditor_binary, tls_material, tmp_path):
    server = NginxServer(tmp_path / "nginx", tls_material).start()
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS)
    auditor.env = NO_SOCK_TRACEPOINTS
    try:
        auditor.start().wait_ready()
        err = auditor.stderr_text()
        assert "no process can have the keys capture" in err, auditor.diagnostics()
        # Not even loaded: on a kernel without them, loading these would fail the whole object.
        names = loaded_program_names(auditor.proc.pid)
        assert "sock_state" in names and not names & {"sock_send", "sock_recv"}, names
        assert re.search(r"auditing pid \d+ \(nginx\): per-call probes .*keys capture not "
                         r"possible: sock_send_length", err), auditor.diagnostics()
        sent = curl(server, ["/hello?tls13-no-sock-tp"], extra=["--tlsv1.3"])
        sent += curl(server, ["/hello?tls12-no-sock-tp"], extra=["--tlsv1.2", "--tls-max", "1.2"])
        run_ = finish(auditor, sent, [server])
        run_.check_all()
        check_against_access_log(run_, server, {s.uri for s in sent})
    finally:
        auditor.kill()
        server.stop()


def test_keys_capture_refused_on_a_kernel_without_socket_tracepoints(
        auditor_binary, tls_material, tmp_path):
    server = NginxServer(tmp_path / "nginx", tls_material).start()
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=["--capture", "keys"])
    auditor.env = NO_SOCK_TRACEPOINTS
    try:
        auditor.start().wait_ready()
        assert wait_until(lambda: re.search(r"not audited: keys capture not possible: "
                                            r"sock_send_length", auditor.stderr_text()), 10), \
            auditor.diagnostics()
        assert "ready: auditing 0 process(es)" in auditor.stderr_text(), auditor.diagnostics()
    finally:
        auditor.kill()
        server.stop()


# --------------------------------------------------------------------------------------------
# a suite the auditor cannot decrypt is named, not silently lost
# --------------------------------------------------------------------------------------------
def test_undecryptable_suite_is_counted_and_named(auditor_binary, tls_material, tmp_path):
    server = SServer(tmp_path / "s_server", tls_material)
    # CCM for the client that asks for it; GCM too, for the fixture's readiness check.
    server.extra_args = ["-ciphersuites", "TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256"]
    server.start()
    auditor = make_auditor(auditor_binary, pids=[server.pid], extra=KEYS).start()
    try:
        auditor.wait_ready()
        cp = run(["curl", "-sSk", "--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_CCM_SHA256",
                  "-o", "/dev/null", "-w", "%{http_code}", server.url("/hello.txt")],
                 check=False)
        assert cp.stdout.decode() == "200", f"curl over AES-CCM failed: {cp.stdout!r} {cp.stderr!r}"
        assert wait_until(lambda: "TLS_AES_128_CCM_SHA256" in auditor.stderr_text(),
                          LINES_TIMEOUT), (
            f"the undecryptable suite was not named in the log\n{auditor.diagnostics()}")
        assert re.search(r"cannot decrypt|not decryptable|undecryptable",
                         auditor.stderr_text()), auditor.diagnostics()
        # Not only on stderr: in-band, a loss notice on stdout names it (within a second or so).
        def announced():
            for raw in auditor.raw_lines():
                pl = parse_line(raw)
                if pl.is_loss_notice and pl.obj["counts"].get("tls_undecryptable_suite", 0) >= 1:
                    return True
            return False
        assert wait_until(announced, LINES_TIMEOUT), (
            f"no loss notice with tls_undecryptable_suite on stdout\n{auditor.diagnostics()}")
    finally:
        auditor.kill()
        server.stop()
