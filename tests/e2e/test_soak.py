"""Soak: 10,000 concurrent TLS connections to nginx under sustained load for 60 s, the auditor at
level request (issue 13). Checks, against nginx's own access log:

- every request nginx served is accounted for: audited (a line with its auditID) or
  counted as lost by the auditor. Counted: the loss notices on stdout (JSON lines with no
  auditID; their "counts" values whose names say "request"); with no loss counted,
  audited == sent exactly (a memory cap hit is no loss: its requests are audited, incomplete);
- the auditor's memory (VmHWM, its peak resident set) stays under SOAK_RSS_BOUND_MIB, the bound
  the README documents for this load.

The load: h2load (nghttp2-client) with 10,000 HTTP/1.1 keep-alive connections over TLS, each
sending SOAK_RPS requests a second for SOAK_SECONDS. stdout goes to a file (a million lines
would not fit the other tests' in-memory reader). Run alone: it takes about two minutes.
"""

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LICENSE_KEY, free_port, require, run, stop_process, tail, wait_until

CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "10000"))
SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
SOAK_RPS = float(os.environ.get("SOAK_RPS", "0.2"))  # per connection: 2,000 requests/s in all
SOAK_RSS_BOUND_MIB = 512  # README "Memory bounds"

NGINX_SOAK_CONF = """\
user root;
worker_processes 2;
worker_rlimit_nofile {nofile};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    log_format mat '$request_method "$request_uri" $status';
    access_log {d}/access.log mat buffer=256k flush=1s;
    client_body_temp_path {d}/tmp_client_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    keepalive_timeout 600s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} ssl backlog=16384;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location /soak/ {{ return 200 'ok\\n'; }}
        location / {{ return 404; }}
    }}
}}
"""


def rss_peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lost_in_notice(obj) -> int:
    """Requests a loss notice says were lost: its counts named for requests."""
    counts = obj.get("counts") if isinstance(obj, dict) else None
    if not isinstance(counts, dict):
        return 0
    return sum(v for k, v in counts.items()
               if isinstance(v, int) and "request" in k and "lines" not in k)


def test_soak_10k_tls_connections(auditor_binary, tls_material, tmp_path):
    require(shutil.which("h2load") is not None, "h2load (nghttp2-client) is not installed")
    # h2load holds every client socket, each nginx worker its share: the file limit goes up to
    # the hard limit (children inherit it), which must leave room for them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = CONNECTIONS + 1024
    require(hard == resource.RLIM_INFINITY or hard >= want,
            f"the open file hard limit {hard} is below {want}")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    d = tmp_path / "nginx"
    d.mkdir()
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(NGINX_SOAK_CONF.format(d=d, port=port, cert=tls_material.cert,
                                           key=tls_material.key, nofile=want))
    run(["nginx", "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)], timeout=15)
    nginx_err = open(d / "stderr.log", "wb")
    nginx = subprocess.Popen(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                             stdin=subprocess.DEVNULL, stdout=nginx_err, stderr=nginx_err)
    out_path = tmp_path / "audit.jsonl"
    err_path = tmp_path / "auditor.stderr"
    auditor = None
    try:
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_until(listening, 15), "nginx did not listen"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            auditor = subprocess.Popen(
                [str(auditor_binary), "--level", "request", "--license-key", LICENSE_KEY,
                 "--pid", str(nginx.pid)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        assert wait_until(lambda: b"ready" in err_path.read_bytes() or auditor.poll() is not None,
                          60), "auditor not ready"
        assert auditor.poll() is None, tail(err_path.read_text(errors="replace"))

        load = run(["h2load", "--h1", "-c", str(CONNECTIONS), "-t", "2", "--rps", str(SOAK_RPS),
                    "-D", str(SOAK_SECONDS), "-T", "60", "-N", "60",
                    f"https://127.0.0.1:{port}/soak/x"],
                   timeout=SOAK_SECONDS + 240, check=False)
        said = load.stdout.decode(errors="replace") + load.stderr.decode(errors="replace")
        print(said)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", said)
        assert m, f"h2load said:\n{said}"
        succeeded = int(m.group(4))
        assert succeeded > SOAK_SECONDS * CONNECTIONS * SOAK_RPS * 0.3, said
        peak_kib = rss_peak_kib(auditor.pid)

        # Let the auditor write what is still in flight, then stop it for its summary.
        time.sleep(3)
        os.kill(auditor.pid, signal.SIGTERM)
        auditor.wait(timeout=60)
    finally:
        if auditor is not None and auditor.poll() is None:
            auditor.kill()
            auditor.wait(timeout=10)
        stop_process(nginx, signal.SIGQUIT, 30)
        nginx_err.close()

    served = sum(1 for line in (d / "access.log").read_text().splitlines()
                 if line.startswith('GET "/soak/x"'))
    stderr = err_path.read_text(errors="replace")
    audit_ids = set()  # a request written at two stages has one auditID
    noticed_lost = 0
    with open(out_path, "rb") as f:
        for raw in f:
            obj = json.loads(raw)
            event = obj.get("audit")  # MKE lines: the audit event is under "audit"
            if not isinstance(event, dict) or "auditID" not in event:
                noticed_lost += lost_in_notice(obj)
            elif event.get("requestURI") == "/soak/x":
                audit_ids.add(event["auditID"])
    audited = len(audit_ids)
    caps = re.search(r"memory caps hit: (.*)", stderr)  # requests still audited, incomplete
    print(f"soak: {CONNECTIONS} connections, {SOAK_SECONDS}s: nginx served {served}, h2load "
          f"succeeded {succeeded}, audited {audited}, lost per notices {noticed_lost}; auditor "
          f"peak RSS {peak_kib // 1024} MiB; caps hit: {caps[1] if caps else 'none'}")
    print("auditor stderr (tail):\n" + tail(stderr, 20))
    assert served >= succeeded
    assert peak_kib > 0 and peak_kib < SOAK_RSS_BOUND_MIB * 1024, (
        f"auditor peak RSS {peak_kib // 1024} MiB over the {SOAK_RSS_BOUND_MIB} MiB bound")
    assert audited + noticed_lost == served, (
        f"nginx served {served}, auditor audited {audited} and counted {noticed_lost} lost\n"
        + tail(stderr, 40))
