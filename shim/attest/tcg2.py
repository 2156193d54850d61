"""The TCG2 "crypto agile" event log format, shared by the TPM's measured-boot log and a TD's CCEL.

TCG PC Client Platform Firmware Profile §10: a first event in the SHA-1 ``TCG_PCClientPCREvent`` format
carrying the ``Spec ID Event03`` (the digest algorithms and their sizes), then ``TCG_PCR_EVENT2`` records,
each with one digest per declared algorithm, padded (0xFF or 0x00) after the last record. What a record's
register index means (a TPM PCR, a TDX measurement register) and how registers are replayed is the
business of the callers: ``shim.attest.tpm.eventlog`` and ``shim.attest.tdx.ccel``.

Hand-written: no maintained Python library parses TCG2 logs (tpm2-pytss does not; the known parsers are
Go and C), and the format is a few dozen lines of struct unpacking. Every length is bounded by the buffer
and by explicit limits, so a hostile log can only be refused (:class:`EventLogError`), never make us read
out of bounds or loop.

Pure: functions over bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

EV_NO_ACTION = 0x00000003
MAX_EVENTS = 100_000
MAX_EVENT_DATA = 1 << 24
MAX_LOG_SIZE = 16 << 20
MAX_ALGORITHMS = 16
STARTUP_LOCALITY = b"StartupLocality\x00"

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


class EventLogError(ValueError):
    """The event log is malformed or unreadable (the message says where)."""


@dataclass(frozen=True)
class Record:
    """One ``TCG_PCR_EVENT2``: its position (from 1), register index, type, digests by bank, data."""

    seq: int
    index: int
    event_type: int
    digests: Mapping[str, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        return type_name(self.event_type)


@dataclass(frozen=True)
class Log:
    """A parsed log: the banks it declares (name → size), its StartupLocality, and its records in order."""

    banks: Mapping[str, int]
    startup_locality: int
    records: tuple[Record, ...]


def type_name(event_type: int) -> str:
    return EVENT_TYPES.get(event_type, f"0x{event_type:08x}")


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


def _take(buf: bytes, off: int, n: int, what: str) -> bytes:
    if n < 0 or off + n > len(buf):
        raise EventLogError(f"event log truncated in {what} at offset {off}")
    return buf[off : off + n]


def _spec_id(log: bytes) -> tuple[dict[str, int], dict[int, int], int]:
    """The Spec ID event: (bank name → size, alg id → size, offset of the first TCG_PCR_EVENT2)."""
    head = _take(log, 0, 32, "first event header")
    _index, etype = struct.unpack_from("<II", head, 0)
    (size,) = struct.unpack_from("<I", head, 28)
    if etype != EV_NO_ACTION:
        raise EventLogError("event log does not start with the Spec ID event (a TPM 1.2 log, not TCG2 crypto-agile)")
    if size > MAX_EVENT_DATA:
        raise EventLogError(f"Spec ID event claims {size} bytes")
    spec = _take(log, 32, size, "Spec ID event")
    if not spec.startswith(b"Spec ID Event03\x00") or len(spec) < 28:
        raise EventLogError("first event is not 'Spec ID Event03' (not a TCG2 crypto-agile log)")
    (n_algs,) = struct.unpack_from("<I", spec, 24)
    if n_algs == 0 or n_algs > MAX_ALGORITHMS:
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


def parse(log: bytes, require_bank: str | None = None) -> Log:
    """Parse a TCG2 crypto-agile event log; with ``require_bank``, refuse one whose Spec ID event does not
    declare that bank. Raises :class:`EventLogError`."""
    if len(log) > MAX_LOG_SIZE:
        raise EventLogError(f"event log is {len(log)} bytes, more than {MAX_LOG_SIZE}")
    banks, by_id, off = _spec_id(log)
    if require_bank is not None and require_bank not in banks:
        raise EventLogError(f"event log does not carry {require_bank} digests (it declares "
                            f"{', '.join(banks) or 'no known bank'})")
    locality = 0
    records: list[Record] = []
    while off + 12 <= len(log):
        index, etype, count = struct.unpack_from("<III", log, off)
        if index == 0xFFFFFFFF or (index == 0 and etype == 0 and count == 0):
            break  # padding after the last record
        if len(records) >= MAX_EVENTS:
            raise EventLogError(f"event log has more than {MAX_EVENTS} events")
        if count == 0 or count > len(by_id):
            raise EventLogError(f"event at offset {off} has {count} digests (log declares {len(by_id)})")
        p = off + 12
        digests: dict[str, bytes] = {}
        seen: set[int] = set()
        for _ in range(count):
            (alg,) = struct.unpack("<H", _take(log, p, 2, "digest algorithm"))
            dsize = by_id.get(alg)
            if dsize is None:
                raise EventLogError(f"event at offset {off} uses undeclared digest algorithm 0x{alg:04x}")
            if alg in seen:
                raise EventLogError(f"event at offset {off} carries algorithm 0x{alg:04x} twice")
            seen.add(alg)
            value = _take(log, p + 2, dsize, "digest")
            name = ALG_IDS.get(alg)
            if name is not None:
                digests[name] = value
            p += 2 + dsize
        (dlen,) = struct.unpack("<I", _take(log, p, 4, "event size"))
        if dlen > MAX_EVENT_DATA:
            raise EventLogError(f"event at offset {off} claims {dlen} bytes of data")
        data = _take(log, p + 4, dlen, "event data")
        if etype == EV_NO_ACTION and index == 0 and data.startswith(STARTUP_LOCALITY) and len(data) >= 17:
            locality = data[16]
        records.append(Record(seq=len(records) + 1, index=index, event_type=etype, digests=digests, data=data))
        off = p + 4 + dlen
    return Log(banks=banks, startup_locality=locality, records=tuple(records))
