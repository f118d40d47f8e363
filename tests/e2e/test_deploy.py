"""Shipping to manager nodes: the container image (tools/image.sh, deploy/Dockerfile), the Swarm
stack (deploy/stack.yml and its launcher), the systemd unit and the Kubernetes DaemonSet.

The image and the stack run on Debian's dockerd, started privately on loopback (its TLS port
with a client bundle, a private Unix socket, its own data root): the image is built there with
no registry, run against nginx and that dockerd, and its audit lines are read back with
`docker logs <container> --tail N`, as MKE's documentation reads the controller's. Ground truth:
nginx's access log and dockerd's debug log ("Calling METHOD PATH").
"""
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import NginxServer, require, run, wait_until
from test_dockerd import DOCKERD, Dockerd

REPO = Path(__file__).resolve().parents[2]
CAPS = ["--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE", "--cap-add", "DAC_READ_SEARCH"]


def build_dir() -> Path:
    binary = os.environ.get("MAT_BINARY")
    return Path(binary).resolve().parent if binary else REPO / "build"


@pytest.fixture(scope="module")
def deploy_env(tmp_path_factory, tls_material, environment_ok):
    """A private dockerd with the image built into it, and a TLS nginx."""
    require(os.access(DOCKERD, os.X_OK) and shutil.which("docker"),
            "dockerd and the docker CLI (Debian's docker.io) are needed")
    require(build_dir() == REPO / "build", "tools/image.sh packs the binaries of build/")
    d = tmp_path_factory.mktemp("deploy")
    dockerd = Dockerd(d / "dockerd").start()
    nginx = NginxServer(d / "nginx", tls_material)
    try:
        nginx.start()
        env = dict(os.environ, DOCKER_HOST=f"unix://{dockerd.dir / 'docker.sock'}")
        r = run(["bash", str(REPO / "tools/image.sh"), "--no-build"], env=env, timeout=300,
                text=True)
        assert "built mke-audit-tap:latest" in r.stdout, r.stdout + r.stderr
        yield dockerd, nginx, env, d
    finally:
        nginx.stop()
        dockerd.stop()


def local(env, *args, timeout=120, check=True):
    """The docker CLI on the private dockerd's Unix socket (root's own access)."""
    r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
    return r


def audit_lines(text):
    out = []
    for ln in text.splitlines():
        if ln.startswith("{"):
            obj = json.loads(ln)
            if "auditID" in obj.get("audit", {}):
                out.append(obj["audit"])
    return out


def curl_nginx(nginx, tls_material, paths, tls):
    for p in paths:
        run(["curl", "-sS", "--cacert", str(tls_material.ca), tls, "--tls-max",
             "1.3" if tls == "--tlsv1.3" else "1.2", "-o", "/dev/null", nginx.url(p)])


def access_log_uris(nginx, prefix):
    text = (nginx.workdir / "access.log").read_text()
    return sorted(m for m in re.findall(r'"(/[^"]*)"', text) if m.startswith(prefix))


