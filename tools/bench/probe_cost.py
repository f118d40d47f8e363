#!/usr/bin/python3
"""What one audited request costs: nginx (TLS, HTTP/1.1 keep-alive, one worker) serves N small
requests from a local client, alternately without and with mke-audit-tap attached, in one run.
CPU time comes from /proc/PID/schedstat (ns on CPU) of the nginx worker and of the auditor.

    sudo tools/bench/probe_cost.py [--requests N] [--rounds R] [--binary build/mke-audit-tap]

Prints per-request CPU: nginx without, nginx with (the difference is the probes' cost in the
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
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(tmp, port):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "1", "-subj",
                    "/CN=localhost"], check=True, capture_output=True)
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
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    return proc, int(workers.stdout.split()[0])


def drive(port, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    req = b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"ok\n" not in buf:
            buf += s.recv(4096)
        buf = buf[buf.index(b"ok\n") + 3:]
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "mke-audit-tap"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        nginx, worker = start_nginx(tmp, port)
        rows = []
        try:
            drive(port, 200)  # warm up
            for _ in range(args.rounds):
                before = cpu_ns(worker)
                drive(port, args.requests)
                base = (cpu_ns(worker) - before) / args.requests

                out = open(f"{tmp}/lines", "w")
                tap = subprocess.Popen([args.binary, "--level", "metadata", "--pid", str(nginx.pid),
                                        "--license-key", "BENCH"], stdout=out,
                                       stderr=subprocess.PIPE, text=True)
                for line in tap.stderr:
                    if "ready" in line:
                        break
                tap_before, before = cpu_ns(tap.pid), cpu_ns(worker)
                drive(port, args.requests)
                time.sleep(0.5)  # let the auditor drain
                with_tap = (cpu_ns(worker) - before) / args.requests
                tap_cpu = (cpu_ns(tap.pid) - tap_before) / args.requests
                tap.send_signal(signal.SIGINT)
                tap.wait(timeout=30)
                out.close()
                lines = sum(1 for _ in open(f"{tmp}/lines"))
                rows.append((base, with_tap, tap_cpu, lines))
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    print(f"requests per round: {args.requests} (one keep-alive TLS connection, GET, 3-byte body)")
    print("round  nginx_without_us  nginx_with_us  probe_cost_us  auditor_us  total_us  lines")
    for i, (base, with_tap, tap_cpu, lines) in enumerate(rows):
        probe = with_tap - base
        print(f"{i:5d}  {base/1e3:16.2f}  {with_tap/1e3:13.2f}  {probe/1e3:13.2f}  "
              f"{tap_cpu/1e3:10.2f}  {(probe + tap_cpu)/1e3:8.2f}  {lines:5d}")
    ok = all(lines == args.requests for *_, lines in rows)
    print("every request audited" if ok else "MISSING LINES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
