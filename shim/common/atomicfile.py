"""Replace a file atomically: a reader sees the old content or the new, never a part of either.

The one way BACON writes a file that something later trusts or reads back (the system level, admission
and enable records, the TPM baseline, the signature cache, the TDX collateral, quotes and evidence):

1. a temporary file in the same directory, created exclusively (``O_EXCL``, ``O_NOFOLLOW``: nothing that an
   attacker placed there beforehand is followed or reused), mode 0600 while it is written;
2. its owner (when asked) and its final mode set on the descriptor (``fchown``/``fchmod``: exact, whatever
   the umask), every byte written, ``fsync``;
3. ``os.replace`` onto the path (atomic within a file system), then ``fsync`` of the directory so that the
   rename itself survives a crash.

If anything fails before the rename the temporary file is removed and the old file is untouched: no
partial file is ever visible under the path.

Hand-written rather than a library (``atomicwrites`` is unmaintained and does neither owner nor directory
fsync): it is twenty lines of ``os`` calls. Standard library only, no ``pathlib`` or ``tempfile``: callers
sit on the admission path.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # typing is not imported at run time (import cost)
if TYPE_CHECKING:
    StrPath = str | os.PathLike[str]


def fsync_directory(directory: StrPath) -> None:
    """Make a rename, creation or removal in ``directory`` durable. Raises OSError."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: StrPath, data: bytes, *, mode: int = 0o644, owner: tuple[int, int] | None = None,
          sync_directory: bool = True, fsync: bool = True) -> None:
    """Replace ``path`` by a file holding ``data``, with permission bits ``mode`` (exactly, not masked by the
    umask) and, when given, ``owner`` ``(uid, gid)``. ``sync_directory=False`` skips the directory's fsync
    (for files that are cheap to lose, e.g. a cache); ``fsync=False`` skips both (for state a crash makes
    moot). Raises OSError; the old file is then unchanged."""
    name = os.fspath(path)
    directory, base = os.path.split(name)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync and sync_directory:
        fsync_directory(directory or ".")
