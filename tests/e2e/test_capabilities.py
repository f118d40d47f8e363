"""End-to-end: least privilege (issue 13). The capabilities README "Privileges" documents are
enough to audit nginx over TLS 1.2 and 1.3, and each one missing is named at start with what
fails without it. The auditor runs under `setpriv --bounding-set=-all,+...` (root keeps only
those capabilities across exec)."""

import re
import shutil
import time

import pytest

from conftest import curl, finish, make_auditor, require, wait_until

DOCUMENTED = ["sys_admin", "sys_ptrace", "dac_read_search", "setuid", "setgid"]


def with_caps(auditor, caps):
    """Runs `auditor` with only `caps` (and no inheritable ones)."""
    auditor.args = (["--inh-caps=-all", "--bounding-set=-all," + ",".join("+" + c for c in caps),
                     str(auditor.binary)] + auditor.args)
    auditor.binary = shutil.which("setpriv")
    return auditor


@pytest.fixture
def setpriv():
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) is not installed")


def test_documented_capabilities_are_enough(setpriv, auditor_binary, start_server, request):
    server = start_server("nginx")
    aud = with_caps(make_auditor(auditor_binary, pids=[server.pid]), DOCUMENTED)
    request.node._mat_objects = getattr(request.node, "_mat_objects", []) + [aud]
    aud.start()
    try:
        aud.wait_ready()
        assert "capabilities:" not in aud.stderr_text(), aud.diagnostics()
        sent = curl(server, ["/hello?v=12", "/search?v=12"], extra=["--tlsv1.2", "--tls-max", "1.2"])
        sent += curl(server, ["/hello?v=13"], extra=["--tlsv1.3"])
        run = finish(aud, sent, [server])
        run.check_all()
    finally:
        aud.kill()


def test_missing_capabilities_are_named(setpriv, auditor_binary, start_server, request):
    server = start_server("nginx")
    # CAP_SYS_ADMIN alone: nginx (root, full capability set) cannot be read without
    # CAP_SYS_PTRACE; the other three are named as warnings.
    aud = with_caps(make_auditor(auditor_binary, pids=[server.pid]), ["sys_admin"])
    request.node._mat_objects = getattr(request.node, "_mat_objects", []) + [aud]
    aud.start()
    try:
        aud.wait_ready()
        text = aud.stderr_text()
        for level, cap in [("error", "CAP_SYS_PTRACE"), ("warning", "CAP_DAC_READ_SEARCH"),
                           ("warning", "CAP_SETUID"), ("warning", "CAP_SETGID")]:
            assert re.search(rf" {level} capabilities: {cap} is missing \(used for .+\): "
                             rf"without it .+", text), f"{cap} not named as {level}\n{aud.diagnostics()}"
        for cap in ("CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON"):  # present, or covered
            assert f"{cap} is missing" not in text, aud.diagnostics()
        # And indeed: the targets could not be read.
        assert "ready: auditing 0 process(es)" in text, aud.diagnostics()
    finally:
        aud.kill()
