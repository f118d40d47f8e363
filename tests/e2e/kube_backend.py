#!/usr/bin/python3
"""A plain-HTTP stand-in for the Kubernetes API server, good enough for the real kubectl, behind
nginx's TLS + HTTP/2 front in test_kubectl.py. Not a real API server: it knows three core/v1
namespaced resources and only the calls kubectl makes for get, get -w, create secret, apply and
delete (as kubectl 1.32 and Debian's 1.20 make them).

- /version: the v1.32 dispatcher of the kubectl package asks it to pick its kubectl.
- Discovery, legacy form: /api, /apis (no groups), /api/v1 (pods, secrets, configmaps).
- /openapi/v3 and /openapi/v3/api/v1: the PATCH operations of the three kinds with their
  group/version/kind and the fieldValidation parameter, so kubectl >= 1.27 validates on the
  server (?fieldValidation=Strict) and apply builds its patches from compiled-in types.
- /openapi/v2 (protobuf, no definitions): older kubectl validates on the client with it and
  skips the kinds it does not describe.
- pods/secrets/configmaps: list (a meta.k8s.io Table when asked for one, as kubectl get does),
  watch (a chunked stream of a few events that then stays open until the client goes), get,
  create (JSON, or protobuf as kubectl's typed clients send it), patch (applied as a JSON merge
  patch: enough for these flat objects), put and delete. Objects live in memory; answers carry
  the whole object with a fresh metadata.uid, as the API server's do (secret data included).
- The bearer token is checked (--token-file, so it is in no process list); else 401.

Every answered request is logged to stderr as one JSON line (method, path, status, the request's
content type, the uid of the object answered), for the test and its diagnostics.

    kube_backend.py --port N --token-file F   (prints "listening N" once ready)
"""
import argparse
import base64
import copy
import datetime
import json
import select
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2025-04-22T00:00:00Z",
                  "goVersion": "go1.23.8", "compiler": "gc", "platform": "linux/amd64"}

RESOURCES = {
    # name: (kind, singular, short names)
    "pods": ("Pod", "pod", ["po"]),
    "secrets": ("Secret", "secret", []),
    "configmaps": ("ConfigMap", "configmap", ["cm"]),
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
WATCH_EVENTS = 3  # events sent at once on a watch; it then stays open with no more


# --- protobuf: kubectl's typed clients (create secret) send application/vnd.kubernetes.protobuf
def pb_fields(buf):
    """(field number, value) pairs of one protobuf message: ints for varints, bytes for
    length-delimited fields (fixed32/64 are not used by the messages decoded here)."""
    i, out = 0, []
    while i < len(buf):
        key, i = pb_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = pb_varint(buf, i)
        elif wire == 2:
            n, i = pb_varint(buf, i)
            val, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"protobuf wire type {wire} not supported")
        out.append((num, val))
    return out


def pb_varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, i


def pb_map(entries, decode_value):
    out = {}
    for e in entries:
        f = dict(pb_fields(e))
        out[f.get(1, b"").decode()] = decode_value(f.get(2, b""))
    return out