def test_image_runs_privileged_in_host_pid_namespace_and_audits(deploy_env, tls_material):
    dockerd, nginx, env, d = deploy_env
    conf = d / "image-conf"
    conf.mkdir()
    (conf / "config.toml").write_text(
        '[audit_log_configuration]\nlevel = "metadata"\n'
        f'[mke_audit_tap]\npid = [{nginx.pid}, {dockerd.pid}]\n')
    name = f"mat-image-{secrets.token_hex(3)}"
    local(env, "run", "-d", "--name", name, "--pid", "host", "--network", "host", *CAPS,
          "-v", f"{conf}:/etc/mke-audit-tap:ro", "--log-driver", "json-file",
          "--log-opt", "max-size=10m", "--log-opt", "max-file=2", "mke-audit-tap:latest")
    try:
        assert wait_until(lambda: "ready: auditing" in local(env, "logs", name).stderr, 60), \
            local(env, "logs", name).stderr
        tag = secrets.token_hex(4)
        curl_nginx(nginx, tls_material, [f"/img-{tag}/13/{i}" for i in range(3)], "--tlsv1.3")
        curl_nginx(nginx, tls_material, [f"/img-{tag}/12/{i}" for i in range(3)], "--tlsv1.2")
        # Over dockerd's TLS port with alice's client bundle: an object that does not exist,
        # so the call is distinctive and answered 404.
        probe = f"mat-probe-{tag}"
        r = subprocess.run(["docker", "container", "inspect", probe], env=dockerd.env(),
                           capture_output=True, timeout=60)
        assert r.returncode != 0
        want_nginx = access_log_uris(nginx, f"/img-{tag}/")
        assert len(want_nginx) == 6
        want_docker = [p for m, p in dockerd.api_calls() if probe in p]
        assert want_docker, dockerd.logs()

        def got():
            lines = audit_lines(local(env, "logs", name, "--tail", "200").stdout)
            return ([a for a in lines if a["requestURI"].startswith(f"/img-{tag}/")],
                    [a for a in lines if probe in a["requestURI"]])
        assert wait_until(lambda: len(got()[0]) >= 6 and len(got()[1]) >= len(want_docker),
                          20), local(env, "logs", name, "--tail", "50").stdout
        ng, dk = got()
        assert sorted(a["requestURI"] for a in ng) == want_nginx
        assert [a["requestURI"].split("?")[0] for a in dk] == want_docker
        for a in dk:
            assert a["user"]["username"] == "alice", a
            assert a["responseStatus"]["code"] == 404, a
            assert a["kind"] == "docker-swarm", a
    finally:
        local(env, "rm", "-f", name, check=False)


def test_swarm_stack_runs_a_global_service_that_audits(deploy_env, tls_material):
    dockerd, nginx, env, d = deploy_env
    local(env, "swarm", "init", "--advertise-addr", "127.0.0.1",
          "--listen-addr", f"127.0.0.1:{dockerd.swarm_port}")
    cfg = d / "stack-config.toml"
    cfg.write_text('[audit_log_configuration]\nlevel = "metadata"\n'
                   f'[mke_audit_tap]\npid = [{nginx.pid}]\n')
    cfg_name = f"mat-stack-config-{secrets.token_hex(3)}"
    local(env, "config", "create", cfg_name, str(cfg))
    stack_env = dict(env, MAT_DOCKER_SOCK=str(dockerd.dir / "docker.sock"),
                     MAT_CONFIG_NAME=cfg_name, MAT_LOG_MAX_SIZE="10m", MAT_LOG_MAX_FILE="2")
    local(stack_env, "stack", "deploy", "-c", str(REPO / "deploy/stack.yml"), "mat")
    try:
        spec = json.loads(local(env, "service", "inspect", "mat_launcher").stdout)[0]["Spec"]
        assert "Global" in spec["Mode"], spec["Mode"]
        assert "node.role == manager" in spec["TaskTemplate"]["Placement"]["Constraints"]
        log = spec["TaskTemplate"]["LogDriver"]
        assert log["Name"] == "json-file" and log["Options"]["max-size"] == "10m", log

        def state():
            return local(env, "service", "ps", "mat_launcher", "--format",
                         "{{.CurrentState}}", check=False).stdout

        assert wait_until(lambda: state().startswith("Running"), 90), state() + \
            local(env, "service", "ps", "--no-trunc", "mat_launcher").stdout
        assert wait_until(lambda: "ready: auditing" in
                          local(env, "logs", "mke-audit-tap", check=False).stderr, 90), \
            local(env, "service", "logs", "mat_launcher", check=False).stdout
        inspect = json.loads(local(env, "container", "inspect", "mke-audit-tap").stdout)[0]
        assert inspect["HostConfig"]["PidMode"] == "host"
        assert inspect["HostConfig"]["LogConfig"]["Config"]["max-file"] == "2"
        tag = secrets.token_hex(4)
        curl_nginx(nginx, tls_material, [f"/stack-{tag}/{i}" for i in range(3)], "--tlsv1.3")
        want = access_log_uris(nginx, f"/stack-{tag}/")
        assert len(want) == 3

        def got():
            out = local(env, "logs", "mke-audit-tap", "--tail", "100").stdout
            return sorted(a["requestURI"] for a in audit_lines(out)
                          if a["requestURI"].startswith(f"/stack-{tag}/"))
        assert wait_until(lambda: len(got()) >= 3, 20), got()
        assert got() == want
    finally:
        local(env, "stack", "rm", "mat", check=False)
    # Removing the stack stops the auditor container the launcher started.
    assert wait_until(lambda: local(env, "container", "inspect", "mke-audit-tap",
                                    check=False).returncode != 0, 60), \
        local(env, "ps", "-a").stdout


