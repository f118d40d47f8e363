#!/usr/bin/python3
"""A long-lived HTTPS client process for the end-to-end tests.

It renames itself (prctl PR_SET_NAME) so the auditor can target it with --comm, waits long
enough for the auditor's target rescan to pick it up, then sends each request on its own TLS
connection through the system libssl.so.3 and prints one JSON object per request:
{"method", "uri", "port" (server), "local_port", "code", "t0", "t1"}.

usage: tls_http_client.py --comm NAME --delay S --ca CA.pem PORT:METHOD:URI ...
"""

import argparse
import ctypes
import json
import socket
import ssl
import sys
import time

PR_SET_NAME = 15


def set_comm(name: str):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def one_request(ctx, port, method, uri, timeout=20):
    body = b'{"client":"side"}' if method in ("POST", "PUT") else b""
    head = f"{method} {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            local_port = s.getsockname()[1]
            s.sendall(head.encode() + b"\r\n" + body)
            data = b""
            while b"\r\n" not in data:
                part = s.recv(4096)
                if not part:
                    break
                data += part
            code = int(data.split(b" ", 2)[1])
            try:  # drain until the server closes (Connection: close)
                while s.recv(65536):
                    pass
            except (OSError, ssl.SSLError):
                pass
    return {"method": method, "uri": uri, "port": port, "local_port": local_port, "code": code,
            "t0": t0, "t1": time.time()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comm", required=True)
    ap.add_argument("--delay", type=float, default=2.5)
    ap.add_argument("--ca", required=True)
    ap.add_argument("requests", nargs="+")
    args = ap.parse_args()
    set_comm(args.comm)
    ctx = ssl.create_default_context(cafile=args.ca)
    time.sleep(args.delay)
    for spec in args.requests:
        port, method, uri = spec.split(":", 2)
        print(json.dumps(one_request(ctx, int(port), method, uri)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
