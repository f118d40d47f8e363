#!/usr/bin/python3
"""The mke-audit-tap benchmark: what auditing costs, measured on this machine in one run.

    tools/bench.sh [--quick] [--only SECTION[,SECTION...]] [--out DIR]

(tools/bench.sh installs the packages and builds first, then runs this script.)

Every figure is a ratio or a per-request cost measured in alternated rounds of one run
(without auditor, metadata, request, without, metadata, request, ...) and reported as
min/median/max over the rounds, so that the noise of a shared machine shows.

Sections (in order): calibration, tax, h1, h2, go, memory, loss, replay, gbench, local.
Writes REPORT.md and report.json to bench/ (bench/quick/ with --quick or --only).
Recordings of plaintext (--record) go to a private temporary directory and are deleted.
Python 3 standard library only.
"""
import argparse
import datetime
import errno
import glob
import json
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
TAP = os.path.join(BUILD, "mke-audit-tap")
BENCH_BIN = os.path.join(BUILD, "tools", "bench")
SECTIONS = ("calibration", "tax", "h1", "h2", "go", "handshake", "memory", "loss", "replay",
            "gbench", "local")
# Live modes, alternated in each round: without the auditor; with it at metadata and request
# level (the default capture: keys); at metadata with the per-call probes (--capture
# plaintext), the fallback, for comparison.
MODES = ("none", "metadata", "request", "plaintext")
MODE_ARGS = {"metadata": ("metadata", []), "request": ("request", []),
             "plaintext": ("metadata", ["--capture", "plaintext"])}
LOSS_COUNTERS = ("ringbuf_drops", "truncated_calls", "user_read_faults", "conn_map_full",
                 "inflight_map_full")
T0 = time.monotonic()

# Targets of issue 10.
TARGET_AUDITOR_US = 1.5  # auditor's own CPU per nginx request
TARGET_IDLE_BYTES = 2048  # auditor memory per idle tracked connection
TARGET_REPLAY = {"h1 metadata": 1_000_000, "h1 request": 500_000, "h2 metadata": 500_000}
# Targets of issue 11 (the keys capture).
TARGET_NGINX_RATIO = {"metadata": 0.95, "request": 0.90}  # throughput with / without
TARGET_GO_CPU_ADDED = 0.05  # CPU added to the Go server per request, fraction of its own
# uprobe program runs per request on keep-alive connections: 0 on an established connection;
# the round's few handshakes (16 connections, ~10 runs each) amortize to well under 0.01.
TARGET_UPROBE_HITS = 0.01
TARGET_TAX = {"zero": 1.02, "tcp": 1.05}  # other processes: ratio with / without


