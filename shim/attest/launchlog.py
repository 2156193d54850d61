"""The launch log: one CEL record (:mod:`shim.attest.cel`) per admitted launch and register, appended to a file
of this boot in ``state_dir/launches/<boot id>.cel``.

A record's content is BACON's launch event (:class:`LaunchEvent`), nested TLVs (:data:`FIELDS`): what was
launched (command, image reference, digest, signer, level, profile, argv, container ID, admission token),
when, by which part of BACON, and the register's value before this record was extended (``prior``: as the
last append left it, read from the register when that is not known).
``prior`` makes each break in a log nameable: replaying record by record, the first record whose
``prior`` is not what the records before it give is where the log was edited (or where something outside
BACON extended the register); a record whose successor's ``prior`` shows it never reached the register
was logged and then not extended (a refused launch, or a crash between the two).

Writing (:func:`append`), under an exclusive ``flock`` on the log file, so launches are serialized:

1. find the end of the last whole record (a ``.next`` hint file says where it was; what follows is
   parsed, never trusted) and cut off a torn tail (an append that a crash interrupted: never extended);
2. append the new records in one ``write``;
3. only then extend the registers (the caller's ``extend``): the log is written ahead of the registers,
   so the registers never hold a launch the log lacks.

No ``fsync``: a crashed process leaves its completed ``write`` in the page cache, so the log and the
registers stay consistent; a power loss or kernel crash loses unsynced records, but it resets the
registers too (the next boot has a new boot id and a new log), so no register is ever left holding a
launch its log lacks. What a lost tail costs is the history of a boot nobody can attest any more; the
audit log keeps every decision. (``fdatasync`` costs 2-3 ms per launch here, more under I/O load: most of
the measurement's budget.)

IO is confined to :func:`append` and :func:`read`; the codec is pure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shim.attest import cel
from shim.common import trustedfile
from shim.common.errors import ConfigError

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
VERSION = b"1"
MAX_LOG = 64 << 20

# The launch event's nested TLV types.
F_VERSION, F_SOURCE, F_COMMAND, F_IMAGE, F_DIGEST, F_SIGNER, F_LEVEL, F_PROFILE = 0, 1, 2, 3, 4, 5, 6, 7
F_ARG, F_CONTAINER, F_TIME, F_TOKEN, F_NAMESPACE, F_PRIOR = 8, 9, 10, 11, 12, 13
FIELDS: Mapping[int, str] = {
    F_VERSION: "version", F_SOURCE: "source", F_COMMAND: "command", F_IMAGE: "image", F_DIGEST: "digest",
    F_SIGNER: "signer", F_LEVEL: "level", F_PROFILE: "profile", F_ARG: "arg", F_CONTAINER: "container_id",
    F_TIME: "time", F_TOKEN: "token", F_NAMESPACE: "namespace", F_PRIOR: "prior",
}
_TEXT = {F_SOURCE: "source", F_COMMAND: "command", F_IMAGE: "image", F_DIGEST: "digest", F_SIGNER: "signer",
         F_LEVEL: "level", F_PROFILE: "profile", F_CONTAINER: "container_id", F_TIME: "time", F_TOKEN: "token",
         F_NAMESPACE: "namespace"}


@dataclass(frozen=True)
class LaunchEvent:
    """What is measured for one admitted launch. ``source``: ``wrapper`` (the nerdctl wrapper) or
    ``runtime`` (the runtime gate); ``argv``: the command line as it is carried out; ``container_id``
    when it is known at measurement (``start``), else ``token`` (the admission record's, which the
    container carries as a label) ties the two; ``time``: RFC 3339 UTC."""

    source: str
    command: str
    image: str
    digest: str
    signer: str
    level: str
    argv: tuple[str, ...]
    time: str
    container_id: str | None = None
    profile: str | None = None
    token: str | None = None
    namespace: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: getattr(self, k) for k in ("source", "command", "image", "digest", "signer",
                                                                  "level", "time")}
        out["argv"] = list(self.argv)
        for k in ("container_id", "profile", "token", "namespace"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


def encode_event(event: LaunchEvent, prior: bytes) -> bytes:
    """The record content for ``event`` extended on top of a register holding ``prior``."""
    parts = [cel.tlv(F_VERSION, VERSION)]
    for kind, name in _TEXT.items():
        value = getattr(event, name)
        if value is not None:
            parts.append(cel.tlv(kind, str(value).encode("utf-8", "surrogateescape")))
    parts.extend(cel.tlv(F_ARG, a.encode("utf-8", "surrogateescape")) for a in event.argv)
    parts.append(cel.tlv(F_PRIOR, prior))
    return b"".join(parts)


@dataclass(frozen=True)
class Entry:
    """A decoded launch record: the CEL record, its event, and the register value it says it followed."""

    record: cel.Record
    event: LaunchEvent
    prior: bytes


def decode_event(record: cel.Record) -> Entry:
    """Decode a launch record's content. Raises :class:`cel.CelError` naming the record."""
    where = f"record #{record.recnum}"
    if record.content_type != cel.CONTENT_BACON_LAUNCH:
        raise cel.CelError(f"{where}: content type {record.content_type} is not a BACON launch")
    values: dict[str, str] = {}
    argv: list[str] = []
    prior: bytes | None = None
    version = None
    for kind, value in cel.split_tlvs(record.content, where):
        if kind == F_VERSION:
            version = value
        elif kind == F_ARG:
            argv.append(value.decode("utf-8", "surrogateescape"))
        elif kind == F_PRIOR:
            prior = value
        elif kind in _TEXT:
            if _TEXT[kind] in values:
                raise cel.CelError(f"{where}: field {_TEXT[kind]} appears twice")
            values[_TEXT[kind]] = value.decode("utf-8", "surrogateescape")
    if version != VERSION:
        raise cel.CelError(f"{where}: launch event version {version!r}, this BACON reads {VERSION!r}")
    missing = [k for k in ("source", "command", "image", "digest", "signer", "level", "time") if k not in values]
    if prior is None:
        missing.append("prior")
    if missing:
        raise cel.CelError(f"{where}: the launch event lacks {', '.join(missing)}")
    event = LaunchEvent(source=values["source"], command=values["command"], image=values["image"],
                        digest=values["digest"], signer=values["signer"], level=values["level"],
                        argv=tuple(argv), time=values["time"], container_id=values.get("container_id"),
                        profile=values.get("profile"), token=values.get("token"),
                        namespace=values.get("namespace"))
    assert prior is not None
    return Entry(record=record, event=event, prior=prior)


