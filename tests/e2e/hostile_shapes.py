"""Hostile byte sequences for the differential test (test_hostile.py, issue 17).

Each shape is a function shape(ctx) that opens one or more TLS connections to the server under
test (ctx.h1() / ctx.h2()), sends its bytes, reads what the server answers until the server
closes or goes quiet, and closes. Every URI carries the shape's marker (ctx.uri(i) ->
/hx/SHAPE/i, ctx.missing(i) -> /missing/SHAPE/i, which both servers answer with 404), so a
server log entry or an audit line can always be traced back to its shape; the comparison itself
goes by the client port of each connection (ctx.ports).

HTTP/1.1 bytes are written by hand; HTTP/2 frames are built here, header blocks with python3-hpack
(Debian), so that invalid frames, invalid header blocks and invalid sequences can be sent.
Standard library plus hpack; no pytest here (tools/hostile_fixtures.py imports it too).
"""

import random
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import hpack

IDLE = 0.6  # the server said nothing for this long: done reading
MAX_READ = 6.0  # at most this long reading one connection
CONNECT_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# connections
# --------------------------------------------------------------------------------------------
def _context(ca: str, alpn: str, tls12: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols([alpn])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


# Client ports are chosen here, below the kernel's ephemeral range and never twice in a run, so a
# client port names one connection of one shape (the kernel would reuse the port of a
# connection the server closed, and mix two shapes' lines and log entries).
_port_lock = threading.Lock()
_next_port = [random.randrange(10000, 25000)]


def _connect(port: int) -> socket.socket:
    for _ in range(200):
        with _port_lock:
            local = _next_port[0]
            _next_port[0] = local + 1 if local < 32000 else 10000
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(CONNECT_TIMEOUT)
        try:
            s.bind(("127.0.0.1", local))
        except OSError:
            s.close()
            continue
        s.connect(("127.0.0.1", port))
        return s
    raise RuntimeError("no free client port to bind")


class Conn:
    """One TLS connection; records what came back."""

    def __init__(self, port: int, ca: str, alpn: str, tls12: bool):
        raw = _connect(port)
        self.sock = _context(ca, alpn, tls12).wrap_socket(raw, server_hostname="127.0.0.1")
        self.port = self.sock.getsockname()[1]
        self.alpn = self.sock.selected_alpn_protocol()
        self.tls_version = self.sock.version()
        self.received = bytearray()
        self.closed_by_server = False
        self.closed_by_client = False

    def send(self, data: bytes):
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed_by_server = True

    def send_split(self, data: bytes, size: int, pause: float = 0.0):
        for i in range(0, len(data), size):
            self.send(data[i:i + size])
            if pause:
                time.sleep(pause)

    def read_some(self, idle: float = IDLE) -> bytes:
        """One read: what arrives within `idle` seconds (b"" on close or timeout)."""
        if self.closed_by_server:
            return b""
        try:
            self.sock.settimeout(idle)
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return b""
        except OSError:
            self.closed_by_server = True
            return b""
        if not data:
            self.closed_by_server = True
        self.received += data
        return data

    def drain(self, idle: float = IDLE, limit: float = MAX_READ):
        """Reads until the server closes or says nothing for `idle` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not self.closed_by_server:
            if not self.read_some(idle) and not self.closed_by_server:
                break

    def wait_for(self, needle: bytes, timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.received and time.monotonic() < deadline:
            if not self.read_some(0.2) and self.closed_by_server:
                break
        return needle in self.received

    def half_close(self):
        """Ends the client's half (a TCP FIN under TLS, as a client that gives up sends) and
        keeps reading: an answer the server writes to the end of the stream is seen (Go's
        net/http answers 400 to a head the client ended)."""
        try:
            # The plain socket's shutdown: SSLSocket.shutdown would drop the TLS session.
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            self.closed_by_server = True

    def close(self):
        self.closed_by_client = True
        try:
            self.sock.close()
        except OSError:
            pass


class H2Conn(Conn):
    """An HTTP/2 connection: preface and SETTINGS sent on open; frames built by hand."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, port, ca, tls12, preface=True):
        super().__init__(port, ca, "h2", tls12)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self._parsed = 0
        self.statuses: Dict[int, str] = {}  # stream -> :status the client saw
        self.resets: Dict[int, int] = {}  # stream -> error code
        self.goaway: Optional[tuple] = None  # (last stream id, error code)
        self.paths: Dict[int, str] = {}  # stream -> the first :path the client sent on it
        if preface:
            self.send(self.PREFACE + frame(4, 0, 0, b""))

    def block(self, headers, huffman=False) -> bytes:
        # Never indexed: every block stands alone, whatever the server did with the ones before.
        return self.enc.encode([(k, v, True) for k, v in headers], huffman=huffman)

    def request_headers(self, method="GET", path="/", extra=(), authority="127.0.0.1"):
        return [(":method", method), (":scheme", "https"), (":authority", authority),
                (":path", path)] + list(extra)

    def headers(self, stream, headers, end_stream=True, end_headers=True, raw_block=None,
                flags=0) -> bytes:
        f = flags | (1 if end_stream else 0) | (4 if end_headers else 0)
        for k, v in headers or ():
            if k == ":path":
                self.paths.setdefault(stream, v)
                break
        return frame(1, f, stream, raw_block if raw_block is not None else self.block(headers))

    def get(self, stream, path, extra=()) -> bytes:
        return self.headers(stream, self.request_headers("GET", path, extra))

    def drain(self, idle: float = IDLE, limit: float = MAX_READ):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not self.closed_by_server:
            got = self.read_some(idle)
            self._parse()
            if not got and not self.closed_by_server:
                break
        self._parse()

    def _parse(self):
        buf = self.received
        while len(buf) - self._parsed >= 9:
            i = self._parsed
            length = int.from_bytes(buf[i:i + 3], "big")
            if len(buf) - i < 9 + length:
                break
            ftype, flags = buf[i + 3], buf[i + 4]
            stream = int.from_bytes(buf[i + 5:i + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[i + 9:i + 9 + length])
            self._parsed = i + 9 + length
            if ftype == 4 and not flags & 1:
                self.send(frame(4, 1, 0, b""))  # SETTINGS ACK
            elif ftype == 6 and not flags & 1:
                self.send(frame(6, 1, 0, payload))  # PING ACK
            elif ftype == 7 and len(payload) >= 8:
                self.goaway = struct.unpack(">II", payload[:8])
            elif ftype == 3 and len(payload) == 4:
                self.resets[stream] = struct.unpack(">I", payload)[0]
            elif ftype == 1:
                if flags & 8:  # PADDED
                    payload = payload[1:len(payload) - payload[0]]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                try:
                    for k, v in self.dec.decode(payload, raw=True):
                        if k == b":status":
                            self.statuses[stream] = v.decode()
                except Exception:  # noqa: BLE001 - a client-side view only, for diagnostics
                    pass


def frame(ftype: int, flags: int, stream: int, payload: bytes, length: Optional[int] = None):
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def rst(stream, code=8):
    return frame(3, 0, stream, struct.pack(">I", code))


def data(stream, payload, end_stream=True):
    return frame(0, 1 if end_stream else 0, stream, payload)


def settings(*pairs, ack=False):
    return frame(4, 1 if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(stream, inc):
    return frame(8, 0, stream, struct.pack(">I", inc))


def priority(stream, dep, weight=16, exclusive=False):
    return frame(2, 0, stream, struct.pack(">IB", dep | (0x80000000 if exclusive else 0), weight))


def table_size_update(n: int) -> bytes:
    """An HPACK dynamic table size update (5-bit prefix integer, RFC 7541 5.1)."""
    if n < 31:
        return bytes([0x20 | n])
    out, n = bytearray([0x3F]), n - 31
    while n >= 128:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(out + bytes([n]))


def goaway(last, code=0):
    return frame(7, 0, 0, struct.pack(">II", last, code))


# --------------------------------------------------------------------------------------------
# the context a shape runs in
# --------------------------------------------------------------------------------------------
@dataclass
class ShapeResult:
    name: str
    ports: List[int] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # what the client saw, for diagnostics
    error: Optional[str] = None
    h1_received: Dict[int, bytes] = field(default_factory=dict)  # HTTP/1.1: port -> answers
    # port -> [(uri, status)] the client received (HTTP/1.1: final status lines in order, uri
    # None; HTTP/2: :status of each stream with the :path sent on it), and whether any byte
    # came back at all
    client_statuses: Dict[int, List[tuple]] = field(default_factory=dict)
    got_bytes: Dict[int, bool] = field(default_factory=dict)
    closed: Dict[int, bool] = field(default_factory=dict)  # port -> the server closed it
    protocol: Dict[int, str] = field(default_factory=dict)  # port -> "h1" | "h2"


class Ctx:
    def __init__(self, name: str, port: int, ca: str, tls12: bool):
        self.name = name
        self.port = port
        self.ca = ca
        self.tls12 = tls12
        self.result = ShapeResult(name)
        self.conns: List[Conn] = []

    def uri(self, i=0) -> str:
        return f"/hx/{self.name}/{i}"

    def missing(self, i=0) -> str:
        return f"/missing/{self.name}/{i}"

    def h1(self) -> Conn:
        c = Conn(self.port, self.ca, "http/1.1", self.tls12)
        self.conns.append(c)
        self.result.ports.append(c.port)
        return c

    def h2(self, preface=True) -> H2Conn:
        c = H2Conn(self.port, self.ca, self.tls12, preface)
        if c.alpn != "h2":
            raise RuntimeError(f"ALPN h2 not negotiated ({c.alpn!r})")
        self.conns.append(c)
        self.result.ports.append(c.port)
        return c

    def finish(self):
        for c in self.conns:
            if not c.closed_by_server and not c.closed_by_client:
                c.read_some(0.05)  # a close that is already there
            self.result.closed[c.port] = c.closed_by_server
            self.result.protocol[c.port] = "h2" if isinstance(c, H2Conn) else "h1"
            if isinstance(c, H2Conn):
                c._parse()
                self.result.client_statuses[c.port] = [(c.paths.get(k), int(v))
                                                       for k, v in c.statuses.items()
                                                       if v.isdigit()]
                self.result.got_bytes[c.port] = bool(c.received)
                self.result.notes.append(
                    f":{c.port} {c.tls_version} h2 statuses={c.statuses} resets="
                    f"{dict(list(c.resets.items())[:8])} goaway={c.goaway}"
                    f"{' closed' if c.closed_by_server else ''}")
            else:
                self.result.h1_received[c.port] = bytes(c.received)
                codes = re.findall(rb"HTTP/1\.[01] (\d{3})", bytes(c.received))
                self.result.client_statuses[c.port] = [(None, int(x)) for x in codes
                                                       if not x.startswith(b"1")]
                self.result.got_bytes[c.port] = bool(c.received)
                self.result.notes.append(
                    f":{c.port} {c.tls_version} h1 responses={[x.decode() for x in codes]}"
                    f"{' closed' if c.closed_by_server else ''}")
            c.close()


def run_shape(name: str, fn: Callable[[Ctx], None], port: int, ca: str, tls12: bool):
    ctx = Ctx(name, port, ca, tls12)
    try:
        fn(ctx)
    except Exception as e:  # noqa: BLE001 - reported with the shape
        ctx.result.error = f"{type(e).__name__}: {e}"
    finally:
        ctx.finish()
    return ctx.result


# --------------------------------------------------------------------------------------------
# HTTP/1.1 shapes
# --------------------------------------------------------------------------------------------
def req(method, uri, headers=(), body=b"", cl=None, version="HTTP/1.1", host=True) -> bytes:
    """A request; cl=None: Content-Length when there is a body; cl=False: none; str: as given."""
    head = [f"{method} {uri} {version}".encode() if isinstance(method, str) else
            method + b" " + uri.encode() + b" " + version.encode()]
    if host:
        head.append(b"Host: 127.0.0.1")
    for h in headers:
        head.append(h if isinstance(h, bytes) else h.encode("latin-1"))
    if cl is None and body:
        head.append(f"Content-Length: {len(body)}".encode())
    elif isinstance(cl, str):
        head.append(f"Content-Length: {cl}".encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def h1_send(ctx, payload: bytes, **kw):
    c = ctx.h1()
    c.send(payload)
    c.drain(**kw)
    return c


def chunked(*parts: bytes, ext=b"", trailer=b"") -> bytes:
    out = b""
    for p in parts:
        out += b"%x" % len(p) + ext + b"\r\n" + p + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


H1: Dict[str, Callable[[Ctx], None]] = {}
H2: Dict[str, Callable[[Ctx], None]] = {}


def h1shape(name):
    def deco(fn):
        H1["h1_" + name] = fn
        return fn
    return deco


def h2shape(name):
    def deco(fn):
        H2["h2_" + name] = fn
        return fn
    return deco


def _simple(name, build):
    """Registers an HTTP/1.1 shape that sends build(ctx) in one write and reads the answer."""
    H1["h1_" + name] = lambda ctx: h1_send(ctx, build(ctx))


def _ended_early(name, build):
    """An HTTP/1.1 shape whose client sends build(ctx), waits, then ends its half of the
    connection and reads what the server answers to that end."""
    def run(ctx):
        c = h1_send(ctx, build(ctx))
        c.half_close()
        c.drain()
    H1["h1_" + name] = run


# -- baselines
_simple("get", lambda c: req("GET", c.uri()))
_simple("post_body", lambda c: req("POST", c.uri(), ["Content-Type: application/json"],
                                   b'{"a":1}'))
_simple("404_then_get", lambda c: req("GET", c.missing()) + req("GET", c.uri(1)))
_simple("head", lambda c: req("HEAD", c.uri()))
_simple("put_delete_patch", lambda c: req("PUT", c.uri(0), body=b"{}") + req("DELETE", c.uri(1))
        + req("PATCH", c.uri(2), body=b"{}"))
for depth in (2, 10, 100):
    _simple(f"pipeline_{depth}",
            lambda c, d=depth: b"".join(req("GET", c.uri(i)) for i in range(d)))
_simple("pipeline_posts_20", lambda c: b"".join(req("POST", c.uri(i), body=b"x" * 100 * i)
                                              for i in range(20)))

# -- request smuggling: framing disagreements, each followed by a pipelined GET
_simple("cl_te_then_get", lambda c: req("POST", c.uri(0), ["Content-Length: 5",
                                                          "Transfer-Encoding: chunked"],
                                        b"0\r\n\r\n", cl=False) + req("GET", c.uri(1)))
_simple("te_cl_then_get", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked",
                                                          "Content-Length: 5"],
                                        b"0\r\n\r\n", cl=False) + req("GET", c.uri(1)))
_simple("two_cl_then_get", lambda c: req("POST", c.uri(0), ["Content-Length: 3",
                                                           "Content-Length: 5"],
                                         b"abcde", cl=False) + req("GET", c.uri(1)))
_simple("two_same_cl_then_get", lambda c: req("POST", c.uri(0), ["Content-Length: 5",
                                                                "Content-Length: 5"],
                                              b"abcde", cl=False) + req("GET", c.uri(1)))
_simple("cl_minus_one_then_get", lambda c: req("POST", c.uri(0), body=b"", cl="-1")
        + req("GET", c.uri(1)))
_simple("cl_plus_sign_then_get", lambda c: req("POST", c.uri(0), body=b"abcde", cl="+5")
        + req("GET", c.uri(1)))
_simple("cl_list_then_get", lambda c: req("POST", c.uri(0), body=b"abcde", cl="5, 5")
        + req("GET", c.uri(1)))
_simple("cl_leading_zeros", lambda c: req("POST", c.uri(0), body=b"abcde", cl="0005")
        + req("GET", c.uri(1)))
_simple("cl_hex", lambda c: req("POST", c.uri(0), body=b"abcde", cl="0x5") + req("GET", c.uri(1)))
_simple("cl_huge", lambda c: req("POST", c.uri(0), body=b"abcde", cl="99999999999999999999999")
        + req("GET", c.uri(1)))
_simple("cl_space_before_colon", lambda c: req("POST", c.uri(0), ["Content-Length : 5"],
                                               b"abcde", cl=False) + req("GET", c.uri(1)))
_simple("cl_body_is_request", lambda c: req("POST", c.uri(0), body=req("GET", c.uri(9)))
        + req("GET", c.uri(1)))
_simple("te_xchunked", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: xchunked"],
                                     chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_chunked_identity", lambda c: req("POST", c.uri(0),
                                             ["Transfer-Encoding: chunked, identity"],
                                             chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_identity_chunked", lambda c: req("POST", c.uri(0),
                                             ["Transfer-Encoding: identity, chunked"],
                                             chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_two_headers", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked",
                                                          "Transfer-Encoding: identity"],
                                        chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_space_before_colon", lambda c: req("POST", c.uri(0), ["Transfer-Encoding : chunked"],
                                               chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_tab_value", lambda c: req("POST", c.uri(0), ["Transfer-Encoding:\tchunked"],
                                      chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_uppercase", lambda c: req("POST", c.uri(0), ["TRANSFER-ENCODING: CHUNKED"],
                                      chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_obs_fold", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: identity",
                                                       " chunked"],
                                     chunked(b"abc"), cl=False) + req("GET", c.uri(1)))
