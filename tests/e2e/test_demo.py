"""The first run (tools/demo.sh, what `tools/run.sh` without targets runs): it starts a TLS nginx
and a dockerd with a client bundle, the auditor, makes curl and docker calls, prints their audit
lines and cleans up. Ground truth: nginx's access log and dockerd's debug log, kept by --keep."""

import glob
import json
import os
import re
import shutil
import subprocess
from collections import Counter

from conftest import REPO_ROOT, require

IGNORED = re.compile(r"^(/v[0-9.]+)?/(_ping|version|info)$")


def test_demo_prints_audit_lines_of_its_calls(auditor_binary, tmp_path):
    for tool in ("dockerd", "docker", "containerd", "jq"):
        require(shutil.which(tool), f"{tool} is needed (tools/setup.sh)")
    keep = tmp_path / "kept"
    before = set(glob.glob("/tmp/mat-demo.*"))
    env = dict(os.environ, MAT_BINARY=str(auditor_binary))
    # The plaintext run of the suite (MAT_CAPTURE) runs the demo's auditor that way too.
    extra = ["--capture", os.environ["MAT_CAPTURE"]] if os.environ.get("MAT_CAPTURE") else []
    r = subprocess.run(["bash", str(REPO_ROOT / "tools/demo.sh"), "--keep", str(keep), *extra],
                       capture_output=True, text=True, timeout=300, env=env)
    out = f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.returncode == 0, out

    # What the servers saw.
    nginx_calls = [tuple(ln.split()[:2]) for ln in (keep / "access.log").read_text().splitlines()
                   if " /ready " not in ln]
    docker_calls = re.findall(r'msg="Calling (\S+) (\S+)"', (keep / "dockerd.log").read_text())
    audited_docker = [(m, p) for m, p in docker_calls if not IGNORED.match(p.split("?")[0])]
    assert len(nginx_calls) == 4, out
    assert ("POST", "/api/items") in nginx_calls
    assert any(p.endswith("/networks") for _m, p in audited_docker), docker_calls
    assert any(m == "POST" and p.endswith("/volumes/create") for m, p in audited_docker)
    assert any(p.endswith("/version") for _m, p in docker_calls), "no docker version call"

    # What the auditor wrote: exactly one line per non-ignored call.
    lines = [json.loads(ln)["audit"] for ln in (keep / "audit.jsonl").read_text().splitlines()]
    got = Counter((ln["verb"], ln["requestURI"]) for ln in lines)
    want = Counter(nginx_calls + audited_docker)
    assert got == want, f"audit lines vs the servers' logs:\n got {got}\nwant {want}\n{out}"
    # The docker calls carry the client bundle's user; nginx's with the certificate too.
    docker_users = {ln["user"]["username"] for ln in lines if ln["requestURI"].startswith("/v1.")}
    assert docker_users == {"demo-admin"}, lines
    assert {ln["user"]["username"] for ln in lines
            if ln["requestURI"] == "/api/items?limit=2"} == {"demo-admin"}

    # It printed them (jq summary) and a summary that matches the logs.
    for verb, uri in want:
        assert f" {verb} {uri} -> " in r.stdout, (verb, uri, out)
    assert f"the auditor wrote {len(lines)} audit line(s)" in r.stdout, out
    assert f"nginx logged {len(nginx_calls)} request(s)" in r.stdout, out
    assert f"dockerd routed {len(docker_calls)} API call(s)" in r.stdout, out

    # Everything it started is gone, and so is its temporary directory.
    assert set(glob.glob("/tmp/mat-demo.*")) <= before, "temporary directory left behind"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "/tmp/mat-demo." not in ps, ps
