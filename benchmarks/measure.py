"""hyperfine's method, in Python: warm-up runs, then N timed runs of each command, interleaved with its
peer's (A B B A …) so that load from elsewhere falls on both alike; medians and percentiles.

Each run is one child process started with :class:`subprocess.Popen` and reaped with :func:`os.wait4`,
which gives its wall time and its peak resident set size (``ru_maxrss`` of the process and of the
children it waited for) and CPU time (user + system, the same). Under load from elsewhere the wall time
grows with the queue for a CPU while the CPU time barely moves: it is the steadier comparison.
Output goes to /dev/null; stderr to a file, shown when a run fails.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One side of a comparison: a label, argv and environment; ``prepare`` runs untimed before each run."""

    label: str
    argv: Sequence[str]
    env: Mapping[str, str]
    prepare: Callable[[], None] | None = None


@dataclass(frozen=True)
class Sample:
    ms: float
    maxrss_kb: int
    cpu_ms: float  # user + system time of the process and the children it waited for


class RunFailed(RuntimeError):
    pass


def run_once(cmd: Command) -> Sample:
    if cmd.prepare is not None:
        cmd.prepare()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(list(cmd.argv), env=dict(cmd.env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            text = err.read().decode(errors="replace")[-2000:]
            raise RunFailed(f"{cmd.label}: {' '.join(cmd.argv)} exited {p.returncode}:\n{text}")
    return Sample(ms=elapsed, maxrss_kb=int(usage.ru_maxrss), cpu_ms=(usage.ru_utime + usage.ru_stime) * 1000)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[k]


@dataclass(frozen=True)
class Stats:
    runs: int
    median: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(runs=len(values), median=statistics.median(values), p90=percentile(values, 90),
                   p99=percentile(values, 99), mean=statistics.fmean(values), min=min(values), max=max(values))


@dataclass(frozen=True)
class Pair:
    """Two commands measured side by side: times and peak memory of each."""

    a: Command
    b: Command
    a_samples: tuple[Sample, ...]
    b_samples: tuple[Sample, ...]

    @property
    def a_ms(self) -> Stats:
        return Stats.of([s.ms for s in self.a_samples])

    @property
    def b_ms(self) -> Stats:
        return Stats.of([s.ms for s in self.b_samples])

    @property
    def a_cpu(self) -> Stats:
        return Stats.of([s.cpu_ms for s in self.a_samples])

    @property
    def b_cpu(self) -> Stats:
        return Stats.of([s.cpu_ms for s in self.b_samples])

    @property
    def a_rss_mb(self) -> Stats:
        return Stats.of([s.maxrss_kb / 1024 for s in self.a_samples])

    @property
    def b_rss_mb(self) -> Stats:
        return Stats.of([s.maxrss_kb / 1024 for s in self.b_samples])


def side_by_side(a: Command, b: Command, runs: int, warmup: int, progress: Callable[[str], None]) -> Pair:
    for _ in range(warmup):
        run_once(a)
        run_once(b)
    a_samples: list[Sample] = []
    b_samples: list[Sample] = []
    for i in range(runs):
        first, second = ((a, a_samples), (b, b_samples)) if i % 2 == 0 else ((b, b_samples), (a, a_samples))
        first[1].append(run_once(first[0]))
        second[1].append(run_once(second[0]))
        if (i + 1) % 10 == 0 or i + 1 == runs:
            progress(f"  {a.label} vs {b.label}: {i + 1}/{runs}")
    return Pair(a, b, tuple(a_samples), tuple(b_samples))


@dataclass(frozen=True)
class Load:
    """``total`` runs of one command, ``parallel`` at a time: throughput and latency."""

    command: Command
    total: int
    parallel: int
    wall_s: float
    latencies: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.total / self.wall_s

    @property
    def latency(self) -> Stats:
        return Stats.of(self.latencies)


def under_load(cmd: Command, total: int, parallel: int) -> Load:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        samples = list(pool.map(lambda _: run_once(cmd), range(total)))
    wall = time.perf_counter() - start
    return Load(cmd, total, parallel, wall, tuple(s.ms for s in samples))
