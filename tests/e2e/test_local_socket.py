"""dockerd's local API: the HTTP it serves on its Unix socket, where MKE's own audit sees
nothing, audited from the accepted connections' bytes in the kernel (no TLS, no probe per call),
with the peer credentials the kernel recorded at connect as the user.

Debian's dockerd listens on a private Unix socket (owned by a group the test creates) and on its
TLS port. As root and as an unprivileged user of that group (created here), the docker CLI and
curl --unix-socket make calls; dockerd's own debug log ("Calling METHOD PATH") is the oracle:
every non-ignored call it logged is audited exactly once, local ones with the uid's name, the
calling process's pid and command name and the socket path as source, TLS ones with the client
certificate's name. Works in both capture modes (the local path is the same in both: socket
tracepoints, no uprobe), so it also runs under e2e_plaintext."""

import glob
import grp
import os
import pwd
import re
import secrets
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_auditor, parse_line, require, run
from test_dockerd import DOCKERD, IGNORED, Dockerd

IDENTIFIED_BY = "mke-audit-tap/user-identified-by"


class LocalDockerd(Dockerd):
    """dockerd with its Unix socket in a world-traversable directory, owned by `group`."""

    def __init__(self, workdir: Path, group: str):
        super().__init__(workdir)
        self.group = group
        self.sock_dir = Path(f"/tmp/mat-ls-{os.getpid()}-{self.port}")
        self.sock_dir.mkdir(mode=0o755)
        os.chmod(self.sock_dir, 0o755)
        self.sock = self.sock_dir / "docker.sock"

    def start(self):
        return super().start(sock=self.sock, extra_args=("--group", self.group))

    def stop(self):
        super().stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


class LocalUser:
    """A throw-away unprivileged user in a throw-away group (the socket's)."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.group = f"matsock{tag}"
        self.name = f"matusr{tag}"
        run(["groupadd", self.group])
        run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-g", self.group,
             self.name])
        self.uid = pwd.getpwnam(self.name).pw_uid
        self.gid = grp.getgrnam(self.group).gr_gid

    def remove(self):
        subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)


class Calls:
    """Runs clients one at a time and pairs each with the calls dockerd logged meanwhile."""

    def __init__(self, dockerd: LocalDockerd, user: LocalUser):
        self.d = dockerd
        self.user = user
        self.expected = Counter()  # (verb, path, username, pid, comm)
        self.cli_dirs = {}

    def _run(self, argv, who, comm, stdin=None, env=None, ok=(0,)):
        before = len(self.d.api_calls())
        kwargs = {}
        if who == self.user.name:
            kwargs = dict(user=self.user.uid, group=self.user.gid, extra_groups=[self.user.gid])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, **kwargs)
        out, err = proc.communicate(stdin, timeout=90)
        assert proc.returncode in ok, f"{argv} failed: {err.decode()}"
        calls = self.d.api_calls()[before:]
        for verb, path in calls:
            if not IGNORED.match(path.split("?")[0]):
                self.expected[(verb, path, who, str(proc.pid) if comm else None, comm)] += 1
        return out.decode().strip(), calls

    def local_env(self, who):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        cfg = self.d.dir / f"cli-{who}"
        if who not in self.cli_dirs:
            cfg.mkdir(mode=0o700)
            if who != "root":
                os.chown(cfg, self.user.uid, self.user.gid)
            self.cli_dirs[who] = cfg
        env.update(DOCKER_HOST=f"unix://{self.d.sock}", DOCKER_CONFIG=str(cfg))
        return env

    def docker(self, who, *args, stdin=None, ok=(0,)):
        return self._run(["docker", *args], who, "docker", stdin, self.local_env(who), ok)[0]

    def curl(self, who, method, path):
        return self._run(["curl", "-sS", "-f", "--unix-socket", str(self.d.sock), "-X", method,
                          f"http://localhost{path}"], who, "curl", None, os.environ.copy())

    def tls(self, *args, stdin=None):
        """The docker CLI over TLS with alice's client bundle: identified by its certificate."""
        env = self.d.env()
        return self._run(["docker", *args], "alice", None, stdin, env)[0]


def make_image(d: LocalDockerd, calls: Calls, workdir: Path) -> str:
    """A local image (docker import of a root made here from the host's sleep and echo)."""
    root = workdir / "rootfs"
    for binary in ("/bin/sleep", "/bin/echo", "/bin/true"):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for f in [binary] + [t for t in out.split() if t.startswith("/")]:
            dest = Path(str(root) + f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(f), dest)
    tar = workdir / "rootfs.tar"
    run(["tar", "-C", str(root), "-cf", str(tar), "."])
    calls.docker("root", "import", str(tar), "mat-e2e-local:1")
    return "mat-e2e-local:1"


