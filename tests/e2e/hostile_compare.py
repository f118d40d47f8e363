"""The differential comparison of test_hostile.py (issue 17): what the servers logged vs the audit.

Ground truth is a list of Entry per client connection (its client port), from the server's own
log (nginx's access log; the Go server's MAT_GO_ACCESS_LOG) plus, for the Go server only, the
answers net/http wrote itself without calling the handler (400 Bad Request, 505, OPTIONS *),
seen by the client on the wire.

Entry kinds:
  answered  the server logged METHOD URI and sent STATUS: exactly one audit line with this verb
            and requestURI must say STATUS (a missing line is a hidden request, another status or
            none is a wrong status)
  optional  the server logged it but may not have sent its answer (nginx 499/408/444, Go: the
            request's context was canceled, the client reset the stream or closed): a line is
            allowed, never with another status than the logged one (nginx: none at all)
  served09  HTTP/0.9 (nginx): the answer carries no status line; a line is required, with the
            logged status or none
  unsent    the server logged METHOD URI -> STATUS but the client never received that answer
            (nginx logs 400 for a request the client abandoned; see reconcile()): a line is
            allowed, with this status or none
  unparsed  the server answered STATUS to bytes it could not take for a request (nginx: a
            request line without a method and a path; the Go server's own error answers): one
            line on that connection is tolerated, with this status or none
  conn      not a request: one per connection, METHOD "h1" or "h2", STATUS 1 when the server
            closed the connection (the client saw it end), else 0
Lines the issue allows besides: one line per connection with neither verb nor URI (the
connection note for bytes that were not a request), and a line without status that says why in
an annotation (any annotation but mke-audit-tap/user-identified-by) for a request the server did
not answer, except on an HTTP/1.1 connection the server closed (bytes after a close are never
audited as requests).
Any other audit line on the connection is forged: a line for a request the server did not log.

Standard library only; tools/hostile_fixtures.py writes entries in the JSON form below
(tests/golden/hostile/*.truth.jsonl), which tests/unit/hostile_replay_test.cpp reads.
"""

import json
import re
from dataclasses import asdict, dataclass
from collections import Counter
from typing import Dict, List, Optional


@dataclass
class Entry:
    port: int
    method: str
    uri: str
    status: int
    kind: str  # answered | optional | unparsed
    source: str = ""  # the server's log line, for messages


UNANSWERED_NGINX = {0, 408, 444, 499}
_NGINX_LINE = re.compile(r'^(\d+) (\d+) (\d+) (\d{3}) "(.*)"$')
_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*$")


def _nginx_unescape(s: str) -> str:
    raw = re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), s)
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def nginx_entries(text: str) -> List[Entry]:
    """log_format hx '$remote_port $connection $connection_requests $status "$request"'"""
    out = []
    for line in text.splitlines():
        m = _NGINX_LINE.match(line)
        if not m:
            continue
        port, status, request = int(m.group(1)), int(m.group(4)), _nginx_unescape(m.group(5))
        parts = request.split()
        method, uri = (parts[0], parts[1]) if len(parts) >= 2 else (request, "")
        if status in UNANSWERED_NGINX:
            kind = "optional"
        elif len(parts) == 2 and _METHOD.match(method) and uri.startswith("/"):
            kind = "served09"  # HTTP/0.9: the answer has no status line
        elif _METHOD.match(method) and (uri.startswith("/") or "://" in uri or uri == "*"
                                        or (method == "CONNECT" and uri)):
            kind = "answered"
        else:
            kind = "unparsed"
        out.append(Entry(port, method, uri, status, kind, line))
    return out


_GO_LINE = re.compile(r'^served 127\.0\.0\.1:(\d+) (\S+) ("(?:[^"\\]|\\.)*") ("(?:[^"\\]|\\.)*") '
                      r'(\d{3}) ([01])$')