class Settings:
    """Round lengths and counts: the full run stays under 15 minutes on 2 cores."""

    def __init__(self, quick):
        self.quick = quick
        self.rounds = 2 if quick else 3
        self.seconds = 2 if quick else 5  # load per round
        self.bodies_h1 = (0,) if quick else (0, 1024)
        self.bodies_h2 = (0,)
        self.conns = 16  # wrk -c and h2load -c
        self.h2_streams = 10  # h2load -m
        self.idle_conns = 2000 if quick else 10000
        self.active_conns = 200 if quick else 1000
        self.memory_rounds = 1 if quick else 2
        self.loss_rounds = 1 if quick else 2
        self.replay_requests = 150_000 if quick else 1_000_000  # the mixed corpus
        self.replay_requests_single = 100_000 if quick else 500_000  # h1, h2, go alone
        self.replay_rounds = 2 if quick else 3
        self.gbench_min_time = 0.05 if quick else 0.1
        self.gbench_repetitions = 1 if quick else 3
        self.calib_n = {"syscall": 1_000_000, "push": 200_000, "nop": 200_000,
                        "nop5": 200_000, "sub": 20_000, "uretprobe": 200_000}
        self.tax_n = {"zero": 300_000, "unix": 100_000, "tcp": 50_000}
        if quick:
            self.calib_n = {k: v // 4 for k, v in self.calib_n.items()}
            self.tax_n = {k: v // 4 for k, v in self.tax_n.items()}


def log(msg):
    t = time.monotonic() - T0
    print(f"[{int(t) // 60:2d}:{int(t) % 60:02d}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

PROCS = []  # everything started here, ended at exit (also on Ctrl-C)


def spawn(args, **kw):
    proc = subprocess.Popen(args, start_new_session=True, **kw)
    PROCS.append(proc)
    return proc


def spawn_tap(args, **kw):
    """The auditor; waits while build/mke-audit-tap is being relinked (a shared machine)."""
    deadline = time.time() + 120
    while True:
        try:
            return spawn(args, **kw)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.ETXTBSY, errno.ENOENT) or \
                    time.time() > deadline:
                raise
            log(f"{args[0]}: {e.strerror}; retrying (being rebuilt?)")
            time.sleep(2)


def end(proc, sig=signal.SIGTERM, timeout=15):
    """Ends proc and its process group (nginx's workers)."""
    if proc.returncode is None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in PROCS:
        PROCS.remove(proc)


def end_all():
    for proc in reversed(list(PROCS)):
        try:
            end(proc, timeout=5)
        except Exception as e:  # keep ending the others
            print(f"bench: could not end pid {proc.pid}: {e}", file=sys.stderr)


def cpu_ns(pid):
    """CPU time of every thread of pid (ns, from schedstat; Go servers work on many threads)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def tls_version(port, alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) as s:
        return f"{s.version()}, ALPN {s.selected_alpn_protocol()}, {s.cipher()[0]}"


def go_build(src, out):
    """Builds a stdlib-only Go program offline with Debian's golang-go (cached in build/)."""
    cache = os.path.join(BENCH_BIN, "go")
    env = dict(os.environ, HOME=cache, GOCACHE=f"{cache}/cache", GOPATH=f"{cache}/path",
               GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0")
    run(["go", "build", "-o", out, "."], env=env, cwd=src)
    return out


# ---------------------------------------------------------------- statistics and formatting

def mmm(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def fmt_num(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 100_000:
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.{min(digits, 1)}f}" if digits else f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt(m, digits=2, sign=False):
    """'median (min..max)' of a mmm() dict."""
    if not m:
        return "-"
    plus = "+" if sign and m["median"] > 0 else ""
    if m["min"] == m["max"]:
        return f"{plus}{fmt_num(m['median'], digits)}"
    return (f"{plus}{fmt_num(m['median'], digits)} ({fmt_num(m['min'], digits)} .. "
            f"{fmt_num(m['max'], digits)})")


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# ---------------------------------------------------------------- the auditor

class Auditor:
    """mke-audit-tap attached to pids, audit lines to a file in the private temp dir."""

    count = 0
    timings = []  # (seconds to ready, seconds from SIGINT to exit) of every auditor

    def __init__(self, bench, level, pids, extra=()):
        if level in MODE_ARGS:
            level, more = MODE_ARGS[level]
            extra = [*more, *extra]
        Auditor.count += 1
        self.bench = bench
        # Debian's bpftool does not name a program's owner: this auditor's programs are the
        # ones loaded while it starts (one auditor at a time here).
        before = self._program_ids()
        self.out_path = os.path.join(bench.tmp, f"lines-{Auditor.count}.jsonl")
        self.out = open(self.out_path, "wb")
        args = [TAP, "--level", level, "--license-key", "BENCH", *extra]
        for pid in pids:
            args += ["--pid", str(pid)]
        t = time.monotonic()
        self.proc = spawn_tap(args, stdout=self.out, stderr=subprocess.PIPE, text=True)
        self.err = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if not self.ready.wait(60):
            tail = "".join(self.err[-10:])
            end(self.proc, signal.SIGKILL)
            raise RuntimeError(f"auditor not ready within 60 s:\n{tail}")
        self.ready_s = time.monotonic() - t
        self.prog_ids = self._program_ids() - before
        bench.note_other_auditors()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.err.append(line)
            if re.search(r"\bready\b", line):
                self.ready.set()

    def cpu_ns(self):
        return cpu_ns(self.proc.pid)

    @staticmethod
    def _programs():
        try:
            out = subprocess.run(["bpftool", "--json", "prog", "show"], capture_output=True,
                                 text=True, timeout=30).stdout
            return json.loads(out)
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    @staticmethod
    def _program_ids():
        return {p.get("id") for p in Auditor._programs() or []}

    def uprobe_runs(self):
        """Runs of the uprobe programs this auditor holds (kernel.bpf_stats_enabled is on for
        the whole benchmark); None when bpftool cannot say."""
        progs = self._programs()
        if progs is None or not self.prog_ids:
            return None
        return sum(p.get("run_cnt", 0) for p in progs
                   if p.get("type") == "kprobe" and p.get("id") in self.prog_ids)

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def wait_drained(self, quiet=0.3, limit=10):
        """Until the auditor has written no line for `quiet` seconds (it polls every 20 ms)."""
        size, since, deadline = -1, time.monotonic(), time.monotonic() + limit
        while time.monotonic() < deadline:
            now = os.path.getsize(self.out_path)
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)

    def lines_so_far(self):
        self.out.flush()
        with open(self.out_path, "rb") as f:
            return f.read().count(b"\n")

    def stop(self, served=None):
        """SIGINT (writes every pending line), then the exit's facts and counters; with
        `served` (requests the server answered), lines per connection when some are missing."""
        pid = self.proc.pid
        cpu_before_exit = self.cpu_ns()
        t = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        deadline = time.time() + 60
        status = usage = None
        while time.time() < deadline:
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                break
            time.sleep(0.02)
        else:
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
        stop_s = time.monotonic() - t
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        PROCS.remove(self.proc)
        self.reader.join(timeout=10)
        self.out.close()
        with open(self.out_path, "rb") as f:
            data = f.read()
        os.unlink(self.out_path)
        facts = self._facts(data, usage)
        facts.update(ready_s=self.ready_s, stop_s=stop_s,
                     exit_cpu_ms=(facts["cpu_ns"] - cpu_before_exit) / 1e6)
        Auditor.timings.append((self.ready_s, stop_s))
        if served is not None and facts["lines"] < served:
            per = {}
            for peer in re.findall(rb'"sourceIPs":\["([^"]*)"', data):
                per[peer] = per.get(peer, 0) + 1
            facts["lines_per_connection"] = sorted(per.values())
        return facts

    def _facts(self, data, usage):
        text = "".join(self.err)
        counters = {}
        for m in re.finditer(r"kernel counters: (.*)", text):
            counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
        summary_line = next((line for line in reversed(self.err) if "summary:" in line), "")

        def num(pattern):
            m = re.search(pattern, summary_line)
            return int(m.group(1)) if m else None

        summary = {
            "records": num(r"(\d+) records"), "bad_records": num(r"\((\d+) bad\)"),
            "audit_lines": num(r"(\d+) audit lines"), "not_audited": num(r"(\d+) not audited"),
            "connections": num(r"connections (\d+) opened"), "gaps": num(r"(\d+) gaps"),
            "http_requests": num(r"http (\d+) requests"),
            "http_responses": num(r"http \d+ requests, (\d+) responses"),
            "parse_errors": num(r"(\d+) parse errors"),
            "h2_requests": num(r"http/2 (\d+) requests"),
            "h2_responses": num(r"http/2 \d+ requests, (\d+) responses"),
            "hpack_errors": num(r"(\d+) hpack errors"),
        }
        lines = data.count(b"\n")
        audited = data.count(b'"auditID"')
        notices = lines - audited
        losses = sum(counters.get(k, 0) for k in LOSS_COUNTERS) + (summary["gaps"] or 0)
        problems = [line.strip() for line in self.err
                    if re.search(r"\b(warning|error|critical)\b", line)
                    and "recording raw TLS plaintext" not in line]
        return {
            "exit_code": self.proc.returncode,
            "cpu_ns": (usage.ru_utime + usage.ru_stime) * 1e9,
            "max_rss_kib": usage.ru_maxrss,
            "lines": audited,
            "loss_notices": notices,
            "request_received_lines": data.count(b'"stage":"RequestReceived"'),
            "incomplete_lines": data.count(b"mke-audit-tap/incomplete"),
            "counters": counters,
            "summary": summary,
            "summary_line": summary_line.strip(),
            "losses": losses + notices,
            "problems": problems[:20],
        }


# ---------------------------------------------------------------- servers

def make_cert(directory):
    """An ECDSA P-256 certificate (cheap handshakes for the 10,000-connection memory test)."""
    key, cert = f"{directory}/key.pem", f"{directory}/cert.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"])
    return cert, key


class Nginx:
    """One nginx, one worker: HTTP/1.1 on TLS 1.2+1.3, HTTP/2 on TLS 1.2, stub_status on
    plain HTTP (the exact count of requests served). Bodies: / is 0 B, /1k is 1 KiB."""

    def __init__(self, bench):
        d = os.path.join(bench.tmp, "nginx")
        os.makedirs(d)
        cert, key = make_cert(d)
        self.h1_port, self.h2_port, self.stub_port = free_port(), free_port(), free_port()
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if nofile == resource.RLIM_INFINITY:
            nofile = 65536
        self.max_conns = max(1024, min(16384, nofile - 100))
        body = "x" * 1024
        locations = f'location / {{ return 200 ""; }} location /1k {{ return 200 "{body}"; }}'
        conf = f"""daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
worker_rlimit_nofile {nofile};
events {{ worker_connections {self.max_conns}; }}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 100000000; keepalive_timeout 600s;
  ssl_certificate {cert}; ssl_certificate_key {key};
  server {{ listen 127.0.0.1:{self.h1_port} ssl; ssl_protocols TLSv1.2 TLSv1.3; {locations} }}
  server {{ listen 127.0.0.1:{self.h2_port} ssl http2; ssl_protocols TLSv1.2; {locations} }}
  server {{ listen 127.0.0.1:{self.stub_port}; location / {{ stub_status; }} }}
}}
"""
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)
        self.proc = spawn(["nginx", "-e", f"{d}/error.log", "-c", f"{d}/nginx.conf"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in (self.h1_port, self.h2_port, self.stub_port):
            wait_port(port)
        workers = []
        deadline = time.time() + 10
        while not workers and time.time() < deadline:
            workers = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                     text=True).stdout.split()
            time.sleep(0.05)
        self.audit_pid = self.proc.pid  # the master: --pid covers its descendants
        self.cpu_pid = int(workers[0])
        self.name = "nginx"

    def served(self):
        with socket.create_connection(("127.0.0.1", self.stub_port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", data)
        return int(m.group(3))

    def stop(self):
        end(self.proc, signal.SIGQUIT)


class GoServer:
    """tests/e2e/go_https_server (net/http over crypto/tls), built with Debian's golang-go."""

    def __init__(self, bench):
        d = os.path.join(bench.tmp, "go")
        os.makedirs(d)
        cert, key = make_cert(d)
        binary = go_build(os.path.join(ROOT, "tests", "e2e", "go_https_server"),
                          os.path.join(BENCH_BIN, "go_https_server"))
        self.port = free_port()
        self.proc = spawn([binary, f"127.0.0.1:{self.port}", cert, key],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.audit_pid = self.cpu_pid = self.proc.pid
        self.name = "go"

    def served(self):
        return None  # no server-side count: the load generator's count is used

    def stop(self):
        end(self.proc)


# ---------------------------------------------------------------- load generators

def to_us(value, unit):
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(url, conns, seconds, close=False):
    extra = ["-H", "Connection: close"] if close else []
    out = run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", *extra, url]).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    res = {"tool": "wrk", "requests": int(m.group(1)),
           "seconds": to_us(m.group(2), m.group(3)) / 1e6,
           "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        res[f"p{p}_us"] = to_us(m.group(1), m.group(2)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    return res


def h2load(url, clients, streams, seconds, tmp):
    log_file = os.path.join(tmp, "h2load.log")
    out = run(["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{seconds}",
               f"--log-file={log_file}", url]).stdout
    m = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    latencies = []
    with open(log_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                latencies.append(int(parts[2]))
    os.unlink(log_file)
    latencies.sort()
    return {"tool": "h2load", "requests": int(r.group(4)),
            "seconds": to_us(m.group(1), m.group(2)) / 1e6, "rps": float(m.group(3)),
            "p50_us": percentile(latencies, 50), "p99_us": percentile(latencies, 99),
            "errors": int(r.group(5)) + int(r.group(6)) + int(r.group(7)), "non2xx": 0}


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, settings, tmp):
        self.s = settings
        self.tmp = tmp
        self.results = {}
        self.recordings = {}  # name -> {"path", "requests"}
        self.observations = []
        self.others = {}  # other mke-audit-tap processes seen during the run
        self.replays = set()  # others' --replay runs (no probes), seen during the run
        self.nginx = None
        self.go = None

    def note_other_auditors(self):
        """Another auditor on the machine may probe our servers too: say so in the report."""
        ours = {p.pid for p in PROCS}
        for pid in subprocess.run(["pgrep", "-x", "mke-audit-tap"], capture_output=True,
                                  text=True).stdout.split():
            if int(pid) not in ours and pid not in self.others and pid not in self.replays:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode().strip()
                    if " --replay " in f" {cmd} ":
                        self.replays.add(pid)  # probes nothing; only competes for the CPU
                    else:
                        self.others[pid] = cmd
                except OSError:
                    pass

    def get_nginx(self):
        if not self.nginx:
            log("starting nginx (one worker)")
            self.nginx = Nginx(self)
        return self.nginx

    def get_go(self):
        if not self.go:
            log("building and starting the Go HTTPS server")
            self.go = GoServer(self)
        return self.go

    # ------------------------------------------------------------ 1. calibration

    def calibration(self):
        binary = os.path.join(BENCH_BIN, "calibrate")
        dis = run(["objdump", "-d", "--no-show-raw-insn", binary]).stdout
        first = {}
        for name in ("cal_push", "cal_nop", "cal_nop5", "cal_sub"):
            m = re.search(rf"<{name}>:\n\s*[0-9a-f]+:\s*(.+)\n", dis)
            first[name] = re.sub(r"\s+", " ", m.group(1)).strip() if m else "?"
        res = {"first_instruction": first, "figures": {}}
        jobs = [("syscall", ["syscall"])] + [
            (k, ["probe", k]) for k in ("push", "nop", "nop5", "sub", "uretprobe")]
        for name, mode in jobs:
            log(f"calibration: {name}")
            out = run([binary, *mode, str(self.s.calib_n[name]), str(self.s.rounds)]).stdout
            rows = [json.loads(line) for line in out.splitlines() if line.strip()]
            res["figures"][name] = {"ns": mmm([r["ns_per_op"] for r in rows]), "rounds": rows}
        self.results["calibration"] = res

    # ------------------------------------------------------------ tax on unaudited processes

    def tax(self):
        nginx = self.get_nginx()
        binary = os.path.join(BENCH_BIN, "calibrate")
        rows = []
        for r in range(self.s.rounds):
            row = {}
            for mode in ("none", "metadata", "plaintext"):
                log(f"tax round {r + 1}/{self.s.rounds}: {mode}")
                tap = Auditor(self, mode, [nginx.audit_pid]) if mode != "none" else None
                row[mode] = {}
                for io in ("zero", "unix", "tcp"):
                    out = run([binary, io, str(self.s.tax_n[io]), "1"]).stdout
                    row[mode][io] = json.loads(out.splitlines()[-1])["ns_per_op"]
                if tap:
                    row.setdefault("audits", []).append(tap.stop())
            rows.append(row)
        figures = {}
        for io in ("zero", "unix", "tcp"):
            figures[io] = {
                "without_ns": mmm([row["none"][io] for row in rows]),
                "with_ns": mmm([row["metadata"][io] for row in rows]),
                "delta_ns": mmm([row["metadata"][io] - row["none"][io] for row in rows]),
                "ratio": mmm([row["metadata"][io] / row["none"][io] for row in rows]),
                "plaintext_ratio": mmm([row["plaintext"][io] / row["none"][io]
                                        for row in rows]),
            }
        self.results["tax"] = {"figures": figures, "rounds": rows}
        self._check_exit("tax", [a for row in rows for a in row.get("audits", [])])

    # ------------------------------------------------------------ live rounds

    def measure(self, server, load, mode, record=None):
        """One round of one mode: the load, with an auditor at `mode` (none: without)."""
        tap = None
        if mode != "none":
            extra = ["--record", record] if record else []
            tap = Auditor(self, mode, [server.audit_pid], extra)
        served0 = server.served()
        runs0 = tap.uprobe_runs() if tap else None
        cpu0 = cpu_ns(server.cpu_pid)
        tap0 = tap.cpu_ns() if tap else 0
        res = load()
        cpu1 = cpu_ns(server.cpu_pid)
        served1 = server.served()
        runs1 = tap.uprobe_runs() if tap else None
        exact = served0 is not None
        served = served1 - served0 - 1 if exact else res["requests"]
        out = {"load": res, "served": served, "served_exact": exact,
               "server_cpu_us": (cpu1 - cpu0) / max(served, 1) / 1e3}
        if tap:
            out["uprobe_runs_per_req"] = (None if runs0 is None or runs1 is None
                                          else (runs1 - runs0) / max(served, 1))
            tap.wait_drained()
            drained = tap.cpu_ns()
            st = tap.stop(served)
            out["audit"] = st
            # Up to the last line written; the exit (detaching the probes) is not per request.
            out["auditor_cpu_us"] = (drained - tap0) / max(served, 1) / 1e3
            out["auditor_startup_cpu_ms"] = tap0 / 1e6
            # nginx: the exact count. wrk/h2load: answers that came after the tool stopped
            # counting are audited too, so lines may exceed its count by up to its connections.
            out["missing"] = max(0, served - st["lines"])
            out["extra"] = max(0, st["lines"] - served)
            out["lost"] = st["losses"] + out["missing"]
        return out

    def live(self, key, title, server, load, note, record=None):
        """Rounds of without/metadata/request. The replay section's recording is taken in an
        extra metadata round that is not counted (--quick: in the first metadata round)."""
        rows = []
        path = record and os.path.join(self.tmp, f"rec-{record}.bin")
        res = None
        for r in range(self.s.rounds):
            row = {}
            for mode in MODES:
                log(f"{key} round {r + 1}/{self.s.rounds}: {mode}")
                rec = path if self.s.quick and r == 0 and mode == "metadata" else None
                row[mode] = self.measure(server, load, mode, record=rec)
                if rec:
                    res = row[mode]
            rows.append(row)
        if record and not res:
            log(f"{key}: recording round (metadata, --record; not counted)")
            res = self.measure(server, load, "metadata", record=path)
        if record:
            summ = res["audit"]["summary"]
            self.recordings[record] = {
                "path": path, "lines": res["audit"]["lines"],
                "requests": (summ["audit_lines"] or 0) + (summ["not_audited"] or 0)}
        result = {"title": title, "note": note, "figures": self.live_figures(rows),
                  "rounds": rows}
        self.results.setdefault("live", {})[key] = result
        self._check_exit(key, [row[m].get("audit") for row in rows for m in MODES])
        for row in rows:
            for m in MODES[1:]:
                x = row[m]
                self._note_loss(f"{key} at {m}", x)
        return result

    @staticmethod
    def live_figures(rows):
        figs = {}
        for m in MODES:
            f = {
                "rps": mmm([row[m]["load"]["rps"] for row in rows]),
                "p50_us": mmm([row[m]["load"]["p50_us"] for row in rows]),
                "p99_us": mmm([row[m]["load"]["p99_us"] for row in rows]),
                "server_cpu_us": mmm([row[m]["server_cpu_us"] for row in rows]),
                "served": mmm([row[m]["served"] for row in rows]),
                "errors": sum(row[m]["load"]["errors"] + row[m]["load"]["non2xx"]
                              for row in rows),
            }
            if m != "none":
                def d(field):
                    return [None if row[m]["load"][field] is None
                            or row["none"]["load"][field] is None
                            else row[m]["load"][field] - row["none"]["load"][field]
                            for row in rows]
                f.update({
                    "ratio": mmm([row[m]["load"]["rps"] / row["none"]["load"]["rps"]
                                  for row in rows]),
                    "p50_delta_us": mmm(d("p50_us")),
                    "p99_delta_us": mmm(d("p99_us")),
                    "probe_cost_us": mmm([row[m]["server_cpu_us"] - row["none"]["server_cpu_us"]
                                          for row in rows]),
                    "auditor_cpu_us": mmm([row[m]["auditor_cpu_us"] for row in rows]),
                    "total_cost_us": mmm([row[m]["server_cpu_us"] - row["none"]["server_cpu_us"]
                                          + row[m]["auditor_cpu_us"] for row in rows]),
                    "lines": sum(row[m]["audit"]["lines"] for row in rows),
                    "served_total": sum(row[m]["served"] for row in rows),
                    "missing": sum(row[m]["missing"] for row in rows),
                    "extra": sum(row[m]["extra"] for row in rows),
                    "losses": sum(row[m]["audit"]["losses"] for row in rows),
                    "request_received_lines": sum(row[m]["audit"]["request_received_lines"]
                                                  for row in rows),
                    "incomplete_lines": sum(row[m]["audit"]["incomplete_lines"]
                                            for row in rows),
                    "startup_cpu_ms": mmm([row[m]["auditor_startup_cpu_ms"] for row in rows]),
                    "uprobe_runs_per_req": mmm([row[m].get("uprobe_runs_per_req")
                                                for row in rows]),
                    "server_cpu_added": mmm([row[m]["server_cpu_us"]
                                             / row["none"]["server_cpu_us"] - 1
                                             for row in rows]),
                })
            figs[m] = f
        return figs

    def _note_loss(self, where, x):
        if not x["lost"]:
            return
        per = x["audit"].get("lines_per_connection")
        if per and len(per) > 20:
            per = f"{len(per)} connections, {per[:5]} .. {per[-5:]}"
        self.observations.append(
            f"{where}: {x['missing']} of {x['served']} requests without a line, "
            f"{x['audit']['losses']} counted losses; kernel data_calls "
            f"{x['audit']['counters'].get('data_calls')}"
            + (f"; lines per connection {per}" if per else "")
            + f" (auditor: {x['audit']['summary_line'][:300]})")

    def _check_exit(self, key, audits):
        for a in audits:
            if a and a["exit_code"] != 0:
                self.observations.append(f"{key}: the auditor exited with {a['exit_code']}")
            if a and a["problems"]:
                self.observations.append(f"{key}: auditor stderr: {a['problems'][0][:300]}")

    def h1(self):
        nginx = self.get_nginx()
        version = tls_version(nginx.h1_port, "http/1.1")
        for body in self.s.bodies_h1:
            path = "/1k" if body else "/"
            url = f"https://127.0.0.1:{nginx.h1_port}{path}"
            self.live(f"h1_{body}", f"nginx, HTTP/1.1 keep-alive, {body} B body", nginx,
                      lambda url=url: wrk(url, self.s.conns, self.s.seconds),
                      f"wrk -t1 -c{self.s.conns} -d{self.s.seconds}s {path}; TLS: {version}",
                      record="h1" if body == 0 else None)

    def h2(self):
        nginx = self.get_nginx()
        version = tls_version(nginx.h2_port, "h2")
        for body in self.s.bodies_h2:
            path = "/1k" if body else "/"
            url = f"https://127.0.0.1:{nginx.h2_port}{path}"
            self.live(f"h2_{body}", f"nginx, HTTP/2, {body} B body", nginx,
                      lambda url=url: h2load(url, self.s.conns, self.s.h2_streams,
                                             self.s.seconds, self.tmp),
                      f"h2load -t1 -c{self.s.conns} -m{self.s.h2_streams} -D{self.s.seconds} "
                      f"{path}; TLS: {version}", record="h2" if body == 0 else None)

    def go_section(self):
        go = self.get_go()
        version = tls_version(go.port, "http/1.1")
        url = f"https://127.0.0.1:{go.port}/"
        self.live("go", "Go net/http server (tests/e2e/go_https_server), HTTP/1.1 keep-alive",
                  go, lambda: wrk(url, self.s.conns, self.s.seconds),
                  f"wrk -t1 -c{self.s.conns} -d{self.s.seconds}s / (a ~60 B JSON answer); "
                  f"TLS: {version}; CPU summed over all the server's threads", record="go")

    def handshake(self):
        """Every request on a new connection (wrk with Connection: close): a full TLS 1.3
        handshake each, so the server CPU added per request is the cost per handshake."""
        nginx = self.get_nginx()
        url = f"https://127.0.0.1:{nginx.h1_port}/"
        self.live("handshake", "nginx, a new TLS connection per request (full handshakes)",
                  nginx, lambda: wrk(url, self.s.conns, self.s.seconds, close=True),
                  f"wrk -t1 -c{self.s.conns} -d{self.s.seconds}s -H 'Connection: close' /; "
                  f"TLS: {tls_version(nginx.h1_port, 'http/1.1')}")

    # ------------------------------------------------------------ local socket

    LOCAL_SERVER = r"""
import ctypes, os, socket, ssl, sys  # ssl: libssl mapped, so the auditor probes the process
from http.server import BaseHTTPRequestHandler
from socketserver import UnixStreamServer
ctypes.CDLL(None).prctl(15, b"dockerd", 0, 0, 0)  # PR_SET_NAME: audited as a dockerd
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
    def address_string(self):
        return "local"
srv = UnixStreamServer(sys.argv[1], H)  # one thread: its CPU is the server's
os.chmod(sys.argv[1], 0o600)
print("ready", flush=True)
srv.serve_forever()
"""

    def local(self):
        """dockerd's local socket path: a server named dockerd (Python's http.server on a Unix
        socket, libssl mapped so the per-call probes are attached in plaintext capture) gets
        keep-alive requests and one connection per request; the auditor's uprobe programs must
        not run for them (the bytes come from the socket tracepoints), and every request must
        have its line."""
        d = os.path.join(self.tmp, "local")
        os.makedirs(d)
        sock_path = os.path.join(d, "docker.sock")
        script = os.path.join(d, "server.py")
        with open(script, "w") as f:
            f.write(self.LOCAL_SERVER)
        server = spawn([sys.executable, script, sock_path], stdout=subprocess.PIPE, text=True)
        if not server.stdout.readline().startswith("ready"):
            raise RuntimeError("local socket server did not start")
        n_keep, n_new = (500, 50) if self.s.quick else (5000, 500)

        def requests(n, keep_alive):
            conn = None
            for _ in range(n):
                if conn is None:
                    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    conn.connect(sock_path)
                    reader = conn.makefile("rb")
                conn.sendall(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n"
                             + (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n")
                length = 0
                while True:
                    line = reader.readline()
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line in (b"\r\n", b""):
                        break
                reader.read(length)
                if not keep_alive:
                    reader.close()
                    conn.close()
                    conn = None
            if conn is not None:
                reader.close()
                conn.close()

        rows = {}
        try:
            for mode in ("metadata", "plaintext"):
                log(f"local: {mode}")
                tap = Auditor(self, mode, [server.pid])
                row = {}
                for kind, n, keep in (("keep_alive", n_keep, True), ("new_conn", n_new, False)):
                    runs0 = tap.uprobe_runs()
                    cpu0 = cpu_ns(server.pid)
                    requests(n, keep)
                    runs1 = tap.uprobe_runs()
                    row[kind] = {
                        "requests": n,
                        "uprobe_runs_per_req": (None if runs0 is None or runs1 is None
                                                else (runs1 - runs0) / n),
                        "server_cpu_us": (cpu_ns(server.pid) - cpu0) / n / 1e3}
                tap.wait_drained()
                # How the process was probed: the zero runs mean something only with probes.
                row["probed"] = next((ln.strip() for ln in tap.err if "auditing pid" in ln), "")
                st = tap.stop(n_keep + n_new)
                row["audit"] = st
                row["missing"] = max(0, n_keep + n_new - st["lines"])
                rows[mode] = row
        finally:
            end(server)
        self.results["local"] = rows
        for mode, row in rows.items():
            for kind in ("keep_alive", "new_conn"):
                runs = row[kind]["uprobe_runs_per_req"]
                if runs:
                    self.observations.append(
                        f"local socket ({mode}, {kind}): {runs:.2f} uprobe runs per request")
            if row["missing"]:
                self.observations.append(
                    f"local socket ({mode}): {row['missing']} requests without a line")

    # ------------------------------------------------------------ 5. memory

    def memory(self):
        nginx = self.get_nginx()
        connhold = go_build(os.path.join(ROOT, "tools", "bench", "connhold"),
                            os.path.join(BENCH_BIN, "connhold"))
        n_idle = min(self.s.idle_conns, nginx.max_conns - 50)
        n_active = min(self.s.active_conns, nginx.max_conns - 50)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, n_idle + 1000) if hard != resource.RLIM_INFINITY else n_idle + 1000
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        rows = []
        for r in range(self.s.memory_rounds):
            log(f"memory round {r + 1}/{self.s.memory_rounds}: {n_idle} idle connections")
            tap = Auditor(self, "metadata", [nginx.audit_pid])
            time.sleep(0.5)
            before = tap.rss_kib()
            hold = spawn([connhold, f"127.0.0.1:{nginx.h1_port}", str(n_idle), "64"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            ready, _, _ = select.select([hold.stdout], [], [], 180)
            line = hold.stdout.readline() if ready else "timeout"
            if not line.startswith("ready"):
                end(hold)
                tap.stop()
                raise RuntimeError(f"connhold: {line.strip()}")
            deadline = time.time() + 30
            while tap.lines_so_far() < n_idle and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            after = tap.rss_kib()
            hold.stdin.close()
            end(hold)
            idle = tap.stop()

            log(f"memory round {r + 1}/{self.s.memory_rounds}: {n_active} active connections")
            tap = Auditor(self, "metadata", [nginx.audit_pid])
            time.sleep(0.5)
            active_before = tap.rss_kib()
            load = spawn(["wrk", "-t1", f"-c{n_active}", f"-d{max(3, self.s.seconds)}s",
                          f"https://127.0.0.1:{nginx.h1_port}/"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            peak = active_before
            while load.poll() is None:
                peak = max(peak, tap.rss_kib())
                time.sleep(0.1)
            out = load.stdout.read()
            end(load)
            m = re.search(r"(\d+) requests in", out)
            active = tap.stop()
            rows.append({
                "idle_conns": n_idle, "rss_before_kib": before, "rss_after_kib": after,
                "idle_bytes_per_conn": (after - before) * 1024 / n_idle,
                "idle_audit": {k: idle[k] for k in ("lines", "losses", "counters", "summary")},
                "active_conns": n_active, "active_rss_before_kib": active_before,
                "active_rss_peak_kib": peak,
                "active_bytes_per_conn": (peak - active_before) * 1024 / n_active,
                "active_requests": int(m.group(1)) if m else None,
                "active_audit": {k: active[k] for k in ("lines", "losses", "counters",
                                                        "summary")},
            })
            if idle["lines"] < n_idle or idle["losses"]:
                self.observations.append(
                    f"memory: {idle['lines']} lines for {n_idle} idle connections' requests, "
                    f"{idle['losses']} losses")
            self._check_exit("memory", [idle, active])
        self.results["memory"] = {
            "idle_bytes_per_conn": mmm([row["idle_bytes_per_conn"] for row in rows]),
            "active_bytes_per_conn": mmm([row["active_bytes_per_conn"] for row in rows]),
            "rounds": rows,
        }

    # ------------------------------------------------------------ 6. loss

    def loss(self):
        nginx = self.get_nginx()
        c = 64
        loads = {
            "h1 c64": lambda: wrk(f"https://127.0.0.1:{nginx.h1_port}/", c, self.s.seconds),
            "h2 c64 m32": lambda: h2load(f"https://127.0.0.1:{nginx.h2_port}/", c, 32,
                                         self.s.seconds, self.tmp),
        }
        if self.s.quick:
            loads.pop("h2 c64 m32")
        rows = []
        for r in range(self.s.loss_rounds):
            for name, load in loads.items():
                row = {"load": name}
                for mode in ("none", "metadata"):
                    log(f"loss round {r + 1}/{self.s.loss_rounds}: {name} {mode}")
                    row[mode] = self.measure(nginx, load, mode)
                rows.append(row)
        self.results["loss"] = {"rounds": rows}
        self._check_exit("loss", [row["metadata"].get("audit") for row in rows])
        for row in rows:
            x = row["metadata"]
            self._note_loss(f"loss {row['load']}", x)

    def loss_summary(self):
        """Every live round with an auditor: the highest rate without any counted loss."""
        points = []
        for key, sec in self.results.get("live", {}).items():
            for row in sec["rounds"]:
                for m in MODES[1:]:
                    points.append((key, m, row[m], row["none"]["load"]["rps"]))
        for row in self.results.get("loss", {}).get("rounds", []):
            points.append((row["load"], "metadata", row["metadata"], row["none"]["load"]["rps"]))
        clean = [p for p in points if not p[2]["lost"]]
        lossy = [p for p in points if p[2]["lost"]]
        best = max(clean, key=lambda p: p[2]["load"]["rps"], default=None)
        worst = min(lossy, key=lambda p: p[2]["load"]["rps"], default=None)
        return {
            "rounds": len(points), "rounds_with_loss": len(lossy),
            "max_rps_without_loss": best and {"where": best[0], "level": best[1],
                                              "rps": best[2]["load"]["rps"],
                                              "rps_without_auditor": best[3]},
            "min_rps_with_loss": worst and {"where": worst[0], "level": worst[1],
                                            "rps": worst[2]["load"]["rps"],
                                            "lost": worst[2]["lost"]},
        }

    # ------------------------------------------------------------ 7. replay

    def replay(self):
        need = [k for k in ("h1", "h2", "go") if k not in self.recordings]
        if need:
            saved, self.s.rounds = self.s.rounds, 0  # recording rounds only
            try:
                if "h1" in need:
                    bodies, self.s.bodies_h1 = self.s.bodies_h1, (0,)
                    self.h1()
                    self.s.bodies_h1 = bodies
                if "h2" in need:
                    self.h2()
                if "go" in need:
                    self.go_section()
            finally:
                self.s.rounds = saved
            for k in need:  # recording-only sections are not results
                self.results["live"].pop({"h1": "h1_0", "h2": "h2_0", "go": "go"}[k], None)
        recs = self.recordings
        multiply = os.path.join(BENCH_BIN, "rec_multiply")
        corpora = {}

        def build(name, inputs):
            per_copy = sum(recs[k]["requests"] for k in inputs)
            want = self.s.replay_requests if len(inputs) > 1 else self.s.replay_requests_single
            copies = max(1, math.ceil(want / max(per_copy, 1)))
            path = os.path.join(self.tmp, f"corpus-{name}.bin")
            log(f"replay: corpus {name}: {copies} copies of {per_copy} requests")
            run([multiply, path, str(copies), *[recs[k]["path"] for k in inputs]])
            corpora[name] = {"path": path, "copies": copies, "requests_per_copy": per_copy,
                             "lines_per_copy": sum(recs[k]["lines"] for k in inputs),
                             "bytes": os.path.getsize(path)}

        build("mixed", ("h1", "h2", "go"))
        for k in ("h1", "h2", "go"):
            build(k, (k,))
        configs = [("mixed", "metadata", "mke"), ("mixed", "metadata", "k8s"),
                   ("mixed", "request", "mke"), ("mixed", "request", "k8s"),
                   ("h1", "metadata", "mke"), ("h1", "request", "mke"),
                   ("h2", "metadata", "mke"), ("go", "metadata", "mke")]
        runs = {c: [] for c in configs}
        for r in range(self.s.replay_rounds):
            for c in configs:
                log(f"replay round {r + 1}/{self.s.replay_rounds}: {' '.join(c)}")
                runs[c].append(self.replay_once(corpora[c[0]]["path"], c[1], c[2]))
        for k in ("h1", "h2", "go"):
            os.unlink(recs[k]["path"])  # plaintext: never kept
        figures = []
        for c in configs:
            rs = runs[c]
            corpus = corpora[c[0]]
            expected = corpus["copies"] * corpus["lines_per_copy"]
            fig = {"corpus": c[0], "level": c[1], "format": c[2],
                   "requests": rs[0]["requests"], "lines": rs[0]["lines"],
                   "rps_per_core": mmm([x["rps_per_core"] for x in rs]),
                   "rps_wall": mmm([x["rps_wall"] for x in rs]),
                   "exit_codes": sorted({x["exit_code"] for x in rs}), "runs": rs}
            if c[1] == "metadata" and c[2] == "mke" and rs[0]["lines"] != expected:
                self.observations.append(
                    f"replay {c[0]}: {rs[0]['lines']} lines, expected {expected} "
                    f"({corpus['copies']} copies x {corpus['lines_per_copy']} live lines)")
            if any(x["exit_code"] != 0 for x in rs):
                self.observations.append(f"replay {' '.join(c)}: exit codes {fig['exit_codes']}")
            figures.append(fig)
        for corpus in corpora.values():
            os.unlink(corpus.pop("path"))
        self.results["replay"] = {"corpora": corpora, "figures": figures}

    def replay_once(self, corpus, level, fmt_name):
        args = [TAP, "--replay", corpus, "--level", level, "--format", fmt_name,
                "--license-key", "BENCH"]
        t = time.monotonic()
        proc = spawn_tap(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        PROCS.remove(proc)
        m = re.search(r"(\d+) audit lines, (\d+) not audited", err)
        lines, not_audited = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        cpu = usage.ru_utime + usage.ru_stime
        requests = lines + not_audited
        return {"requests": requests, "lines": lines, "not_audited": not_audited,
                "cpu_s": cpu, "wall_s": wall, "rps_per_core": requests / cpu if cpu else None,
                "rps_wall": requests / wall, "exit_code": proc.returncode,
                "max_rss_kib": usage.ru_maxrss}

    # ------------------------------------------------------------ 8. Google Benchmark

    def gbench(self):
        res = {}
        for binary in sorted(glob.glob(os.path.join(BENCH_BIN, "*_bench"))):
            name = os.path.basename(binary)
            log(f"gbench: {name}")
            out = run([binary, "--benchmark_format=json",
                       f"--benchmark_min_time={self.s.gbench_min_time}",
                       f"--benchmark_repetitions={self.s.gbench_repetitions}"]).stdout
            data = json.loads(out)
            per = {}
            for b in data["benchmarks"]:
                if b.get("run_type") == "aggregate":
                    continue
                scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
                entry = per.setdefault(b.get("run_name", b["name"]), {"cpu_ns": [],
                                                                      "real_ns": []})
                entry["cpu_ns"].append(b["cpu_time"] * scale)
                entry["real_ns"].append(b["real_time"] * scale)
                for k, v in b.items():  # user counters (bytes_per_second, items, ...)
                    if k not in entry and isinstance(v, (int, float)) and k not in (
                            "cpu_time", "real_time", "iterations", "repetitions",
                            "repetition_index", "threads", "family_index",
                            "per_family_instance_index"):
                        entry[k] = v
            res[name] = {k: dict(v, cpu_ns=mmm(v["cpu_ns"]), real_ns=mmm(v["real_ns"]))
                         for k, v in per.items()}
            res[name]["_context"] = {k: data.get("context", {}).get(k) for k in
                                     ("num_cpus", "mhz_per_cpu", "library_build_type")}
        self.results["gbench"] = res


# ---------------------------------------------------------------- machine and report

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    pkgs = {}
    for p in ("nginx", "nginx-core", "openssl", "libssl3", "golang-go", "wrk", "nghttp2-client",
              "libbenchmark-dev", "libbpf1", "linux-perf"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout:
            pkgs[p] = r.stdout
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    version = subprocess.run([TAP, "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "memory_mib": mem,
            "kernel": platform.release(), "debian": debian, "packages": pkgs, "go": go,
            "auditor": version, "git": git, "loadavg_at_start": os.getloadavg()}


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(value, target, unit, lower_is_better=True):
    if value is None:
        return "not measured"
    if (value <= target) if lower_is_better else (value >= target):
        return "**met**"
    if lower_is_better and target == 0:
        return f"**missed**: {fmt_num(value)} {unit}"
    if lower_is_better:
        return f"**missed** by {value / target:.2f}x ({fmt_num(value - target)} {unit} over)"
    return (f"**missed**: {value / target:.2f} of the target ({fmt_num(target - value, 0)} "
            f"{unit} short, {target / value:.2f}x to go)")


def targets(results):
    rows = []
    live = results.get("live", {})
    h1 = live.get("h1_0", {}).get("figures", {})
    for level in ("metadata", "request"):
        m = h1.get(level, {}).get("auditor_cpu_us")
        rows.append({"target": f"auditor's own CPU per nginx request (HTTP/1.1, {level}) "
                               f"<= {TARGET_AUDITOR_US} us",
                     "value": m and m["median"], "unit": "us", "min_max": m,
                     "verdict": verdict(m and m["median"], TARGET_AUDITOR_US, "us")})
    for level, target in TARGET_NGINX_RATIO.items():
        m = h1.get(level, {}).get("ratio")
        rows.append({"target": f"nginx throughput with the auditor ({level}) / without >= "
                               f"{target}", "value": m and m["median"], "unit": "",
                     "min_max": m, "verdict": verdict(m and m["median"], target, "",
                                                      lower_is_better=False)})
    m = h1.get("metadata", {}).get("uprobe_runs_per_req")
    rows.append({"target": "uprobe program runs per request on keep-alive connections "
                           f"(nginx, metadata; the load's 16 handshakes included) < "
                           f"{TARGET_UPROBE_HITS:g}",
                 "value": m and m["median"], "unit": "", "min_max": m,
                 "verdict": verdict(m and m["median"], TARGET_UPROBE_HITS, "")})
    go = live.get("go", {}).get("figures", {})
    m = go.get("metadata", {}).get("server_cpu_added")
    rows.append({"target": f"CPU added to the Go server per request (metadata) <= "
                           f"{TARGET_GO_CPU_ADDED:.0%} of its own", "value": m and m["median"],
                 "unit": "", "min_max": m,
                 "verdict": verdict(m and m["median"], TARGET_GO_CPU_ADDED, "")})
    tax = results.get("tax", {}).get("figures", {})
    for io, target in TARGET_TAX.items():
        m = tax.get(io, {}).get("ratio")
        rows.append({"target": f"other processes: {io} read/write time with / without <= "
                               f"{target}", "value": m and m["median"], "unit": "",
                     "min_max": m, "verdict": verdict(m and m["median"], target, "")})
    hs = live.get("handshake", {}).get("figures", {})
    m = hs.get("metadata", {}).get("probe_cost_us")
    rows.append({"target": "server CPU added per full TLS handshake (metadata; reported)",
                 "value": m and m["median"], "unit": "us", "min_max": m,
                 "verdict": "reported"})
    mem = results.get("memory", {}).get("idle_bytes_per_conn")
    rows.append({"target": f"auditor memory per idle tracked connection <= "
                           f"{TARGET_IDLE_BYTES} B", "value": mem and mem["median"],
                 "unit": "B", "min_max": mem,
                 "verdict": verdict(mem and mem["median"], TARGET_IDLE_BYTES, "B")})
    figs = {(f["corpus"], f["level"], f["format"]): f
            for f in results.get("replay", {}).get("figures", [])}
    for label, target in TARGET_REPLAY.items():
        corpus, level = label.split()
        f = figs.get((corpus, level, "mke"))
        m = f and f["rps_per_core"]
        rows.append({"target": f"replay {label} (mke) >= {target:,} requests/s per core",
                     "value": m and m["median"], "unit": "req/s", "min_max": m,
                     "verdict": verdict(m and m["median"], target, "req/s",
                                        lower_is_better=False)})
    return rows


def render(report):
    r = report["results"]
    meta = report["meta"]
    mc = meta["machine"]
    out = []
    w = out.append
    w("# mke-audit-tap benchmark report\n")
    quick = " (**--quick smoke run: short rounds, not for conclusions**)" if meta["quick"] else ""
    w(f"Written by `{meta['command']}` on {meta['started']} in "
      f"{meta['duration_s'] / 60:.1f} min{quick}; auditor `{mc['auditor']}` at `{mc['git']}`.\n")
    w("What it measures: what auditing with mke-audit-tap costs the audited servers, the "
      "auditor itself and the rest of the machine, on this machine. Real servers (nginx with "
      "one worker, a Go net/http server) serve TLS load from real clients (wrk, h2load) "
      "without the auditor and with it at `--level metadata` and `--level request` (the "
      "default capture: TLS secrets per handshake, socket bytes decrypted in the auditor), and "
      "at metadata with `--capture plaintext` (per-call probes, the fallback), in "
      f"alternated rounds of one run ({meta['rounds']} rounds of {meta['seconds']} s: without, "
      "metadata, request, plaintext, without, ...). Each figure is a ratio or a per-request cost within a "
      "round, shown as **median (min .. max)** over the rounds. CPU of the servers comes from "
      "`/proc/PID/task/*/schedstat` (all threads, kernel time included: the uprobe traps show "
      "up there), the auditor's the same way, from just before the load until it has written "
      "its last line (its start and its exit, which detaches the probes, are not counted). "
      "Requests served are nginx's own count (stub_status); for the Go server, wrk's. The "
      "machine is shared: compare figures within a round, not across runs.\n")
    w("Run it: `tools/bench.sh` as root (installs packages, builds, then "
      "`tools/bench/bench.py`); `--quick` for a smoke run, `--only SECTION` for one section. "
      "Raw numbers, every round: `bench/report.json`.\n")
    w("## Machine\n")
    pk = ", ".join(f"{k} {v}" for k, v in mc["packages"].items())
    w(md_table(["", ""], [
        ["CPU", f"{mc['cpu']}, {mc['cores']} cores, {mc['memory_mib']} MiB"],
        ["kernel", mc["kernel"]], ["Debian", mc["debian"]], ["packages", pk],
        ["Go", mc["go"]],
        ["load average (1, 5, 15 min) at start / end",
         " ".join(f"{x:.2f}" for x in mc["loadavg_at_start"]) + " / "
         + " ".join(f"{x:.2f}" for x in meta["loadavg_at_end"])]]))
    w("")
    if meta.get("other_auditors"):
        w("**Other mke-audit-tap processes were running during the run** (they may have "
          "probed the benchmark's servers too):\n")
        for pid, cmd in meta["other_auditors"].items():
            w(f"- pid {pid}: `{cmd[:200]}`")
        w("")

    w("## Targets\n")
    w(md_table(["target", "measured: median (min .. max)", "verdict"],
               [[t["target"], f"{fmt(t['min_max'])} {t['unit']}", t["verdict"]]
                for t in report["targets"]]))
    w("")

    if "calibration" in r:
        c = r["calibration"]
        w("## 1. Calibration: what a syscall and a uprobe hit cost here\n")
        w("`build/tools/bench/calibrate` (tools/bench/calibrate.c): a loop calling a function "
          "of its own, without and then with a uprobe on it (perf_event_open with the uprobe "
          "PMU, a BPF program that returns 0); ns per call = (with - without) / N, thread CPU "
          "time. The probed first instructions, as objdump shows them: " +
          ", ".join(f"`{k}`: `{v}`" for k, v in c["first_instruction"].items()) + ".\n")
        label = {"syscall": "getppid() syscall",
                 "push": "uprobe hit, `push %rbp` (emulated)",
                 "nop": "uprobe hit, 1-byte `nop` (emulated)",
                 "nop5": "uprobe hit, 5-byte `nopl` (optimizable to a call on newer kernels)",
                 "sub": "uprobe hit, `sub $0x18,%rsp` (single-stepped; how SSL_read begins)",
                 "uretprobe": "uretprobe: entry (`push`) + return"}
        w(md_table(["what", "ns per call"],
                   [[label[k], fmt(v["ns"], 0)] for k, v in c["figures"].items()]))
        w("")
    if "tax" in r:
        t = r["tax"]["figures"]
        w("## Tax on processes that are not audited\n")
        w("The same program, an unrelated process: ns per 64-byte `read()` of /dev/zero, per "
          "64-byte `write()`+`read()` pair over an AF_UNIX socketpair and over loopback TCP, "
          "without an auditor and with one attached to the benchmark's nginx (metadata), "
          "alternated.\n")
        label = {"zero": "read /dev/zero", "unix": "AF_UNIX write+read",
                 "tcp": "loopback TCP write+read"}
        w(md_table(["syscall", "without (ns)", "with auditor (ns)", "added (ns)", "ratio",
                    "ratio with --capture plaintext"],
                   [[label[k], fmt(v["without_ns"], 0), fmt(v["with_ns"], 0),
                     fmt(v["delta_ns"], 0, True), fmt(v["ratio"], 3),
                     fmt(v.get("plaintext_ratio"), 3)] for k, v in t.items()]))
        w("")

    sec_no = {"h1": "2", "h2": "3", "go": "4", "handshake": "4b"}
    for key, sec in r.get("live", {}).items():
        f = sec["figures"]
        w(f"## {sec_no[key.split('_')[0]]}. {sec['title']}\n")
        w(f"{sec['note']}.\n")
        rows = []
        for m in MODES:
            x = f[m]
            if m == "none":
                rows.append(["without", fmt(x["rps"], 0), "1", fmt(x["p50_us"], 0), "",
                             fmt(x["p99_us"], 0), ""])
            else:
                rows.append([m, fmt(x["rps"], 0), fmt(x["ratio"], 3), fmt(x["p50_us"], 0),
                             fmt(x["p50_delta_us"], 0, True), fmt(x["p99_us"], 0),
                             fmt(x["p99_delta_us"], 0, True)])
        w(md_table(["auditor", "req/s", "throughput ratio", "p50 us", "p50 added", "p99 us",
                    "p99 added"], rows))
        w("")
        rows = []
        for m in MODES:
            x = f[m]
            if m == "none":
                rows.append(["without", fmt(x["server_cpu_us"]), "", "", "", "", "", ""])
            else:
                rows.append([m, fmt(x["server_cpu_us"]), fmt(x["probe_cost_us"], 2, True),
                             fmt(x["auditor_cpu_us"]), fmt(x["total_cost_us"], 2, True),
                             f"{x['lines']:,} / {x['served_total']:,}",
                             f"{x['losses']} / {x['missing']}",
                             fmt(x.get("uprobe_runs_per_req"), 2)])
        w(md_table(["auditor", "server CPU us/req", "added in the server (probes)",
                    "auditor CPU us/req", "total added us/req", "lines / requests served",
                    "counted losses / missing lines", "uprobe runs per request"], rows))
        w("")
        extra = []
        for m in MODES[1:]:
            x = f[m]
            if x["extra"]:
                extra.append(f"{m}: {x['extra']} lines beyond the load tool's count (answers "
                             "after it stopped counting)")
            if x["request_received_lines"]:
                extra.append(f"{m}: {x['request_received_lines']} lines at RequestReceived "
                             "(no response seen: streams cut when the load tool stopped)")
            if x["incomplete_lines"]:
                extra.append(f"{m}: {x['incomplete_lines']} lines marked incomplete")
            if f[m]["errors"] or f["none"]["errors"]:
                extra.append(f"{m}: load tool errors {f[m]['errors']} (without: "
                             f"{f['none']['errors']})")
        if extra:
            w("Notes: " + "; ".join(extra) + ".\n")

    if "memory" in r:
        mm = r["memory"]
        row0 = mm["rounds"][0]
        w("## 5. Memory\n")
        w(f"Idle: {row0['idle_conns']:,} TLS connections to nginx (tools/bench/connhold, Go), "
          "each makes one request and then stays open; the auditor's VmRSS before and after "
          f"(all lines written). Active: wrk with {row0['active_conns']:,} connections, the "
          "auditor's peak VmRSS during the load minus before. Kernel memory (BPF maps, ring "
          "buffer) is not in RSS.\n")
        w(md_table(["", "bytes per connection", "RSS before -> after (KiB), per round"], [
            ["idle tracked connection", fmt(mm["idle_bytes_per_conn"], 0),
             "; ".join(f"{x['rss_before_kib']:,} -> {x['rss_after_kib']:,}"
                       for x in mm["rounds"])],
            ["active connection", fmt(mm["active_bytes_per_conn"], 0),
             "; ".join(f"{x['active_rss_before_kib']:,} -> {x['active_rss_peak_kib']:,}"
                       for x in mm["rounds"])]]))
        w("")

    if report.get("loss_summary", {}).get("rounds"):
        ls = report["loss_summary"]
        w("## 6. Loss\n")
        w("Every round with an auditor above (and extra rounds at 64 connections) is checked: "
          "audit lines against requests served, the kernel's loss counters (ring buffer drops, "
          "truncated calls, unreadable memory, full maps), stream gaps and in-band loss "
          "notices.\n")
        b = ls["max_rps_without_loss"]
        if ls["rounds_with_loss"] == 0 and b:
            w(f"No loss in any of {ls['rounds']} rounds: **no loss up to "
              f"{b['rps']:,.0f} req/s** ({b['where']}, {b['level']}; server-bound: the server "
              f"with probes is saturated, {b['rps_without_auditor']:,.0f} req/s without the "
              "auditor).\n")
        else:
            x = ls["min_rps_with_loss"]
            w(f"{ls['rounds_with_loss']} of {ls['rounds']} rounds lost something; the slowest "
              f"of them ran at {x['rps']:,.0f} req/s ({x['where']}, {x['level']}, {x['lost']} "
              "lost). " + (f"Highest rate without loss: {b['rps']:,.0f} req/s ({b['where']}, "
                           f"{b['level']})." if b else "") + "\n")
        rows = []
        for row in r.get("loss", {}).get("rounds", []):
            x = row["metadata"]
            rows.append([row["load"], f"{row['none']['load']['rps']:,.0f}",
                         f"{x['load']['rps']:,.0f}", f"{x['audit']['lines']:,}",
                         f"{x['served']:,}", x["audit"]["losses"], x["missing"]])
        if rows:
            w(md_table(["load (metadata)", "req/s without", "req/s with", "lines", "served",
                        "counted losses", "missing lines"], rows))
            w("")

    if "replay" in r:
        rp = r["replay"]
        w("## 7. Replay: the userspace pipeline alone\n")
        w("Recordings (`--record`, in a private temporary directory, deleted after) of one "
          "extra metadata round (not counted above; with --quick the first metadata round) each "
          "of nginx HTTP/1.1 (0 B), nginx HTTP/2 and the Go server, "
          "replicated with new connection ids by `build/tools/bench/rec_multiply` into corpora, "
          "then `build/mke-audit-tap --replay CORPUS --level L --format F > /dev/null`. "
          "Requests = audit lines + not audited; per core = requests / (user + sys CPU of the "
          "replay process); wall = requests / elapsed time (lower than per core when the "
          "process waited for a CPU: the machine is shared).\n")
        w(md_table(["corpus", "requests", "copies", "size MiB"], [
            [k, f"{c['copies'] * c['requests_per_copy']:,}", c["copies"],
             f"{c['bytes'] / 2**20:,.0f}"] for k, c in rp["corpora"].items()]))
        w("")
        w(md_table(["corpus", "level", "format", "lines", "requests/s per core",
                    "requests/s wall"],
                   [[f["corpus"], f["level"], f["format"], f"{f['lines']:,}",
                     fmt(f["rps_per_core"], 0), fmt(f["rps_wall"], 0)]
                    for f in rp["figures"]]))
        w("")

    if "gbench" in r:
        w("## 8. Google Benchmark, per stage\n")
        w("Every `build/tools/bench/*_bench`; CPU ns per operation.\n")
        rows = []
        for binary, benches in r["gbench"].items():
            for name, b in benches.items():
                if name.startswith("_"):
                    continue
                rows.append([binary, f"`{name}`", fmt(b["cpu_ns"], 1)])
        w(md_table(["binary", "benchmark", "ns/op"], rows))
        w("")

    if "local" in r:
        w("## 9. The local Docker socket\n")
        w("A server named `dockerd` (Python's http.server on a Unix socket, libssl mapped) "
          "answers `GET /v1.41/containers/json` over one keep-alive connection, then over a new "
          "connection per request; its bytes come from the socket tracepoints, so no uprobe "
          "program of the auditor should run (plaintext capture attaches SSL_read/SSL_write "
          "probes to the process; they must stay silent).\n")
        rows = []
        for mode, row in r["local"].items():
            for kind in ("keep_alive", "new_conn"):
                k = row[kind]
                rows.append([mode, kind, f"{k['requests']:,}",
                             fmt_num(k["uprobe_runs_per_req"], 2),
                             fmt_num(k["server_cpu_us"], 1), f"{row['missing']:,}"])
        w(md_table(["capture", "connections", "requests", "uprobe runs/req",
                    "server CPU us/req", "requests without a line"], rows))
        for mode, row in r["local"].items():
            w(f"- {mode}: `{row.get('probed', '')[-160:]}`")
        w("")

    w("## Observations\n")
    t = meta.get("auditor_timings")
    if t:
        w(f"- Auditor start (exec to its `ready` line): {fmt(t['ready_s'])} s; exit (SIGINT "
          f"to exit, every line written): {fmt(t['stop_s'])} s, over {t['ready_s']['n']} "
          "auditors.")
    for o in report["observations"]:
        w(f"- {o}")
    if not report["observations"]:
        w("- No missing line, no counted loss, every auditor exited 0.")
    w("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--out", help="output directory (default bench/, or bench/quick/ with "
                                  "--quick or --only)")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else list(SECTIONS)
    for s in only:
        if s not in SECTIONS:
            ap.error(f"unknown section {s}; sections: {', '.join(SECTIONS)}")
    out_dir = args.out or os.path.join(ROOT, "bench", "quick" if args.quick or args.only
                                       else "")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (BPF, uprobes)")
    for binary in (TAP, os.path.join(BENCH_BIN, "calibrate"),
                   os.path.join(BENCH_BIN, "rec_multiply")):
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench: {binary} missing: run tools/build.sh")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (&)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    settings = Settings(args.quick)
    started = datetime.datetime.now(datetime.timezone.utc)
    tmp = tempfile.mkdtemp(prefix="mat-bench-")  # mode 0700: recordings hold plaintext
    bench = Bench(settings, tmp)
    status = 0
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"  # run counts of BPF programs
    try:
        with open(stats_path) as f:
            stats_before = f.read().strip()
        with open(stats_path, "w") as f:
            f.write("1\n")
    except OSError:
        stats_before = None
    try:
        log(f"sections: {', '.join(only)}; temp dir {tmp}; output {out_dir}")
        mc = machine()
        steps = {"calibration": bench.calibration, "tax": bench.tax, "h1": bench.h1,
                 "h2": bench.h2, "go": bench.go_section, "handshake": bench.handshake,
                 "memory": bench.memory,
                 "loss": bench.loss, "replay": bench.replay, "gbench": bench.gbench,
                 "local": bench.local}
        for name in SECTIONS:
            if name in only:
                try:
                    steps[name]()
                except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                    detail = getattr(e, "stderr", "") or ""
                    msg = f"section {name} failed: {e} {detail[-500:]}".strip()
                    log(msg)
                    bench.observations.append(msg)
                    status = 1
        report = {
            "meta": {"command": "tools/bench.sh" + "".join(f" {a}" for a in sys.argv[1:]),
                     "started": started.strftime("%Y-%m-%d %H:%M UTC"),
                     "duration_s": time.monotonic() - T0, "quick": settings.quick,
                     "loadavg_at_end": os.getloadavg(),
                     "rounds": settings.rounds, "seconds": settings.seconds,
                     "sections": only, "machine": mc, "other_auditors": bench.others,
                     "auditor_timings": Auditor.timings and {
                         "ready_s": mmm([x[0] for x in Auditor.timings]),
                         "stop_s": mmm([x[1] for x in Auditor.timings])}},
            "targets": targets(bench.results),
            "results": bench.results,
            "observations": bench.observations,
        }
        if "live" in bench.results or "loss" in bench.results:
            report["loss_summary"] = bench.loss_summary()
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
            f.write("\n")
        with open(os.path.join(out_dir, "REPORT.md"), "w") as f:
            f.write(render(report))
        log(f"wrote {out_dir}/REPORT.md and report.json "
            f"({(time.monotonic() - T0) / 60:.1f} min)")
        for t in report["targets"]:
            log(f"target: {t['target']}: {fmt(t['min_max'])} {t['unit']}: "
                f"{t['verdict'].replace('**', '')}")
        for o in bench.observations:
            log(f"observation: {o}")
    except KeyboardInterrupt:
        log("interrupted: ending every process started here")
        status = 130
    finally:
        if stats_before is not None:
            with open(stats_path, "w") as f:
                f.write(stats_before + "\n")
        if bench.nginx:
            bench.nginx.stop()
        if bench.go:
            bench.go.stop()
        end_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
