"""200 decisions from parallel wrapper processes while ``bacon policy set`` flips the system level.

A ``Mid`` image on a host flipping between ``Low`` (denied) and ``Mid`` (admitted; ``[levels.Mid]``
requires only the signature here). Every decision must have used one level: its audit line's
``system_level`` and verdict agree, and so do its exit status and message. The audit log holds exactly one
whole JSON line per decision and per level change, none torn; every admission has one admission record
and one call of the stand-in nerdctl, every denial none.
"""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.conftest import Host, Signed
from tests.harness.images import pull as ctr_pull
from tests.integration.refusals import admission_records, assert_nothing_half_written, audit_lines, calls, configure

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.slow]

DECISIONS = 200
PARALLEL = 8
NAMESPACE = "bacon-concurrency"


@dataclass(frozen=True)
class Outcome:
    pid: int
    rc: int
    stderr: str


def test_decisions_under_level_flips(gate_host: Host, signed: Signed) -> None:
    host = gate_host
    configure(host, signed.trusted, level="Mid", extra='[levels.Mid]\nrequire = ["signature"]\n')
    mid = signed["mid"]
    ctr_pull(host.containerd, mid, namespace=NAMESPACE)
    env = host.env()
    ns = [f"--namespace={NAMESPACE}"]

    # One decision first, so the signature cache exists (the flood then measures the gate, not the registry).
    warm = subprocess.run([*host.wrapper, *ns, "create", mid.ref], env=env, capture_output=True, text=True,
                          timeout=60)
    assert warm.returncode == 0, warm.stderr
    host.audit_log.unlink()
    host.calls.unlink()
    records_before = admission_records(host)

    stop = threading.Event()
    flips: list[str] = []

    def flipper() -> None:
        level = "Mid"
        while not stop.is_set():
            level = "Low" if level == "Mid" else "Mid"
            r = subprocess.run([*host.bacon, "policy", "set", level], env=env, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr
            flips.append(level)

    def decide(_: int) -> Outcome:
        p = subprocess.Popen([*host.wrapper, *ns, "create", mid.ref], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        _out, err = p.communicate(timeout=120)
        return Outcome(p.pid, p.returncode, err)

    t = threading.Thread(target=flipper, daemon=True)
    t.start()
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            outcomes = list(pool.map(decide, range(DECISIONS)))
    finally:
        stop.set()
        t.join(120)
        ids = host.containerd.ctr("containers", "ls", "-q", namespace=NAMESPACE).stdout.split()
        if ids:
            host.containerd.ctr("containers", "rm", *ids, namespace=NAMESPACE, check=False)

    lines = audit_lines(host.audit_log)  # every line whole JSON, the file ends in a newline
    decisions = [x for x in lines if x["verdict"] in ("admitted", "denied")]
    changes = [x for x in lines if x["verdict"] == "policy-set"]
    assert len(lines) == len(decisions) + len(changes)
    assert len(decisions) == DECISIONS
    assert len(changes) == len(flips)
    by_pid = {o.pid: o for o in outcomes}
    assert sorted(int(str(x["pid"])) for x in decisions) == sorted(by_pid)

    admitted = 0
    for line in decisions:
        o = by_pid[int(str(line["pid"]))]
        level = line["system_level"]
        assert level in ("Low", "Mid"), line
        if level == "Mid":
            assert (line["verdict"], o.rc) == ("admitted", 0), (line, o.stderr)
            admitted += 1
        else:
            assert (line["verdict"], line["failed_check"], o.rc) == ("denied", "level", 77), (line, o.stderr)
            assert o.stderr.startswith("bacon: denied: ")
            assert "above this host's system level Low" in o.stderr, o.stderr
    denied = DECISIONS - admitted
    print(f"\n{DECISIONS} decisions, {PARALLEL} at a time: {admitted} admitted at Mid, {denied} denied at Low, "
          f"{len(flips)} level changes")
    assert admitted > 0
    assert denied > 0, "the level never changed under the decisions"
    assert len(calls(host)) == admitted  # the stand-in saw exactly the admitted ones
    assert len(admission_records(host) - records_before) == admitted
    assert_nothing_half_written(host)
