"""The audit line is what structlog rendered before (``TimeStamper(fmt="iso", utc=True, key="time")`` and
``JSONRenderer()``), so readers of existing logs see no change; structlog is compared when installed."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shim.admission import audit


class Odd:
    def __repr__(self) -> str:
        return "<odd>"


FIELDS: dict[str, Any] = {"verdict": "admitted", "user": "root", "uid": 0, "argv": ["nerdctl", "run", "x"],
                          "image": "127.0.0.1:5000/a:1", "digest": None, "level": "Low", "system_level": "Mid",
                          "checks": [{"check": "signature", "passed": True, "summary": "ok ü"}], "pid": 7,
                          "odd": Odd(), "path": Path("/x")}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def test_render_matches_structlog() -> None:
    structlog = pytest.importorskip("structlog")
    lines: list[str] = []

    class Sink:
        def msg(self, line: str) -> None:
            lines.append(line)

        info = msg

    logger = structlog.wrap_logger(Sink(), processors=[
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.processors.JSONRenderer(sort_keys=False)])
    logger.info(event="decision", **FIELDS)
    theirs = json.loads(lines[0])
    now = datetime.fromisoformat(theirs["time"].replace("Z", "+00:00"))
    assert audit.render(FIELDS, now=now) == lines[0]


def test_render_time_and_order() -> None:
    line = json.loads(audit.render(FIELDS, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
    assert list(line)[-2:] == ["event", "time"]
    assert line["time"] == "2026-01-02T03:04:05Z"
    assert ISO_Z.match(json.loads(audit.render(FIELDS))["time"])
    assert line["odd"] == "<odd>"


def test_record_appends_one_line_and_refuses_duplicate_keys(tmp_path: Path) -> None:
    log = tmp_path / "log" / "audit.jsonl"
    audit.record(log, argv=["nerdctl"], verdict="denied", image=None, digest=None, level=None, system_level="Low",
                 checks=[], reason="r")
    (line,) = log.read_text().splitlines()
    doc = json.loads(line)
    assert (doc["verdict"], doc["reason"], doc["event"]) == ("denied", "r", "decision")
    with pytest.raises(TypeError):
        audit.record(log, argv=[], verdict="x", image=None, digest=None, level=None, system_level=None, checks=[],
                     pid=1)
    with pytest.raises(TypeError):
        audit.record(log, argv=[], verdict="x", image=None, digest=None, level=None, system_level=None, checks=[],
                     event="e")
    assert len(log.read_text().splitlines()) == 1


def test_append_follows_a_rotation_that_happened_before_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """logrotate renames the log between a decision's open and its flock: the line goes to the new log."""
    import fcntl

    from shim.admission import audit

    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"")
    real_flock = fcntl.flock
    rotated: list[bool] = []

    def flock(fd: int, op: int) -> None:
        if not rotated:
            rotated.append(True)
            log.rename(tmp_path / "audit.jsonl.1")
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    audit.append_line(log, '{"verdict": "denied"}')
    assert (tmp_path / "audit.jsonl.1").read_bytes() == b""
    assert log.read_bytes() == b'{"verdict": "denied"}\n'


def test_append_leaves_the_creation_of_a_rotated_log_to_logrotate(tmp_path: Path) -> None:
    """Between logrotate's rename and its `create` (O_EXCL) the log is missing: the appender waits for the
    new file rather than make one logrotate would then move aside."""
    import threading
    import time

    from shim.admission import audit

    log = tmp_path / "audit.jsonl"
    (tmp_path / "audit.jsonl.1").write_bytes(b'{"old": 1}\n')  # just renamed
    made: list[int] = []

    def logrotate_create() -> None:
        time.sleep(0.3)
        fd = os.open(log, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)  # fails if the appender made it first
        made.append(os.fstat(fd).st_ino)
        os.close(fd)

    t = threading.Thread(target=logrotate_create)
    t.start()
    audit.append_line(log, '{"verdict": "denied"}')
    t.join()
    assert made == [log.stat().st_ino]
    assert log.read_bytes() == b'{"verdict": "denied"}\n'
    # With no rotated file (the first line ever), the log is made at once.
    first = tmp_path / "new" / "audit.jsonl"
    audit.append_line(first, "{}")
    assert first.read_bytes() == b"{}\n"
