"""The decision log: one JSON object per decision, appended atomically, never lost, never torn.

structlog renders the line (ISO UTC timestamp, JSON); :class:`AppendSink` writes it: under an
exclusive ``flock`` on the log, one ``write`` of the whole line, ``fsync``; if the write fails or is
short (disk full), the file is truncated back to where it was, so no reader ever sees half a line.
A decision whose audit line cannot be written is not carried out (the gate denies it): fail closed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from shim.errors import Unavailable

MAX_LINE = 1 << 20


class AppendSink:
    """A structlog "logger" whose every method appends one rendered line to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def msg(self, line: str) -> None:
        append_line(self.path, line)

    info = warning = error = msg


def append_line(path: Path, line: str) -> None:
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    if len(data) > MAX_LINE:
        raise Unavailable(f"audit line of {len(data)} bytes exceeds {MAX_LINE}")
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as e:
        raise Unavailable(f"cannot open the audit log {path}: {e.strerror}",
                          hint="check that its directory exists, is writable by root and has free space") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise Unavailable(f"cannot write the audit log {path}: {e.strerror}",
                              hint="free space on its filesystem or fix its permissions") from e
    finally:
        os.close(fd)


def _identity() -> dict[str, Any]:
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    out: dict[str, Any] = {"user": user, "uid": uid}
    if "SUDO_USER" in os.environ:
        out["sudo_user"] = os.environ["SUDO_USER"]
        out["sudo_uid"] = os.environ.get("SUDO_UID")
    return out


def record(path: Path, *, argv: Sequence[str], verdict: str, image: str | None, digest: str | None,
           level: str | None, system_level: str | None, checks: Sequence[Mapping[str, Any]],
           **extra: Any) -> None:
    """Append one decision. Raises :class:`Unavailable` when it cannot be written."""
    logger = structlog.wrap_logger(
        AppendSink(path),
        processors=[structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
                    structlog.processors.JSONRenderer(sort_keys=False)],
    )
    logger.info(event="decision", verdict=verdict, **_identity(), argv=list(argv), image=image, digest=digest,
                level=level, system_level=system_level, checks=list(checks), pid=os.getpid(), **extra)