_simple("te_in_http10", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked",
                                                        "Connection: keep-alive"],
                                      chunked(b"abc"), cl=False, version="HTTP/1.0")
        + req("GET", c.uri(1)))

# -- chunked bodies
_simple("chunk_bare_lf_fake_request",
        lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"], cl=False,
                      body=b"%x\n" % len(req("GET", c.uri(9))) + req("GET", c.uri(9))
                      + b"\r\n0\r\n\r\n") + req("GET", c.uri(1)))
_simple("chunk_ext", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"], cl=False,
                                   body=chunked(b"abc", ext=b";name=value")) + req("GET", c.uri(1)))
_simple("chunk_ext_long", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                        cl=False, body=chunked(b"abc", ext=b";" + b"e" * 8000))
        + req("GET", c.uri(1)))
_simple("chunk_ext_quoted_crlf", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                               cl=False,
                                               body=b'3;x="a\r\n' + req("GET", c.uri(9))
                                               + b'"\r\nabc\r\n0\r\n\r\n') + req("GET", c.uri(1)))
_simple("chunk_trailers", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                        cl=False, body=chunked(b"abc", trailer=b"X-T: 1\r\n"))
        + req("GET", c.uri(1)))
_simple("chunk_trailer_cl", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                          cl=False,
                                          body=chunked(b"abc", trailer=b"Content-Length: 99\r\n"))
        + req("GET", c.uri(1)))
