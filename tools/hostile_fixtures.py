#!/usr/bin/python3
"""Regenerates tests/golden/hostile/ (issue 17: the hostile shapes replayed in the unit tests).

Runs tests/e2e/test_hostile.py's shapes (all but the bulky ones, hostile_shapes.HEAVY) at nginx
and at the Go server with the auditor recording (--record), and saves for each server:

  SERVER.rec          the auditor's recording (plaintext of test traffic only; checked here to
                      hold no TLS secret: no key log label, no private key)
  SERVER.truth.jsonl  the shapes' client ports, then what the server logged (hostile_compare's
                      entries, reconciled with what the client received)
  known_failures.txt  "SERVER SHAPE: first problem" for each shape whose replayed audit
                      disagrees with the server today; tests/unit/hostile_replay_test.cpp
                      expects exactly these to fail (strict, like the e2e test's xfail marks)

Needs what the e2e tests need (root, nginx, golang-go, python3-pytest, python3-hpack) and a built
auditor: sudo tools/hostile_fixtures.py [--binary build/mke-audit-tap]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "tests" / "e2e"
OUT = REPO / "tests" / "golden" / "hostile"
SERVERS = ("nginx", "go")
# Strings that would mean a TLS secret reached the recording.
SECRET_MARKERS = (b"CLIENT_RANDOM", b"TRAFFIC_SECRET", b"HANDSHAKE_SECRET", b"EXPORTER_SECRET",
                  b"EARLY_SECRET", b"PRIVATE KEY", b"master secret")

sys.path.insert(0, str(E2E))
import hostile_compare as hc  # noqa: E402


def replay_lines(binary: Path, rec: Path):
    cp = subprocess.run([str(binary), "--replay", str(rec), "--level", "request",
                         "--license-key", "TEST-LICENSE"], capture_output=True, timeout=300)
    if cp.returncode != 0:
        sys.exit(f"replay of {rec} failed rc={cp.returncode}: {cp.stderr.decode()[-2000:]}")
    out = []
    for raw in cp.stdout.splitlines():
        obj = json.loads(raw)
        if obj.get("msg") == "audit":
            out.append(hc.line_view(obj))
    return out


def load_truth(path: Path):
    shapes, entries = {}, []
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        if "shape" in obj:
            shapes[obj["shape"]] = obj["ports"]
        else:
            entries.append(hc.Entry(**obj))
    return shapes, entries


def problems_by_shape(shapes, entries, lines):
    out = {}
    for name, ports in sorted(shapes.items()):
        ps = set(ports)
        out[name] = hc.compare([e for e in entries if e.port in ps],
                               [v for v in lines if v["port"] in ps])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(REPO / "build" / "mke-audit-tap"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    binary = Path(args.binary).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="mat-hostile-fixtures-"))
    try:
        env = dict(os.environ, MAT_BINARY=str(binary), MAT_HOSTILE_RECORD_DIR=str(tmp),
                   PYTHONDONTWRITEBYTECODE="1")
        cp = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "test_hostile.py", "-k", "run_sane"], cwd=E2E, env=env,
                            timeout=900)
        if cp.returncode != 0:
            sys.exit("the recording run failed (see above)")
        OUT.mkdir(parents=True, exist_ok=True)
        known = []
        for kind in SERVERS:
            rec, truth = tmp / f"{kind}.rec", tmp / f"{kind}.truth.jsonl"
            blob = rec.read_bytes()
            leaked = [m.decode() for m in SECRET_MARKERS if m in blob]
            if leaked:
                sys.exit(f"{rec} holds what looks like TLS secrets ({leaked}); not saved")
            shutil.copyfile(rec, OUT / f"{kind}.rec")
            shutil.copyfile(truth, OUT / f"{kind}.truth.jsonl")
            os.chmod(OUT / f"{kind}.rec", 0o644)
            shapes, entries = load_truth(OUT / f"{kind}.truth.jsonl")
            lines = replay_lines(binary, OUT / f"{kind}.rec")
            for name, problems in problems_by_shape(shapes, entries, lines).items():
                if problems:
                    known.append(f"{kind} {name}: {problems[0]}")
            print(f"{kind}: {len(shapes)} shapes, {len(blob)} bytes recorded, "
                  f"{sum(1 for k in known if k.startswith(kind + ' '))} failing on replay")
        (OUT / "known_failures.txt").write_text(
            "# SERVER SHAPE: first problem -- shapes whose replayed audit disagrees with the\n"
            "# server today (tools/hostile_fixtures.py); hostile_replay_test expects exactly\n"
            "# these to fail.\n" + "".join(k + "\n" for k in known))
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
