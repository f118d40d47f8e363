"""The real kubectl over HTTP/2 end to end (issue 4): nginx with TLS and http2 (negotiated by
ALPN) in front of kube_backend.py, a stand-in for the Kubernetes API that kubectl accepts, real
BPF in nginx, and kubectl with a bearer token running

    get pods / get pods -w (a few seconds) / create secret generic / apply -f (create, then
    patch) / delete secret

Each command's API calls are told apart by their client connection (one kubectl process, one
connection, as nginx's access log shows). For each command its main call must have exactly one
audit line with the Kubernetes verb and objectRef; the watch's line must be there while the
watch is still streaming (ResponseStarted). Every request in nginx's access log has exactly one
audit line (same requestURI and client address), except the ignored /version, and the access
log shows that every request came over HTTP/2. The secret's value and the bearer token reach no
output of the tool, at level request with debug logging.

kubectl: $MAT_KUBECTL, else the one on PATH (tools/setup.sh installs Debian's kubernetes-client
when there is none). Its discovery cache and the dispatcher's state live in the test's tmp dir.
"""

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import LICENSE_KEY, go_json, make_auditor, parse_line, require, run, wait_until
from test_audit_semantics import ApiFront

NS = "default"
SECRET_NAME = "mat-e2e-secret"
CM_NAME = "mat-e2e-config"
KUBECTL_TIMEOUT = 60
WATCH_SECONDS = 3.0  # how long `get pods -w` runs
REDACTED = "[REDACTED by mke-audit-tap]"
IGNORED_PREFIXES = ("/version",)  # on the default ignore list (/version*)

FRONT_CONF = """\
user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    # One JSON object per request; $http2 is "h2" when HTTP/2 was negotiated over TLS (ALPN).
    log_format kube escape=json '{{"h2":"$http2","protocol":"$server_protocol",'
        '"source":"$remote_addr:$remote_port","method":"$request_method",'
        '"uri":"$request_uri","status":$status}}';
    access_log {d}/access.log kube;
    client_body_temp_path {d}/tmp_client_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
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


class KubeFront(ApiFront):
    """nginx (TLS, http2) in front of kube_backend.py; the bearer token is made here."""

    name = "nginx+kube_backend"
    backend_script = "kube_backend.py"
    conf_template = FRONT_CONF

    def __init__(self, workdir: Path, tls):
        super().__init__(workdir, tls, http2=True)
        self.token = "mat-e2e-token-" + secrets.token_hex(16)  # throwaway, this run only

    def backend_args(self, d):
        token_file = d / "token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        return ["--token-file", str(token_file)]

    def started(self):
        self.access_log = self.workdir / "access.log"
        self.log_files.append(self.access_log)
        self.access_log.write_bytes(b"")  # forget the readiness probes' requests

    def access(self):
        """nginx's access log so far, one dict per finished request."""
        try:
            text = self.access_log.read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def backend_records(self):
        out = []
        for line in (self.workdir / "backend.log").read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out


class Kubectl:
    """The real kubectl with a kubeconfig (test CA, bearer token) and caches in tmp."""

    def __init__(self, binary: str, workdir: Path, front: KubeFront):
        self.binary = binary
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {
                "server": f"https://127.0.0.1:{front.port}",
                "certificate-authority": str(front.tls.ca)}}],
            "users": [{"name": "e2e", "user": {"token": front.token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e",
                                                    "namespace": NS}}],
            "current-context": "e2e"}))
        self.kubeconfig.chmod(0o600)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home),
                    "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(home / "cache")}

    def cmd(self, *args):
        return [self.binary] + list(args)

    def run(self, *args) -> subprocess.CompletedProcess:
        return run(self.cmd(*args), timeout=KUBECTL_TIMEOUT, env=self.env)


@pytest.fixture
def kube_front(tmp_path, tls_material, environment_ok):
    front = KubeFront(tmp_path / "front", tls_material)
    try:
        yield front.start()
    finally:
        front.stop()


@pytest.fixture
def kubectl_binary(environment_ok):
    binary = os.environ.get("MAT_KUBECTL") or shutil.which("kubectl")
    require(binary is not None and os.access(binary, os.X_OK),
            "kubectl is not installed (tools/setup.sh installs Debian's kubernetes-client)")
    return binary