_simple("chunk_size_overflow", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                             cl=False, body=b"ffffffffffffffffff1\r\nabc\r\n0\r\n\r\n")
        + req("GET", c.uri(1)))
_simple("chunk_size_negative", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                             cl=False, body=b"-3\r\nabc\r\n0\r\n\r\n")
        + req("GET", c.uri(1)))
_simple("chunk_size_0x", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                       cl=False, body=b"0x3\r\nabc\r\n0\r\n\r\n")
        + req("GET", c.uri(1)))
_simple("chunk_size_space", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                          cl=False, body=b"3 \r\nabc\r\n0\r\n\r\n")
        + req("GET", c.uri(1)))
_simple("chunk_missing_crlf", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                            cl=False, body=b"3\r\nabcXX0\r\n\r\n")
        + req("GET", c.uri(1)))
_simple("chunk_many_small", lambda c: req("POST", c.uri(0), ["Transfer-Encoding: chunked"],
                                          cl=False, body=chunked(*([b"a"] * 2000)))
        + req("GET", c.uri(1)))

# -- connection handling
_simple("connection_close_then_delete",
        lambda c: req("GET", c.uri(0), ["Connection: close"]) + req("DELETE", c.uri(1)))
_simple("http10_then_get", lambda c: req("GET", c.uri(0), version="HTTP/1.0")
        + req("GET", c.uri(1)))
