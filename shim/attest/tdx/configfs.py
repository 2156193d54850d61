"""Getting a TD quote from the kernel through configfs-tsm (Linux 6.7+).

The protocol, as the kernel documents it (Documentation/ABI/testing/configfs-tsm) and as Intel's
libtdx_attest follows it, so that concurrent callers never get each other's quote:

1. ``mkdir <root>/<unique name>``: the kernel populates ``provider``, ``generation``, ``inblob``,
   ``outblob``; ``provider`` must read ``tdx_guest``.
2. open ``inblob`` and ``flock(LOCK_EX)`` it (released on close);
3. read ``generation`` → g1;
4. write the 64 bytes of REPORTDATA to ``inblob`` through a second descriptor and close it (configfs
   binary attributes commit on close), retrying a bounded number of times while the kernel says EBUSY;
5. read ``generation`` → g2 and require g2 == g1 + 1 (else another writer interleaved: give up);
6. read ``outblob`` (the quote is generated on this read; it fails when the host has no Quote
   Generation Service);
7. read ``generation`` → g3 and require g3 == g2;
8. ``rmdir`` the entry, whatever happened.

All file system access goes through :class:`TsmFs` so the protocol's rules are tested without a kernel;
:class:`OsFs` is the real thing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shim.common.errors import Unavailable

REPORTDATA_SIZE = 64
TDX_PROVIDER = "tdx_guest"
GENERATION_MAX = 20
PROVIDER_MAX = 64
GENERATION_SETTLE_TRIES = 100
GENERATION_SETTLE_WAIT = 0.01
HINT_NOT_GUEST = (
    "run inside an Intel TDX guest with Linux 6.7+ and configfs mounted "
    "(mount -t configfs none /sys/kernel/config), or set [tdx] configfs_root"
)
HINT_QGS = "the host must run the Quote Generation Service (QGS, vsock port 4050) for the TD to get quotes"


class TsmFs(Protocol):
    """The file operations the protocol needs (one seam for tests)."""

    def mkdir(self, path: Path) -> None: ...
    def rmdir(self, path: Path) -> None: ...
    def read(self, path: Path, limit: int) -> bytes: ...
    def lock(self, path: Path) -> AbstractContextManager[None]: ...
    def write_closed(self, path: Path, data: bytes) -> None: ...


class OsFs:
    """The real file system: open/flock/pwrite/read/close, no buffering, no following of symlinks."""

    def mkdir(self, path: Path) -> None:
        os.mkdir(path, 0o700)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path, limit: int) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, min(1 << 16, limit + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise OSError(errno.EFBIG, f"more than {limit} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    @contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_closed(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            n = os.pwrite(fd, data, 0)
            if n != len(data):
                raise OSError(errno.EIO, f"short write to {path.name}: {n} of {len(data)} bytes")
        finally:
            os.close(fd)  # configfs commits a binary attribute here; EBUSY may surface on close too


@dataclass
class ConfigfsQuoteProvider:
    """A quote provider over a configfs-tsm report directory (the real kernel's, or a test provider's)."""

    root: Path
    fs: TsmFs | None = None
    busy_retries: int = 3
    busy_wait: float = 1.0
    max_quote_size: int = 64 * 1024
    name_prefix: str = "bacon"
    sleep: Callable[[float], None] = time.sleep

    def _fs(self) -> TsmFs:
        return self.fs if self.fs is not None else OsFs()

    def _generation(self, entry: Path) -> int:
        raw = self._fs().read(entry / "generation", GENERATION_MAX)
        try:
            return int(raw.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError) as e:
            raise Unavailable(f"configfs-tsm {entry}/generation is not a number: {raw[:20]!r}") from e

    def provider_name(self) -> str:
        """What the kernel says serves reports here (``tdx_guest`` in a TD). Raises :class:`Unavailable`."""
        with self._entry() as entry:
            return self._provider(entry)

    def _provider(self, entry: Path) -> str:
        try:
            return self._fs().read(entry / "provider", PROVIDER_MAX).decode("ascii", "replace").strip()
        except OSError as e:
            raise Unavailable(f"cannot read {entry}/provider: {e.strerror or e}", hint=HINT_NOT_GUEST) from e

    @contextmanager
    def _entry(self) -> Iterator[Path]:
        fs = self._fs()
        entry = self.root / f"{self.name_prefix}-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            fs.mkdir(entry)
        except FileNotFoundError as e:
            raise Unavailable(
                f"no configfs-tsm report directory at {self.root}: this is not a TDX guest, "
                "or the kernel lacks configfs-tsm",
                hint=HINT_NOT_GUEST,
            ) from e
        except OSError as e:
            raise Unavailable(f"cannot create {entry}: {e.strerror or e}", hint=HINT_NOT_GUEST) from e
        try:
            yield entry
        finally:
            # a leftover entry holds no secret, and the next call uses a new name
            with suppress(OSError):
                fs.rmdir(entry)

    def get_quote(self, report_data: bytes) -> bytes:
        """A TD quote over exactly these 64 bytes of REPORTDATA. Raises :class:`Unavailable`."""
        if len(report_data) != REPORTDATA_SIZE:
            raise ValueError(f"REPORTDATA must be {REPORTDATA_SIZE} bytes, got {len(report_data)}")
        fs = self._fs()
        with self._entry() as entry:
            provider = self._provider(entry)
            if provider != TDX_PROVIDER:
                raise Unavailable(
                    f"configfs-tsm at {self.root} is served by {provider!r}, not {TDX_PROVIDER!r}",
                    hint="this host is not an Intel TDX guest (another TEE?)",
                )
            try:
                with fs.lock(entry / "inblob"):
                    return self._locked_quote(entry, report_data)
            except OSError as e:
                raise Unavailable(f"configfs-tsm {entry}: {e.strerror or e}", hint=HINT_QGS) from e

    def _locked_quote(self, entry: Path, report_data: bytes) -> bytes:
        fs = self._fs()
        g1 = self._generation(entry)
        for attempt in range(self.busy_retries + 1):
            try:
                fs.write_closed(entry / "inblob", report_data)
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                if attempt == self.busy_retries:
                    raise Unavailable(
                        f"configfs-tsm inblob stayed busy after {self.busy_retries} retries",
                        hint="another quote is being generated; try again",
                    ) from e
                self.sleep(self.busy_wait)
        g2 = self._generation(entry)
        for _ in range(GENERATION_SETTLE_TRIES):  # rarely the new generation shows a moment late
            if g2 != g1:
                break
            self.sleep(GENERATION_SETTLE_WAIT)
            g2 = self._generation(entry)
        if g2 != g1 + 1:
            raise Unavailable(
                f"configfs-tsm generation went {g1} → {g2} across our write (expected {g1 + 1}): "
                "another writer interleaved, the quote could be theirs",
                hint="try again",
            )
        try:
            quote = fs.read(entry / "outblob", self.max_quote_size)
        except OSError as e:
            raise Unavailable(f"reading the quote from {entry}/outblob failed: {e.strerror or e}", hint=HINT_QGS) from e
        g3 = self._generation(entry)
        if g3 != g2:
            raise Unavailable(
                f"configfs-tsm generation changed while reading outblob ({g2} → {g3}): the quote could be "
                "another caller's",
                hint="try again",
            )
        if not quote:
            raise Unavailable(f"{entry}/outblob was empty", hint=HINT_QGS)
        return quote
