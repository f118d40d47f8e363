#!/usr/bin/env python3
"""The CI throughput guard (CTest `replay_throughput_floor`, label `bench`).

Replicates the golden captures from real servers (tests/golden/nginx-http11.rec and
api-semantics.request.rec) with rec_multiply into a corpus of about 200,000 requests, replays it
with `mke-audit-tap --replay` at metadata and at request level, and measures the replaying
process's own CPU time (user + sys, from the kernel's accounting of the reaped child, so other
load on the machine costs little). requests = audit lines + "not audited" from the summary line
the binary prints on stderr; requests/s = requests / CPU seconds.

It fails when a level's rate is below its floor, set far below issue 10's targets (1,000,000/s at
metadata, 500,000/s at request level; 1/20 of each), so it catches an order-of-magnitude
regression and nothing finer: the fine figures are tools/bench/stages_bench and tools/bench.sh.
A noisy machine gets a second chance: a level below its floor is replayed again (up to
--attempts times) and judged on its best run.

It cannot pass vacuously: the lines written to stdout must be copies x the lines of the golden
files (NAME.jsonl, one line per audited request at either level), the summary must say the same,
and every request the HTTP layers parsed must be either a line or "not audited".

    tools/bench/replay_floor.py --tap build/mke-audit-tap \\
        --multiply build/tools/bench/rec_multiply --golden tests/golden --work-dir build/tools/bench

Python 3 standard library only.
"""
import argparse
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

INPUTS = ("nginx-http11", "api-semantics.request")


def golden_lines(golden_dir, name):
    with open(os.path.join(golden_dir, name + ".jsonl"), encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def child_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def replay(tap, corpus, level):
    """One replay; its stdout line count, its summary figures and its CPU seconds."""
    with tempfile.TemporaryFile() as err:
        before = child_cpu()
        wall = time.monotonic()
        proc = subprocess.Popen(
            [tap, "--replay", corpus, "--level", level, "--license-key", "BENCH"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        stdout_lines = 0
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            stdout_lines += chunk.count(b"\n")
        proc.stdout.close()
        code = proc.wait()
        wall = time.monotonic() - wall
        cpu = child_cpu() - before
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    summary = next((line for line in reversed(stderr.splitlines()) if "summary:" in line), "")
    figures = {}
    for key, pattern in (("records", r"summary: (\d+) records"), ("bad", r"\((\d+) bad\)"),
                         ("lines", r"(\d+) audit lines"), ("not_audited", r"(\d+) not audited"),
                         ("h1_requests", r"http (\d+) requests"),
                         ("h2_requests", r"http/2 (\d+) requests")):
        m = re.search(pattern, summary)
        figures[key] = int(m.group(1)) if m else None
    return {"code": code, "stdout_lines": stdout_lines, "cpu": cpu, "wall": wall,
            "summary": summary, "stderr": stderr, **figures}


def check(run, expected_lines):
    """Why this run's output is not what the golden files predict, or None."""
    if run["code"] != 0:
        return f"exit code {run['code']}:\n{run['stderr'][-2000:]}"
    if not run["summary"] or None in (run["lines"], run["not_audited"], run["h1_requests"],
                                      run["h2_requests"], run["bad"]):
        return f"no parsable summary line on stderr:\n{run['stderr'][-2000:]}"
    if run["stdout_lines"] != expected_lines or run["lines"] != expected_lines:
        return (f"{run['stdout_lines']} lines on stdout, summary says {run['lines']}; the golden "
                f"files predict {expected_lines}")
    parsed = run["h1_requests"] + run["h2_requests"]
    if run["lines"] + run["not_audited"] != parsed or run["bad"] != 0:
        return (f"{run['lines']} lines + {run['not_audited']} not audited != {parsed} requests "
                f"parsed, or {run['bad']} bad records")
    if run["cpu"] <= 0:
        return "no CPU time measured"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tap", required=True, help="the mke-audit-tap binary")
    ap.add_argument("--multiply", required=True, help="the rec_multiply binary")
    ap.add_argument("--golden", required=True, help="tests/golden")
    ap.add_argument("--work-dir", required=True, help="where the corpus is made (and removed)")
    ap.add_argument("--requests", type=int, default=200_000,
                    help="audited requests in the corpus, at least (default 200000)")
    ap.add_argument("--metadata-floor", type=float, default=50_000,
                    help="requests/s per CPU second at metadata level (default 50000)")
    ap.add_argument("--request-floor", type=float, default=25_000,
                    help="requests/s per CPU second at request level (default 25000)")
    ap.add_argument("--attempts", type=int, default=3,
                    help="replays of a level below its floor before failing (default 3)")
    args = ap.parse_args()

    per_copy = {name: golden_lines(args.golden, name) for name in INPUTS}
    lines_per_copy = sum(per_copy.values())
    if lines_per_copy == 0:
        print(f"FAIL: no expected lines in {args.golden}")
        return 1
    copies = math.ceil(args.requests / lines_per_copy)
    expected = copies * lines_per_copy
    corpus = os.path.join(args.work_dir, f"replay-floor-corpus-{os.getpid()}.rec")
    t = time.monotonic()
    subprocess.run([args.multiply, corpus, str(copies),
                    *[os.path.join(args.golden, name + ".rec") for name in INPUTS]], check=True)
    print(f"corpus: {copies} copies of {' + '.join(INPUTS)} ({lines_per_copy} lines per copy: "
          f"{per_copy}), {os.path.getsize(corpus) / 1e6:.0f} MB, made in "
          f"{time.monotonic() - t:.1f} s")
    failures = []
    try:
        for level, floor in (("metadata", args.metadata_floor), ("request", args.request_floor)):
            best = None
            for attempt in range(1, max(1, args.attempts) + 1):
                run = replay(args.tap, corpus, level)
                problem = check(run, expected)
                if problem:
                    failures.append(f"{level}: {problem}")
                    print(f"FAIL {level}: {problem}")
                    break
                requests = run["lines"] + run["not_audited"]
                rate = requests / run["cpu"]
                print(f"{level}: {requests} requests ({run['lines']} lines, {run['not_audited']} "
                      f"not audited) in {run['cpu']:.3f} s CPU ({run['wall']:.3f} s wall): "
                      f"{rate:,.0f} requests/s per CPU second; floor {floor:,.0f} "
                      f"(attempt {attempt})")
                best = rate if best is None else max(best, rate)
                if best >= floor:
                    break
            else:
                failures.append(f"{level}: best {best:,.0f} requests/s is below the floor "
                                f"{floor:,.0f}")
                print(f"FAIL {level}: best of {args.attempts} runs {best:,.0f} requests/s < "
                      f"floor {floor:,.0f}")
    finally:
        os.unlink(corpus)  # ~150 MB
    if failures:
        print("replay_throughput_floor FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("replay_throughput_floor passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
