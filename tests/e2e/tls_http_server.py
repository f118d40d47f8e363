#!/usr/bin/python3
"""A tiny HTTPS/1.1 keep-alive server for the end-to-end tests.

Run it with Debian's /usr/bin/python3: its _ssl module links the system libssl.so.3, so the
auditor's OpenSSL uprobes see this process exactly as they see nginx, but through a different
code path (Python calls SSL_read_ex/SSL_write_ex, one write for the head and one for the body).

Routes (the same answers the nginx configuration in conftest.py gives):
  GET    /hello, /search, /pipe/N, /_ping, /vN.NN/_ping, /vN.NN/version   200, short text body
  GET    /big                                                           200, --big-size bytes
  POST   /items                                                         201, {"id":"1"}
  PUT    /items/N                                                       200, {"id":"N"}
  DELETE /items/N                                                       204, no body
  POST   /upload, PUT /upload                                           200, "received N"
  any    /hang      reads the request, never answers; returns when the client goes away
  else                                                                  404
Request bodies are always read completely (Content-Length or chunked), so keep-alive and
pipelining work. Prints "listening PORT" on stdout once it accepts connections.
"""

import argparse
import http.server
import re
import ssl
import sys

VERSIONED = re.compile(r"^/v[0-9]+\.[0-9]+(/.*)$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mat-e2e-python/1"
    sys_version = ""
    timeout = 60  # per socket operation; a stuck client cannot pin a thread forever

    def setup(self):
        # The TLS handshake runs here, in the connection's thread, not in the accept loop.
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, OSError) as exc:
            self.log_message("connection ended: %r", exc)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s:%d %s\n" % (self.client_address[0], self.client_address[1],
                                           fmt % args))
        sys.stderr.flush()

    # ---- request bodies ----
    def _read_chunked(self):
        body = bytearray()
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("EOF inside chunked body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # trailers until the empty line
                while True:
                    trailer = self.rfile.readline(65537)
                    if trailer in (b"\r\n", b"\n", b""):
                        return bytes(body)
            body += self._read_exact(size)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ValueError("bad chunk terminator")

    def _read_exact(self, n):
        data = bytearray()
        while len(data) < n:
            part = self.rfile.read(n - len(data))
            if not part:
                raise ConnectionError("EOF inside request body")
            data += part
        return bytes(data)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exact(length)

    # ---- answers ----
    def _reply(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        if code != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and code != 204 and self.command != "HEAD":
            self.wfile.write(body)

    def _hang(self):
        # Never answer. Wait for the client to close (or the process to be stopped).
        self.close_connection = True
        self.log_message("hanging on %s", self.path)
        try:
            while self.rfile.read(1):
                pass
        except (OSError, ValueError):
            pass

    def _route(self, method, path, body):
        m = VERSIONED.match(path)
        bare = m.group(1) if m else path
        if bare == "/_ping" or bare.startswith("/version"):
            return 200, b"OK"
        if path == "/hello" and method in ("GET", "HEAD"):
            return 200, b"hello\n"
        if path == "/search" and method == "GET":
            return 200, b"results\n"
        if path.startswith("/pipe/") and method == "GET":
            return 200, ("pipe %s\n" % path[len("/pipe/"):]).encode()
        if path == "/big" and method == "GET":
            return 200, b"B" * self.server.big_size
        if path == "/items" and method == "POST":
            return 201, b'{"id":"1"}'
        if path.startswith("/items/"):
            item = path[len("/items/"):]
            if method == "PUT":
                return 200, ('{"id":"%s"}' % item).encode()
            if method == "DELETE":
                return 204, b""
            if method == "GET":
                return 200, ('{"id":"%s"}' % item).encode()
        if path == "/upload" and method in ("POST", "PUT"):
            return 200, ("received %d\n" % len(body)).encode()
        return 404, b"not found\n"

    def _dispatch(self):
        path = self.path.split("?", 1)[0]
        if path == "/hang":
            self._hang()
            return
        body = self._read_body()
        code, payload = self._route(self.command, path, body)
        self._reply(code, payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, context, big_size):
        self.context = context
        self.big_size = big_size
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, addr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--big-size", type=int, default=1 << 20)
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = Server(("127.0.0.1", args.port), ctx, args.big_size)
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
