"""Reading the decision log (``audit_log``) for ``bacon audit``: parse, filter, format, follow.

Each line ``shim.admission.audit`` writes is one JSON object with at least ``time`` (ISO 8601, UTC) and
``verdict``. A line that is not such an object (garbage, a torn last line without its newline, a line
longer than :data:`shim.admission.audit.MAX_LINE`) is reported as a :class:`BadLine` with its line number, never
a crash. Parsing and filtering are pure; :func:`scan` and :func:`follow` do the file IO.

The log may be rotated (the Debian package ships a logrotate policy: renamed to ``audit.jsonl.1``, older
ones compressed, ``audit.jsonl.2.gz`` and on, or dated with ``dateext``): :func:`log_files` lists the
rotated files and the live one, oldest first, and ``bacon audit`` reads them all in that order.

A log this user may not read (it is root's, group ``adm`` may read it) is a :class:`NoPermission`
(exit 69, "use sudo"), never "nothing logged yet".

Standard library only (``gzip`` for rotated files).
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from shim.common import strictjson
from shim.common.errors import NoPermission, NotFound, Unavailable, UsageError

MAX_LINE = 1 << 20  # as shim.admission.audit.MAX_LINE (not imported: that module loads structlog)
# --verdict: each matches that verdict only (a dry run of `bacon verify` is verify-denied/verify-admitted,
# a refusal that was an error, such as an image not found or a registry down, is "error").
VERDICTS = ("denied", "admitted", "error", "verify-denied", "verify-admitted")
_ROTATED_NUMBER = re.compile(r"^\.(\d+)(\.gz)?$")
_ROTATED_DATE = re.compile(r"^-(\d[\d-]*)(\.gz)?$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass(frozen=True)
class Entry:
    lineno: int
    time: datetime
    doc: Mapping[str, Any]
    source: Path | None = None  # a rotated file it was read from (None: the live log)

    @property
    def verdict(self) -> str:
        return str(self.doc.get("verdict", ""))


@dataclass(frozen=True)
class BadLine:
    lineno: int
    reason: str
    text: str  # the start of the line, for the operator to see
    source: Path | None = None  # a rotated file it was read from (None: the live log)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"line": self.lineno, "error": self.reason, "text": self.text}
        if self.source is not None:
            doc["file"] = str(self.source)
        return doc


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m``) or a
    time (``2026-12-01``, ``2026-12-01T08:00``, ``2026-12-01T08:00:00Z``; without a zone it is UTC).
    Raises :class:`UsageError`."""
    now = now or datetime.now(UTC)
    text = value.strip()
    m = _DURATION.match(text)
    if text and m and any(m.groups()):
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        return now - timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    try:
        t = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError as e:
        raise UsageError(f"--since {value!r} is neither a duration nor a time",
                         hint="e.g. --since 15m, --since 2h, --since 2026-12-01T08:00Z (times are UTC)") from e
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_line(lineno: int, raw: bytes) -> Entry | BadLine:
    """One line of the log (without its newline)."""
    shown = raw[:80].decode("utf-8", "replace")
    if len(raw) > MAX_LINE:
        return BadLine(lineno, f"longer than {MAX_LINE} bytes", shown)
    try:
        doc = strictjson.loads(raw, max_size=MAX_LINE)
    except strictjson.Invalid:
        return BadLine(lineno, "not JSON (torn or garbage)", shown)
    if not isinstance(doc, dict):
        return BadLine(lineno, "not a JSON object", shown)
    stamp, verdict = doc.get("time"), doc.get("verdict")
    if not isinstance(stamp, str) or not isinstance(verdict, str):
        return BadLine(lineno, "no 'time' or 'verdict'", shown)
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return BadLine(lineno, f"bad time {stamp[:40]!r}", shown)
    return Entry(lineno, t if t.tzinfo else t.replace(tzinfo=UTC), doc)


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    verdict: str | None = None  # exactly this verdict ("denied" is not "verify-denied", a dry run)
    image: str | None = None  # a substring of the image or the digest

    def matches(self, e: Entry) -> bool:
        if self.since is not None and e.time < self.since:
            return False
        if self.verdict is not None and e.verdict != self.verdict:
            return False
        if self.image is not None:
            fields = (e.doc.get("image"), e.doc.get("digest"))
            if not any(isinstance(f, str) and self.image in f for f in fields):
                return False
        return True


