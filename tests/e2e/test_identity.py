"""Who made the request, end to end: client certificates captured in the kernel (dockerd's Go
crypto/tls with two MKE-style client bundles; nginx's OpenSSL with ssl_verify_client on), and
session tokens learned from a real login exchange with a Go HTTPS server."""

import hashlib
import json
import secrets
import shutil
import subprocess

from conftest import GoServer, make_auditor, parse_line, require
from test_audit_semantics import ApiFront
from test_dockerd import make_pki, start_dockerd

BY = "mke-audit-tap/user-identified-by"


def lines_of(aud):
    parsed = [parse_line(r) for r in aud.raw_lines()]
    assert not [p for p in parsed if p.error], aud.diagnostics()
    return [p.obj["audit"] for p in parsed]


def only(lines, uri):
    found = [ln for ln in lines if ln["requestURI"] == uri]
    assert len(found) == 1, f"want one line for {uri}: {found}"
    return found[0]


def start(binary, pid, *extra, level="metadata"):
    aud = make_auditor(binary, [pid], (), ["--level", level, *extra])
    aud.start()
    aud.wait_ready()
    return aud


def test_client_bundles_name_their_users_on_dockerd(tmp_path, environment_ok, auditor_binary):
    dockerd = start_dockerd(tmp_path, clients=("alice", "bob"))
    alice_id = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a"  # an MKE account id, made up
    user_map = tmp_path / "users.json"
    user_map.write_text(json.dumps({"users": [
        {"match": "cn:alice", "id": alice_id, "name": "alice"}]}))
    try:
        aud = start(auditor_binary, dockerd.pid, "--user-map", str(user_map), "--client-ca",
                    str(dockerd.bundle / "ca.pem"))
        try:
            dockerd.docker("ps", user="alice")
            dockerd.docker("network", "ls", user="bob")
            dockerd.docker("images", user="alice")
            dockerd.docker("volume", "ls", user="bob")
            aud.wait_quiet(at_least=4)
        finally:
            assert aud.stop() == 0, aud.diagnostics()
    finally:
        dockerd.stop()
    lines = lines_of(aud)
    assert len(lines) == 4, aud.diagnostics()
    for uri in ("/v1.41/containers/json", "/v1.41/images/json"):
        ln = only(lines, uri)
        # As MKE writes it: uid and username are the account id, the login in extra.username.
        assert ln["user"]["uid"] == alice_id and ln["user"]["username"] == alice_id, ln
        assert ln["user"]["extra"]["username"] == ["alice"]
        assert ln["annotations"][BY] == "client-certificate"
    for uri in ("/v1.41/networks", "/v1.41/volumes"):
        ln = only(lines, uri)
        # No mapping: the certificate's name fills both.
        assert ln["user"]["uid"] == "bob" and ln["user"]["username"] == "bob", ln
        assert ln["user"]["extra"]["username"] == ["bob"]
        assert ln["annotations"][BY] == "client-certificate"


def test_nginx_client_certificate(tmp_path, tls_material, environment_ok, auditor_binary):
    require(shutil.which("curl"), "curl is needed")
    bundles = make_pki(tmp_path / "pki", clients=("alice", "bob"))
    ca = bundles["alice"] / "ca.pem"
    front = ApiFront(tmp_path / "front", tls_material, client_ca=ca).start()

    def curl(path, *cert):
        return subprocess.run(["curl", "-s", "--cacert", str(tls_material.ca), *cert, "-o",
                               "/dev/null", "-w", "%{http_code}",
                               f"https://127.0.0.1:{front.port}{path}"],
                              capture_output=True, text=True, timeout=30).stdout

    try:
        aud = start(auditor_binary, front.pid, "--client-ca", str(ca))
        try:
            for user, path in (("alice", "/v1.41/containers/json?u=a"),
                               ("bob", "/v1.41/services?u=b"), ("alice", "/v1.41/nodes?u=a")):
                b = bundles[user]
                code = curl(path, "--cert", str(b / "cert.pem"), "--key", str(b / "key.pem"))
                assert code == "200", (user, path, code)
            # No certificate: nginx answers 400 itself; the request is audited as anonymous.
            assert curl("/v1.41/secrets?u=none") == "400"
            aud.wait_quiet(at_least=4)
        finally:
            assert aud.stop() == 0, aud.diagnostics()
    finally:
        front.stop()
    lines = lines_of(aud)
    assert len(lines) == 4, aud.diagnostics()
    anon = only(lines, "/v1.41/secrets?u=none")
    assert anon["responseStatus"]["code"] == 400
    assert anon["user"]["username"] == "system:anonymous" and anon["annotations"][BY] == "anonymous"
    for uri, user in (("/v1.41/containers/json?u=a", "alice"), ("/v1.41/services?u=b", "bob"),
                      ("/v1.41/nodes?u=a", "alice")):
        ln = only(lines, uri)
        assert ln["user"]["username"] == user and ln["user"]["uid"] == user, ln
        assert ln["annotations"][BY] == "client-certificate"