_simple("http10_keepalive", lambda c: req("GET", c.uri(0), ["Connection: keep-alive"],
                                          version="HTTP/1.0")
        + req("GET", c.uri(1), ["Connection: keep-alive"], version="HTTP/1.0"))
_simple("http10_no_host", lambda c: req("GET", c.uri(0), version="HTTP/1.0", host=False))
_simple("http09", lambda c: f"GET {c.uri(0)}\r\n".encode())
_simple("get_then_garbage", lambda c: req("GET", c.uri(0)) + b"\x16\x03\x01garbage\r\n\r\n")
_simple("get_then_garbage_line", lambda c: req("GET", c.uri(0)) + b"NOT A REQUEST\r\n\r\n"
        + req("GET", c.uri(1)))
_simple("leading_crlf", lambda c: b"\r\n\r\n" + req("GET", c.uri(0)))

_ended_early("incomplete_headers", lambda c: req("GET", c.uri(0))[:-2])
_ended_early("incomplete_request_line", lambda c: f"GET {c.uri(0)} HTT".encode())
_simple("short_body", lambda c: req("POST", c.uri(0), body=b"abc", cl="100"))
_simple("get_with_body_no_cl", lambda c: req("GET", c.uri(0)) + b'{"x":1}\r\n\r\n'
        + req("GET", c.uri(1)))
_simple("missing_host", lambda c: req("GET", c.uri(0), host=False) + req("GET", c.uri(1)))
_simple("two_hosts", lambda c: req("GET", c.uri(0), ["Host: evil.example"])
        + req("GET", c.uri(1)))
_simple("upgrade_h2c", lambda c: req("GET", c.uri(0), ["Connection: Upgrade, HTTP2-Settings",
                                                      "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"])
        + req("GET", c.uri(1)))
