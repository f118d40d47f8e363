"""End-to-end: a slow, stalled or closed stdout (issue 13: loss is never silent; backpressure).

The reader of the auditor's stdout is the test itself, through a pipe it can stop reading.
Load comes from wrk (one over TLS 1.3, one held to TLS 1.2 by an OpenSSL configuration) against
nginx; the ground truth is nginx's access log (which logs each request's TLS version too).

- a 10 s stall under load: the auditor's memory stays bounded (--output-buffer), nginx's
  throughput does not drop, the lines that did not fit are counted and announced by a loss
  notice on stdout once reading resumes, and then audited lines + announced losses == the
  requests nginx served;
- SIGTERM during a stall: the auditor exits within --exit-timeout and a little, saying how many
  lines it could not write; the lines it says it wrote are in the pipe, whole;
- a reader that closes the pipe: a clear error, the summary and exit status 1, not SIGPIPE.
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from conftest import (LICENSE_KEY, LOSS_NOTICE_TYPE, NginxServer, curl, require, tail,
                      wait_until)

# Two TLS versions at once: wrk negotiates TLS 1.3 with nginx unless OpenSSL's configuration
# caps it (wrk has no option for it).
TLS12_OPENSSL_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""


class LoggingNginx(NginxServer):
    """The suite's nginx, with the TLS version of each request in its access log."""

    def start(self):
        import conftest
        saved = conftest.NGINX_CONF
        conftest.NGINX_CONF = saved.replace("$bytes_sent';", "$bytes_sent $ssl_protocol';")
        assert conftest.NGINX_CONF != saved
        try:
            return super().start()
        finally:
            conftest.NGINX_CONF = saved

    def served(self, path_prefix="/load") -> dict:
        """Requests nginx logged for paths under path_prefix, by TLS version."""
        by_version = {}
        text = (self.workdir / "access.log").read_text(errors="replace")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].startswith('"' + path_prefix):
                by_version[parts[-1]] = by_version.get(parts[-1], 0) + 1
        return by_version


@pytest.fixture
def nginx(tmp_path, tls_material, request):
    srv = LoggingNginx(tmp_path / "nginx", tls_material)
    srv.start()
    yield srv
    srv.stop()


class PipeReader:
    """Reads the auditor's stdout, and can stop reading (the pipe then fills and the auditor's
    writes block). Counts lines instead of keeping them (a stall test writes hundreds of MB),
    keeping the loss notices, a sample of audit lines, and anything that is neither."""

    def __init__(self, fd: int):
        self.fd = fd
        self.reading = threading.Event()
        self.reading.set()
        self.stopped = False
        self.lock = threading.Lock()
        self.audit_lines = 0
        self.notices: List[dict] = []  # each with "_seen": monotonic time the test read it
        self.others: List[bytes] = []
        self.samples: List[bytes] = []
        self.bytes = 0
        self.last_data = time.monotonic()
        self.eof = False
        self._rest = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            if not self.reading.wait(0.1):
                continue
            try:
                data = os.read(self.fd, 1 << 20)
            except OSError:
                break
            if not data:
                self.eof = True
                break
            self._take(data)

    def _take(self, data: bytes):
        now = time.monotonic()
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        with self.lock:
            self.bytes += len(data)
            self.last_data = now
            for line in lines:
                if line.startswith(b'{"audit":{') and b'"auditID":"' in line and line.endswith(b"}"):
                    self.audit_lines += 1
                    if self.audit_lines % 5000 == 1:
                        self.samples.append(line)
                elif LOSS_NOTICE_TYPE.encode() in line:
                    notice = json.loads(line)
                    notice["_seen"] = now
                    self.notices.append(notice)
                else:
                    self.others.append(line)

    def pause(self):
        self.reading.clear()

    def resume(self):
        self.reading.set()

    def quiet_for(self, seconds: float) -> bool:
        with self.lock:
            return time.monotonic() - self.last_data >= seconds

    def announced(self) -> dict:
        with self.lock:
            total = {}
            for n in self.notices:
                for reason, count in n["counts"].items():
                    total[reason] = total.get(reason, 0) + count
            return total

    def close(self):
        self.stopped = True
        self.reading.set()
        self.thread.join(timeout=5)


