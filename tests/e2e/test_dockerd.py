"""The real Swarm API: Debian's dockerd (Go 1.19, crypto/tls, stripped of DWARF) with
--tlsverify on a loopback port, driven by the real docker CLI with a client bundle made here
(ca.pem, cert.pem, key.pem: the shape of an MKE client bundle), audited through the Go probes.

dockerd's own debug log ("Calling METHOD PATH" for every API request it routes) is the oracle
for which calls were made: every non-ignored call it logs must have exactly one audit line,
and no other line may appear."""

import os
import re
import secrets
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import (free_port, make_auditor, parse_line, require, run, stop_process,
                      wait_until)

DOCKERD = "/usr/sbin/dockerd"
IGNORED = re.compile(r"^(/v[0-9.]+)?/(_ping|version|info)$")


def make_pki(d: Path, clients=("alice",)):
    """A CA, a server certificate for 127.0.0.1 and, per client name, a client bundle dir
    (ca.pem, cert.pem, key.pem with CN=name). Returns {name: bundle dir}."""
    d.mkdir(parents=True)

    def ossl(*args):
        run(["openssl", *args])

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj",
         "/CN=mke-audit-tap e2e swarm CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    def issue(name, subj, ext):
        ossl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", subj,
             "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        ossl("x509", "-req", "-sha256", "-days", "2", "-in", str(d / f"{name}.csr"), "-CA",
             str(d / "ca.pem"), "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-extfile",
             str(d / ext), "-out", str(d / f"{name}.pem"))
        os.chmod(d / f"{name}.key", 0o600)

    issue("server", "/CN=localhost", "server.ext")
    bundles = {}
    for client in clients:
        issue(f"client-{client}", f"/O=mke-audit-tap e2e/OU=bundle/CN={client}", "client.ext")
        bundle = d / f"bundle-{client}"
        bundle.mkdir()
        shutil.copy(d / "ca.pem", bundle / "ca.pem")
        shutil.copy(d / f"client-{client}.pem", bundle / "cert.pem")
        shutil.copy(d / f"client-{client}.key", bundle / "key.pem")
        os.chmod(bundle / "key.pem", 0o600)
        bundles[client] = bundle
    os.chmod(d / "ca.key", 0o600)
    return bundles


class Dockerd:
    def __init__(self, workdir: Path, clients=("alice",)):
        self.dir = workdir
        self.port = free_port()
        self.swarm_port = free_port()
        self.bundles = make_pki(workdir / "pki", clients)
        self.bundle = self.bundles[clients[0]]
        self.log_path = workdir / "dockerd.log"
        self.proc = None

    def start(self, sock=None, extra_args=()):
        """Starts dockerd on its TCP port and the Unix socket `sock` (default: docker.sock in
        its directory), with `extra_args` added to its command line."""
        d = self.dir
        pki = d / "pki"
        # A short exec-root: containerd's socket path lives under it and must fit sun_path.
        self.exec_root = Path(f"/tmp/mat-dx-{os.getpid()}-{self.port}")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--debug", "--tlsverify", f"--tlscacert={pki / 'ca.pem'}",
             f"--tlscert={pki / 'server.pem'}", f"--tlskey={pki / 'server.key'}",
             "-H", f"tcp://127.0.0.1:{self.port}", "-H", f"unix://{sock or d / 'docker.sock'}",
             *extra_args,
             "--data-root", str(d / "data"), "--exec-root", str(self.exec_root),
             "--pidfile", str(d / "docker.pid"), "--iptables=false", "--ip6tables=false",
             "--bridge=none", "--ip-forward=false", "--ip-masq=false",
             "--userland-proxy=false"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        ok = wait_until(lambda: self.proc.poll() is not None
                        or b"API listen on 127.0.0.1" in self.log_path.read_bytes(), 60)
        assert ok and self.proc.poll() is None, f"dockerd did not start:\n{self.logs()}"
        return self

    @property
    def pid(self):
        return self.proc.pid

    def env(self, bundle=None):
        env = dict(os.environ)
        env.update(DOCKER_HOST=f"tcp://127.0.0.1:{self.port}", DOCKER_TLS_VERIFY="1",
                   DOCKER_CERT_PATH=str(bundle or self.bundle),
                   DOCKER_CONFIG=str(self.dir / "cli"))
        return env

    def docker(self, *args, stdin=None, user=None):
        """The docker CLI with the client bundle of `user` (default: the first one)."""
        env = self.env(self.bundles[user] if user else None)
        r = subprocess.run(["docker", *args], input=stdin, capture_output=True, env=env,
                           timeout=60)
        assert r.returncode == 0, f"docker {' '.join(args)} failed: {r.stderr.decode()}"
        return r.stdout.decode().strip()

    def logs(self):
        return self.log_path.read_text(errors="replace")[-20000:]

    def api_calls(self):
        """(METHOD, path) of every request dockerd routed, from its debug log."""
        return re.findall(r'msg="Calling (\S+) (\S+)"', self.log_path.read_text(errors="replace"))

    def diag_objects(self):
        return []

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            subprocess.run(["docker", "swarm", "leave", "--force"], env=self.env(),
                           capture_output=True, timeout=60)
        stop_process(self.proc, signal.SIGTERM, timeout=30)
        self.log.close()
        subprocess.run(["umount", "-R", str(self.exec_root)], capture_output=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.dir / "data", ignore_errors=True)


