#!/usr/bin/python3
"""What one audited request costs: a TLS server serves N small requests over one HTTP/1.1
keep-alive connection from a local client, alternately without and with mke-audit-tap attached,
in one run. CPU time comes from /proc/PID/task/*/schedstat (ns on CPU, all threads) of the
server and of the auditor.

    sudo tools/bench/probe_cost.py [--server nginx|go|dockerd] [--requests N] [--rounds R]
                                   [--binary build/mke-audit-tap]

Servers: nginx (OpenSSL, one worker, `return 200`); go (tests/e2e/go_https_server, Go's
net/http over crypto/tls, built here with golang-go); dockerd (Debian's, --tls on a loopback
port with its own data root, GET /v1.41/containers/json).

Prints per-request CPU: server without, server with (the difference is the probes' cost in the
server: uprobe hits and BPF programs), the auditor's own userspace CPU, and the total.
Compare the ratios within one run: this machine is shared and noisy.
"""
import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_ns(pid):
    """CPU time of every thread of pid (Go servers work on many threads)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(tmp):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start_nginx(tmp, port):
    """-> (process to stop, pid whose CPU is measured, pid to audit)"""
    make_cert(tmp)
    conf = f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem; location / {{ return 200 "ok\\n"; }} }} }}
"""
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["nginx", "-c", f"{tmp}/nginx.conf"])
    wait_port(port)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    return proc, int(workers.stdout.split()[0]), proc.pid


def start_go(tmp, port):
    make_cert(tmp)
    env = dict(os.environ, HOME=tmp, GOCACHE=f"{tmp}/gocache", GOPATH=f"{tmp}/gopath",
               GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0")
    subprocess.run(["go", "build", "-o", f"{tmp}/go_https_server", "."], check=True, env=env,
                   cwd=os.path.join(ROOT, "tests", "e2e", "go_https_server"))
    proc = subprocess.Popen([f"{tmp}/go_https_server", f"127.0.0.1:{port}", f"{tmp}/cert.pem",
                             f"{tmp}/key.pem"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc, proc.pid, proc.pid


def ossl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def start_dockerd(tmp, port):
    """dockerd --tlsverify, as MKE runs it: the client presents a certificate (CLIENT_CERT)."""
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{tmp}/ca.key", "-out",
         f"{tmp}/ca.pem", "-days", "1", "-subj", "/CN=bench CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(f"{tmp}/{name}.ext", "w") as f:
            f.write(ext)
        ossl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{tmp}/{name}.key",
             "-out", f"{tmp}/{name}.csr", "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", f"{tmp}/{name}.csr", "-CA", f"{tmp}/ca.pem", "-CAkey",
             f"{tmp}/ca.key", "-CAcreateserial", "-days", "1", "-extfile", f"{tmp}/{name}.ext",
             "-out", f"{tmp}/{name}.pem")
    CLIENT_CERT[:] = [f"{tmp}/client.pem", f"{tmp}/client.key"]
    proc = subprocess.Popen(
        ["/usr/sbin/dockerd", "--tlsverify", f"--tlscacert={tmp}/ca.pem",
         f"--tlscert={tmp}/server.pem", f"--tlskey={tmp}/server.key",
         "-H", f"tcp://127.0.0.1:{port}", "-H", f"unix://{tmp}/docker.sock", "--data-root",
         f"{tmp}/data", "--exec-root", f"/tmp/mat-bench-{port}", "--pidfile",
         f"{tmp}/docker.pid", "--iptables=false", "--bridge=none", "--ip-forward=false"],
        stdout=open(f"{tmp}/dockerd.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_port(port)
    except RuntimeError:
        print(open(f"{tmp}/dockerd.log").read()[-3000:], file=sys.stderr)
        raise
    return proc, proc.pid, proc.pid


CLIENT_CERT = []  # [cert, key] when the server verifies clients

SERVERS = {
    "nginx": (start_nginx, "/v1.41/containers/json?all=1"),
    "go": (start_go, "/v1.41/containers/json?all=1"),
    "dockerd": (start_dockerd, "/v1.41/containers/json?all=1"),
}


def drive(port, n, path):
    """n GETs on one keep-alive connection, each answer read whole (Content-Length)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    if CLIENT_CERT:
        ctx.load_cert_chain(*CLIENT_CERT)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += s.recv(65536)
        buf = buf[length:]
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", choices=sorted(SERVERS), default="nginx")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "mke-audit-tap"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        start, path = SERVERS[args.server]
        rows = []
        server = None
        try:
            server, worker, audited = start(tmp, port)
            drive(port, 200, path)  # warm up
            for _ in range(args.rounds):
                before = cpu_ns(worker)
                drive(port, args.requests, path)
                base = (cpu_ns(worker) - before) / args.requests

                out = open(f"{tmp}/lines", "w")
                tap = subprocess.Popen([args.binary, "--level", "metadata", "--pid", str(audited),
                                        "--license-key", "BENCH"], stdout=out,
                                       stderr=subprocess.PIPE, text=True)
                for line in tap.stderr:
                    if "ready" in line:
                        break
                tap_before, before = cpu_ns(tap.pid), cpu_ns(worker)
                drive(port, args.requests, path)
                time.sleep(0.5)  # let the auditor drain
                with_tap = (cpu_ns(worker) - before) / args.requests
                tap_cpu = (cpu_ns(tap.pid) - tap_before) / args.requests
                tap.send_signal(signal.SIGINT)
                tap.wait(timeout=30)
                out.close()
                lines = sum(1 for _ in open(f"{tmp}/lines"))
                rows.append((base, with_tap, tap_cpu, lines))
        finally:
            if server:
                server.send_signal(signal.SIGQUIT if args.server == "nginx" else signal.SIGTERM)
                server.wait(timeout=30)
            for m in (f"/tmp/mat-bench-{port}", f"{tmp}/data"):
                subprocess.run(["umount", "-R", m], capture_output=True)
    print(f"server: {args.server}; requests per round: {args.requests} (one keep-alive TLS "
          f"connection, GET {path})")
    print("round  server_without_us  server_with_us  probe_cost_us  auditor_us  total_us  lines")
    for i, (base, with_tap, tap_cpu, lines) in enumerate(rows):
        probe = with_tap - base
        print(f"{i:5d}  {base/1e3:17.2f}  {with_tap/1e3:14.2f}  {probe/1e3:13.2f}  "
              f"{tap_cpu/1e3:10.2f}  {(probe + tap_cpu)/1e3:8.2f}  {lines:5d}")
    ok = all(lines == args.requests for *_, lines in rows)
    print("every request audited" if ok else "MISSING LINES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
