"""``python -m benchmarks`` (``tox -e bench``): BACON against its peers, side by side, on the harness.

Starts the test harness's real parts (:mod:`benchmarks.host`), then measures (:mod:`benchmarks.measure`):

1. forwarding: ``nerdctl images`` / ``nerdctl version`` through the wrapper vs the stand-in directly;
2. a ``Low`` admission (signature, label, level) of an image already in containerd: the wrapper's
   ``nerdctl run --rm IMAGE`` (real nerdctl: ``/bin/true``) vs ``cosign verify --key`` of the same image,
   with the warm decision service (``bacon serve``, which the .deb runs) and, for information, without it
   (the whole decision in the wrapper's own process, imports included);
3. the same for a ``Mid`` image, with a fresh quote from the swtpm;
4. ``nerdctl pull`` through the wrapper (stand-in: ``ctr`` pull of the pinned digest, then tag) vs
   ``ctr images pull --plain-http`` of the same image (removed from containerd before each run);
5. 100 admissions, 8 at a time: throughput and p99 latency, vs as many ``cosign verify``;
6. peak memory (max RSS incl. waited-for children) of one admission, vs ``cosign verify``;
7. a measured launch (``[measure] into = ["tpm"]``: launch log write and PCR extend on the swtpm): its own
   time inside a served admission (from the audit line), and the served admission measured vs not;
8. the container profile: what it adds to a forwarded command, and its decision in an admission
   (:mod:`benchmarks.profile_cost`).

Prints a table (stdout) and writes it as JSON (``bench-results.json``); progress goes to stderr.
Numbers depend on the machine and its load: the ratios, measured in the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import host as host_m
from benchmarks import profile_cost
from benchmarks.measure import Command, Load, Pair, Stats, side_by_side, under_load
from tests.conftest import Host, trusted_config
from tests.harness.proc import wait_for

FORWARD_BUDGET_MS = 15.0
LOW_BUDGET = 1.0
MID_BUDGET = 2.0
MEMORY_BUDGET_MB = 60.0
MEASURE_BUDGET_MS = 5.0


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Row:
    key: str
    what: str
    bacon: str
    peer_name: str
    peer: str
    result: str
    budget: str
    ok: bool | None
    data: dict[str, Any]


def _ms(s: Any) -> str:
    return f"{s.median:.1f} ms (p90 {s.p90:.1f})"


def _stats(s: Any) -> dict[str, float]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in dataclasses.asdict(s).items()}


def _pair_data(p: Pair) -> dict[str, Any]:
    def side(c: Command, ms: Any, cpu: Any, rss: Any) -> dict[str, Any]:
        return {"label": c.label, "argv": list(c.argv), "ms": _stats(ms), "cpu_ms": _stats(cpu),
                "maxrss_mb": _stats(rss)}

    return {"bacon": side(p.a, p.a_ms, p.a_cpu, p.a_rss_mb), "peer": side(p.b, p.b_ms, p.b_cpu, p.b_rss_mb),
            "cpu_ratio": round(p.a_cpu.median / p.b_cpu.median, 3) if p.b_cpu.median else None}


def _audit_lines(h: Any, verdict: str) -> list[dict[str, Any]]:
    if not h.audit_log.exists():
        return []
    lines = [json.loads(line) for line in h.audit_log.read_text().splitlines() if line.strip()]
    return [a for a in lines if a.get("verdict") == verdict]


def _audit_count(h: Any, verdict: str) -> int:
    if not h.audit_log.exists():
        return 0
    return sum(1 for line in h.audit_log.read_text().splitlines() if f'"verdict": "{verdict}"' in line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per command (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per command first (default 3)")
    ap.add_argument("--forward-runs", type=int, default=100,
                    help="timed runs per forwarded command, which are short and noisy (default 100)")
    ap.add_argument("--quick", action="store_true", help="5 runs, 1 warm-up, 24 admissions under load")
    ap.add_argument("--load", type=int, default=100, help="admissions under load (default 100)")
    ap.add_argument("--parallel", type=int, default=8, help="admissions at a time under load (default 8)")
    ap.add_argument("--output", type=Path, default=Path("bench-results.json"),
                    help="where to write the JSON (default ./bench-results.json)")
    ap.add_argument("--keep", action="store_true", help="leave the harness's directory behind")
    ap.add_argument("--bin", type=Path, metavar="DIR",
                    help="measure DIR/nerdctl and DIR/bacon (another install of BACON) instead of this environment's")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.load, args.forward_runs = 5, 1, 24, 10
    if os.geteuid() != 0:
        print("bench: run as root: the harness starts a private containerd", file=sys.stderr)
        return 77
    lacking = host_m.missing()
    if lacking:
        print(f"bench: missing {', '.join(lacking)} (scripts/install-deps installs them)", file=sys.stderr)
        return 69
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    bh = host_m.start(progress, keep=args.keep, bin_dir=args.bin)
    try:
        rows = run_all(bh, args)
    finally:
        bh.stop()
    load_after = os.getloadavg()
    meta = {
        "time": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
        "runs": args.runs, "forward_runs": args.forward_runs, "warmup": args.warmup, "wrapper": bh.wrapper,
        "launcher_python": bh.python,
        "peer_nerdctl": "tests/standin/nerdctl (a stand-in: nerdctl cannot be installed here)",
        "cosign": _version([bh.cosign, "version"]), "containerd": _version(["containerd", "--version"]),
    }
    print(render(rows, meta))
    args.output.write_text(json.dumps({"meta": meta, "rows": [dataclasses.asdict(r) for r in rows]}, indent=2) + "\n")
    progress(f"wrote {args.output}")
    return 0


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        return str(e)
    for line in (r.stdout + r.stderr).splitlines():
        if "ersion" in line:
            return line.strip()
    return (r.stdout + r.stderr).strip()[:80]


@contextlib.contextmanager
def serving(bh: host_m.BenchHost, h: Host, level: str, extra: str) -> Iterator[None]:
    """``bacon serve`` for host ``h`` (its configuration names the socket) while the block runs."""
    sock = bh.work / f"svc-{h.root.name}" / "decide.sock"
    trusted_config(h, bh.key, level=level, extra=extra + f'[service]\nsocket = "{sock}"\n')
    log_path = bh.work / f"serve-{h.root.name}.log"
    log = log_path.open("ab")
    proc = subprocess.Popen([*bh.bacon, "serve"], env=h.env(), stdout=log, stderr=log)
    try:
        wait_for(sock.exists, "bacon serve", timeout=60, proc=proc, log=log_path)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        trusted_config(h, bh.key, level=level, extra=extra)


def run_all(bh: host_m.BenchHost, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    fwd = bh.hosts["forward"]

    def pair(a: Command, b: Command, runs: int | None = None) -> Pair:
        progress(f"{a.label} vs {b.label}")
        return side_by_side(a, b, runs or args.runs, args.warmup, progress)

    for sub in ("images", "version"):
        p = pair(Command(f"wrapper nerdctl {sub}", [*bh.wrapper, sub], fwd.env()),
                 Command(f"stand-in nerdctl {sub}", [str(fwd.standin), sub], fwd.env()), args.forward_runs)
        added = p.a_ms.median - p.b_ms.median
        rows.append(Row(f"forward_{sub}", f"forwarded: nerdctl {sub}", _ms(p.a_ms),
                        f"stand-in nerdctl {sub}", _ms(p.b_ms),
                        f"+{added:.1f} ms ({p.a_ms.median / p.b_ms.median:.2f}×)", f"≤ +{FORWARD_BUDGET_MS:.0f} ms",
                        added <= FORWARD_BUDGET_MS, {**_pair_data(p), "added_ms": round(added, 3)}))

    pip_launcher = Path(args.bin or Path(sys.executable).parent) / "nerdctl"
    p = pair(Command("pip's bin/nerdctl version", [str(pip_launcher), "version"], fwd.env()),
             Command("stand-in nerdctl version", [str(fwd.standin), "version"], fwd.env()), args.forward_runs)
    added = p.a_ms.median - p.b_ms.median
    rows.append(Row("forward_version_pip", "(info) forwarded through pip's launcher (shell prologue): nerdctl version",
                    _ms(p.a_ms), "stand-in nerdctl version", _ms(p.b_ms), f"+{added:.1f} ms", "(info)", None,
                    {**_pair_data(p), "added_ms": round(added, 3)}))

    # The container profile: what it adds to a forwarded command (must stay under 1 ms), and its decision.
    progress("profile check")
    cost = profile_cost.measure(bh.python, sys.path, runs=3 if args.quick else 9)
    forward_ms = cost["forward_import_ms"] + cost["forward_check_us"] / 1e3
    rows.append(Row("profile_forwarded", "profile check on a forwarded command (import + needs_decision)",
                    f"{forward_ms:.3f} ms", "-", "-", f"+{forward_ms:.3f} ms", "≤ +1 ms", forward_ms <= 1.0,
                    {k: round(v, 3) for k, v in cost.items()}))
    gated_ms = cost["gated_import_ms"] + cost["gated_decide_us"] / 1e3
    rows.append(Row("profile_gated", "(info) profile decision of a run line in an admission (import + decide)",
                    f"{gated_ms:.2f} ms", "-", "-", f"+{gated_ms:.2f} ms", "(info)", None,
                    {k: round(v, 3) for k, v in cost.items()}))

    # What no Python wrapper can go below: the interpreter's own start-up (the launchers run it as -I -S).
    python = bh.python
    true = Command("/bin/true", ["/bin/true"], fwd.env())
    for key, label, argv_ in (("python", "python -c pass", [python, "-c", "pass"]),
                              ("python_IS", "python -I -S -c pass", [python, "-I", "-S", "-c", "pass"])):
        p = pair(Command(label, argv_, fwd.env()), true, args.forward_runs)
        added = p.a_ms.median - p.b_ms.median
        rows.append(Row(f"floor_{key}", f"(info) start-up: {label}", _ms(p.a_ms), "/bin/true", _ms(p.b_ms),
                        f"+{added:.1f} ms", "(info)", None, {**_pair_data(p), "added_ms": round(added, 3)}))

    cosign = {name: Command(f"cosign verify {name}", [bh.cosign, "verify", "--key", str(bh.key.public),
                                                      "--insecure-ignore-tlog=true", "--allow-insecure-registry",
                                                      img.ref], fwd.env())
              for name, img in bh.images.items()}
    admissions: dict[str, Pair] = {}
    for name, budget in (("low", LOW_BUDGET), ("mid", MID_BUDGET)):
        h = bh.hosts[name]
        img = bh.images[name]
        before = _audit_count(h, "admitted")
        p = pair(Command(f"wrapper run {name}", [*bh.wrapper, "run", "--rm", img.ref], h.env()), cosign[name])
        admitted = _audit_count(h, "admitted") - before
        if admitted != args.runs + args.warmup:
            raise RuntimeError(f"{name}: {admitted} admissions audited for {args.runs + args.warmup} runs")
        admissions[name] = p
        ratio = p.a_ms.median / p.b_ms.median
        what = ("(info) admission without bacon serve (in one process): "
                + ("Low image" if name == "low" else "Mid image + TPM quote"))
        rows.append(Row(f"admission_{name}", what, _ms(p.a_ms), "cosign verify --key", _ms(p.b_ms), f"{ratio:.2f}×",
                        "(info)", None, {**_pair_data(p), "ratio": round(ratio, 3), "budget": budget}))
        progress(f"the same admission, warm: {args.runs} in one process")
        warm_argv = [sys.executable, str(Path(__file__).with_name("warm.py")), str(args.runs), "run", "--rm", img.ref]
        r = subprocess.run(warm_argv, env=h.env(), capture_output=True, text=True, timeout=600, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"benchmarks/warm.py failed: {r.stderr[-2000:]}")
        warm = Stats.of(json.loads(r.stdout))
        rows.append(Row(f"warm_{name}", "(info) the same, in a process already loaded", _ms(warm),
                        "cosign verify --key", _ms(p.b_ms), f"{warm.median / p.b_ms.median:.2f}×", "(info)", None,
                        {"bacon_ms": _stats(warm), "ratio": round(warm.median / p.b_ms.median, 3)}))

    # The same admissions through the warm decision service (`bacon serve`): the wrapper is a thin client.
    service_extra = {"low": ("Low", ""), "mid": ("Mid", f'[tpm]\ntcti = "{bh.tpm.tcti}"\n')}
    for name, budget in (("low", LOW_BUDGET), ("mid", MID_BUDGET)):
        h = bh.hosts[name]
        img = bh.images[name]
        level, extra = service_extra[name]
        with serving(bh, h, level, extra):
            before = _audit_count(h, "admitted")
            p = pair(Command(f"wrapper run {name} (bacon serve)", [*bh.wrapper, "run", "--rm", img.ref], h.env()),
                     cosign[name])
            admitted = _audit_count(h, "admitted") - before
            if admitted != args.runs + args.warmup:
                raise RuntimeError(f"{name} (served): {admitted} admissions audited for {args.runs + args.warmup} runs")
            if name == "low":
                progress(f"{args.load} admissions, {args.parallel} at a time, through bacon serve")
                served_load = under_load(Command("wrapper run low (bacon serve)",
                                                 [*bh.wrapper, "run", "--rm", img.ref], h.env()),
                                         args.load, args.parallel)
        ratio = p.a_ms.median / p.b_ms.median
        what = "Low image" if name == "low" else "Mid image + TPM quote"
        rows.append(Row(f"service_{name}", f"admission: {what} (with bacon serve, as packaged)", _ms(p.a_ms),
                        "cosign verify --key", _ms(p.b_ms), f"{ratio:.2f}×", f"≤ {budget:.1f}× cosign", ratio <= budget,
                        {**_pair_data(p), "ratio": round(ratio, 3)}))

    # A measured launch (log + PCR extend) on top of a served Low admission, against the same unmeasured.
    mh, low_h, img = bh.hosts["measured"], bh.hosts["low"], bh.images["low"]
    extra = host_m.MEASURED_EXTRA.format(tcti=bh.tpm.tcti)
    with serving(bh, mh, "Low", extra), serving(bh, low_h, "Low", ""):
        before = len(_audit_lines(mh, "admitted"))
        p = pair(Command("wrapper run low, measured (bacon serve)", [*bh.wrapper, "run", "--rm", img.ref], mh.env()),
                 Command("wrapper run low (bacon serve)", [*bh.wrapper, "run", "--rm", img.ref], low_h.env()))
    lines = [a["measured"] for a in _audit_lines(mh, "admitted")[before:] if "measured" in a]
    measured_ms = Stats.of([float(m["ms"]) for m in lines])
    measured_cpu = Stats.of([float(m.get("cpu_ms", 0.0)) for m in lines])
    if measured_ms.runs != args.runs + args.warmup:
        raise RuntimeError(f"measured: {measured_ms.runs} measured admissions audited, "
                           f"for {args.runs + args.warmup} runs")
    rows.append(Row("measure_step", "measured launch: log write + PCR extend, inside a served admission",
                    _ms(measured_ms), "(its own time)", "-", f"+{measured_ms.median:.1f} ms",
                    f"≤ +{MEASURE_BUDGET_MS:.0f} ms", measured_ms.median <= MEASURE_BUDGET_MS,
                    {"bacon_ms": _stats(measured_ms), "cpu_ms": _stats(measured_cpu)}))
    rows.append(Row("measure_step_cpu", "(info) the same, its CPU time (the rest is waiting: TPM, disk, scheduler)",
                    _ms(measured_cpu), "(its own time)", "-", f"{measured_cpu.median:.1f} ms CPU", "(info)", None,
                    {"cpu_ms": _stats(measured_cpu)}))
    added = p.a_ms.median - p.b_ms.median
    rows.append(Row("measure_admission", "(info) served Low admission, measured vs not (end to end)", _ms(p.a_ms),
                    "unmeasured", _ms(p.b_ms), f"+{added:.1f} ms", "(info)", None,
                    {**_pair_data(p), "added_ms": round(added, 3)}))

    ph = bh.hosts["pull"]
    img = bh.images["pull"]

    def forget() -> None:
        names = [img.ref, img.pinned]
        bh.containerd.ctr("images", "rm", "--sync", *names, check=False)

    p = pair(Command("wrapper pull", [*bh.wrapper, "pull", img.ref], ph.env(), prepare=forget),
             Command("ctr images pull", ["ctr", "--address", str(bh.containerd.socket), "--namespace", "default",
                                         "images", "pull", "--plain-http", img.ref], ph.env(), prepare=forget))
    rows.append(Row("pull", "pull: signed Low image", _ms(p.a_ms), "ctr images pull", _ms(p.b_ms),
                    f"{p.a_ms.median / p.b_ms.median:.2f}× (+{p.a_ms.median - p.b_ms.median:.0f} ms)",
                    "(none)", None, {**_pair_data(p), "ratio": round(p.a_ms.median / p.b_ms.median, 3)}))

    h = bh.hosts["low"]
    progress(f"{args.load} admissions, {args.parallel} at a time: wrapper, then cosign")
    wl = under_load(Command("wrapper run low", [*bh.wrapper, "run", "--rm", bh.images["low"].ref], h.env()),
                    args.load, args.parallel)
    cl = under_load(cosign["low"], args.load, args.parallel)
    tput = wl.per_second / cl.per_second

    def load_text(x: Load) -> str:
        return f"{x.per_second:.1f}/s, p99 {x.latency.p99:.0f} ms"

    rows.append(Row("load", f"{args.load} admissions, {args.parallel} at a time", load_text(wl),
                    "as many cosign verify", load_text(cl), f"{tput:.2f}× throughput", "(none)", None,
                    {"bacon": _load_data(wl), "peer": _load_data(cl), "throughput_ratio": round(tput, 3)}))

    tput_s = served_load.per_second / cl.per_second
    rows.append(Row("load_service", f"{args.load} admissions, {args.parallel} at a time, with bacon serve",
                    load_text(served_load), "as many cosign verify", load_text(cl), f"{tput_s:.2f}× throughput",
                    "(none)", None, {"bacon": _load_data(served_load), "peer": _load_data(cl),
                                     "throughput_ratio": round(tput_s, 3)}))

    rows.extend(runtime_rows(bh, args, cosign["low"]))

    for name, p in admissions.items():
        peak = p.a_rss_mb.max
        rows.append(Row(f"memory_{name}", f"peak RSS: {name.capitalize()} admission",
                        f"{p.a_rss_mb.median:.1f} MB (max {peak:.1f})", "cosign verify", f"{p.b_rss_mb.median:.1f} MB",
                        f"{peak:.1f} MB", f"< {MEMORY_BUDGET_MB:.0f} MB", peak < MEMORY_BUDGET_MB,
                        {"bacon_maxrss_mb": _stats(p.a_rss_mb), "peer_maxrss_mb": _stats(p.b_rss_mb)}))
    return rows


def runtime_rows(bh: host_m.BenchHost, args: argparse.Namespace, cosign_low: Command | None = None) -> list[Row]:
    """The runtime gate's lines (:mod:`benchmarks.runtime`)."""
    from benchmarks import runtime

    def pair(a: Command, b: Command, runs: int | None = None) -> Pair:
        progress(f"{a.label} vs {b.label}")
        return side_by_side(a, b, runs or args.runs, args.warmup, progress)

    if cosign_low is None:
        cosign_low = Command("cosign verify low", [bh.cosign, "verify", "--key", str(bh.key.public),
                                                   "--insecure-ignore-tlog=true", "--allow-insecure-registry",
                                                   bh.images["low"].ref], bh.hosts["forward"].env())
    return runtime.rows(bh, args, pair, Row, _ms, _pair_data, cosign_low, lambda *a: serving(bh, *a))