@pytest.fixture
def local_env(tmp_path, environment_ok):
    require(os.access(DOCKERD, os.X_OK), "dockerd (Debian's docker.io) is needed")
    require(shutil.which("docker"), "the docker CLI (Debian's docker.io) is needed")
    require(shutil.which("useradd") and shutil.which("groupadd"), "useradd/groupadd are needed")
    require(shutil.which("ldd") and shutil.which("tar"), "ldd and tar are needed")
    user = LocalUser()
    d = None
    try:
        d = LocalDockerd(tmp_path / "dockerd", user.group).start()
        yield d, user
    finally:
        if d is not None:
            subprocess.run(["docker", "-H", f"unix://{d.sock}", "rm", "-f", "mat-e2e-c"],
                           capture_output=True, timeout=60)
            d.stop()
        user.remove()


def local_lines(aud):
    parsed = [parse_line(r) for r in aud.raw_lines()]
    assert not [p for p in parsed if p.error], aud.diagnostics()
    return [p.obj["audit"] for p in parsed]


def key_of(ln):
    extra = ln["user"].get("extra", {})
    pid = extra.get("pid", [None])[0]
    comm = extra.get("comm", [None])[0]
    return (ln["verb"], ln["requestURI"], ln["user"]["username"], pid, comm)


def test_local_socket_calls_audited_with_peer_credentials(local_env, auditor_binary, tmp_path):
    d, user = local_env
    payload = "mat-e2e-secret-" + secrets.token_hex(16)  # made up here, nowhere else
    calls = Calls(d, user)
    aud = make_auditor(auditor_binary, [d.pid], (), ["--level", "request"])
    aud.start()
    aud.wait_ready()
    try:
        calls.docker("root", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr",
                     f"127.0.0.1:{d.swarm_port}")
        calls.docker("root", "ps")
        secret_id = calls.docker("root", "secret", "create", "mat-e2e-local-secret", "-",
                                 stdin=payload.encode())
        service_id = calls.docker("root", "service", "create", "--detach", "--no-resolve-image",
                                  "--name", "mat-e2e-local-svc", "busybox:latest", "sleep", "600")
        image = make_image(d, calls, tmp_path)
        cid = calls.docker("root", "run", "-d", "--network", "none", "--name", "mat-e2e-c",
                           image, "/bin/sleep", "600")
        assert calls.docker("root", "exec", "mat-e2e-c", "/bin/echo", "hello-exec") == \
            "hello-exec"
        # A process in the container's cgroup (as MKE's components, containers with the socket
        # mounted, are): the host's curl moved there, streaming /events for 3 s so that it is
        # alive when the auditor reads its cgroup.
        cgroups = glob.glob(f"/sys/fs/cgroup/**/{cid}/cgroup.procs", recursive=True)
        assert cgroups, f"no cgroup of container {cid}"
        calls._run(["sh", "-c", f'echo $$ > {cgroups[0]} && exec curl -sS --max-time 3 '
                    f'--unix-socket {d.sock} http://localhost/v1.41/events'],
                   "root", "curl", ok=(28,))
        # The unprivileged user, through the socket's group.
        calls.docker(user.name, "ps")
        calls.docker(user.name, "secret", "create", "mat-e2e-local-secret-2", "-",
                     stdin=(payload + "-2").encode())
        calls.docker(user.name, "service", "create", "--detach", "--no-resolve-image", "--name",
                     "mat-e2e-local-svc-2", "busybox:latest", "sleep", "600")
        assert calls.docker(user.name, "exec", "mat-e2e-c", "/bin/echo", "hello-user") == \
            "hello-user"
        calls.curl("root", "GET", "/v1.41/containers/json?all=1")
        calls.curl(user.name, "GET", "/v1.41/images/json")
        # The same run over TLS keeps the client certificate's identity.
        calls.tls("ps")
        calls.tls("secret", "ls")
        want = calls.expected
        aud.wait_quiet(at_least=sum(want.values()), timeout=30)
    finally:
        assert aud.stop() == 0, aud.diagnostics()

    out = b"".join(aud.raw_lines()).decode("utf-8", "replace")
    err = aud.stderr_text()
    assert payload not in out and payload not in err, "the secret's payload reached the output"
    lines = local_lines(aud)
    events = [ln for ln in lines if ln["requestURI"].startswith("/v1.41/events")]
    assert len(events) == 1, events
    assert events[0]["user"]["extra"]["container"] == [f"mat-e2e-c ({cid[:12]})"], events
    got = Counter(key_of(ln) for ln in lines)
    assert got == want, f"audit lines vs dockerd's log:\n only written {got - want}\n" \
                        f"only logged {want - got}\n{aud.diagnostics()}"

    local = [ln for ln in lines if ln["user"]["username"] != "alice"]
    tls = [ln for ln in lines if ln["user"]["username"] == "alice"]
    assert local and tls
    for ln in local:
        if ln in events:
            continue
        # Clients on the host: no container (or gone before the auditor looked).
        assert ln["user"]["extra"].get("container", ["unknown: the process exited"]) == \
            ["unknown: the process exited"], ln
        assert ln["sourceIPs"] == [str(d.sock)], ln
        assert ln["annotations"][IDENTIFIED_BY] == "unix-peer-credentials", ln
        assert ln["user"]["extra"]["username"] == [ln["user"]["username"]], ln
        assert ln["kind"] == "docker-swarm", ln
    for ln in tls:
        assert ln["annotations"][IDENTIFIED_BY].startswith("client-certificate"), ln
        assert ln["sourceIPs"][0].startswith("127.0.0.1:"), ln
        assert "pid" not in ln["user"]["extra"], ln
    names = {ln["user"]["username"] for ln in local}
    assert names == {"root", user.name}, names

    def one(verb, path, who):
        found = [ln for ln in local if ln["verb"] == verb and ln["user"]["username"] == who
                 and ln["requestURI"].split("?")[0].endswith(path)]
        assert len(found) == 1, (verb, path, who, found)
        return found[0]

    sec = one("POST", "/secrets/create", "root")
    assert sec["responseStatus"]["code"] == 201 and sec["objectRef"]["uid"] == secret_id
    assert sec["requestObject"] == "[REDACTED by mke-audit-tap]"
    svc = one("POST", "/services/create", "root")
    assert svc["responseStatus"]["code"] == 201 and svc["objectRef"]["uid"] == service_id
    assert one("POST", "/secrets/create", user.name)["responseStatus"]["code"] == 201
    # exec: the hijacked start of each user's exec, written once when its stream began.
    starts = [ln for ln in local if re.search(r"/exec/[0-9a-f]+/start$", ln["requestURI"])]
    assert sorted(ln["user"]["username"] for ln in starts) == sorted(["root", user.name]), starts
    for ln in starts:
        assert ln["stage"] == "ResponseStarted", ln
    assert re.search(r"local socket: \d+ connections", err), err