_simple("upgrade_websocket", lambda c: req("GET", c.uri(0), [
    "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]) + req("GET", c.uri(1)))

# -- request line oddities
_simple("lowercase_method", lambda c: req("get", c.uri(0)) + req("GET", c.uri(1)))
_simple("unknown_method", lambda c: req("FROB", c.uri(0)) + req("GET", c.uri(1)))
_simple("propfind", lambda c: req("PROPFIND", c.uri(0)) + req("GET", c.uri(1)))
_simple("long_method", lambda c: req("X" * 200, c.uri(0)) + req("GET", c.uri(1)))
_simple("method_with_nul", lambda c: req(b"GE\x00T", c.uri(0)) + req("GET", c.uri(1)))
_simple("version_11_lower", lambda c: req("GET", c.uri(0), version="http/1.1")
        + req("GET", c.uri(1)))
_simple("version_12", lambda c: req("GET", c.uri(0), version="HTTP/1.2") + req("GET", c.uri(1)))
_simple("version_20", lambda c: req("GET", c.uri(0), version="HTTP/2.0") + req("GET", c.uri(1)))
_simple("version_99", lambda c: req("GET", c.uri(0), version="HTTP/9.9") + req("GET", c.uri(1)))
_simple("version_garbage", lambda c: req("GET", c.uri(0), version="HTTX/1.1")
        + req("GET", c.uri(1)))
_simple("double_space_request_line", lambda c: f"GET  {c.uri(0)}  HTTP/1.1\r\nHost: h\r\n\r\n"
        .encode() + req("GET", c.uri(1)))
_simple("tab_request_line", lambda c: f"GET\t{c.uri(0)}\tHTTP/1.1\r\nHost: h\r\n\r\n".encode()
        + req("GET", c.uri(1)))
_simple("absolute_form", lambda c: req("GET", f"https://127.0.0.1{c.uri(0)}")
        + req("GET", c.uri(1)))
_simple("absolute_form_other_host", lambda c: req("GET", f"http://evil.example{c.uri(0)}")
        + req("GET", c.uri(1)))
_simple("options_star", lambda c: req("OPTIONS", "*") + req("GET", c.uri(1)))
_simple("connect_authority", lambda c: req("CONNECT", "127.0.0.1:443") + req("GET", c.uri(1)))
_simple("uri_fragment", lambda c: req("GET", c.uri(0) + "#frag") + req("GET", c.uri(1)))
_simple("uri_percent_nul", lambda c: req("GET", c.uri(0) + "?q=%00") + req("GET", c.uri(1)))
_simple("uri_raw_utf8", lambda c: f"GET {c.uri(0)}/\u00e9 HTTP/1.1\r\nHost: h\r\n\r\n"
        .encode("utf-8") + req("GET", c.uri(1)))
_simple("uri_raw_nul", lambda c: f"GET {c.uri(0)}".encode() + b"\x00x HTTP/1.1\r\nHost: h\r\n\r\n"
        + req("GET", c.uri(1)))
_simple("uri_long_60k", lambda c: req("GET", c.uri(0) + "?" + "a" * 60000) + req("GET", c.uri(1)))

# -- headers
_simple("header_name_paren_delete", lambda c: req("DELETE", c.uri(0), ["Bad(Name: x"]))
_simple("header_name_space", lambda c: req("DELETE", c.uri(0), ["Bad Name: x"]))
_simple("header_value_ctl", lambda c: req("DELETE", c.uri(0), [b"X-Ctl: a\x01b"]))
_simple("header_value_del", lambda c: req("DELETE", c.uri(0), [b"X-Del: a\x7fb"]))
_simple("header_value_nul", lambda c: req("DELETE", c.uri(0), [b"X-Nul: a\x00b"])
        + req("GET", c.uri(1)))
_simple("header_name_nul", lambda c: req("DELETE", c.uri(0), [b"X-N\x00ul: ab"])
        + req("GET", c.uri(1)))
_simple("header_no_colon", lambda c: req("DELETE", c.uri(0), ["NoColonHere"])
        + req("GET", c.uri(1)))
_simple("header_empty_name", lambda c: req("DELETE", c.uri(0), [": empty"]) + req("GET", c.uri(1)))
_simple("header_obs_fold", lambda c: req("DELETE", c.uri(0), ["X-Fold: a", " b"])
        + req("GET", c.uri(1)))
_simple("header_value_8bit", lambda c: req("DELETE", c.uri(0), [b"X-8: \xff\xfe"])
        + req("GET", c.uri(1)))
_simple("404_then_bad_header_name", lambda c: req("GET", c.missing(0))
        + req("GET", c.uri(1), ["Bad(Name: x"]))
_simple("huge_header_90k", lambda c: req("DELETE", c.uri(0), ["X-Pad: " + "p" * 90000])
        + req("GET", c.uri(1)))
_simple("huge_header_200k", lambda c: req("DELETE", c.uri(0), ["X-Pad: " + "p" * 200000])
        + req("GET", c.uri(1)))
_simple("many_headers_2000", lambda c: req("DELETE", c.uri(0),
                                           [f"X-H{i}: v" for i in range(2000)])
        + req("GET", c.uri(1)))
_simple("bare_lf_everywhere", lambda c: f"GET {c.uri(0)} HTTP/1.1\nHost: h\n\n".encode()
        + req("GET", c.uri(1)))
_simple("bare_cr_header", lambda c: f"GET {c.uri(0)} HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n"
        .encode() + req("GET", c.uri(1)))


@h1shape("expect_100_continue")
def _expect_100(ctx):
    c = ctx.h1()
    c.send(req("POST", ctx.uri(0), ["Expect: 100-continue", "Content-Length: 5"], cl=False))
    c.wait_for(b"100 Continue", 1.5)
    c.send(b"abcde" + req("GET", ctx.uri(1)))
    c.drain()


@h1shape("expect_100_no_body")
def _expect_100_no_body(ctx):
    # The server may answer before the body: nginx's "return" does, Go waits for the handler.
    c = ctx.h1()
    c.send(req("POST", ctx.uri(0), ["Expect: 100-continue", "Content-Length: 5"], cl=False))
    c.drain()


_simple("expect_unknown", lambda c: req("GET", c.uri(0), ["Expect: something-else"])
        + req("GET", c.uri(1)))


@h1shape("split_1_byte_writes")
def _split_writes(ctx):
    c = ctx.h1()
    c.send_split(req("POST", ctx.uri(0), body=b'{"a":1}') + req("GET", ctx.uri(1)), 1)
    c.drain()


@h1shape("split_at_crlf")
def _split_crlf(ctx):
    c = ctx.h1()
    data_ = req("GET", ctx.uri(0), ["X-A: 1"])
    for part in data_.split(b"\r\n")[:-1]:
        c.send(part + b"\r")
        time.sleep(0.01)
        c.send(b"\n")
    c.drain()


@h1shape("bare_lf_trick_then_posts")
def _memory_attack_small(ctx):
    # Issue 17's memory attack, scaled down: the bare-LF chunk trick, then 64 pipelined POSTs
    # with 16 KiB bodies, on 4 connections.
    body = b"z" * 16384
    for k in range(4):
        c = ctx.h1()
        first = req("POST", ctx.uri(1000 * k), ["Transfer-Encoding: chunked"], cl=False,
                    body=b"5\nhello\r\n0\r\n\r\n")
        c.send(first + b"".join(req("POST", ctx.uri(1000 * k + 1 + i), body=body)
                                for i in range(64)))
        c.drain()


@h1shape("close_mid_request")
def _close_mid(ctx):
    c = ctx.h1()
    c.send(req("GET", ctx.uri(0)) + req("POST", ctx.uri(1), body=b"x" * 10, cl="1000"))
    c.drain(idle=0.3)


@h1shape("two_connections_interleaved")
def _two_conns(ctx):
    a, b = ctx.h1(), ctx.h1()
    a.send(req("GET", ctx.uri(0))[:10])
    b.send(req("GET", ctx.uri(1)))
    a.send(req("GET", ctx.uri(0))[10:])
    a.drain()
    b.drain()


# --------------------------------------------------------------------------------------------
# HTTP/2 shapes
# --------------------------------------------------------------------------------------------
def h2_send(ctx, build, **kw):
    c = ctx.h2()
    c.send(build(c, ctx))
    c.drain(**kw)
    return c


def _h2(name, build):
    H2["h2_" + name] = lambda ctx: h2_send(ctx, build)


_h2("get", lambda c, x: c.get(1, x.uri(0)))
_h2("post_body", lambda c, x: c.headers(1, c.request_headers(
    "POST", x.uri(0), [("content-type", "application/json"), ("content-length", "7")]),
    end_stream=False) + data(1, b'{"a":1}'))
_h2("404", lambda c, x: c.get(1, x.missing(0)))
_h2("multiplex_10", lambda c, x: b"".join(c.get(2 * i + 1, x.uri(i)) for i in range(10)))
_h2("rapid_reset_10", lambda c, x: b"".join(c.get(2 * i + 1, x.uri(i)) + rst(2 * i + 1)
                                            for i in range(10)))
_h2("rapid_reset_1000", lambda c, x: b"".join(c.get(2 * i + 1, x.uri(i)) + rst(2 * i + 1)
                                              for i in range(1000)))
_h2("request_then_invalid_frame", lambda c, x: c.get(1, x.uri(0)) + window_update(0, 0))
_h2("request_then_data_stream0", lambda c, x: c.get(1, x.uri(0)) + data(0, b"x"))
_h2("request_then_unknown_frame", lambda c, x: c.get(1, x.uri(0)) + frame(0xEE, 0, 0, b"ext")
    + c.get(3, x.uri(1)))
_h2("hpack_table_size_60000", lambda c, x: c.headers(
    1, None, raw_block=table_size_update(60000) + c.block(c.request_headers("GET", x.uri(0)))))
_h2("hpack_garbage_then_request", lambda c, x: c.headers(1, None, raw_block=b"\xff\xff\xff\xff\x0f")
    + c.get(3, x.uri(1)))
_h2("hpack_bad_index", lambda c, x: c.headers(1, None, raw_block=b"\xfe\x7f"
                                              + c.block(c.request_headers("GET", x.uri(0)))))
_h2("continuation_flood", lambda c, x: c.headers(
    1, c.request_headers("GET", x.uri(0)), end_headers=False)
    + b"".join(frame(9, 0, 1, c.block([(f"x-flood-{i}", "v" * 64)])) for i in range(500)))
_h2("continuation_then_end", lambda c, x: (lambda blk: frame(1, 1, 1, blk[:10])
                                           + frame(9, 0, 1, blk[10:20])
                                           + frame(9, 4, 1, blk[20:]))(
    c.block(c.request_headers("GET", x.uri(0), [("x-a", "b" * 40)]))))
_h2("continuation_without_headers", lambda c, x: frame(9, 4, 1, c.block(
    c.request_headers("GET", x.uri(0)))) + c.get(3, x.uri(1)))
_h2("continuation_interleaved", lambda c, x: c.headers(
    1, c.request_headers("GET", x.uri(0)), end_headers=False) + c.get(3, x.uri(1)))
_h2("settings_flood", lambda c, x: settings((4, 65535)) * 2000 + c.get(1, x.uri(0)))
_h2("ping_flood", lambda c, x: frame(6, 0, 0, b"12345678") * 2000 + c.get(1, x.uri(0)))
_h2("settings_enable_push_2", lambda c, x: settings((2, 2)) + c.get(1, x.uri(0)))
_h2("settings_bad_length", lambda c, x: frame(4, 0, 0, b"\x00\x04\x00") + c.get(1, x.uri(0)))
_h2("priority_self_dependency", lambda c, x: c.get(1, x.uri(0)) + priority(3, 3)
    + c.get(5, x.uri(1)))
_h2("headers_priority_self_dependency", lambda c, x: frame(
    1, 0x25, 1, struct.pack(">IB", 1, 16) + c.block(c.request_headers("GET", x.uri(0))))
    + c.get(3, x.uri(1)))
_h2("priority_flood", lambda c, x: b"".join(priority(2 * i + 101, 2 * i + 99)
                                            for i in range(1000)) + c.get(1, x.uri(0)))
_h2("invalid_pseudo_header", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [(":foo", "bar")])) + c.get(3, x.uri(1)))
_h2("missing_method", lambda c, x: c.headers(1, [(":scheme", "https"), (":path", x.uri(0)),
                                                 (":authority", "h")]) + c.get(3, x.uri(1)))
_h2("missing_path", lambda c, x: c.headers(1, [(":method", "GET"), (":scheme", "https"),
                                               (":authority", "h")]) + c.get(3, x.uri(1)))
_h2("missing_scheme", lambda c, x: c.headers(1, [(":method", "GET"), (":path", x.uri(0)),
                                                 (":authority", "h")]) + c.get(3, x.uri(1)))
_h2("pseudo_after_regular", lambda c, x: c.headers(1, [
    (":method", "GET"), ("x-a", "b"), (":scheme", "https"), (":path", x.uri(0))])
    + c.get(3, x.uri(1)))
_h2("duplicate_path", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [(":path", x.uri(9))])) + c.get(3, x.uri(1)))
_h2("empty_path", lambda c, x: c.headers(1, c.request_headers("GET", "")) + c.get(3, x.uri(1)))
_h2("options_star", lambda c, x: c.headers(1, c.request_headers("OPTIONS", "*"))
    + c.get(3, x.uri(1)))