def _failed_check(doc: Mapping[str, Any]) -> str | None:
    for c in doc.get("checks") or []:
        if isinstance(c, dict) and c.get("passed") is False:
            return f"{c.get('check')}: {c.get('summary')}"
    return None


def format_entry(e: Entry) -> str:
    d = e.doc
    who = str(d.get("user", "?")) + (f" (sudo {d['sudo_user']})" if d.get("sudo_user") else "")
    digest = d.get("digest")
    parts = [e.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), f"{e.verdict:<16}",
             str(d.get("image") or d.get("target") or "-")]
    if isinstance(digest, str):
        parts.append(digest[:19] + "…")
    if d.get("level") or d.get("system_level"):
        parts.append(f"level {d.get('level') or '-'} on {d.get('system_level') or '-'}")
    parts.append(f"by {who}")
    failed = _failed_check(d)
    if failed:
        parts.append(f"failed {failed}")
    elif d.get("error"):
        parts.append(f"error {d['error']}")
    return "  ".join(parts)


def format_bad(b: BadLine, path: Path) -> str:
    return f"bacon: audit: {b.source or path}:{b.lineno}: {b.reason}: {b.text!r}"


def _lines(f: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(line without newline, complete?) for every line, reading at most MAX_LINE + 1 bytes of one."""
    while True:
        raw = f.readline(MAX_LINE + 2)
        if not raw:
            return
        if raw.endswith(b"\n"):
            yield raw[:-1], True
            continue
        if len(raw) > MAX_LINE:  # an over-long line: skip to its end
            while (more := f.readline(MAX_LINE)) and not more.endswith(b"\n"):
                pass
            yield raw, True
            continue
        yield raw, False


def permission_error(path: Path, what: str = "read") -> NoPermission:
    return NoPermission(f"you (uid {os.geteuid()}) may not {what} the audit log {path}: it is root's",
                        hint="sudo bacon audit …; or, to read it without sudo, have root add you to the group "
                             "that may read it (adm on a Debian package install)")


def exists(path: Path) -> bool:
    """Whether the log is there. Raises :class:`NoPermission` when this user cannot even look (a directory
    it may not search): "not there" would be a lie."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except PermissionError as e:
        raise permission_error(path, "see") from e
    return True


def rotation_key(base: str, name: str) -> tuple[int, int, str] | None:
    """Where a file named ``name`` sorts among the rotations of ``base`` (older first), or None when it is
    not one: dated ones (``base-20261206[.gz]``) by date, then numbered ones (``base.3.gz``, ``base.2.gz``,
    ``base.1``) from the highest number down. Pure."""
    if not name.startswith(base):
        return None
    rest = name[len(base):]
    m = _ROTATED_NUMBER.match(rest)
    if m:
        return (1, -int(m.group(1)), "")
    m = _ROTATED_DATE.match(rest)
    if m:
        return (0, 0, m.group(1))
    return None


def log_files(path: Path) -> list[Path]:
    """The rotated files of the log, oldest first, then the live log itself (whether or not it exists).
    Raises :class:`NoPermission` when its directory cannot be listed."""
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return [path]
    except PermissionError as e:
        raise permission_error(path, "see") from e
    keyed = [(k, n) for n in names if (k := rotation_key(path.name, n)) is not None]
    return [path.parent / n for _, n in sorted(keyed)] + [path]


def open_log(path: Path) -> BinaryIO:
    """Open one file of the log for reading (a ``.gz`` one decompressed). Raises :class:`NotFound`,
    :class:`NoPermission`, :class:`Unavailable`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise NotFound(f"no audit log at {path} (no decision has been logged yet)",
                       hint="check `audit_log` in the configuration") from e
    except PermissionError as e:
        raise permission_error(path) from e
    except OSError as e:
        raise Unavailable(f"cannot read the audit log {path}: {e.strerror}",
                          hint="check `audit_log` in the configuration: it must be a regular file") from e
    os.set_blocking(fd, True)
    f = os.fdopen(fd, "rb")
    if path.name.endswith(".gz"):
        import gzip

        class _Gz(gzip.GzipFile):
            def close(self) -> None:  # GzipFile leaves a file object it was given open
                try:
                    super().close()
                finally:
                    f.close()

        return cast(BinaryIO, _Gz(fileobj=f, mode="rb"))
    return f


def scan(f: BinaryIO, flt: Filter, last: int, source: Path | None = None,
         keep: deque[Entry] | None = None) -> tuple[list[Entry], list[BadLine], int]:
    """The last ``last`` matching entries (all when 0), every bad line, and the number of lines read.
    ``keep``: entries of earlier (rotated) files to add to; ``source``: the rotated file ``f`` is."""
    keep = deque(keep or (), maxlen=last or None)
    bad: list[BadLine] = []
    n = 0
    try:
        for n, (raw, complete) in enumerate(_lines(f), start=1):
            if not raw.strip():
                continue
            parsed = parse_line(n, raw)
            if isinstance(parsed, BadLine):
                if not complete:
                    parsed = BadLine(n, "torn: the last line has no newline", parsed.text)
                bad.append(replace(parsed, source=source))
            elif flt.matches(parsed):
                keep.append(replace(parsed, source=source))
    except (EOFError, OSError) as e:  # a truncated or corrupt .gz
        bad.append(BadLine(n + 1, f"unreadable from here on: {e}", "", source))
    return list(keep), bad, n


def scan_rotated(path: Path, flt: Filter, last: int) -> tuple[list[Entry], list[BadLine]]:
    """The last ``last`` matching entries of the rotated files of the log (oldest first) and their bad
    lines; the live log is left to the caller (it may be followed)."""
    entries: list[Entry] = []
    bad: list[BadLine] = []
    for rotated in log_files(path)[:-1]:
        try:
            f = open_log(rotated)
        except NotFound:
            continue  # rotated away while we listed
        with f:
            entries, more, _ = scan(f, flt, last, source=rotated, keep=deque(entries))
        bad.extend(more)
    return entries, bad


def follow(path: Path, f: BinaryIO, flt: Filter, lineno: int, emit: Callable[[Entry | BadLine], None],
           poll: float = 0.5, stop: Callable[[], bool] = lambda: False) -> None:
    """Wait for new lines at the end of the log and ``emit`` each match and each bad line; reopen the log
    when it is replaced or truncated (rotation), after reading what was appended to the old file up to
    then. Returns when ``stop()`` is true (Ctrl-C ends it otherwise)."""
    pending = b""

    def feed(chunk: bytes) -> None:
        nonlocal pending, lineno
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            lineno += 1
            if raw.strip():
                parsed = parse_line(lineno, raw)
                if isinstance(parsed, BadLine) or flt.matches(parsed):
                    emit(parsed)
        if len(pending) > MAX_LINE:
            lineno += 1
            emit(BadLine(lineno, f"longer than {MAX_LINE} bytes", pending[:80].decode("utf-8", "replace")))
            pending = b""

    while not stop():
        chunk = f.read(MAX_LINE)
        if chunk:
            feed(chunk)
            continue
        try:
            st = os.stat(path)
            replaced = st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell()
        except FileNotFoundError:
            replaced = False
        if replaced:
            while chunk := f.read(MAX_LINE):  # the last lines written to the old file before it was renamed
                feed(chunk)
            try:
                new = open_log(path)
            except NotFound:
                continue
            f.close()
            f = new
            lineno, pending = 0, b""
            continue
        time.sleep(poll)
    f.close()