def _load_data(x: Load) -> dict[str, Any]:
    return {"label": x.command.label, "total": x.total, "parallel": x.parallel, "wall_s": round(x.wall_s, 3),
            "per_second": round(x.per_second, 3), "latency_ms": _stats(x.latency)}


NOTES = (
    "BACON = this environment's BACON through a launcher shaped as the .deb's (#!/usr/bin/python3 -IS); the",
    "real nerdctl is the stand-in (tests/standin/nerdctl: nerdctl cannot be installed here), or for admissions a",
    "copy of /bin/true, so an admission is timed from start to the exec of the admitted command (the image",
    "is already in containerd, its signature kept from the first run). pull: both sides pull into an empty",
    "image store (layers shared with other images stay), the wrapper's stand-in pulls the pinned digest with",
    "ctr and tags it. Peak RSS: ru_maxrss from wait4 (the process and the children it waited for); CPU: user",
    "+ system time, medians (the steadier figure under load from elsewhere). load: wrapper batch, then cosign",
    "batch. bacon serve: 4 pre-forked workers; its time is in the wall time, not in BACON's CPU column.",
)


def _cpu(r: Row) -> str:
    try:
        a, b = r.data["bacon"]["cpu_ms"]["median"], r.data["peer"]["cpu_ms"]["median"]
    except (KeyError, TypeError):
        return ""
    return f"{a:.0f} / {b:.0f}"


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    head = (f"BACON benchmark {meta['time']}: {meta['cpus']} CPUs, load {meta['loadavg_before'][0]:.2f} → "
            f"{meta['loadavg_after'][0]:.2f}; {meta['runs']} runs ({meta['forward_runs']} for forwarding and start-up) "
            f"(+{meta['warmup']} warm-up) per command, "
            "interleaved with the peer; median (p90)")
    cols = ("#", "measure", "BACON", "peer", "peer result", "result", "CPU ms BACON/peer", "budget", "ok")
    table = [cols] + [(str(i), r.what, r.bacon, r.peer_name, r.peer, r.result, _cpu(r), r.budget,
                       "—" if r.ok is None else ("yes" if r.ok else "NO")) for i, r in enumerate(rows, 1)]
    widths = [max(len(row[c]) for row in table) for c in range(len(cols))]
    width_of: Callable[[int], int] = lambda c: widths[c]  # noqa: E731
    lines = [head, ""]
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(width_of(c)) for c, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", *NOTES, f"cosign: {meta['cosign']}; {meta['containerd']}; Python {meta['python']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
