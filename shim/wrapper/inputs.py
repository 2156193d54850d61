"""The files nerdctl would read for the operator (``run``/``create`` ``--label-file`` and ``--env-file``,
``exec --env-file``),
read once by the wrapper as the operator and handed to nerdctl as sealed in-memory copies.

nerdctl reads both as whoever runs it: root, under sudo, so ``--env-file /etc/shadow`` would put root's
secrets into a container the operator controls. The wrapper reads each named file with the operator's
permissions (:mod:`shim.wrapper.callerfiles`: regular files only, bounded, timed), puts the bytes in a sealed
memfd that survives ``exec`` and rewrites the flag to ``/proc/self/fd/N``: nerdctl (same process after the
exec) reads exactly those bytes, and what the gate checks in a label file is what nerdctl applies. The
same path named twice gets the same copy (nerdctl de-duplicates the paths of both flags). The descriptors
are moved to :data:`FIRST_FD` and above, where a ``bacon serve`` worker can put its copies of them at the
same numbers (:mod:`shim.service.server`), so ``/proc/self/fd/N`` means the same file in both processes.

Standard library only: it runs in the wrapper before a served admission.
"""

from __future__ import annotations

import os

from shim.wrapper import callerfiles
from shim.wrapper.argv.model import Invocation, _csv

TYPE_CHECKING = False  # typing and collections are not imported at run time: import cost
if TYPE_CHECKING:
    from collections.abc import Mapping

FILE_FLAGS = ("label-file", "env-file")  # flags naming a file nerdctl reads (StringSlice each)
COMMANDS = ("run", "create", "exec")  # the parsed commands that have them (exec: --env-file only)
FIRST_FD = 256
PREFIX = "/proc/self/fd/"


def copy_fd(path: str) -> int | None:
    """The descriptor of a sealed copy that ``path`` names (``/proc/self/fd/N``), or ``None``."""
    if not path.startswith(PREFIX):
        return None
    number = path[len(PREFIX):]
    if not (number.isascii() and number.isdigit()) or len(number) > 9:
        return None
    fd = int(number)
    return fd if fd >= FIRST_FD and callerfiles.is_sealed_copy(fd) else None


def materialize(inv: Invocation, environ: Mapping[str, str] | None = None) -> tuple[Invocation, list[int]]:
    """``inv`` with every ``--label-file``/``--env-file`` path replaced by a sealed copy read as the caller,
    and the copies' descriptors (inherited by the real nerdctl). Raises Denied/Unavailable/UsageError."""
    if inv.command not in COMMANDS or not any(k in FILE_FLAGS for k, _ in inv.flags):
        return inv, []
    import fcntl

    copies: dict[str, int] = {}
    flags: list[tuple[str, str]] = []
    try:
        for key, value in inv.flags:
            if key not in FILE_FLAGS:
                flags.append((key, value))
                continue
            paths = []
            for path in _csv(key, value):
                if path not in copies:
                    data = callerfiles.read(path, what=f"--{key}", environ=environ)
                    fd = callerfiles.sealed_copy(data, f"bacon-{key}")
                    try:
                        copies[path] = fcntl.fcntl(fd, fcntl.F_DUPFD, FIRST_FD)  # not close-on-exec
                    finally:
                        os.close(fd)
                paths.append(f"{PREFIX}{copies[path]}")
            flags.append((key, ",".join(paths)))
    except BaseException:
        for fd in copies.values():
            os.close(fd)
        raise
    return inv.replace(flags=tuple(flags)), sorted(copies.values())


def seal_nerdctl_toml(environ: dict[str, str] | os._Environ[str]) -> list[int]:
    """Under sudo, the nerdctl.toml the caller's ``NERDCTL_TOML`` names, read once as the caller and
    handed on as a sealed copy: ``environ["NERDCTL_TOML"]`` becomes ``/proc/self/fd/N`` (its descriptor is
    returned), so what the container profile judges of it (``nerdctl_env.caller_settings``) is exactly
    what nerdctl reads, however the caller changes the file meanwhile. A path root sees nothing at becomes
    ``""``, which nerdctl reads as no file (docs/nerdctl.md §2). Outside sudo, or unset, nothing changes.
    Raises ConfigError (a file the caller cannot read, or not a regular file)."""
    from shim.wrapper import caller

    path = environ.get("NERDCTL_TOML")
    if not path or not caller.under_sudo(environ) or copy_fd(path) is not None:
        return []
    if not os.path.lexists(path):
        environ["NERDCTL_TOML"] = ""
        return []
    import fcntl

    from shim.common.errors import ConfigError, Denied, Unavailable

    try:
        data = callerfiles.read(path, what="nerdctl's configuration (NERDCTL_TOML)", environ=environ)
    except (Denied, Unavailable) as e:
        raise ConfigError(e.message, hint="point NERDCTL_TOML at a regular file you can read, or unset it") from e
    fd = callerfiles.sealed_copy(data, "bacon-nerdctl-toml")
    try:
        number = fcntl.fcntl(fd, fcntl.F_DUPFD, FIRST_FD)  # not close-on-exec
    finally:
        os.close(fd)
    environ["NERDCTL_TOML"] = f"{PREFIX}{number}"
    return [number]


def inherited_copies(environ: Mapping[str, str]) -> tuple[int, ...]:
    """The sealed copies a child nerdctl must inherit besides those in its argv: the nerdctl.toml's."""
    fd = copy_fd(environ.get("NERDCTL_TOML", ""))
    return () if fd is None else (fd,)


def read_copy(path: str, *, what: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The bytes nerdctl will read at ``path``: a sealed copy's, or the file's as the caller."""
    fd = copy_fd(path)
    if fd is None:
        return callerfiles.read(path, what=what, environ=environ)
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)
