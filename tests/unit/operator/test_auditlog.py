"""Reading the decision log: --since, the filters, torn and garbage lines, the text of an entry, follow."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shim.common.errors import UsageError
from shim.operator import auditlog

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def line(verdict: str, image: str | None, t: str = "2026-12-02T11:30:00.123456Z", **extra: object) -> bytes:
    doc = {"event": "decision", "verdict": verdict, "user": "root", "uid": 0, "sudo_user": "alice",
           "argv": ["nerdctl", "run", image], "image": image, "digest": "sha256:" + "ab" * 32, "level": "Mid",
           "system_level": "Mid", "checks": [{"check": "signature", "passed": verdict == "admitted",
                                              "summary": "no signature by a trusted key"}], "pid": 1, "time": t}
    doc.update(extra)
    return json.dumps(doc).encode() + b"\n"


def test_since_durations_and_times() -> None:
    assert auditlog.parse_since("15m", NOW) == datetime(2026, 12, 2, 11, 45, tzinfo=UTC)
    assert auditlog.parse_since("1h30m", NOW) == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    assert auditlog.parse_since("2d", NOW) == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert auditlog.parse_since("1w", NOW) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert auditlog.parse_since("2026-12-01", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert auditlog.parse_since("2026-12-01 08:00", NOW) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert auditlog.parse_since("2026-12-01T08:00:00+01:00", NOW) == datetime(2026, 12, 1, 7, tzinfo=UTC)
    for bad in ("", "yesterday", "15", "m", "1x"):
        with pytest.raises(UsageError, match="--since"):
            auditlog.parse_since(bad, NOW)


def test_scan_filters_and_keeps_the_last_n() -> None:
    log = (line("admitted", "127.0.0.1:5000/team/app:1", "2026-12-02T10:00:00Z")
           + line("denied", "127.0.0.1:5000/team/evil:1")
           + line("verify-denied", "127.0.0.1:5000/team/app:2")
           + b"\n"
           + line("policy-set", None, digest=None))
    entries, bad, n = auditlog.scan(io.BytesIO(log), auditlog.Filter(), 0)
    assert n == 5
    assert bad == []
    assert [e.lineno for e in entries] == [1, 2, 3, 5]
    denied, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(verdict="denied"), 0)
    assert [e.verdict for e in denied] == ["denied"]  # a dry run (bacon verify) is not a refusal
    dry, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(verdict="verify-denied"), 0)
    assert [e.lineno for e in dry] == [3]
    app, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(image="team/app"), 0)
    assert [e.lineno for e in app] == [1, 3]
    by_digest, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(image="sha256:abab"), 1)
    assert [e.lineno for e in by_digest] == [3]
    recent, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(since=datetime(2026, 12, 2, 11, tzinfo=UTC)), 0)
    assert [e.lineno for e in recent] == [2, 3, 5]
    last, _, _ = auditlog.scan(io.BytesIO(log), auditlog.Filter(), 2)
    assert [e.lineno for e in last] == [3, 5]


def test_torn_and_garbage_lines_are_reported_not_fatal() -> None:
    log = (line("admitted", "a") + b"\x00\xffgarbage\n" + b"[1, 2]\n" + b'{"verdict": "x"}\n'
           + b'{"time": "not a time", "verdict": "denied"}\n' + line("denied", "b") + b'{"time": "2026-12-0')
    entries, bad, n = auditlog.scan(io.BytesIO(log), auditlog.Filter(), 0)
    assert [e.lineno for e in entries] == [1, 6]
    assert n == 7
    assert [(b.lineno, b.reason.split(" (")[0].split(":")[0]) for b in bad] == [
        (2, "not JSON"), (3, "not a JSON object"), (4, "no 'time' or 'verdict'"), (5, "bad time 'not a time'"),
        (7, "torn")]
    assert "torn: the last line has no newline" in auditlog.format_bad(bad[-1], Path("/var/log/bacon/audit.jsonl"))
    huge = b"x" * (auditlog.MAX_LINE + 10) + b"\n" + line("denied", "c")
    entries, bad, _ = auditlog.scan(io.BytesIO(huge), auditlog.Filter(), 0)
    assert [b.reason for b in bad] == [f"longer than {auditlog.MAX_LINE} bytes"]
    assert [e.lineno for e in entries] == [2]


def test_format_entry() -> None:
    e = auditlog.parse_line(9, line("denied", "127.0.0.1:5000/team/evil:1").rstrip(b"\n"))
    assert isinstance(e, auditlog.Entry)
    text = auditlog.format_entry(e)
    assert text.startswith("2026-12-02T11:30:00Z  denied            127.0.0.1:5000/team/evil:1  sha256:abababab")
    assert "level Mid on Mid" in text
    assert "by root (sudo alice)" in text
    assert text.endswith("failed signature: no signature by a trusted key")


def test_follow_emits_appended_lines_and_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(line("admitted", "old"))
    f = auditlog.open_log(path)
    _, _, n = auditlog.scan(f, auditlog.Filter(), 0)
    got: list[auditlog.Entry | auditlog.BadLine] = []
    done = threading.Event()

    def emit(item: auditlog.Entry | auditlog.BadLine) -> None:
        got.append(item)
        if len(got) == 3:
            done.set()

    t = threading.Thread(target=auditlog.follow, args=(path, f, auditlog.Filter(verdict="denied"), n, emit),
                         kwargs={"poll": 0.02, "stop": done.is_set}, daemon=True)
    t.start()
    with path.open("ab") as w:
        w.write(line("admitted", "skipped") + line("denied", "new")[:20])
        w.flush()
        w.write(line("denied", "new")[20:] + b"garbage\n")
    path.rename(tmp_path / "audit.jsonl.1")  # rotation: a new file at the same path
    path.write_bytes(line("denied", "after-rotation"))
    assert done.wait(10), got
    t.join(5)
    assert isinstance(got[0], auditlog.Entry)
    assert got[0].doc["image"] == "new"
    assert got[0].lineno == 3
    assert isinstance(got[1], auditlog.BadLine)
    assert got[1].lineno == 4
    assert isinstance(got[2], auditlog.Entry)
    assert got[2].doc["image"] == "after-rotation"
    assert got[2].lineno == 1


def test_rotated_files_sort_oldest_first_and_others_are_ignored() -> None:
    names = ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.10.gz", "audit.jsonl.2.gz", "audit.jsonl-20261201.gz",
             "audit.jsonl-20261130", "audit.jsonl.tmp", "audit.jsonl.1.bak", "other.jsonl.1", "audit.jsonlx.1"]
    keyed = sorted((k, n) for n in names if (k := auditlog.rotation_key("audit.jsonl", n)) is not None)
    assert [n for _, n in keyed] == ["audit.jsonl-20261130", "audit.jsonl-20261201.gz", "audit.jsonl.10.gz",
                                     "audit.jsonl.2.gz", "audit.jsonl.1"]


def test_scan_reads_rotated_and_compressed_files_in_order(tmp_path: Path) -> None:
    import gzip

    log = tmp_path / "audit.jsonl"
    with gzip.open(tmp_path / "audit.jsonl.3.gz", "wb") as g:
        g.write(line("denied", "r/a:1", "2026-12-01T00:00:00Z"))
    with gzip.open(tmp_path / "audit.jsonl.2.gz", "wb") as g:
        g.write(line("admitted", "r/b:1", "2026-12-01T01:00:00Z") + b"garbage\n")
    (tmp_path / "audit.jsonl.1").write_bytes(line("denied", "r/c:1", "2026-12-01T02:00:00Z"))
    (tmp_path / "audit.jsonl.4.gz").write_bytes(b"\x1f\x8b not really gzip")
    log.write_bytes(line("denied", "r/d:1", "2026-12-01T03:00:00Z"))
    assert auditlog.log_files(log)[-1] == log
    older, bad = auditlog.scan_rotated(log, auditlog.Filter(), 0)
    assert [e.doc["image"] for e in older] == ["r/a:1", "r/b:1", "r/c:1"]
    assert [e.source for e in older] == [tmp_path / "audit.jsonl.3.gz", tmp_path / "audit.jsonl.2.gz",
                                         tmp_path / "audit.jsonl.1"]
    assert [(b.source, b.lineno) for b in bad] == [(tmp_path / "audit.jsonl.4.gz", 1),
                                                   (tmp_path / "audit.jsonl.2.gz", 2)]
    assert "audit.jsonl.2.gz:2" in auditlog.format_bad(bad[1], log)
    with auditlog.open_log(log) as f:
        entries, _, _ = auditlog.scan(f, auditlog.Filter(verdict="denied"), 2,
                                      keep=__import__("collections").deque(older))
    assert [e.doc["image"] for e in entries] == ["r/c:1", "r/d:1"]  # the last two denials across files


def test_follow_reads_the_old_file_to_its_end_after_a_rotation(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A decision that opened the log just before logrotate renamed it finishes its line in the old file
    after follow last read it; follow reads that line before it moves on to the new log."""
    import os

    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"")
    f = auditlog.open_log(log)
    writer = open(log, "ab")  # noqa: SIM115 - closed by the stat hook, mid-test
    got: list[str] = []
    calls = 0
    real_stat = os.stat

    def stop() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:  # logrotate: rename, create
            log.rename(tmp_path / "audit.jsonl.1")
            log.write_bytes(line("denied", "r/new:1"))
        return calls > 10 or len(got) == 2

    def stat(path: object, *a: object, **k: object) -> os.stat_result:
        if calls == 2 and not writer.closed:  # the late line lands between follow's last read and its check
            writer.write(line("denied", "r/late:1"))
            writer.close()
        return real_stat(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    auditlog.follow(log, f, auditlog.Filter(), 0,
                    lambda e: got.append(str(e.doc["image"])) if isinstance(e, auditlog.Entry) else None,
                    poll=0.01, stop=stop)
    assert got == ["r/late:1", "r/new:1"]