def start_dockerd(tmp_path, clients=("alice",)):
    require(os.access(DOCKERD, os.X_OK), "dockerd (Debian's docker.io) is needed")
    require(shutil.which("docker"), "the docker CLI (Debian's docker.io) is needed")
    require(shutil.which("containerd"), "containerd (a dependency of docker.io) is needed")
    return Dockerd(tmp_path / "dockerd", clients).start()


@pytest.fixture
def dockerd(tmp_path, environment_ok):
    d = start_dockerd(tmp_path)
    yield d
    d.stop()


def test_swarm_api_through_dockerd(dockerd, auditor_binary):
    payload = "mat-e2e-secret-" + secrets.token_hex(16)  # made up here, nowhere else
    aud = make_auditor(auditor_binary, [dockerd.pid], (), ["--level", "request"])
    aud.start()
    aud.wait_ready()
    calls_before = len(dockerd.api_calls())
    try:
        node_id = dockerd.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                                 "--listen-addr", f"127.0.0.1:{dockerd.swarm_port}")
        node_id = re.search(r"\(([a-z0-9]{25})\)", node_id).group(1)
        dockerd.docker("version")
        dockerd.docker("info")
        secret_id = dockerd.docker("secret", "create", "mat-e2e-secret", "-",
                                   stdin=payload.encode())
        dockerd.docker("secret", "ls")
        config_id = dockerd.docker("config", "create", "mat-e2e-config", "-",
                                   stdin=b"plain config data")
        service_id = dockerd.docker("service", "create", "--detach", "--no-resolve-image",
                                    "--name", "mat-e2e-web", "busybox:latest", "sleep", "600")
        dockerd.docker("swarm", "update", "--task-history-limit", "3")
        dockerd.docker("node", "ls")
        calls = dockerd.api_calls()[calls_before:]
        audited = [(m, p) for m, p in calls if not IGNORED.match(p.split("?")[0])]
        aud.wait_quiet(at_least=len(audited), timeout=30)
    finally:
        assert aud.stop() == 0, aud.diagnostics()

    out = b"".join(aud.raw_lines()).decode("utf-8", "replace")
    err = aud.stderr_text()
    assert payload not in out and payload not in err, "the secret's payload reached the output"
    plan = [ln for ln in err.splitlines() if "probe plan for Go program /usr/sbin/dockerd" in ln]
    assert len(plan) == 1 and "jbe" in plan[0], err

    parsed = [parse_line(r) for r in aud.raw_lines()]
    assert not [p for p in parsed if p.error], aud.diagnostics()
    lines = [p.obj["audit"] for p in parsed]
    got = Counter((ln["verb"], ln["requestURI"]) for ln in lines)
    want = Counter(audited)
    assert got == want, f"audit lines vs dockerd's log:\n got {got}\nwant {want}\n" \
                        f"{aud.diagnostics()}"
    assert ("POST", "/v1.41/secrets/create") in want and ("GET", "/v1.41/nodes") in want
    # docker version/info made calls, all on the ignore list.
    assert any(p.endswith("/version") for _m, p in calls), "test set-up: no /version call"
    assert any(p.endswith("/info") for _m, p in calls), "test set-up: no /info call"

    for ln in lines:
        assert ln["kind"] == "docker-swarm", ln
        assert ln["verb"] == ln["verb"].upper()
        assert re.match(r"^/v1\.\d+/", ln["requestURI"]), ln["requestURI"]
        assert ln["stage"] == "ResponseComplete"
        assert ln["sourceIPs"] and ln["sourceIPs"][0].startswith("127.0.0.1:"), ln

    def one(verb, path):
        found = [ln for ln in lines if ln["verb"] == verb and
                 ln["requestURI"].split("?")[0] == path]
        assert len(found) == 1, (verb, path, found)
        return found[0]

    init = one("POST", "/v1.41/swarm/init")
    assert init["responseStatus"]["code"] == 200 and init["objectRef"]["uid"] == node_id
    sec = one("POST", "/v1.41/secrets/create")
    assert sec["responseStatus"]["code"] == 201 and sec["objectRef"]["uid"] == secret_id
    assert sec["requestObject"] == "[REDACTED by mke-audit-tap]"
    assert sec["annotations"]["mke-audit-tap/redacted"] == "true"
    cfg = one("POST", "/v1.41/configs/create")
    assert cfg["responseStatus"]["code"] == 201 and cfg["objectRef"]["uid"] == config_id
    assert cfg["requestObject"]["Name"] == "mat-e2e-config"
    assert cfg["requestObject"]["Data"] == "[REDACTED by mke-audit-tap]"
    svc = one("POST", "/v1.41/services/create")
    assert svc["responseStatus"]["code"] == 201 and svc["objectRef"]["uid"] == service_id
    assert svc["requestObject"]["Name"] == "mat-e2e-web"
    upd = one("POST", "/v1.41/swarm/update")
    assert upd["responseStatus"]["code"] == 200 and "version=" in upd["requestURI"]
    assert one("GET", "/v1.41/secrets")["responseStatus"]["code"] == 200
    assert one("GET", "/v1.41/nodes")["responseStatus"]["code"] == 200
    assert len({ln["auditID"] for ln in lines}) == len(lines)