_h2("connect", lambda c, x: c.headers(1, [(":method", "CONNECT"), (":authority", "127.0.0.1:443")],
                                      end_stream=False) + c.get(3, x.uri(1)))
_h2("uppercase_header_name", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [("X-Upper", "v")])) + c.get(3, x.uri(1)))
_h2("connection_header", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [("connection", "keep-alive")])) + c.get(3, x.uri(1)))
_h2("transfer_encoding_header", lambda c, x: c.headers(1, c.request_headers(
    "POST", x.uri(0), [("transfer-encoding", "chunked")]), end_stream=False)
    + data(1, b"3\r\nabc\r\n0\r\n\r\n") + c.get(3, x.uri(1)))
_h2("te_trailers", lambda c, x: c.headers(1, c.request_headers("GET", x.uri(0),
                                                                [("te", "trailers")])))
_h2("te_gzip", lambda c, x: c.headers(1, c.request_headers("GET", x.uri(0), [("te", "gzip")]))
    + c.get(3, x.uri(1)))
_h2("lowercase_method", lambda c, x: c.headers(1, c.request_headers("get", x.uri(0)))
    + c.get(3, x.uri(1)))
_h2("header_value_nul", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [("x-nul", "a\x00b")])) + c.get(3, x.uri(1)))
_h2("header_value_crlf", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [("x-crlf", "a\r\nx-injected: 1")])) + c.get(3, x.uri(1)))
_h2("path_with_space", lambda c, x: c.headers(1, c.request_headers("GET", x.uri(0) + " x"))
    + c.get(3, x.uri(1)))