# -- the file -------------------------------------------------------------------------------------------

def boot_id(path: Path = BOOT_ID) -> str:
    """This boot's id (the kernel's random boot id): the registers reset at boot, so a log is per boot."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as e:
        raise ConfigError(f"cannot read the boot id from {path}: {e.strerror}") from e
    if not re.fullmatch(r"[0-9a-f-]{36}", text):
        raise ConfigError(f"{path} holds {text[:40]!r}, not a boot id")
    return text


def log_dir(state_dir: Path) -> Path:
    return state_dir / "launches"


def log_path(state_dir: Path, boot: str | None = None) -> Path:
    return log_dir(state_dir) / f"{boot or boot_id()}.cel"


@dataclass
class Appended:
    """What :func:`append` wrote: the records (with their numbers) and the log they are in."""

    path: Path
    records: list[cel.Record] = field(default_factory=list)


@contextlib.contextmanager
def locked(path: Path, *, create: bool) -> Iterator[int]:
    """The log file opened for appending under an exclusive lock (root's, mode 0600, no symlink)."""
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or trustedfile.unsafe_stat(st):
            raise ConfigError(f"the launch log {path} is not a regular file of root's writable by root alone",
                              hint=f"inspect it; then chown root:root {path} && chmod 600 {path}")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read_all(fd: int, start: int, size: int) -> bytes:
    chunks = []
    off = start
    while off < size:
        chunk = os.pread(fd, min(1 << 20, size - off), off)
        if not chunk:
            break
        chunks.append(chunk)
        off += len(chunk)
    return b"".join(chunks)


def _hint_path(path: Path) -> Path:
    return path.with_suffix(".next")


@dataclass(frozen=True)
class Hint:
    """What the last append left for the next one: where the log ends, the next recnum, a digest of the
    log's tail there, and the registers' values after its extends (``state``, only once they succeeded)."""

    length: int
    recnum: int
    tail: str
    state: Mapping[str, bytes] = field(default_factory=dict)


def _read_hint(path: Path) -> Hint | None:
    try:
        length, recnum, tail, *rest = _hint_path(path).read_text(encoding="ascii").split()
        state = {k: bytes.fromhex(v) for k, _, v in (item.partition("=") for item in rest)}
        return Hint(int(length), int(recnum), tail, state)
    except (OSError, ValueError):
        return None


def _tail_digest(fd: int, length: int) -> str:
    """What the hint remembers of the log's end: SHA-256 of its last (up to) 64 bytes before ``length``."""
    start = max(0, length - 64)
    return hashlib.sha256(os.pread(fd, length - start, start)).hexdigest()


def _write_hint(path: Path, hint: Hint) -> None:
    """Where the next record goes. Only a hint: :func:`_end` checks it against the log before using it."""
    state = " ".join(f"{k}={v.hex()}" for k, v in sorted(hint.state.items()))
    with contextlib.suppress(OSError):
        fd = os.open(_hint_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f"{hint.length} {hint.recnum} {hint.tail} {state}\n".encode())
        finally:
            os.close(fd)


def _end(fd: int, path: Path) -> tuple[int, int, Mapping[str, bytes]]:
    """(offset after the last whole record, its recnum + 1, the registers' values the hint vouches for);
    cuts off a torn tail. Raises :class:`cel.CelError`.

    The hint saves parsing the whole log on each launch; it is used only when the log's bytes before the
    offset it names are the ones it remembers, and what follows it parses as whole records numbered on
    from it; else the whole log is parsed. Its register values hold only when no record follows it."""
    size = os.fstat(fd).st_size
    if size > MAX_LOG:
        raise cel.CelError(f"the launch log {path} is larger than {MAX_LOG} bytes")
    hint = _read_hint(path)
    if hint is not None and 0 <= hint.length <= size and _tail_digest(fd, hint.length) == hint.tail:
        with contextlib.suppress(cel.CelError):
            parsed = cel.parse(_read_all(fd, hint.length, size), first_recnum=hint.recnum)
            if not parsed.torn and all(r.recnum == hint.recnum + i for i, r in enumerate(parsed.records)):
                return (hint.length + parsed.length, hint.recnum + len(parsed.records),
                        {} if parsed.records else hint.state)
    parsed = cel.parse(_read_all(fd, 0, size))
    if parsed.torn:
        os.ftruncate(fd, parsed.length)  # an append a crash cut short: it was never extended
    return parsed.length, parsed.records[-1].recnum + 1 if parsed.records else 0, {}


Built = tuple[Sequence[bytes], Mapping[str, bytes]]


def append(path: Path, build: Callable[[int, Mapping[str, bytes]], Built],
           extend: Callable[[Sequence[cel.Record]], None]) -> Appended:
    """Append the records ``build(first recnum, known register values)`` makes (whole, in one write), then
    call ``extend`` with them parsed, all under the log's lock. ``build`` also returns the registers'
    values once extended; the next append is handed them (instead of reading the registers again) when
    ``extend`` returned and no record came after. Whatever ``extend`` raises is raised; the records stay
    (a later replay reports them as logged but not extended)."""
    with locked(path, create=True) as fd:
        end, recnum, known = _end(fd, path)
        blobs, after = build(recnum, known)
        data = b"".join(blobs)
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, end)
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        records = list(cel.parse(data, first_recnum=recnum).records)
        for i, r in enumerate(records):
            records[i] = cel.Record(r.recnum, r.register_type, r.index, r.digests, r.content_type, r.content,
                                    end + r.offset)
        hint = Hint(end + len(data), recnum + len(records), _tail_digest(fd, end + len(data)))
        _write_hint(path, hint)  # no register values: the extend has not happened
        extend(records)
        _write_hint(path, Hint(hint.length, hint.recnum, hint.tail, after))
        return Appended(path=path, records=records)


def read(path: Path) -> bytes:
    """The whole launch log (under the lock, so no record is half there). Raises ``OSError``."""
    with locked(path, create=False) as fd:
        size = os.fstat(fd).st_size
        if size > MAX_LOG:
            raise cel.CelError(f"the launch log {path} is larger than {MAX_LOG} bytes")
        return _read_all(fd, 0, size)
