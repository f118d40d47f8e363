"""End-to-end acceptance: mke-audit-tap against real OpenSSL (libssl.so.3) HTTPS servers.

Each scenario starts a server, starts the auditor on the server's pid (nginx: the master, so
its workers are covered as descendants), waits for "ready", sends real requests with curl and
with Python's ssl module, stops the auditor with a signal and checks its stdout line by line
against what was sent: exactly one line per audited request, none for ignored paths, and every
field the contract fixes.
"""

import signal
import socket
import time

import pytest

from conftest import (BIG_SIZE, CLIENT_COMM, LINES_TIMEOUT, AuditRun, NginxServer, PythonServer,
                      Sent, TlsClient, client_process, curl, finish, http_request, make_auditor,
                      pipelined_gets)

# "Expect:" keeps curl from sending "Expect: 100-continue" (tested on its own below).
JSON_HEADERS = ["Content-Type: application/json", "Expect:"]


def _expect_codes(sent, want):
    """What the test servers answered must be what they are configured to answer: a check of
    the test set-up, not of the auditor."""
    bad = [f"{s.method} {s.uri} -> {s.code}, want {want[(s.method, s.uri)]}" for s in sent
           if (s.method, s.uri) in want and s.code != want[(s.method, s.uri)]]
    assert not bad, "test server answered unexpectedly (test set-up problem):\n" + "\n".join(bad)