@pytest.fixture
def kubectl(kubectl_binary, kube_front, tmp_path):
    return Kubectl(kubectl_binary, tmp_path / "kubectl", kube_front)


class Step:
    """One kubectl command: the access log entries it caused and their audit lines."""

    def __init__(self, name, entries):
        self.name = name
        self.entries = entries
        self.sources = {e["source"] for e in entries}
        self.lines = []


def k8s_verb(method: str, uri: str) -> str:
    """The verb the API server's RequestInfo gives the calls kubectl makes here: core/v1
    namespaced resources, collection or named object; anything else is a non-resource GET."""
    u = urlsplit(uri)
    parts = [p for p in u.path.split("/") if p]
    if len(parts) < 5 or parts[:3] != ["api", "v1", "namespaces"]:
        return method.lower()
    named = len(parts) > 5
    watch = parse_qs(u.query).get("watch", [""])[-1] in ("true", "1")
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    return {"POST": "create", "PATCH": "patch", "PUT": "update",
            "DELETE": "delete" if named else "deletecollection"}[method]


def path_of(uri):
    return urlsplit(uri).path


def the_line(step, verb, path):
    """Exactly one audit line of this step with this verb and path (query aside)."""
    found = [a for a in step.lines if a.get("verb") == verb
             and path_of(a.get("requestURI", "")) == path]
    assert len(found) == 1, (
        f"{step.name}: want one audit line {verb} {path}, got {len(found)}:\n"
        + "\n".join(json.dumps(a) for a in step.lines))
    return found[0]