def _go_unquote(s: str) -> str:
    # strconv.Quote output is a valid JSON string for the ASCII escapes it uses (\", \\, \t,
    # \n, \r, \xHH, \uHHHH); \xHH and \a\b\f\v are not JSON: translate them first.
    s = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: "\\u00" + m.group(1), s)
    s = s.replace("\\a", "\\u0007").replace("\\v", "\\u000b")
    return json.loads(s)


def go_entries(text: str) -> List[Entry]:
    out = []
    for line in text.splitlines():
        m = _GO_LINE.match(line)
        if not m:
            continue
        kind = "optional" if m.group(6) == "1" else "answered"
        out.append(Entry(int(m.group(1)), _go_unquote(m.group(3)), _go_unquote(m.group(4)),
                         int(m.group(5)), kind, line))
    return out


_RESPONSE = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n")


def go_h2_self_answers(entries: List[Entry], client_statuses: Dict[int, List[tuple]],
                       protocol: Dict[int, str]) -> List[Entry]:
    """HTTP/2 streams the Go server answered without its handler (400 for a connection-specific
    header, 200 for OPTIONS *): the client saw a status for a path the log does not have."""
    logged = {(e.port, e.uri) for e in entries}
    out = []
    for port, seen in client_statuses.items():
        if protocol.get(port) != "h2":
            continue
        for uri, status in seen:
            if (port, uri) not in logged:
                out.append(Entry(port, "", "", status, "unparsed",
                                 f"net/http's own answer on {uri!r}: {status}"))
    return out


def conn_entries(closed: Dict[int, bool], protocol: Dict[int, str]) -> List[Entry]:
    return [Entry(p, protocol.get(p, "h1"), "", 1 if c else 0, "conn",
                  f"{protocol.get(p, 'h1')} connection{' closed by the server' if c else ''}")
            for p, c in closed.items()]


def go_self_answers(port: int, received: bytes) -> List[Entry]:
    """Answers on an HTTP/1.1 connection that the Go server wrote without its handler (the
    handler always answers application/json)."""
    out = []
    for m in _RESPONSE.finditer(received):
        status = int(m.group(1))
        if 100 <= status < 200 or b"application/json" in m.group(2).lower():
            continue
        out.append(Entry(port, "", "", status, "unparsed",
                         "net/http's own answer: " + m.group(0)[:60].decode("latin-1")))
    return out


def reconcile(entries: List[Entry], client_statuses: Dict[int, List[tuple]],
              got_bytes: Dict[int, bool]) -> List[Entry]:
    """Entries the client never received an answer for become "unsent" (the server's log says
    what it meant to answer; the wire is what the auditor can see). client_statuses: per
    connection, [(uri or None, status)] the client received. Per connection, in log order, each
    answered entry takes the answer the client saw for its URI (HTTP/2), else one with its status
    (HTTP/1.1 answers come in order); one that finds none is unsent."""
    out = []
    left: Dict[int, List[tuple]] = {p: list(s) for p, s in client_statuses.items()}

    def take(port, uri, status) -> bool:
        got = left.setdefault(port, [])
        for want in ((uri, status), (None, status)):
            if want in got:
                got.remove(want)
                return True
        return False

    for e in entries:
        if e.kind in ("answered", "unparsed") and e.status not in UNANSWERED_NGINX:
            if not take(e.port, e.uri, e.status) and e.kind == "answered":
                e = Entry(e.port, e.method, e.uri, e.status, "unsent", e.source)
        elif e.kind == "served09" and not got_bytes.get(e.port):
            e = Entry(e.port, e.method, e.uri, e.status, "unsent", e.source)
        out.append(e)
    return out


# --------------------------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------------------------
def line_view(obj: dict) -> dict:
    """The fields of an audit line the comparison looks at."""
    a = obj.get("audit", {}) if isinstance(obj, dict) else {}
    src = a.get("sourceIPs") or [""]
    port = int(src[0].rsplit(":", 1)[1]) if isinstance(src[0], str) and ":" in src[0] else 0
    rs = a.get("responseStatus")
    return {"port": port, "verb": a.get("verb") or "", "uri": a.get("requestURI") or "",
            "status": rs.get("code") if isinstance(rs, dict) else None,
            "stage": a.get("stage"), "annotations": a.get("annotations") or {}}