def pb_object(body):
    """A core/v1 Secret or ConfigMap in the Kubernetes protobuf envelope ("k8s\0" + Unknown)
    as the JSON object the API would see: metadata name/namespace/labels/annotations, data,
    stringData, type."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    unknown = dict(pb_fields(body[4:]))
    type_meta = dict(pb_fields(unknown.get(1, b"")))
    kind = type_meta.get(2, b"").decode()
    fields = pb_fields(unknown.get(2, b""))

    def repeated(items, num):
        return [v for n, v in items if n == num]

    md = {}
    for meta in repeated(fields, 1):  # ObjectMeta
        mf = pb_fields(meta)
        for num, key in ((1, "name"), (3, "namespace")):
            if repeated(mf, num) and repeated(mf, num)[-1]:
                md[key] = repeated(mf, num)[-1].decode()
        for num, key in ((11, "labels"), (12, "annotations")):
            if repeated(mf, num):
                md[key] = pb_map(repeated(mf, num), bytes.decode)
    obj = {"apiVersion": type_meta.get(1, b"").decode(), "kind": kind, "metadata": md}
    if kind == "Secret":  # data map<string, bytes> 2, type 3, stringData 4
        if repeated(fields, 2):
            obj["data"] = pb_map(repeated(fields, 2), lambda v: base64.b64encode(v).decode())
        if repeated(fields, 4):
            obj["stringData"] = pb_map(repeated(fields, 4), bytes.decode)
        if repeated(fields, 3):
            obj["type"] = repeated(fields, 3)[-1].decode()
    elif kind == "ConfigMap" and repeated(fields, 2):  # data map<string, string> 2
        obj["data"] = pb_map(repeated(fields, 2), bytes.decode)
    return obj


def decode_body(raw, content_type):
    if "protobuf" in (content_type or ""):
        return pb_object(raw)
    return json.loads(raw or b"{}")


def openapi_v3_root():
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=0123ABCD"}}}


def openapi_v3_core():
    """Just enough OpenAPI v3 for kubectl: the PATCH operations of our kinds, tagged with
    their group/version/kind and taking fieldValidation, so kubectl validates on the server."""
    paths = {}
    for resource, (kind, _singular, _short) in RESOURCES.items():
        paths[f"/api/v1/namespaces/{{namespace}}/{resource}/{{name}}"] = {"patch": {
            "operationId": f"patchCoreV1Namespaced{kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("dryRun", "fieldManager", "fieldValidation", "force")],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


def pb_string(num, text):
    data = text.encode()
    return bytes([num << 3 | 2, len(data)]) + data  # short strings only


# An OpenAPI v2 document (gnostic protobuf, as kubectl asks for it) with no definitions: older
# kubectl (Debian's 1.20) validates on the client with it, and skips kinds it does not describe;
# apply then builds strategic merge patches from its compiled-in types.
_INFO = pb_string(1, "Kubernetes") + pb_string(2, SERVER_VERSION["gitVersion"])
OPENAPI_V2_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # as served
OPENAPI_V2_PB = pb_string(1, "2.0") + bytes([2 << 3 | 2, len(_INFO)]) + _INFO


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (strategic merge on these objects' maps is the same)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):  # strategic-merge directives ($patch, $retainKeys, ...)
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 100
        self.objects = {}  # (resource, namespace, name) -> object
        for i in range(2):
            self._put("pods", "default", {
                "metadata": {"name": f"web-{i}", "namespace": "default"},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                "status": {"phase": "Running"}})

    def _put(self, resource, ns, obj):
        kind = RESOURCES[resource][0]
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["kind"] = kind
        obj["apiVersion"] = "v1"
        md = obj.setdefault("metadata", {})
        md["namespace"] = ns
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now_rfc3339())
        md["resourceVersion"] = str(self.rv)
        self.objects[(resource, ns, md["name"])] = obj
        return copy.deepcopy(obj)

    def put(self, resource, ns, obj):
        with self.lock:
            return self._put(resource, ns, obj)

    def get(self, resource, ns, name):
        with self.lock:
            o = self.objects.get((resource, ns, name))
            return copy.deepcopy(o) if o else None

    def delete(self, resource, ns, name):
        with self.lock:
            return self.objects.pop((resource, ns, name), None)

    def list(self, resource, ns, name=None):
        with self.lock:
            items = [copy.deepcopy(o) for (r, n, nm), o in sorted(self.objects.items())
                     if r == resource and n == ns and (name is None or nm == name)]
            return items, str(self.rv)


STORE = Store()
TOKEN = ""


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def wants_table(accept):
    return "as=Table" in (accept or "")


def table(resource, items, rv):
    cols = [{"name": "Name", "type": "string", "format": "name", "description": "name",
             "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "age",
             "priority": 0}]
    if resource == "pods":
        cols.insert(1, {"name": "Status", "type": "string", "format": "", "description": "phase",
                        "priority": 0})
    rows = []
    for o in items:
        cells = [o["metadata"]["name"], "1m"]
        if resource == "pods":
            cells.insert(1, o.get("status", {}).get("phase", ""))
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv}, "columnDefinitions": cols, "rows": rows}


def resource_list():
    res = []
    for name, (kind, singular, short) in RESOURCES.items():
        r = {"name": name, "singularName": singular, "namespaced": True, "kind": kind,
             "verbs": VERBS}
        if short:
            r["shortNames"] = short
        res.append(r)
    res.append({"name": "namespaces", "singularName": "namespace", "namespaced": False,
                "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"]})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": res}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, *args):
        pass

    def _log(self, code, obj=None):
        rec = {"method": self.command, "path": self.path, "status": code,
               "content_type": self.headers.get("Content-Type")}
        if isinstance(obj, dict) and obj.get("kind") in ("Pod", "Secret", "ConfigMap"):
            rec["uid"] = obj.get("metadata", {}).get("uid")
        sys.stderr.write(json.dumps(rec) + "\n")
        sys.stderr.flush()

    def _send(self, code, obj, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._log(code, obj)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                out += self.rfile.read(size + 2)[:size]
                if size == 0:
                    return out
        return b""

    def _route(self):
        try:
            return self._serve()
        except Exception as e:  # a test stand-in: answer, and say why on stderr
            sys.stderr.write(f"error {type(e).__name__}: {e} headers={dict(self.headers)}\n")
            return self._send(500, status(500, "InternalError", type(e).__name__))

    def _serve(self):
        raw = self._body()
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        parts = [p for p in u.path.split("/") if p]
        m = self.command
        if self.headers.get("Authorization", "") != f"Bearer {TOKEN}":
            return self._send(401, status(401, "Unauthorized", "Unauthorized"))
        if u.path == "/version":
            return self._send(200, SERVER_VERSION)
        if u.path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0",
                                         "serverAddress": "127.0.0.1:6443"}]})
        if u.path == "/apis":
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if u.path == "/api/v1":
            return self._send(200, resource_list())
        if u.path == "/openapi/v3":
            return self._send(200, openapi_v3_root())
        if u.path == "/openapi/v3/api/v1":
            return self._send(200, openapi_v3_core())
        if u.path == "/openapi/v2":
            return self._send(200, OPENAPI_V2_PB, OPENAPI_V2_TYPE)
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"] and \
                parts[4] in RESOURCES:
            ns, resource = parts[3], parts[4]
            name = parts[5] if len(parts) > 5 else None
            if len(parts) > 6:
                return self._send(404, status(404, "NotFound", "no subresources here"))
            return self._resource(m, resource, ns, name, q, raw)
        return self._send(404, status(404, "NotFound", f"the server could not find {u.path}"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route

    def _not_found(self, resource, name):
        return self._send(404, status(404, "NotFound", f'{resource} "{name}" not found',
                                      {"name": name, "kind": resource}))

    def _resource(self, m, resource, ns, name, q, raw):
        accept = self.headers.get("Accept", "")
        kind = RESOURCES[resource][0]
        if name is None and m == "GET":
            field = q.get("fieldSelector", "")
            only = field[len("metadata.name="):] if field.startswith("metadata.name=") else None
            items, rv = STORE.list(resource, ns, only)
            if q.get("watch") in ("true", "1"):
                return self._watch(resource, items, accept)
            if wants_table(accept):
                return self._send(200, table(resource, items, rv))
            return self._send(200, {"kind": kind + "List", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": rv}, "items": items})
        if name is None and m == "POST":
            obj = decode_body(raw, self.headers.get("Content-Type"))
            nm = obj.get("metadata", {}).get("name")
            if not nm:
                return self._send(422, status(422, "Invalid", "name is required"))
            if STORE.get(resource, ns, nm):
                return self._send(409, status(409, "AlreadyExists",
                                              f'{resource} "{nm}" already exists'))
            if q.get("dryRun"):
                return self._send(201, obj)
            return self._send(201, STORE.put(resource, ns, obj))
        if name is None:
            return self._send(405, status(405, "MethodNotAllowed", "not allowed"))
        cur = STORE.get(resource, ns, name)
        if cur is None:
            return self._not_found(resource, name)
        if m == "GET":
            return self._send(200, cur)
        if m == "PATCH":
            return self._send(200, STORE.put(resource, ns, merge_patch(cur, json.loads(raw))))
        if m == "PUT":
            return self._send(200, STORE.put(resource, ns, json.loads(raw)))
        if m == "DELETE":
            STORE.delete(resource, ns, name)
            return self._send(200, cur)
        return self._send(405, status(405, "MethodNotAllowed", "not allowed"))

    def _watch(self, resource, items, accept):
        """Events for the current objects, then a stream that stays open (no more events)
        until the client goes away or a minute passes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._log(200)
        try:
            for i in range(WATCH_EVENTS if items else 0):
                obj = copy.deepcopy(items[i % len(items)])
                obj["metadata"]["resourceVersion"] = str(1000 + i)
                if wants_table(accept):
                    obj = table(resource, [obj], str(1000 + i))
                ev = json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
                time.sleep(0.2)
            # Stay open, sending nothing more, until nginx closes the upstream connection
            # (the client went away) or a minute has passed.
            conn = self.connection
            conn.settimeout(None)
            ready, _, _ = select.select([conn], [], [], 60)
            if ready:
                conn.recv(1, socket.MSG_PEEK)
        except OSError:
            pass
        self.close_connection = True


def main():
    global TOKEN
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token-file", required=True)
    args = ap.parse_args()
    with open(args.token_file) as f:
        TOKEN = f.read().strip()
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
