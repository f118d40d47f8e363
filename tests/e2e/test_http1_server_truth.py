"""Issue 17, HTTP/1.1 rows, live: hostile byte sequences through TLS at nginx 1.22 with the
auditor attached; each connection's lines must be what nginx did (its access log, by client
port): no line for bytes nginx never read as a request, the status nginx sent, no shift.
(The differential harness of the issue, with Go too, is tests/e2e/test_hostile.py.)"""
import socket
import time

from conftest import TlsClient, parse_line, wait_until

H = b"Host: 127.0.0.1\r\n"
GET = b"GET /hello HTTP/1.1\r\n" + H + b"\r\n"
FAKE = b"GET /fake HTTP/1.1\r\n" + H + b"\r\n"

# name -> (bytes, the lines expected: (verb, requestURI, status or None))
SHAPES = {
    "cl_with_te": (b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + GET,
                   [("POST", "/hello", 400)]),
    "te_with_cl": (b"POST /hello HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                   b"Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + GET,
                   [("POST", "/hello", 400)]),
    "two_lengths": (b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
                    b"Content-Length: 4\r\n\r\nabcd" + GET, [("POST", "/hello", 400)]),
    "length_minus_one": (b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n" + GET,
                         [("POST", "/hello", 400)]),
    "bare_lf_chunk_fake_request": (
        b"POST /hello HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" +
        b"%x\n" % len(FAKE) + FAKE + b"\r\n0\r\n\r\n" + GET,
        [("POST", "/hello", 200), ("GET", "/hello", 200)]),
    "connection_close_then_delete": (
        b"GET /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        b"DELETE /hello HTTP/1.1\r\n" + H + b"\r\n", [("GET", "/hello", 200)]),
    "http10_then_delete": (b"GET /hello HTTP/1.0\r\n\r\nDELETE /hello HTTP/1.1\r\n" + H + b"\r\n",
                           [("GET", "/hello", 200)]),
    "header_name_paren": (b"DELETE /hello HTTP/1.1\r\n" + H + b"X(y): 1\r\n\r\n" + GET,
                          [("DELETE", "/hello", 200), ("GET", "/hello", 200)]),
    "header_value_control": (b"DELETE /hello HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n" + GET,
                             [("DELETE", "/hello", 200), ("GET", "/hello", 200)]),
    "not_found_then_bad_header": (
        b"GET /items HTTP/1.1\r\n" + H + b"\r\nGET /hello HTTP/1.1\r\n" + H + b"X(y): 1\r\n\r\n",
        [("GET", "/items", 404), ("GET", "/hello", 200)]),
    "get_then_garbage": (GET + b"\x00\x01garbage here\r\n\r\n", [("GET", "/hello", 200)]),
    "lower_case_method": (b"get /hello HTTP/1.1\r\n" + H + b"\r\n" + GET,
                          [("GET", "/hello", 400)]),
    "http09_get": (b"GET /hello\r\n", [("GET", "/hello", None)]),
    # 90 KB of header: over this nginx's buffers (400, close); read whole (Go serves 1 MiB).
    "header_90kb": (b"DELETE /hello HTTP/1.1\r\n" + H + b"X-Pad: " + b"p" * 90000 + b"\r\n\r\n" +
                    GET, [("DELETE", "/hello", 400)]),
}


def send_and_drain(server, data):
    """Sends the bytes in one write and reads until nginx closes (or 2 s of silence)."""
    with TlsClient(server, timeout=5) as c:
        c.send(data)
        c.sock.settimeout(2.0)
        try:
            while c.sock.recv(65536):
                pass
        except (socket.timeout, OSError):
            pass
        return c.local_port


def test_nginx_answers_decide_every_line(start_server, start_auditor):
    server = start_server("nginx")
    auditor = start_auditor(pids=server.ssl_pids())
    ports = {name: send_and_drain(server, data) for name, (data, _) in SHAPES.items()}
    want_total = sum(len(w) for _, w in SHAPES.values())
    wait_until(lambda: sum(1 for r in auditor.raw_lines() if b'"auditID"' in r) >= want_total,
               timeout=10)
    time.sleep(1.0)  # lines that should not come would come now
    auditor.stop()
    by_port = {}
    for raw in auditor.raw_lines():
        line = parse_line(raw)
        if not line.is_audit:
            continue
        a = line.audit
        port = int(a["sourceIPs"][0].rsplit(":", 1)[1])
        status = a.get("responseStatus", {}).get("code")
        by_port.setdefault(port, []).append((a["verb"], a["requestURI"], status, a))
    access = (server.workdir / "access.log").read_text() if hasattr(server, "workdir") else ""
    problems = []
    for name, (_, want) in SHAPES.items():
        got = by_port.get(ports[name], [])
        if [g[:3] for g in got] != want:
            nginx = [l for l in access.splitlines() if f":{ports[name]} " in l]
            problems.append(f"{name}: audit {[g[:3] for g in got]} want {want}; nginx {nginx}")
        for verb, uri, status, a in got:
            note = a.get("annotations", {}).get("mke-audit-tap/response")
            if status is None and not note:
                problems.append(f"{name}: {verb} {uri} without status and without a note")
    assert not problems, "\n".join(problems)