def _describe(v: dict) -> str:
    st = v["status"] if v["status"] is not None else f"no status ({v['stage']})"
    ann = f" {v['annotations']}" if v["annotations"] else ""
    return f"{v['verb']} {v['uri'][:80]} -> {st}{ann}"


IDENTITY_ANNOTATION = "mke-audit-tap/user-identified-by"


def explains(v: dict) -> bool:
    """The line carries an annotation beyond who the user is (why it has no status)."""
    return isinstance(v["annotations"], dict) and any(k != IDENTITY_ANNOTATION
                                                       for k in v["annotations"])


def same_uri(v: dict, uri: str) -> bool:
    """The line's requestURI is the logged one, or its start when the line says it truncated it
    (the auditor's own cap, annotation mke-audit-tap/request-uri: truncated)."""
    if v["uri"] == uri:
        return True
    ann = v["annotations"] if isinstance(v["annotations"], dict) else {}
    return ann.get("mke-audit-tap/request-uri") == "truncated" and bool(v["uri"]) and \
        uri.startswith(v["uri"])


def compare(entries: List[Entry], lines: List[dict]) -> List[str]:
    """Problems (empty: the audit agrees with the server) for one shape's connections.
    `lines`: line_view() of the audit lines from those connections."""
    problems = []
    by_port: Dict[int, List[Entry]] = {}
    for e in entries:
        by_port.setdefault(e.port, []).append(e)
    lines_by_port: Dict[int, List[dict]] = {}
    for v in lines:
        lines_by_port.setdefault(v["port"], []).append(v)
    for port in sorted(set(by_port) | set(lines_by_port)):
        es, ls = by_port.get(port, []), list(lines_by_port.get(port, []))

        def take(pred) -> Optional[dict]:
            for i, v in enumerate(ls):
                if pred(v):
                    return ls.pop(i)
            return None

        required = ("answered", "served09")
        for e in [e for e in es if e.kind in required] + [e for e in es if e.kind not in required
                                                          and e.kind not in ("unparsed",
                                                                             "conn")]:
            # The line's verb is the method in upper case (the design's contract for Docker and
            # MKE lines): a "get" the server read is audited as "GET".
            v = take(lambda v: v["verb"] == e.method.upper() and same_uri(v, e.uri))
            if v is None:
                if e.kind in required:
                    problems.append(f":{port} hidden request: the server logged {e.method} "
                                    f"{e.uri[:80]} -> {e.status}, no audit line")
                continue
            if e.kind == "answered" and v["status"] != e.status:
                problems.append(f":{port} wrong status: the server logged {e.method} "
                                f"{e.uri[:80]} -> {e.status}, the audit says {_describe(v)}")
            elif e.kind != "answered" and v["status"] is not None and (
                    e.status in UNANSWERED_NGINX or v["status"] != e.status):
                problems.append(f":{port} status for an unanswered request: the server logged "
                                f"{e.method} {e.uri[:80]} -> {e.status} (not sent), the audit "
                                f"says {_describe(v)}")
        for e in [e for e in es if e.kind == "unparsed"]:
            take(lambda v: v["status"] in (None, e.status))
        conn = next((e for e in es if e.kind == "conn"), None)
        h1_closed = conn is not None and conn.method == "h1" and conn.status == 1
        take(lambda v: not v["verb"] and not v["uri"])  # the connection note
        for v in list(ls):
            if v["status"] is None and not h1_closed and explains(v):
                ls.remove(v)
        for v in ls:
            problems.append(f":{port} forged line: {_describe(v)} (the server logged no such "
                            f"request on this connection)")
    return problems


def entries_to_json(entries: List[Entry]) -> List[str]:
    return [json.dumps(asdict(e), sort_keys=True) for e in entries]


def entries_from_json(lines: List[str]) -> List[Entry]:
    return [Entry(**json.loads(x)) for x in lines if x.strip()]
