"""What every fault, hostile-input and environment test asserts about a refused command: the exit status
(77 denied, or 69/78/64 with a message naming what is wrong), a bounded time, nothing handed to the
stand-in nerdctl, and nothing half-written (every audit line whole JSON; no temporary files or new
admission records left in the state directory)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import Host, KeyPair


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    forwarded: list[list[str]]
    seconds: float
    records_before: set[str] = field(default_factory=set)

    @property
    def first_line(self) -> str:
        return self.stderr.splitlines()[0] if self.stderr else ""


def admission_records(host: Host) -> set[str]:
    d = host.state_dir / "admissions"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def calls(host: Host) -> list[str]:
    return host.calls.read_text().splitlines() if host.calls.exists() else []


def wrapper(host: Host, *args: str, env: dict[str, str] | None = None, argv0: list[str] | None = None,
            timeout: float = 120) -> Run:
    """Run the installed ``nerdctl`` wrapper (or ``argv0``) with ``args``; what it forwarded and how long it took."""
    before, records = calls(host), admission_records(host)
    start = time.monotonic()
    r = subprocess.run([*(host.wrapper if argv0 is None else argv0), *args], env=env if env is not None else host.env(),
                       capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    forwarded = [json.loads(line)["argv"][1:] for line in calls(host)[len(before):]]
    return Run(r.returncode, r.stdout, r.stderr, forwarded, seconds, records)


def audit_lines(path: Path) -> list[dict[str, object]]:
    """Every line of the audit log, each of which must be one whole JSON object."""
    if not path.exists() or not path.is_file():
        return []
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), f"audit log ends in a partial line: {raw[-200:]!r}"
    out = []
    for line in raw.decode("utf-8").splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


def assert_nothing_half_written(host: Host, run: Run | None = None) -> None:
    audit_lines(host.audit_log)
    if host.state_dir.is_dir():
        leftovers = [p for p in host.state_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]
        assert leftovers == [], f"temporary files left in the state directory: {leftovers}"
    if run is not None:
        new = admission_records(host) - run.records_before
        assert new == set(), f"admission records written for a refused command: {new}"


def assert_refused(run: Run, host: Host, *, rc: int, says: str | tuple[str, ...], within: float,
                   check: str | None = None) -> None:
    """``rc`` and a message containing ``says`` (any of them), within ``within`` seconds, nothing
    forwarded, nothing half-written. A denial (77) starts ``bacon: denied:`` and names ``check``."""
    assert run.rc == rc, (run.rc, run.stderr)
    wanted = (says,) if isinstance(says, str) else says
    assert any(s in run.stderr for s in wanted), run.stderr
    assert run.seconds < within, f"took {run.seconds:.1f}s, the bound is {within}s: {run.stderr}"
    assert run.forwarded == [], f"a refused command reached nerdctl: {run.forwarded}"
    if rc == 77:
        assert run.first_line.startswith("bacon: denied: "), run.stderr
        if check:
            assert f"check {check} failed" in run.first_line, run.first_line
    else:
        assert run.first_line.startswith("bacon: "), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert_nothing_half_written(host, run)


def config_text(host: Host, key: KeyPair | None, *, level: str = "Low", insecure: tuple[str, ...] = (),
                state_dir: Path | None = None, audit_log: Path | None = None, extra: str = "",
                top: str = "") -> str:
    trust = f'[trust]\nkeys = ["{key.public}"]\n' if key else ""
    hosts = ", ".join(f'"{h}"' for h in (host.registry.host, *insecure))
    return (f'level = "{level}"\nnerdctl = "{host.standin}"\nstate_dir = "{state_dir or host.state_dir}"\n'
            f'audit_log = "{audit_log or host.audit_log}"\n{top}'
            f"{trust}[registry]\ninsecure = [{hosts}]\n{extra}")


def configure(host: Host, key: KeyPair | None, **kw: object) -> None:
    host.write_config(config_text(host, key, **kw))  # type: ignore[arg-type]