_h2("path_with_crlf_request", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0) + " HTTP/1.1\r\nHost: h\r\n\r\nGET " + x.uri(9))) + c.get(3, x.uri(1)))
_h2("cl_mismatch_short", lambda c, x: c.headers(1, c.request_headers(
    "POST", x.uri(0), [("content-length", "10")]), end_stream=False) + data(1, b"abcde")
    + c.get(3, x.uri(1)))
_h2("cl_mismatch_long", lambda c, x: c.headers(1, c.request_headers(
    "POST", x.uri(0), [("content-length", "2")]), end_stream=False) + data(1, b"abcde")
    + c.get(3, x.uri(1)))
_h2("data_on_closed_stream", lambda c, x: c.get(1, x.uri(0)) + data(1, b"late")
    + c.get(3, x.uri(1)))
_h2("data_on_idle_stream", lambda c, x: data(7, b"idle") + c.get(9, x.uri(1)))
_h2("headers_after_end_stream", lambda c, x: c.get(1, x.uri(0))
    + c.get(1, x.uri(9)) + c.get(3, x.uri(1)))
_h2("trailers", lambda c, x: c.headers(1, c.request_headers("POST", x.uri(0)), end_stream=False)
    + data(1, b"abc", end_stream=False) + c.headers(1, [("x-trailer", "1")]))
_h2("trailers_with_pseudo", lambda c, x: c.headers(1, c.request_headers("POST", x.uri(0)),
                                                   end_stream=False)
    + data(1, b"abc", end_stream=False) + c.headers(1, [(":path", x.uri(9))])
    + c.get(3, x.uri(1)))
