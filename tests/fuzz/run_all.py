"""Fuzz every target with atheris for a bounded time, one after another (one core), and report.

``python -m tests.fuzz.run_all [--seconds N] [--only argv,tdx …] [--out DIR]`` (``tox -e fuzz -- --seconds
60``). Each target starts from its saved corpus (``tests/fuzz/corpus/<target>``, read only); what it
finds goes to ``DIR/<target>/corpus`` and crashing inputs to ``DIR/<target>/crash-*``. A crash is a bug:
fix it, add the input to the saved corpus as ``crash-<what>`` and a regression test. The exit status is
1 when any target crashed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.targets import CORPUS, TARGETS

ROOT = Path(__file__).resolve().parents[2]


def run(name: str, seconds: int, out: Path) -> tuple[int, int, int, list[Path]]:
    """(execs, coverage, exit status, crash files) of one target."""
    work = out / name
    found = work / "corpus"
    found.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"tests.fuzz.atheris_{name}", str(found), str(CORPUS / name),
           f"-max_total_time={seconds}", "-print_final_stats=1", "-timeout=20", "-rss_limit_mb=2048",
           f"-artifact_prefix={work}/"]
    log = work / "fuzz.log"
    with log.open("wb") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    text = log.read_text(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    cov = re.findall(r"\bcov: (\d+)", text)
    crashes = sorted(p for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    return int(execs[-1]) if execs else 0, int(cov[-1]) if cov else 0, rc, crashes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="fuzzing time per target (default 60)")
    ap.add_argument("--only", default="", help="comma-separated targets (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="where found inputs and crashes go (default: a temp dir)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    out = args.out or Path(tempfile.mkdtemp(prefix="bacon-fuzz-"))
    failed = False
    print(f"{'target':<10} {'seconds':>7} {'execs':>9} {'cov':>6}  result")
    for name in names:
        start = time.monotonic()
        execs, cov, rc, crashes = run(name, args.seconds, out)
        took = time.monotonic() - start
        result = "ok" if rc == 0 and not crashes else f"CRASH (exit {rc}): " + ", ".join(map(str, crashes))
        failed |= result != "ok"
        print(f"{name:<10} {took:>7.0f} {execs:>9} {cov:>6}  {result}", flush=True)
    print(f"logs, found inputs and crashes: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
