#!/usr/bin/python3
"""A plain-HTTP stand-in for the MKE, Docker and Kubernetes APIs, behind nginx's TLS front in
the audit-semantics tests. It answers with the shapes the real APIs use (ids in create
responses, a watch stream that stays open), and never echoes request bodies.

    api_backend.py --port N   (prints "listening N" once ready)
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTAINER_ID = "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2"
SECRET_ID = "ktnbjxoalbkvbvedmg1urrz8h"
SERVICE_ID = "9mnpnzenvg8p8tdbtq4wvbkcz"
CONFIG_ID = "ovj1aa4pj3irw5xm0dclu1y1f"
K8S_UID = "6f3bfa7f-4f1e-4b4f-9d9e-0e7f2c1b5a11"
VERSIONED = re.compile(r"^/v[0-9]+\.[0-9]+(/.*)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, obj=None, ctype="application/json"):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        if obj is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if size == 0:
                    break

    def _route(self):
        self._read_body()
        path = self.path.split("?")[0]
        m = VERSIONED.match(path)
        if m:
            path = m.group(1)
        method = self.command
        if path == "/api/v1/namespaces/default/pods" and "watch=true" in self.path:
            return self._watch()
        if path == "/slow":
            time.sleep(4)
            return self._send(200, {"slow": True})
        if method == "POST" and path == "/containers/create":
            return self._send(201, {"Id": CONTAINER_ID, "Warnings": []})
        if method == "POST" and path == "/secrets/create":
            return self._send(201, {"ID": SECRET_ID})
        if method == "POST" and path == "/configs/create":
            return self._send(201, {"ID": CONFIG_ID})
        if method == "POST" and path == "/services/create":
            return self._send(201, {"ID": SERVICE_ID, "Warnings": None})
        if method == "POST" and re.fullmatch(r"/(services|secrets)/[a-z0-9]+/update", path):
            return self._send(200, {"Warnings": None})
        if method == "POST" and path == "/auth/login":
            return self._send(200, {"auth_token": "tok-not-a-secret-of-the-test"})
        if method in ("POST", "PUT", "PATCH") and path.startswith("/api/v1/namespaces/default/"):
            return self._send(201 if method == "POST" else 200,
                              {"kind": "Object", "metadata": {"uid": K8S_UID, "name": "n"}})
        if method == "GET" and path.startswith("/api/v1/"):
            return self._send(200, {"kind": "List", "items": []})
        return self._send(200, {})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route

    def _watch(self):
        """A Kubernetes watch: a chunked stream that stays open until the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = json.dumps({"type": "ADDED", "object": {"kind": "Pod"}}).encode() + b"\n"
        try:
            for _ in range(600):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass
        self.close_connection = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening {args.port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sys.stdin.read()  # until the test closes our stdin or kills us
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