class StallAuditor:
    """The auditor with stdout on a pipe the test reads through PipeReader; stderr kept."""

    def __init__(self, binary: Path, args: List[str]):
        self.args = [str(binary)] + args
        r, w = os.pipe()
        try:  # room for the bursts of a reader in Python on a busy machine
            fcntl.fcntl(r, 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            pass
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=w,
                                     stderr=subprocess.PIPE, start_new_session=True)
        os.close(w)
        self.read_fd = r
        self.out: Optional[PipeReader] = None
        self._stderr: List[str] = []
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self._lock:
                self._stderr.append(f"[{time.monotonic():.3f}] "
                                    + raw.decode("utf-8", "replace").rstrip("\n"))

    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self._stderr)

    def wait_ready(self, timeout=30):
        if not wait_until(lambda: "ready" in self.stderr() or self.proc.poll() is not None,
                          timeout) or self.proc.poll() is not None:
            pytest.fail(f"auditor not ready (rc={self.proc.poll()})\n{self.diagnostics()}",
                        pytrace=False)

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def wait_exit(self, timeout: float) -> Optional[int]:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.out is not None:
            self.out.close()
        self._t.join(timeout=5)
        try:
            os.close(self.read_fd)
        except OSError:
            pass

    def diagnostics(self) -> str:
        out = [f"auditor: {' '.join(self.args)}", f"rc={self.proc.poll()}",
               "--- auditor stderr ---", tail(self.stderr(), 120)]
        if self.out is not None:
            out += [f"--- stdout: {self.out.audit_lines} audit lines, notices: "
                    f"{[{k: v for k, v in n.items() if k != '_seen'} for n in self.out.notices]}"
                    f", other lines: {self.out.others[:5]!r}"]
        return "\n".join(out)


@pytest.fixture
def stall_auditor(auditor_binary):
    started = []

    def _start(pid: int, extra=()) -> StallAuditor:
        args = ["--level", "metadata", "--license-key", LICENSE_KEY, "--pid", str(pid)]
        capture = os.environ.get("MAT_CAPTURE", "")
        if capture:
            args += ["--capture", capture]
        aud = StallAuditor(auditor_binary, args + list(extra))
        started.append(aud)
        return aud

    yield _start
    for aud in started:
        aud.kill()


def wrk_cmd(url: str, seconds: float, conns: int) -> List[str]:
    return ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url]


