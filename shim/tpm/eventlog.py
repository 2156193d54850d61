"""The TPM measured-boot event log: parse a TCG2 crypto-agile log, replay it to PCR values, explain a PCR.

The kernel exposes the firmware's log at ``/sys/kernel/security/tpm0/binary_bios_measurements`` (TCG PC
Client Platform Firmware Profile §10): a first event in the SHA-1 ``TCG_PCClientPCREvent`` format carrying
the ``Spec ID Event03`` (the digest algorithms and their sizes), then ``TCG_PCR_EVENT2`` records, each with
one digest per declared bank. Replay, as tpm2-tools ``lib/tpm2_eventlog.c`` does it: every PCR starts at
zero, except that a ``StartupLocality`` ``EV_NO_ACTION`` event sets PCR 0 to ``00…00‖locality``; every
other ``EV_NO_ACTION`` is skipped; each event extends ``PCR = H(PCR ‖ digest)`` in every bank.

Hand-written: no maintained Python library parses TCG2 logs (tpm2-pytss does not; the known parsers are
Go and C), and the format is a few dozen lines of struct unpacking. Every length is bounded by the buffer
and by explicit limits, so a hostile log can only be refused (:class:`EventLogError`), never make us read
out of bounds or loop. ``shim.tdx.ccel`` parses the same format for SHA-384 RTMRs only; this one keeps
every bank and knows TPM PCR semantics (StartupLocality), so the two are kept apart on purpose.

Pure: functions over bytes; reading the file is :func:`read_log`'s business, at the edge.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shim.tpm.settings import PCR_COUNT

EV_NO_ACTION = 0x00000003
MAX_EVENTS = 100_000
MAX_EVENT_DATA = 1 << 24
MAX_LOG_SIZE = 16 << 20

ALG_IDS: Mapping[int, str] = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512",
                              0x0012: "sm3_256"}
ALG_SIZES: Mapping[str, int] = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64, "sm3_256": 32}

EVENT_TYPES: Mapping[int, str] = {
    0x00000000: "EV_PREBOOT_CERT",
    0x00000001: "EV_POST_CODE",
    0x00000003: "EV_NO_ACTION",
    0x00000004: "EV_SEPARATOR",
    0x00000005: "EV_ACTION",
    0x00000006: "EV_EVENT_TAG",
    0x00000007: "EV_S_CRTM_CONTENTS",
    0x00000008: "EV_S_CRTM_VERSION",
    0x00000009: "EV_CPU_MICROCODE",
    0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
    0x0000000B: "EV_TABLE_OF_DEVICES",
    0x0000000C: "EV_COMPACT_HASH",
    0x0000000D: "EV_IPL",
    0x0000000E: "EV_IPL_PARTITION_DATA",
    0x0000000F: "EV_NONHOST_CODE",
    0x00000010: "EV_NONHOST_CONFIG",
    0x00000011: "EV_NONHOST_INFO",
    0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
}
STARTUP_LOCALITY = b"StartupLocality\x00"


class EventLogError(ValueError):
    """The event log is malformed or unreadable (the message says where)."""


@dataclass(frozen=True)
class Event:
    """One measured event: its position in the log, the PCR it extended, its digests per bank, its data."""

    seq: int
    pcr: int
    event_type: int
    digests: Mapping[str, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.event_type, f"0x{self.event_type:08x}")

    def describe(self, bank: str = "sha256") -> str:
        """One line: sequence number, type, digest prefix, and the event data when it is text."""
        digest = self.digests.get(bank, b"")
        text = f"#{self.seq} {self.type_name} {bank}:{digest.hex()[:16]}…"
        label = efi_variable_name(self.data) if self.event_type in _EFI_VARIABLE_EVENTS else printable(self.data)
        return f"{text} {label!r}" if label else text


@dataclass(frozen=True)
class EventLog:
    """A parsed log: the banks it declares (name → size), its StartupLocality, and its events in order."""

    banks: Mapping[str, int]
    startup_locality: int
    events: tuple[Event, ...]


def printable(data: bytes, limit: int = 60) -> str:
    """Event data as text when it is text (ASCII or UTF-16LE, as UEFI writes it), else ''."""
    for enc in ("ascii", "utf-16-le"):
        try:
            s = data.decode(enc).rstrip("\x00")
        except UnicodeDecodeError:
            continue
        if s and all(c.isprintable() for c in s):
            return s if len(s) <= limit else s[:limit] + "…"
    return ""


_EFI_VARIABLE_EVENTS = frozenset({0x80000001, 0x80000002, 0x800000E0})


def efi_variable_name(data: bytes) -> str:
    """The variable name of a UEFI_VARIABLE_DATA event (``SecureBoot``, ``PK``, ``db`` …), else ''."""
    if len(data) < 32:
        return ""
    (name_len,) = struct.unpack_from("<Q", data, 16)
    if name_len == 0 or name_len > 256 or 32 + 2 * name_len > len(data):
        return ""
    try:
        name = data[32 : 32 + 2 * name_len].decode("utf-16-le").rstrip("\x00")
    except UnicodeDecodeError:
        return ""
    return name if name.isprintable() else ""


def _take(buf: bytes, off: int, n: int, what: str) -> bytes:
    if n < 0 or off + n > len(buf):
        raise EventLogError(f"event log truncated in {what} at offset {off}")
    return buf[off : off + n]


def _spec_id(log: bytes) -> tuple[dict[str, int], dict[int, int], int]:
    """The Spec ID event: (bank name → size, alg id → size, offset of the first TCG_PCR_EVENT2)."""
    head = _take(log, 0, 32, "first event header")
    _pcr, etype = struct.unpack_from("<II", head, 0)
    (size,) = struct.unpack_from("<I", head, 28)
    if etype != EV_NO_ACTION:
        raise EventLogError("event log does not start with the Spec ID event (a TPM 1.2 log, not TCG2 crypto-agile)")
    if size > MAX_EVENT_DATA:
        raise EventLogError(f"Spec ID event claims {size} bytes")
    spec = _take(log, 32, size, "Spec ID event")
    if not spec.startswith(b"Spec ID Event03\x00") or len(spec) < 28:
        raise EventLogError("first event is not 'Spec ID Event03' (not a TCG2 crypto-agile log)")
    (n_algs,) = struct.unpack_from("<I", spec, 24)
    if n_algs == 0 or n_algs > 16:
        raise EventLogError(f"Spec ID event declares {n_algs} digest algorithms")
    by_id: dict[int, int] = {}
    banks: dict[str, int] = {}
    p = 28
    for _ in range(n_algs):
        alg, dsize = struct.unpack("<HH", _take(spec, p, 4, "algorithm list"))
        if dsize == 0 or dsize > 64:
            raise EventLogError(f"Spec ID event declares algorithm 0x{alg:04x} with size {dsize}")
        name = ALG_IDS.get(alg)
        if name is not None and ALG_SIZES[name] != dsize:
            raise EventLogError(f"Spec ID event declares {name} with size {dsize}, not {ALG_SIZES[name]}")
        by_id[alg] = dsize
        if name is not None:
            banks[name] = dsize
        p += 4
    return banks, by_id, 32 + size


def parse(log: bytes) -> EventLog:
    """Parse a TCG2 crypto-agile event log. Raises :class:`EventLogError`."""
    if len(log) > MAX_LOG_SIZE:
        raise EventLogError(f"event log is {len(log)} bytes, more than {MAX_LOG_SIZE}")
    banks, by_id, off = _spec_id(log)
    locality = 0
    events: list[Event] = []
    while off + 12 <= len(log):
        if len(events) >= MAX_EVENTS:
            raise EventLogError(f"event log has more than {MAX_EVENTS} events")
        pcr, etype, count = struct.unpack_from("<III", log, off)
        if pcr == 0xFFFFFFFF or (pcr == 0 and etype == 0 and count == 0):
            break  # padding after the last record
        if pcr >= PCR_COUNT:
            raise EventLogError(f"event at offset {off} names PCR {pcr}")
        if count == 0 or count > len(by_id):
            raise EventLogError(f"event at offset {off} has {count} digests (log declares {len(by_id)})")
        p = off + 12
        digests: dict[str, bytes] = {}
        for _ in range(count):
            (alg,) = struct.unpack("<H", _take(log, p, 2, "digest algorithm"))
            dsize = by_id.get(alg)
            if dsize is None:
                raise EventLogError(f"event at offset {off} uses undeclared digest algorithm 0x{alg:04x}")
            value = _take(log, p + 2, dsize, "digest")
            name = ALG_IDS.get(alg)
            if name is not None:
                digests[name] = value
            p += 2 + dsize
        (dlen,) = struct.unpack("<I", _take(log, p, 4, "event size"))
        if dlen > MAX_EVENT_DATA:
            raise EventLogError(f"event at offset {off} claims {dlen} bytes of data")
        data = _take(log, p + 4, dlen, "event data")
        if etype == EV_NO_ACTION and pcr == 0 and data.startswith(STARTUP_LOCALITY) and len(data) >= 17:
            locality = data[16]
        events.append(Event(seq=len(events) + 1, pcr=pcr, event_type=etype, digests=digests, data=data))
        off = p + 4 + dlen
    return EventLog(banks=banks, startup_locality=locality, events=tuple(events))


def _hash(bank: str) -> str:
    if bank not in ALG_SIZES or bank == "sm3_256":
        raise EventLogError(f"cannot replay the {bank} bank")
    return bank


def measured(log: EventLog, pcr: int, bank: str = "sha256") -> list[Event]:
    """The events that extended ``pcr`` in ``bank``, in order (``EV_NO_ACTION`` excluded)."""
    return [e for e in log.events if e.pcr == pcr and e.event_type != EV_NO_ACTION and bank in e.digests]


def replay(log: EventLog, bank: str = "sha256") -> dict[int, bytes]:
    """The PCR values the log produces in ``bank``, for every PCR it extends. Raises :class:`EventLogError`."""
    if bank not in log.banks:
        raise EventLogError(f"event log has no {bank} digests (it declares {', '.join(log.banks) or 'none'})")
    name = _hash(bank)
    size = log.banks[bank]
    pcrs: dict[int, bytes] = {}
    for ev in log.events:
        if ev.event_type == EV_NO_ACTION:
            continue
        digest = ev.digests.get(bank)
        if digest is None:
            raise EventLogError(f"event #{ev.seq} has no {bank} digest")
        if ev.pcr not in pcrs:
            start = bytearray(size)
            if ev.pcr == 0:
                start[-1] = log.startup_locality
            pcrs[ev.pcr] = bytes(start)
        pcrs[ev.pcr] = hashlib.new(name, pcrs[ev.pcr] + digest).digest()
    return pcrs


@dataclass(frozen=True)
class Explanation:
    """Why PCR ``pcr`` has ``value``, in events.

    ``log_matches``: replaying the log gives ``value`` (so the log can be believed about this PCR).
    ``events``: those that differ from the reference events from the first divergence on (when a reference
    is given), else every event of that PCR.
    """

    pcr: int
    bank: str
    value: bytes
    replayed: bytes | None
    events: tuple[Event, ...]
    against_reference: bool

    @property
    def log_matches(self) -> bool:
        return self.replayed == self.value

    def lines(self, limit: int = 8) -> list[str]:
        out: list[str] = []
        if not self.log_matches:
            got = self.replayed.hex()[:16] + "…" if self.replayed else "nothing (no events)"
            out.append(f"the event log replays PCR {self.pcr} to {got}, not to its current value: the PCR was "
                       "extended after boot (not logged) or the log is not this boot's")
        head = "events differing from the baseline's log" if self.against_reference else "events"
        out.append(f"{head} for PCR {self.pcr}:")
        out.extend("  " + e.describe(self.bank) for e in self.events[:limit])
        if len(self.events) > limit:
            out.append(f"  … and {len(self.events) - limit} more (`bacon baseline show --diff --json` lists them)")
        if not self.events:
            out.append("  (none: the log is the baseline's, so the PCR was extended without a log entry)"
                       if self.against_reference else "  (none)")
        return out


def explain(log: EventLog, pcr: int, value: bytes, bank: str = "sha256",
            reference: Sequence[tuple[int, str]] | None = None) -> Explanation:
    """Explain PCR ``pcr``'s ``value`` by the log's events.

    ``reference``: the (event type, digest hex) of that PCR's events in a known-good log (the baseline's);
    then only the events from the first divergence on are reported.
    """
    replayed = replay(log, bank).get(pcr)
    mine = measured(log, pcr, bank)
    if reference is None:
        return Explanation(pcr, bank, value, replayed, tuple(mine), False)
    i = 0
    while i < min(len(mine), len(reference)) and (mine[i].event_type, mine[i].digests[bank].hex()) == tuple(
            reference[i]):
        i += 1
    return Explanation(pcr, bank, value, replayed, tuple(mine[i:]), True)


def read_log(path: Path) -> bytes:
    """Read the event log file (IO edge). Raises :class:`EventLogError` (missing, unreadable, too big)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_LOG_SIZE + 1)
    except FileNotFoundError as e:
        raise EventLogError(f"no event log at {path} (the kernel exposes none, or securityfs is not mounted)") from e
    except OSError as e:
        raise EventLogError(f"cannot read the event log {path}: {e.strerror}") from e
    if len(data) > MAX_LOG_SIZE:
        raise EventLogError(f"event log {path} is larger than {MAX_LOG_SIZE} bytes")
    return data