def test_self_signed_certificate_names_nobody(tmp_path, tls_material, environment_ok,
                                              auditor_binary):
    """The tap sees a certificate before the server verifies it. nginx with optional_no_ca
    takes any certificate; a self-signed CN=admin must not make its requests admin's."""
    require(shutil.which("curl"), "curl is needed")
    ca = make_pki(tmp_path / "pki", clients=("alice",))["alice"] / "ca.pem"
    d = tmp_path / "mallory"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=admin", "-keyout", str(d / "key.pem"), "-out",
                    str(d / "cert.pem")], check=True, capture_output=True, timeout=60)
    front = ApiFront(tmp_path / "front", tls_material, client_ca=ca,
                     verify="optional_no_ca").start()
    try:
        checked = start(auditor_binary, front.pid, "--client-ca", str(ca))
        unchecked = start(auditor_binary, front.pid)
        try:
            code = subprocess.run(
                ["curl", "-s", "--cacert", str(tls_material.ca), "--cert", str(d / "cert.pem"),
                 "--key", str(d / "key.pem"), "-o", "/dev/null", "-w", "%{http_code}",
                 f"https://127.0.0.1:{front.port}/v1.41/secrets?who=mallory"],
                capture_output=True, text=True, timeout=30).stdout
            assert code == "200", code
            checked.wait_quiet(at_least=1)
            unchecked.wait_quiet(at_least=1)
        finally:
            assert checked.stop() == 0, checked.diagnostics()
            assert unchecked.stop() == 0, unchecked.diagnostics()
    finally:
        front.stop()
    ln = only(lines_of(checked), "/v1.41/secrets?who=mallory")
    assert ln["annotations"][BY] == "unresolved", ln
    assert ln["user"]["username"].startswith("unresolved:") and "admin" not in json.dumps(ln)
    ln = only(lines_of(unchecked), "/v1.41/secrets?who=mallory")
    assert ln["annotations"][BY] == "client-certificate-unverified", ln
    assert ln["user"]["username"] == "admin"


def test_login_token_resolves_to_its_user(tmp_path, go_programs, tls_material, auditor_binary):
    require(shutil.which("curl"), "curl is needed")
    srv = GoServer(go_programs["server"], tls_material).start()
    password = "pw-" + secrets.token_hex(12)  # made up here, nowhere else

    def curl(path, *extra):
        out = subprocess.run(["curl", "-s", "--cacert", str(tls_material.ca), *extra,
                              srv.url(path)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out
        return out.stdout

    try:
        aud = start(auditor_binary, srv.pid, level="request")
        try:
            token = json.loads(curl("/auth/login", "-X", "POST", "-H",
                                    "Content-Type: application/json", "--data-binary",
                                    json.dumps({"username": "carol", "password": password})))
            token = token["auth_token"]
            curl("/v1.41/containers/json?who=carol", "-H", f"Authorization: Bearer {token}")
            wrong = secrets.token_hex(24)
            curl("/v1.41/containers/json?who=wrong", "-H", f"Authorization: Bearer {wrong}")
            curl("/v1.41/containers/json?who=none")
            aud.wait_quiet(at_least=3)
        finally:
            assert aud.stop() == 0, aud.diagnostics()
    finally:
        srv.stop()
    out = b"".join(aud.raw_lines()).decode("utf-8", "replace")
    err = aud.stderr_text()
    for s in (password, token, wrong):
        assert s not in out and s not in err, "a credential reached the output"
    lines = lines_of(aud)
    carol = only(lines, "/v1.41/containers/json?who=carol")
    assert carol["user"]["username"] == "carol" and carol["user"]["extra"]["username"] == ["carol"]
    assert carol["annotations"][BY] == "session-token"
    bad = only(lines, "/v1.41/containers/json?who=wrong")
    assert bad["annotations"][BY] == "unresolved"
    fingerprint = hashlib.sha256(wrong.encode()).hexdigest()[:12]
    assert bad["user"]["username"] == f"unresolved:{fingerprint}", bad["user"]
    # No credential and a full handshake without a client certificate: anonymous.
    none = only(lines, "/v1.41/containers/json?who=none")
    assert none["annotations"][BY] == "anonymous", none
    assert none["user"]["username"] == "system:anonymous", none["user"]
    logins = [ln for ln in lines if ln["requestURI"] == "/auth/login"]
    for ln in logins:  # if audited at all, never with the password
        assert ln.get("requestObject") in (None, "[REDACTED by mke-audit-tap]"), ln