class Load:
    """wrk over TLS 1.3 and wrk held to TLS 1.2, at once, for `seconds`; requests/s of each."""

    def __init__(self, nginx: LoggingNginx, tmp: Path, seconds: float, conns=2):
        require(subprocess.run(["which", "wrk"], capture_output=True).returncode == 0,
                "wrk is not installed (tools/setup.sh installs it)")
        conf = tmp / "openssl-tls12.cnf"
        conf.write_text(TLS12_OPENSSL_CONF)
        env12 = dict(os.environ, OPENSSL_CONF=str(conf))
        self.procs = [
            subprocess.Popen(wrk_cmd(nginx.url("/load/tls13"), seconds, conns),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
            subprocess.Popen(wrk_cmd(nginx.url("/load/tls12"), seconds, conns),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env12),
        ]
        self.seconds = seconds

    def wait(self) -> List[float]:
        rates = []
        for p in self.procs:
            out, _ = p.communicate(timeout=self.seconds + 30)
            m = re.search(rb"Requests/sec:\s+([\d.]+)", out)
            assert p.returncode == 0 and m, f"wrk failed: {out[-2000:]!r}"
            rates.append(float(m.group(1)))
        return rates


def notices_problems(notices: List[dict]) -> List[str]:
    problems = []
    for n in notices:
        keys = [k for k in n if k != "_seen"]
        if "auditID" in json.dumps(n):
            problems.append(f"a loss notice names an auditID: {n}")
        if keys != sorted(keys):
            problems.append(f"loss notice keys not sorted: {keys}")
        if n.get("total") != sum(n["counts"].values()) or n["total"] <= 0:
            problems.append(f"loss notice total is not the sum of its counts: {n}")
    # At most one a second: each notice's "since" is the previous one's "time".
    for a, b in zip(notices, notices[1:]):
        if b["since"] != a["time"]:
            problems.append(f"notice since {b['since']} is not the previous notice's time "
                            f"{a['time']}")
    # ... and a second apart at least (the last one, at exit, may come sooner).
    for a, b in zip(notices, notices[1:-1]):
        if stamp(b["time"]) - stamp(a["time"]) < 0.999:
            problems.append(f"two notices less than a second apart: {a['time']} {b['time']}")
    return problems


def stamp(t: str) -> float:
    import datetime
    dt = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


# --------------------------------------------------------------------------------------------
# a 10 s stall under load
# --------------------------------------------------------------------------------------------
def test_stalled_stdout_under_load(nginx, stall_auditor, tmp_path):
    buffer_bytes = 16 << 20
    # A large ring buffer: the kernel side must not drop because the auditor got little CPU on
    # this shared machine (that would be a loss too, announced, but not the one under test).
    aud = stall_auditor(nginx.pid, ["--output-buffer", str(buffer_bytes),
                                    "--ringbuf-bytes", str(64 << 20)])
    aud.wait_ready()
    aud.out = out = PipeReader(aud.read_fd)
    try:
        # 1. Reading: the throughput without a stall, and the memory the auditor needs for it.
        base_rates = Load(nginx, tmp_path, 5).wait()
        assert wait_until(lambda: out.quiet_for(1.0), 20)
        rss_before = aud.rss_kib()
        lines_before = out.audit_lines
        notices_before = len(out.notices)  # a reader in Python on a busy machine may lag

        # 2. The reader stops for 10 s under the same load.
        out.pause()
        stall_start = time.monotonic()
        load = Load(nginx, tmp_path, 10)
        rss_max = rss_before
        while any(p.poll() is None for p in load.procs):
            rss_max = max(rss_max, aud.rss_kib())
            time.sleep(0.2)
        stall_rates = load.wait()
        time.sleep(max(0.0, 10.0 - (time.monotonic() - stall_start)))
        rss_max = max(rss_max, aud.rss_kib())
        assert aud.proc.poll() is None, f"the auditor died during the stall\n{aud.diagnostics()}"

        # 3. Reading again: the held lines come, then a notice of what did not fit.
        resumed = time.monotonic()
        out.resume()
        assert wait_until(lambda: out.notices and out.quiet_for(1.5), 30), (
            f"no loss notice after the stall\n{aud.diagnostics()}")
        first_after = [n for n in out.notices if n["_seen"] >= resumed]
        # 4. And it goes on: more load, its lines come at once.
        lines_mid = out.audit_lines
        Load(nginx, tmp_path, 3).wait()
        assert wait_until(lambda: out.quiet_for(1.5), 20)
        lines_after = out.audit_lines - lines_mid

        aud.proc.send_signal(signal.SIGTERM)
        rc = aud.wait_exit(15)
        out.thread.join(timeout=10)
    finally:
        served = nginx.served()
        diag = aud.diagnostics()
        aud.kill()

    total_served = sum(served.values())
    announced = out.announced()
    lost_lines = announced.get("output_buffer_full", 0) + announced.get("output_write_failed", 0)
    other_losses = {k: v for k, v in announced.items() if not k.startswith("output_")}
    report = (f"served by TLS version {served}; audit lines {out.audit_lines} (before the stall "
              f"{lines_before}, after it {lines_after}); {notices_before} notice(s) before the "
              f"stall; announced {announced}; rates without "
              f"stall {base_rates}, during {stall_rates}; RSS {rss_before} KiB before, max "
              f"{rss_max} KiB during; rc {rc}\n{diag}")
    print(report)
    assert rc == 0, report
    assert out.others == [], f"stdout lines that are neither audit lines nor notices: {report}"
    assert set(served) == {"TLSv1.2", "TLSv1.3"}, report
    # Memory: the queue is capped; the auditor's RSS does not grow with the stall.
    assert rss_max - rss_before < buffer_bytes // 1024 + 48 * 1024, report
    # nginx is not slowed by the stall (loosely: the machine is shared).
    assert sum(stall_rates) >= 0.5 * sum(base_rates), report
    # The stall lost lines, counted and announced on stdout once reading resumed.
    assert announced.get("output_buffer_full", 0) > 0, report
    assert first_after, f"no notice after reading resumed: {report}"
    assert "output buffer is full" in diag, report
    problems = notices_problems(out.notices)
    assert not problems, "\n".join(problems) + "\n" + report
    assert lines_after > 0, report
    # Every request nginx served has a line or is counted lost: exactly, when only the output
    # lost (the kernel side kept draining). Should the kernel side drop too (the auditor starved
    # of CPU on a shared machine), those requests are not countable one by one, but the loss
    # was announced: never silent.
    assert out.audit_lines + lost_lines <= total_served, report
    if other_losses:
        print(f"WARNING: losses beyond the output, announced: {other_losses}")
    else:
        assert out.audit_lines + lost_lines == total_served, report


# --------------------------------------------------------------------------------------------
# SIGTERM while stdout is stalled
# --------------------------------------------------------------------------------------------
def test_sigterm_during_stall_exits_in_time(nginx, stall_auditor, tmp_path):
    aud = stall_auditor(nginx.pid, ["--exit-timeout", "2"])
    aud.wait_ready()
    aud.out = out = PipeReader(aud.read_fd)
    out.pause()  # nobody reads: the pipe fills, the rest waits in the auditor's queue
    try:
        Load(nginx, tmp_path, 3).wait()
        time.sleep(1.0)  # the last lines are decided
        t0 = time.monotonic()
        aud.proc.send_signal(signal.SIGTERM)
        rc = aud.wait_exit(20)
        took = time.monotonic() - t0
        print(f"SIGTERM at {t0:.3f}, exit at {t0 + took:.3f}")
        # Read what the pipe holds now.
        out.resume()
        assert wait_until(lambda: out.eof, 20), "stdout not closed after the exit"
    finally:
        diag = aud.diagnostics()
        served = sum(nginx.served().values())
        aud.kill()
    report = f"exit after {took:.2f} s, rc {rc}; served {served}; {out.audit_lines} lines read\n{diag}"
    assert rc is not None, f"the auditor did not exit within 20 s of SIGTERM: {report}"
    # --exit-timeout 2 counts from the signal; the probes are detached meanwhile, and the kernel
    # takes an RCU grace period for each uprobe (0.1-0.2 s on a busy machine: ~4 s for the
    # per-call probes of nginx's three processes), which the exit cannot shorten.
    assert took < 2 + 6, report
    m = re.search(r"output: (\d+) lines written, (\d+) not written: stdout did not take them", diag)
    assert m, f"no count of unwritten lines on stderr: {report}"
    written, unwritten = int(m.group(1)), int(m.group(2))
    assert unwritten > 0, report
    assert rc == 1, f"lines were lost: the exit status says so: {report}"
    # The lines it says it wrote are in the pipe, whole (a line cut short at the interrupted
    # write is not counted as written; the reader drops the unterminated tail).
    assert out.audit_lines == written, report
    assert written + unwritten <= served, report


# --------------------------------------------------------------------------------------------
# the reader closes the pipe
# --------------------------------------------------------------------------------------------
def test_closed_stdout_is_a_clear_error(nginx, stall_auditor, tmp_path):
    aud = stall_auditor(nginx.pid)
    aud.wait_ready()
    try:
        os.close(aud.read_fd)  # the reader is gone
        aud.read_fd = -1
        curl(nginx, ["/load/a", "/load/b"], extra=["--tlsv1.2", "--tls-max", "1.2"])
        curl(nginx, ["/load/c"], extra=["--tlsv1.3"])
        rc = aud.wait_exit(15)
    finally:
        diag = aud.diagnostics()
        aud.kill()
    assert rc is not None, f"the auditor did not end after its stdout was closed\n{diag}"
    assert rc == 1, f"want exit status 1 (not a signal: {rc} < 0 is one)\n{diag}"
    assert re.search(r"stdout is closed \(write: Broken pipe; the reader of the audit lines is "
                     r"gone\)", diag), diag
    assert "summary:" in diag, diag