def test_systemd_unit_verifies(tmp_path, environment_ok):
    require(shutil.which("systemd-analyze"), "systemd-analyze (systemd) is needed")
    require(build_dir() == REPO / "build", "installs the build of build/")
    dest = tmp_path / "root"
    run(["cmake", "--install", str(REPO / "build"), "--prefix", "/usr/local"],
        env=dict(os.environ, DESTDIR=str(dest)), timeout=120)
    bindir = dest / "usr/local/bin"
    # The calibration helper must sit beside the binary: the auditor runs it from there.
    assert os.access(bindir / "mke-audit-tap", os.X_OK)
    assert os.access(bindir / "mke-audit-tap-sslcal", os.X_OK)
    shipped = (dest / "usr/local/lib/systemd/system/mke-audit-tap.service").read_text()
    assert shipped == (REPO / "deploy/mke-audit-tap.service").read_text()
    assert re.search(r"^Type=notify$", shipped, re.M)
    assert re.search(r"^ExecStart=/usr/local/bin/mke-audit-tap ", shipped, re.M)
    # systemd-analyze checks that ExecStart's binary exists on this root: point it at the copy
    # just installed; everything else is verified as shipped.
    unit = tmp_path / "mke-audit-tap.service"
    unit.write_text(shipped.replace("/usr/local/bin/mke-audit-tap", str(bindir / "mke-audit-tap")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_daemonset_runs_privileged_on_control_plane_nodes(environment_ok, tmp_path):
    try:
        import yaml
    except ImportError:
        yaml = None
    require(yaml is not None, "python3-yaml is needed")
    docs = list(yaml.safe_load_all((REPO / "deploy/daemonset.yaml").read_text()))
    cm = next(x for x in docs if x["kind"] == "ConfigMap")
    ds = next(x for x in docs if x["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    c = pod["containers"][0]
    assert c["securityContext"]["privileged"] is True
    keys = {t.get("key") for t in pod["tolerations"]}
    assert {"node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane"} <= keys
    assert ds["spec"]["selector"]["matchLabels"] == ds["spec"]["template"]["metadata"]["labels"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["config"] == "/etc/mke-audit-tap"
    assert c["args"] == ["--config", "/etc/mke-audit-tap/config.toml"]
    assert any(v.get("configMap", {}).get("name") == cm["metadata"]["name"]
               for v in pod["volumes"])
    # The ConfigMap's configuration is one the auditor accepts. Checked by starting it on a
    # replay of a file that is no recording: a configuration error stops it first (exit 2),
    # otherwise it gets as far as the recording (exit 1).
    binary = build_dir() / "mke-audit-tap"
    not_a_recording = tmp_path / "empty.rec"
    not_a_recording.write_bytes(b"")

    def start_with(config_text):
        conf = tmp_path / "config.toml"
        conf.write_text(config_text)
        return subprocess.run([str(binary), "--config", str(conf), "--replay",
                               str(not_a_recording)], capture_output=True, text=True, timeout=60)
    r = start_with(cm["data"]["config.toml"])
    assert r.returncode == 1 and "is not an mke-audit-tap recording" in r.stderr, r.stderr
    # The same check sees a broken configuration.
    r = start_with(cm["data"]["config.toml"].replace('"dockerd"', '"dockerd-with-a-long-name"'))
    assert r.returncode == 2 and "comm" in r.stderr, r.stderr