def chunked_upload_in_pieces(server, tag="pieces") -> list:
    """One connection: a GET whose head arrives in three TLS writes, then a chunked POST whose
    chunk framing is split across writes (each write is its own TLS record and SSL_read)."""
    sent = []
    with TlsClient(server) as c:
        t0 = time.time()
        req = http_request("GET", f"/hello?split={tag}")
        for piece in (req[:7], req[7:30], req[30:]):
            c.send(piece)
            time.sleep(0.05)
        r1 = c.read_response()
        t1 = time.time()
        sent.append(Sent("GET", f"/hello?split={tag}", c.local_port, t0, t1, r1.code,
                         how="split-writes"))

        t0 = time.time()
        head = ("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        chunks = [b"a" * 100, b"b" * 5000, b"c" * 17000]
        body = b"".join(b"%x\r\n%s\r\n" % (len(ch), ch) for ch in chunks) + b"0\r\n\r\n"
        c.send(head)
        time.sleep(0.05)
        for cut in range(0, len(body), 4099):  # cuts land inside chunk data and chunk headers
            c.send(body[cut:cut + 4099])
            time.sleep(0.02)
        r2 = c.read_response("POST")
        t1 = time.time()
        sent.append(Sent("POST", "/upload", c.local_port, t0, t1, r2.code, how="chunked-pieces"))
    return sent


def send_scenario(server, payload_dir) -> list:
    sent = []
    sent += curl(server, ["/hello"])
    sent += curl(server, ["/search?a=1&b=2"])
    sent += curl(server, ["/items"], method="POST", data=b'{"name":"widget","size":3}',
                 headers=JSON_HEADERS)
    sent += curl(server, ["/items/1"], method="PUT", data=b'{"name":"widget","size":4}',
                 headers=JSON_HEADERS)
    sent += curl(server, ["/items/1"], method="DELETE")
    sent += curl(server, ["/missing"])
    keepalive = curl(server, ["/hello?n=1", "/hello?n=2"])
    assert keepalive[0].client_port == keepalive[1].client_port, "curl did not reuse the connection"
    for s in keepalive:
        s.how = "keep-alive"
    sent += keepalive
    sent += pipelined_gets(server, ["/pipe/1", "/pipe/2", "/pipe/3"])
    upload = payload_dir / "chunked.bin"
    upload.write_bytes(b'{"blob":"' + b"x" * 40000 + b'"}')
    chunked = curl(server, ["/upload"], method="POST", data_file=upload,
                   headers=["Transfer-Encoding: chunked", "Expect:",
                            "Content-Type: application/octet-stream"])
    for s in chunked:
        s.how = "curl-chunked"
    sent += chunked
    sent += chunked_upload_in_pieces(server)
    for path in ("/_ping", "/v1.41/_ping", "/v1.41/version"):
        sent += curl(server, [path], ignored=True)
    _expect_codes(sent, {
        ("GET", "/hello"): 200, ("GET", "/search?a=1&b=2"): 200, ("POST", "/items"): 201,
        ("PUT", "/items/1"): 200, ("DELETE", "/items/1"): 204, ("GET", "/missing"): 404,
        ("GET", "/hello?n=1"): 200, ("GET", "/hello?n=2"): 200, ("GET", "/pipe/1"): 200,
        ("GET", "/pipe/2"): 200, ("GET", "/pipe/3"): 200, ("POST", "/upload"): 200,
        ("GET", "/hello?split=pieces"): 200, ("GET", "/_ping"): 200,
        ("GET", "/v1.41/_ping"): 200, ("GET", "/v1.41/version"): 200})
    return sent


@pytest.fixture(scope="module", params=["nginx", "python"])
def scenario(request, auditor_binary, tls_material, tmp_path_factory) -> AuditRun:
    """The acceptance scenario, run once per server shape (the server's pid is the only
    target); the tests below each check one aspect of its result."""
    cls = {"nginx": NginxServer, "python": PythonServer}[request.param]
    server = cls(tmp_path_factory.mktemp(request.param), tls_material)
    auditor = None
    try:
        server.start()
        server.assert_uses_system_libssl()
        auditor = make_auditor(auditor_binary, pids=[server.pid]).start()
        auditor.wait_ready()
        try:
            sent = send_scenario(server, tmp_path_factory.mktemp("payloads"))
        except (AssertionError, OSError, ValueError) as e:
            pytest.fail(f"sending the scenario failed: {e!r}\n{server.logs()}\n"
                        f"{auditor.diagnostics()}", pytrace=False)
        return finish(auditor, sent, [server], sig=signal.SIGINT)
    finally:
        if auditor is not None:
            auditor.kill()
        server.stop()


# ---- whole-run properties ----
def test_exit_code_zero_after_sigint(scenario):
    scenario.check_clean_exit()


def test_stdout_carries_only_audit_lines(scenario):
    scenario.check_only_json_lines()


def test_line_format_sorted_keys_go_escaping(scenario):
    scenario.check_format()


def test_exactly_one_line_per_request_and_none_for_ignored(scenario):
    scenario.check_one_line_per_request()


def test_fields_match_each_request(scenario):
    scenario.check_fields()


def test_audit_ids_unique(scenario):
    scenario.check_unique_ids()


# ---- one feature each (the same checks, restricted to the feature's connections) ----
def _check_subset(run: AuditRun, pred, what):
    sub = run.only(pred)
    assert sub.sent, f"scenario has no requests for {what}"
    sub.check("problems_one_line_per_request", "problems_fields")


def test_simple_get(scenario):
    _check_subset(scenario, lambda s: s.uri in ("/hello", "/missing") and s.how == "curl",
                  "simple GETs (200 and 404)")


def test_query_string_with_ampersand(scenario):
    _check_subset(scenario, lambda s: s.uri.startswith("/search"), "query string")
    lines = [l for l in scenario.audit_lines if l.audit.get("requestURI") == "/search?a=1&b=2"]
    assert len(lines) == 1, f"want one decoded requestURI '/search?a=1&b=2', got {len(lines)}"
    assert '"requestURI":"/search?a=1\\u0026b=2"' in lines[0].raw, (
        f"the & must be written \\u0026 in the raw line: {lines[0].raw}")


def test_post_put_delete_with_bodies(scenario):
    _check_subset(scenario, lambda s: s.uri.startswith("/items"), "POST/PUT/DELETE /items")


def test_keepalive_sequential_requests_one_connection(scenario):
    _check_subset(scenario, lambda s: s.how == "keep-alive", "keep-alive")


def test_pipelined_requests_one_connection(scenario):
    _check_subset(scenario, lambda s: s.how == "pipelined", "pipelining")


def test_chunked_upload_curl(scenario):
    _check_subset(scenario, lambda s: s.how == "curl-chunked", "chunked upload")


def test_split_writes_and_chunk_framing_across_records(scenario):
    _check_subset(scenario, lambda s: s.how in ("split-writes", "chunked-pieces"),
                  "requests split across TLS records")


def test_ignored_paths_not_audited(scenario):
    ignored = [s for s in scenario.sent if s.ignored]
    assert {s.uri for s in ignored} == {"/_ping", "/v1.41/_ping", "/v1.41/version"}
    leaked = [l.raw for l in scenario.lines
              if l.is_audit and l.source in {s.source_ip for s in ignored}]
    assert not leaked, "ignored requests were audited:\n" + "\n".join(leaked)


# ---- further scenarios, each with its own auditor run ----
@pytest.mark.parametrize("kind", ["nginx", "python"])
def test_large_bodies_keep_stream_in_sync(kind, start_server, start_auditor):
    """1 MiB up and 1 MiB down on one connection (hundreds of TLS records each way), then a
    small request on the same connection: the parser must stay in step."""
    server = start_server(kind)
    auditor = start_auditor(pids=[server.pid])
    sent = []
    with TlsClient(server) as c:
        t0 = time.time()
        c.send(http_request("PUT", "/upload", b"U" * BIG_SIZE,
                            ["Content-Type: application/octet-stream"]))
        r = c.read_response("PUT")
        sent.append(Sent("PUT", "/upload", c.local_port, t0, time.time(), r.code, how="big-up"))
        t0 = time.time()
        c.send(http_request("GET", "/big"))
        r = c.read_response()
        assert len(r.body) == BIG_SIZE, f"GET /big returned {len(r.body)} bytes"
        sent.append(Sent("GET", "/big", c.local_port, t0, time.time(), r.code, how="big-down"))
        t0 = time.time()
        c.send(http_request("GET", "/hello?after=big"))
        r = c.read_response()
        sent.append(Sent("GET", "/hello?after=big", c.local_port, t0, time.time(), r.code,
                         how="after-big"))
    assert [s.code for s in sent] == [200, 200, 200], [s.code for s in sent]
    finish(auditor, sent, [server]).check_all()


@pytest.mark.parametrize("kind", ["nginx", "python"])
def test_expect_100_continue_audits_final_status(kind, start_server, start_auditor):
    """An interim "100 Continue" is not the response: the line carries the final status."""
    server = start_server(kind)
    auditor = start_auditor(pids=[server.pid])
    body = b'{"name":"continued"}' * 100
    sent = []
    with TlsClient(server) as c:
        t0 = time.time()
        head = (f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: application/json\r\nExpect: 100-continue\r\n\r\n").encode()
        c.send(head)
        interim = c.file.readline(4096)
        assert interim.startswith(b"HTTP/1.1 100"), f"expected 100 Continue, got {interim!r}"
        while c.file.readline(4096) not in (b"\r\n", b"\n", b""):
            pass
        c.send(body)
        r = c.read_response("POST")
        sent.append(Sent("POST", "/upload", c.local_port, t0, time.time(), r.code, how="expect"))
        t0 = time.time()
        c.send(http_request("GET", "/hello?after=continue"))
        r = c.read_response()
        sent.append(Sent("GET", "/hello?after=continue", c.local_port, t0, time.time(), r.code,
                         how="after-continue"))
    assert [s.code for s in sent] == [200, 200], [s.code for s in sent]
    finish(auditor, sent, [server]).check_all()


def _send_hang(server):
    """GET /hang on a fresh connection; asserts the server does not answer within 1 s."""
    c = TlsClient(server)
    t0 = time.time()
    c.send(http_request("GET", "/hang"))
    c.sock.settimeout(1.0)
    try:
        data = c.sock.recv(1)
    except socket.timeout:
        data = None
    assert data is None, f"the server answered /hang ({data!r}); the test needs no answer"
    return c, t0


def test_request_without_response_audited_when_connection_closes(start_server, start_auditor):
    server = start_server("python")
    server.assert_uses_system_libssl()
    auditor = start_auditor(pids=[server.pid])
    sent = curl(server, ["/hello"])
    c, t0 = _send_hang(server)
    c.close()
    sent.append(Sent("GET", "/hang", c.local_port, t0, time.time(), None, how="no-response"))
    seen_before_stop = auditor.wait_for_lines(
        lambda raws: any(b'"requestURI":"/hang"' in r for r in raws), timeout=LINES_TIMEOUT)
    run = finish(auditor, sent, [server])
    run.check_all()
    assert seen_before_stop, (
        "the line for /hang appeared only at shutdown, not when its connection closed\n"
        + auditor.diagnostics())


def test_pending_request_flushed_on_sigterm(start_server, start_auditor):
    """The connection stays open with a request and no response; SIGTERM must flush its line
    (stage RequestReceived) and exit 0."""
    server = start_server("python")
    auditor = start_auditor(pids=[server.pid])
    sent = curl(server, ["/hello"])
    c, t0 = _send_hang(server)
    try:
        sent.append(Sent("GET", "/hang", c.local_port, t0, time.time(), None, how="pending"))
        auditor.wait_quiet(at_least=1)
        run = finish(auditor, sent, [server], sig=signal.SIGTERM)
    finally:
        c.close()
    run.check_all()


def test_only_server_side_of_targeted_processes(start_server, start_auditor, tls_material):
    """nginx is targeted by pid; the clients are targeted too (every curl, and a long-lived
    client process by its comm). Only nginx's server side may be audited: nothing from the
    clients' side of the same connections, nothing from the untargeted Python server."""
    nginx = start_server("nginx")
    other = start_server("python")
    auditor = start_auditor(pids=[nginx.pid], comms=["curl", CLIENT_COMM])
    sent = []
    sent += curl(nginx, ["/hello"])
    sent += curl(nginx, ["/items"], method="POST", data=b'{"a":1}', headers=JSON_HEADERS)
    untargeted = curl(other, ["/hello"])
    untargeted += curl(other, ["/items"], method="POST", data=b'{"a":1}', headers=JSON_HEADERS)
    from_client = client_process(tls_material, [(nginx, "GET", "/hello?from=client"),
                                                (nginx, "POST", "/items"),
                                                (other, "GET", "/hello?from=client")])
    untargeted.append(from_client.pop())
    for s in untargeted:
        s.ignored, s.how = True, "untargeted server"
    sent += untargeted + from_client
    run = finish(auditor, sent, [nginx, other])
    client_side = [l.raw for l in run.audit_lines
                   if l.source in (f"127.0.0.1:{nginx.port}", f"127.0.0.1:{other.port}")]
    assert not client_side, "client side audited (peer is the server port):\n" + "\n".join(
        client_side)
    run.check_all()


def test_comm_selects_targets_by_name(start_server, start_auditor):
    """--comm nginx covers our nginx's workers. Other nginx processes on the machine are
    targeted too, so only the lines from this test's client connections are counted."""
    server = start_server("nginx")
    auditor = start_auditor(comms=["nginx"])
    sent = curl(server, ["/hello?by=comm"])
    sent += curl(server, ["/items/7"], method="PUT", data=b'{"a":2}', headers=JSON_HEADERS)
    run = finish(auditor, sent, [server])
    run.check("problems_clean_exit", "problems_only_json_lines", "problems_format")
    run.only(lambda s: True).check("problems_one_line_per_request", "problems_fields",
                                   "problems_unique_ids")


def test_openssl_s_server_www(start_server, start_auditor):
    """A third shape: openssl s_server -WWW (BIO-based I/O, HTTP/1.0 answers ended by close)."""
    server = start_server("s_server")
    server.assert_uses_system_libssl()
    auditor = start_auditor(pids=[server.pid])
    sent = []
    for path in ("/hello.txt", "/second.txt", "/nope.txt"):
        sent += curl(server, [path])
    sent += curl(server, ["/_ping"], ignored=True)
    assert all(s.code == 200 for s in sent), [(s.uri, s.code) for s in sent]
    finish(auditor, sent, [server]).check_all()