def test_kubectl_over_http2_every_call_audited_once(kubectl, kube_front, auditor_binary,
                                                    tmp_path):
    secret_value = "mat-e2e-not-a-real-secret-" + secrets.token_hex(12)
    secret_file = tmp_path / "secret-value"
    secret_file.write_text(secret_value)
    manifest = tmp_path / "configmap.json"
    timings = {}

    def apply_manifest(value):
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": CM_NAME, "namespace": NS},
                                        "data": {"colour": value}}))
        return kubectl.run("apply", "-f", str(manifest))

    # Level request with debug logging: the most the tool can say about what it saw.
    aud = make_auditor(auditor_binary, [kube_front.pid], (),
                       ["--level", "request", "--log-level", "debug"])
    aud.start()
    aud.wait_ready()
    steps = []
    watch = None

    def settled_access():
        """The access log once nginx has logged the requests just answered: unchanged for
        a moment (nginx logs a request after its last byte is sent)."""
        last = [kube_front.access()]

        def unchanged():
            time.sleep(0.2)
            now = kube_front.access()
            same = len(now) == len(last[0])
            last[0] = now
            return same

        wait_until(unchanged, 5, 0)
        return last[0]

    def step(name, action):
        before = len(kube_front.access())
        t0 = time.monotonic()
        result = action()
        timings[name] = time.monotonic() - t0
        entries = settled_access()[before:]
        assert entries, f"{name}: no request reached nginx"
        steps.append(Step(name, entries))
        return result

    try:
        out = step("get pods", lambda: kubectl.run("get", "pods")).stdout.decode()
        assert "web-0" in out and "web-1" in out, out

        def get_pods_watch():
            nonlocal watch
            proc = subprocess.Popen(kubectl.cmd("get", "pods", "-w"), env=kubectl.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            t0 = time.monotonic()
            try:
                # The watch's line is written at ResponseStarted, while the stream is open.
                seen = aud.wait_for_lines(
                    lambda raws: any(b"watch=true" in r for r in raws), timeout=20)
                running = proc.poll() is None
                watch = {"seen": seen, "running": running,
                         "lines": [parse_line(r).audit for r in aud.raw_lines()
                                   if b"watch=true" in r]}
                time.sleep(max(0.0, WATCH_SECONDS - (time.monotonic() - t0)))
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    out, err = proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate(timeout=5)
            # nginx logs the watch once it has seen the client go.
            assert wait_until(lambda: any("watch=true" in e["uri"]
                                          for e in kube_front.access()), 10), kube_front.logs()
            return out.decode(), err.decode()

        out, err = step("get pods -w", get_pods_watch)
        assert out.count("web-") >= 3, f"kubectl get pods -w printed {out!r} {err!r}"

        out = step("create secret generic", lambda: kubectl.run(
            "create", "secret", "generic", SECRET_NAME,
            f"--from-file=token={secret_file}")).stdout.decode()
        assert f"secret/{SECRET_NAME} created" in out, out

        out = step("apply -f (create)", lambda: apply_manifest("blue")).stdout.decode()
        assert f"configmap/{CM_NAME} created" in out, out
        out = step("apply -f (patch)", lambda: apply_manifest("green")).stdout.decode()
        assert f"configmap/{CM_NAME} configured" in out, out

        out = step("delete secret", lambda: kubectl.run(
            "delete", "secret", SECRET_NAME)).stdout.decode()
        assert f'secret "{SECRET_NAME}" deleted' in out, out

        access = kube_front.access()
        audited = [e for e in access if not path_of(e["uri"]).startswith(IGNORED_PREFIXES)]
        aud.wait_quiet(at_least=len(audited), timeout=20)
    finally:
        rc = aud.stop()
    assert rc == 0, aud.diagnostics()
    report = "\n" + kube_front.logs() + "\n" + aud.diagnostics()

    # HTTP/2 was really negotiated, for every request.
    not_h2 = [e for e in access if e["h2"] != "h2" or e["protocol"] != "HTTP/2.0"]
    assert not not_h2, f"requests not over HTTP/2: {not_h2}"

    # Every non-ignored request has exactly one audit line, and there is no other line.
    parsed = [parse_line(r) for r in aud.raw_lines()]
    bad = [p.raw for p in parsed if p.error or not p.is_audit]
    assert not bad, f"stdout lines that are not audit lines: {bad}" + report
    lines = [p.audit for p in parsed]
    want = Counter((e["uri"], e["source"]) for e in audited)
    got = Counter((a.get("requestURI"), (a.get("sourceIPs") or [None])[0]) for a in lines)
    assert got == want, (f"audit lines per (requestURI, source) differ from nginx's requests:\n"
                         f"  missing: {dict(want - got)}\n  extra: {dict(got - want)}" + report)

    # Each line agrees with its request (same URI and client, the verb of its method); the
    # whole line is in Go's encoding.
    unmatched = list(audited)
    problems = []
    for p, a in zip(parsed, lines):
        cands = [e for e in unmatched if e["uri"] == a["requestURI"]
                 and e["source"] == a["sourceIPs"][0]
                 and k8s_verb(e["method"], e["uri"]) == a.get("verb")]
        if not cands:
            problems.append(f"no {a.get('verb')} request in nginx's log for {p.raw}")
            continue
        e = cands[0]
        unmatched.remove(e)
        who = f"{e['method']} {e['uri']}"
        if a.get("kind") != "kubernetes" or a.get("level") != "request":
            problems.append(f"{who}: kind/level {a.get('kind')}/{a.get('level')}")
        if (a.get("responseStatus") or {}).get("code") != e["status"]:
            problems.append(f"{who}: responseStatus {a.get('responseStatus')}, nginx sent "
                            f"{e['status']}")
        want_stage = "ResponseStarted" if "watch=true" in e["uri"] else "ResponseComplete"
        if a.get("stage") != want_stage:
            problems.append(f"{who}: stage {a.get('stage')!r}, want {want_stage!r}")
        if "mke-audit-tap/incomplete" in (a.get("annotations") or {}):
            problems.append(f"{who}: marked incomplete: {a.get('annotations')}")
        if a.get("user", {}).get("extra", {}).get("licenseKey") != [LICENSE_KEY]:
            problems.append(f"{who}: user {a.get('user')}")
        if p.raw != go_json(p.obj):
            problems.append(f"{who}: not Go's compact JSON encoding: {p.raw}")
    ids = Counter(a.get("auditID") for a in lines)
    problems += [f"auditID {i} used {n} times" for i, n in ids.items() if n > 1]
    assert not problems, "\n".join(problems) + report

    # The calls of each command, by its connection(s).
    for s in steps:
        others = set().union(*(o.sources for o in steps if o is not s))
        assert not s.sources & others, f"{s.name}: connection shared with another command"
        s.lines = [a for a in lines if a["sourceIPs"][0] in s.sources]
    get_pods, watch_step, create, apply_create, apply_patch, delete = steps
    pods = f"/api/v1/namespaces/{NS}/pods"
    ref = {"apiVersion": "v1", "namespace": NS}

    line = the_line(get_pods, "list", pods)
    assert line["objectRef"] == {**ref, "resource": "pods"}, line

    assert watch["seen"] and watch["running"], (
        f"the watch's audit line must be written while kubectl still watches: {watch}" + report)
    assert len(watch["lines"]) == 1 and watch["lines"][0]["stage"] == "ResponseStarted", watch
    line = the_line(watch_step, "watch", pods)
    assert line["objectRef"] == {**ref, "resource": "pods"}, line
    assert line["responseStatus"]["code"] == 200 and line["stageTimestamp"], line
    the_line(watch_step, "list", pods)  # the list the watch starts from

    uids = {(r["method"], path_of(r["path"])): r.get("uid") for r in kube_front.backend_records()}
    secrets_path = f"/api/v1/namespaces/{NS}/secrets"
    line = the_line(create, "create", secrets_path)
    assert line["objectRef"] == {**ref, "resource": "secrets",
                                 "uid": uids[("POST", secrets_path)]}, line
    assert line["requestObject"] == REDACTED, line
    assert "mke-audit-tap/redacted" in line.get("annotations", {}), line

    cms = f"/api/v1/namespaces/{NS}/configmaps"
    cm = f"{cms}/{CM_NAME}"
    assert the_line(apply_create, "get", cm)["responseStatus"]["code"] == 404
    line = the_line(apply_create, "create", cms)
    assert line["objectRef"] == {**ref, "resource": "configmaps",
                                 "uid": uids[("POST", cms)]}, line
    assert line["requestObject"]["kind"] == "ConfigMap", line
    assert line["requestObject"]["data"] == {"colour": "blue"}, line
    assert the_line(apply_patch, "get", cm)["responseStatus"]["code"] == 200
    line = the_line(apply_patch, "patch", cm)
    assert {k: v for k, v in line["objectRef"].items() if k != "uid"} == \
        {**ref, "resource": "configmaps"}, line
    assert line["objectRef"].get("uid") in (None, uids[("POST", cms)]), line
    assert line["requestObject"]["data"] == {"colour": "green"}, line

    line = the_line(delete, "delete", f"{secrets_path}/{SECRET_NAME}")
    assert line["objectRef"] == {**ref, "resource": "secrets"}, line
    assert line["responseStatus"]["code"] == 200, line

    # The HTTP/2 parser saw every request and response, /version included, and lost nothing.
    m = re.search(r"(\d+) gaps .*http/2 (\d+) requests, (\d+) responses, (\d+) hpack errors, "
                  r"(\d+) fatal", aud.stderr_text())
    assert m, "no summary on the auditor's stderr" + report
    gaps, h2_requests, h2_responses, hpack_errors, fatal = (int(x) for x in m.groups())
    assert (gaps, hpack_errors, fatal) == (0, 0, 0), m.group(0)
    assert h2_requests == h2_responses == len(access), m.group(0)

    # The ignored /version (kubectl's version check) is not audited.
    assert not [a for a in lines if path_of(a["requestURI"]).startswith(IGNORED_PREFIXES)]

    # Neither the secret (as sent: raw in protobuf, base64 in JSON; and as answered) nor the
    # bearer token reaches any output of the tool.
    everything = b"".join(aud.raw_lines()).decode() + "\n" + aud.stderr_text()
    for what, value in (("secret value", secret_value),
                        ("secret value (base64)", base64.b64encode(secret_value.encode())
                         .decode().rstrip("=")),
                        ("bearer token", kube_front.token)):
        assert value not in everything, f"{what} leaked into the auditor's output"

    print("\nkubectl over HTTP/2, seconds per command: "
          + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    print("requests: " + "; ".join(f"{e['method']} {e['uri']} {e['protocol']} {e['status']}"
                                   for e in access))