_h2("goaway_then_request", lambda c, x: c.get(1, x.uri(0)) + goaway(1) + c.get(3, x.uri(1)))
_h2("window_overflow_connection", lambda c, x: c.get(1, x.uri(0))
    + window_update(0, 0x7FFFFFFF) + window_update(0, 0x7FFFFFFF) + c.get(3, x.uri(1)))
_h2("window_overflow_stream", lambda c, x: c.headers(1, c.request_headers("GET", x.uri(0)),
                                                     end_stream=False)
    + window_update(1, 0x7FFFFFFF) + window_update(1, 0x7FFFFFFF) + data(1, b"")
    + c.get(3, x.uri(1)))
_h2("window_update_zero_stream", lambda c, x: c.get(1, x.uri(0)) + window_update(1, 0)
    + c.get(3, x.uri(1)))
_h2("even_stream_id", lambda c, x: c.get(2, x.uri(0)) + c.get(3, x.uri(1)))
_h2("stream_id_decrease", lambda c, x: c.get(5, x.uri(0)) + c.get(3, x.uri(1)))
_h2("frame_too_large", lambda c, x: c.get(1, x.uri(0)) + frame(0xEE, 0, 0, b"z" * 20000)
    + c.get(3, x.uri(1)))
_h2("headers_too_large_frame", lambda c, x: c.headers(1, c.request_headers(
    "GET", x.uri(0), [("x-big", "b" * 20000)])))
_h2("padded", lambda c, x: frame(1, 0x0C, 1, b"\x05" + c.block(c.request_headers(
    "POST", x.uri(0))) + b"\x00" * 5) + frame(0, 0x09, 1, b"\x03abc\x00\x00\x00"))
_h2("padding_too_long", lambda c, x: frame(1, 0x0D, 1, b"\xff" + c.block(c.request_headers(
    "GET", x.uri(0)))) + c.get(3, x.uri(1)))
_h2("zero_length_headers", lambda c, x: frame(1, 5, 1, b"") + c.get(3, x.uri(1)))
_h2("rst_idle_stream", lambda c, x: rst(5) + c.get(7, x.uri(0)))
_h2("rst_stream0", lambda c, x: c.get(1, x.uri(0)) + rst(0) + c.get(3, x.uri(1)))
_h2("request_then_garbage", lambda c, x: c.get(1, x.uri(0)) + b"\x00" * 3 + b"garbage!")
_h2("huge_header_90k", lambda c, x: (lambda blk: frame(1, 1, 1, blk[:16000]) + b"".join(
    frame(9, 4 if i + 16000 >= len(blk) else 0, 1, blk[i:i + 16000])
    for i in range(16000, len(blk), 16000)))(
    c.block(c.request_headers("GET", x.uri(0), [("x-pad", "p" * 90000)]))))
_h2("many_headers_1000", lambda c, x: (lambda blk: frame(1, 1, 1, blk[:16000]) + b"".join(
    frame(9, 4 if i + 16000 >= len(blk) else 0, 1, blk[i:i + 16000])
    for i in range(16000, len(blk), 16000)))(
    c.block(c.request_headers("GET", x.uri(0), [(f"x-h{i}", "v") for i in range(1000)]))))
_h2("streams_over_limit_300", lambda c, x: b"".join(c.headers(
    2 * i + 1, c.request_headers("POST", x.uri(i)), end_stream=False) for i in range(300)))
_h2("huffman_headers", lambda c, x: c.headers(1, None, raw_block=c.block(
    c.request_headers("GET", x.uri(0)), huffman=True)))


@h2shape("bad_preface")
def _bad_preface(ctx):
    c = ctx.h2(preface=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(4, 0, 0, b"")
           + c.get(1, ctx.uri(0)))
    c.drain()


@h2shape("http1_over_h2_alpn")
def _h1_on_h2(ctx):
    c = ctx.h2(preface=False)
    c.send(req("GET", ctx.uri(0)))
    c.drain()


@h2shape("request_then_close")
def _req_close(ctx):
    c = ctx.h2()
    c.send(c.get(1, ctx.uri(0)))
    c.close()


@h2shape("reset_after_response")
def _reset_after(ctx):
    c = ctx.h2()
    c.send(c.get(1, ctx.uri(0)))
    c.drain(idle=0.3)
    c.send(rst(1) + c.get(3, ctx.uri(1)))
    c.drain()


@h2shape("slow_body_then_reset")
def _slow_body_reset(ctx):
    c = ctx.h2()
    c.send(c.headers(1, c.request_headers("POST", ctx.uri(0), [("content-length", "10")]),
                     end_stream=False) + data(1, b"abc", end_stream=False))
    c.drain(idle=0.3)
    c.send(rst(1))
    c.drain()


@h2shape("split_frames_1_byte")
def _split_h2(ctx):
    c = ctx.h2()
    c.send_split(c.get(1, ctx.uri(0)) + c.get(3, ctx.uri(1)), 1)
    c.drain()


ALL: Dict[str, Callable[[Ctx], None]] = {**H1, **H2}

# Shapes left out of the replay fixtures (tests/golden/hostile/): bulky to keep in the tree.
HEAVY = {"h1_bare_lf_trick_then_posts", "h1_huge_header_200k", "h1_huge_header_90k",
         "h1_pipeline_100", "h1_uri_long_60k", "h1_chunk_ext_long", "h1_many_headers_2000",
         "h1_chunk_many_small", "h2_rapid_reset_1000", "h2_huge_header_90k",
         "h2_many_headers_1000", "h2_settings_flood", "h2_ping_flood", "h2_priority_flood",
         "h2_continuation_flood", "h2_streams_over_limit_300", "h2_headers_too_large_frame",
         "h2_frame_too_large"}