def test_local_socket_ignored_peer_counted_not_written(local_env, auditor_binary):
    d, user = local_env
    calls = Calls(d, user)
    aud = make_auditor(auditor_binary, [d.pid], (),
                       ["--level", "metadata", "--local-socket-ignore", "curl"])
    aud.start()
    aud.wait_ready()
    try:
        for _ in range(3):
            calls.curl("root", "GET", "/v1.41/containers/json")
        calls.curl(user.name, "GET", "/v1.41/images/json")
        calls.docker("root", "ps")
        want = Counter(k for k in calls.expected.elements() if k[4] != "curl")
        ignored = sum(n for k, n in calls.expected.items() if k[4] == "curl")
        assert ignored == 4, calls.expected
        aud.wait_quiet(at_least=sum(want.values()), timeout=30)
    finally:
        assert aud.stop() == 0, aud.diagnostics()
    lines = local_lines(aud)
    got = Counter(key_of(ln) for ln in lines)
    assert got == want, f"got {got}\nwant {want}\n{aud.diagnostics()}"
    err = aud.stderr_text()
    m = re.search(r"local socket: \d+ connections .*?, (\d+) calls of ignored peers not written",
                  err)
    assert m and int(m.group(1)) == ignored, err


def test_local_socket_off(local_env, auditor_binary):
    """--local-socket off: the local API is not audited; the TLS API still is."""
    d, user = local_env
    calls = Calls(d, user)
    aud = make_auditor(auditor_binary, [d.pid], (), ["--local-socket", "off"])
    aud.start()
    aud.wait_ready()
    try:
        calls.docker("root", "ps")
        calls.curl(user.name, "GET", "/v1.41/images/json")
        calls.tls("ps")
        want = Counter(k for k in calls.expected.elements() if k[2] == "alice")
        assert sum(want.values()) == 1 and sum(calls.expected.values()) == 3, calls.expected
        aud.wait_quiet(at_least=1, timeout=30)
    finally:
        assert aud.stop() == 0, aud.diagnostics()
    got = Counter(key_of(ln) for ln in local_lines(aud))
    assert got == want, f"got {got}\nwant {want}\n{aud.diagnostics()}"
    assert "local socket:" not in aud.stderr_text()
