"""The decision log: one JSON object per decision, appended atomically, never lost, never torn.

:func:`record` renders the line (the decision's fields in the order given, then ``event`` and ``time``, an
ISO 8601 UTC timestamp) and :func:`append_line` writes it: under an exclusive ``flock`` on the log, one
``write`` of the whole line, ``fsync``; if the write fails or is short (disk full), the file is truncated
back to where it was, so no reader ever sees half a line. A log rotated by renaming it (the Debian
package's logrotate policy) is reopened by path after the lock, so each line lands in the live log. A
decision whose audit line cannot be written is not carried out (the gate denies it): fail closed.

Why not structlog, which the project chose for this: every admission is a fresh process that writes one
line, and ``import structlog`` costs 70-130 ms (it loads asyncio, and rich when installed) for what is one
``json.dumps`` here, more than the rest of the admission. The line is byte for byte what structlog's
``TimeStamper(fmt="iso", utc=True, key="time")`` + ``JSONRenderer()`` produced (the same fallback for values
JSON cannot encode: ``__structlog__()``, else ``repr``), so readers of the log see no change. structlog is
worth its import in a long-lived process that logs many events through configured processors: ``bacon
serve``'s operational log uses it (:mod:`shim.service.log`).

Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pwd
import stat
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.common.errors import NoPermission, Unavailable

MAX_LINE = 1 << 20


def append_line(path: Path, line: str) -> None:
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    if len(data) > MAX_LINE:
        raise Unavailable(f"audit line of {len(data)} bytes exceeds {MAX_LINE}")
    fd = _open_locked(path)
    try:
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


ROTATION_WAIT = 2.0  # seconds to wait for logrotate to create the new log after renaming the old one


def _open(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        # Missing while a rotated file is there: logrotate has renamed the log and is about to create the new
        # one (`create`, with O_EXCL: had we made it first, logrotate would move ours aside). Let it.
        if os.path.lexists(f"{path}.1"):
            deadline = time.monotonic() + ROTATION_WAIT
            while time.monotonic() < deadline:
                time.sleep(0.01)
                try:
                    return os.open(path, flags)
                except FileNotFoundError:
                    continue
        return os.open(path, flags | os.O_CREAT, 0o640)
    except PermissionError as e:
        raise NoPermission(f"you (uid {os.geteuid()}) may not write the audit log {path}, so nothing can be "
                           "decided: it is root's", hint="run the command with sudo") from e
    except OSError as e:
        raise Unavailable(f"cannot open the audit log {path}: {e.strerror}",
                          hint="check that its directory exists, is writable by root and has free space") from e


def _open_locked(path: Path) -> int:
    """The log open for appending, under an exclusive ``flock``, and still the file at ``path``: when it
    was rotated (renamed) between the open and the lock, the line would go to the rotated file, which
    logrotate may be compressing; so the new file at ``path`` is opened instead."""
    for _ in range(100):
        fd = _open(path)
        try:
            _check_private(path, os.fstat(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            here = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (here.st_ino, here.st_dev):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise Unavailable(f"the audit log {path} keeps being replaced while BACON appends to it",
                      hint="check what renames it (logrotate runs once a day)")


def _check_private(path: Path, st: os.stat_result) -> None:
    """The log must be a regular file (``/dev/null`` would lose every line) that only root (or the
    effective user) can write: anyone else could rewrite the record of what was decided."""
    if not stat.S_ISREG(st.st_mode):
        raise Unavailable(f"the audit log {path} is not a regular file; decisions would be lost",
                          hint="point audit_log in the configuration at a file, e.g. /var/log/bacon/audit.jsonl")
    from shim.common import trustedfile

    reason = trustedfile.unsafe_stat(st)
    if reason:
        raise Unavailable(f"the audit log {path} {reason}: it could be rewritten by others",
                          hint=f"chown root:root {path}; chmod 0640 {path}")


def _identity() -> dict[str, Any]:
    from shim.wrapper import caller

    uid = caller.credentials().ruid  # the caller's real uid (a service worker's adopted one)
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
    if "event" in extra:
        raise TypeError("record() got multiple values for 'event'")
    # dict(**…) refuses a key given twice (TypeError), as structlog's keyword call did.
    fields = dict(verdict=verdict, **_identity(), argv=list(argv), image=image, digest=digest, level=level,
                  system_level=system_level, checks=list(checks), pid=os.getpid(), **extra)
    append_line(path, render(fields))


def render(fields: Mapping[str, Any], event: str = "decision", now: datetime | None = None) -> str:
    """One log line: ``fields``, then ``event`` and ``time`` (ISO 8601 UTC, ``Z``), as JSON."""
    line = {**fields, "event": event, "time": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")}
    return json.dumps(line, default=_fallback)


def _fallback(obj: object) -> Any:
    """What JSON cannot encode: its ``__structlog__()`` if it has one, else its repr (as structlog does)."""
    method = getattr(obj, "__structlog__", None)
    return method() if callable(method) else repr(obj)
