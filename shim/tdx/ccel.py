"""The TDX event log (ACPI CCEL): parse it, replay it to RTMR values, and explain an RTMR mismatch.

The CCEL is a TCG2 "crypto agile" log (TCG PC Client Platform Firmware Profile, §10): a first event in
the SHA-1 format carrying the ``Spec ID Event03`` (which lists the digest algorithms and their sizes),
then ``TCG_PCR_EVENT2`` records. In a TD the record's "PCR index" is the CC measurement register index:
0 = MRTD, 1..4 = RTMR0..3. Replay: ``RTMR = SHA384(RTMR ‖ digest)`` from 48 zero bytes, skipping
``EV_NO_ACTION``. The table is padded (0xFF or 0x00) after the last record.

Hand-written: no maintained Python library parses TCG2 logs (tpm2-pytss does not; the known parsers are
Go and C), and the format is ~40 lines of struct unpacking. Every length is bounded by the buffer, so a
hostile log can only be refused, not make us read out of bounds or loop.

Pure: functions over bytes; reading ``/sys/firmware/acpi/tables/data/CCEL`` is the caller's business.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SHA384_ALG_ID = 0x000C
SHA384_SIZE = 48
EV_NO_ACTION = 0x00000003
RTMR_COUNT = 4
MAX_EVENTS = 100_000
MAX_EVENT_DATA = 1 << 24

EVENT_TYPES: dict[int, str] = {
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
    """The event log is malformed (the message says where)."""


@dataclass(frozen=True)
class Event:
    """One measured event: its position in the log, the register it extended, and what it says."""

    seq: int
    mr_index: int  # 0 = MRTD, 1..4 = RTMR0..3
    event_type: int
    digest: bytes  # SHA-384
    data: bytes

    @property
    def rtmr(self) -> int | None:
        return self.mr_index - 1 if 1 <= self.mr_index <= RTMR_COUNT else None

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.event_type, f"0x{self.event_type:08x}")

    def describe(self) -> str:
        """A one-line human description: index, type, digest prefix, and printable event data if any."""
        text = f"#{self.seq} {self.type_name} sha384:{self.digest.hex()[:16]}…"
        label = _printable(self.data)
        return f"{text} {label!r}" if label else text


def _printable(data: bytes, limit: int = 60) -> str:
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


def parse(log: bytes) -> list[Event]:
    """Parse a CCEL / TCG2 crypto-agile event log. Raises :class:`EventLogError`.

    Only the SHA-384 digest of each event is kept (a TD's registers are SHA-384); a log whose Spec ID
    event does not declare SHA-384 is refused.
    """
    off = 0
    head = _take(log, off, 32, "first event header")
    _pcr, etype = struct.unpack_from("<II", head, 0)
    (size,) = struct.unpack_from("<I", head, 28)
    if etype != EV_NO_ACTION:
        raise EventLogError("event log does not start with the Spec ID event (not a TCG2 crypto-agile log)")
    spec = _take(log, 32, size, "Spec ID event")
    if not spec.startswith(b"Spec ID Event03\x00") or len(spec) < 28:
        raise EventLogError("first event is not 'Spec ID Event03' (not a TCG2 crypto-agile log)")
    (n_algs,) = struct.unpack_from("<I", spec, 24)
    sizes: dict[int, int] = {}
    p = 28
    for _ in range(n_algs):
        alg, dsize = struct.unpack("<HH", _take(spec, p, 4, "algorithm list"))
        sizes[alg] = dsize
        p += 4
    if sizes.get(SHA384_ALG_ID) != SHA384_SIZE:
        raise EventLogError("event log does not carry SHA-384 digests")
    off = 32 + size
    events: list[Event] = []
    while off + 12 <= len(log) and len(events) < MAX_EVENTS:
        mr_index, etype, count = struct.unpack_from("<III", log, off)
        if mr_index == 0xFFFFFFFF or (mr_index == 0 and etype == 0 and count == 0):
            break  # padding after the last record
        if count == 0 or count > len(sizes):
            raise EventLogError(f"event at offset {off} has {count} digests (log declares {len(sizes)})")
        p = off + 12
        digest = b""
        for _ in range(count):
            (alg,) = struct.unpack("<H", _take(log, p, 2, "digest algorithm"))
            dsize = sizes.get(alg)
            if dsize is None:
                raise EventLogError(f"event at offset {off} uses undeclared digest algorithm 0x{alg:04x}")
            value = _take(log, p + 2, dsize, "digest")
            if alg == SHA384_ALG_ID:
                digest = value
            p += 2 + dsize
        (dlen,) = struct.unpack("<I", _take(log, p, 4, "event size"))
        if dlen > MAX_EVENT_DATA:
            raise EventLogError(f"event at offset {off} claims {dlen} bytes of data")
        data = _take(log, p + 4, dlen, "event data")
        if not digest:
            raise EventLogError(f"event at offset {off} has no SHA-384 digest")
        events.append(Event(seq=len(events) + 1, mr_index=mr_index, event_type=etype, digest=digest, data=data))
        off = p + 4 + dlen
    return events


def replay(events: Sequence[Event]) -> tuple[bytes, ...]:
    """RTMR0..3 as the events extend them from zero."""
    regs = [bytes(SHA384_SIZE)] * RTMR_COUNT
    for ev in events:
        r = ev.rtmr
        if r is None or ev.event_type == EV_NO_ACTION:
            continue
        regs[r] = hashlib.sha384(regs[r] + ev.digest).digest()
    return tuple(regs)


def events_for(events: Sequence[Event], rtmr: int) -> list[Event]:
    """The events that extended RTMR ``rtmr`` (0..3), in order."""
    return [e for e in events if e.rtmr == rtmr and e.event_type != EV_NO_ACTION]


@dataclass(frozen=True)
class Explanation:
    """Why RTMR ``rtmr`` has the value the quote shows, in events.

    ``log_matches_quote``: replaying the log gives the quoted value (so the log can be believed).
    ``events``: the events to look at: those that differ from the reference log when one is given (from
    the first divergence on), else every event of that register.
    """

    rtmr: int
    log_matches_quote: bool
    replayed: bytes
    events: tuple[Event, ...]
    against_reference_log: bool

    def lines(self, limit: int = 8) -> list[str]:
        out: list[str] = []
        if not self.log_matches_quote:
            out.append(
                f"the event log replays RTMR{self.rtmr} to {self.replayed.hex()[:16]}…, not to the quoted value: "
                "the log is incomplete (runtime extensions) or not this TD's"
            )
        head = "events differing from the reference log" if self.against_reference_log else "events"
        out.append(f"{head} for RTMR{self.rtmr}:")
        shown = self.events[:limit]
        out.extend("  " + e.describe() for e in shown)
        if len(self.events) > limit:
            out.append(f"  … and {len(self.events) - limit} more (bacon tdx verify --json lists them all)")
        if not self.events:
            out.append("  (none)")
        return out


def explain(
    events: Sequence[Event],
    rtmr: int,
    quoted: bytes,
    reference_events: Sequence[Event] | None = None,
) -> Explanation:
    """Explain RTMR ``rtmr``: which events made it what the quote says, or which differ from a reference log."""
    replayed = replay(events)[rtmr]
    mine = events_for(events, rtmr)
    if reference_events is None:
        return Explanation(rtmr, replayed == quoted, replayed, tuple(mine), False)
    ref = events_for(reference_events, rtmr)
    i = 0
    while i < min(len(mine), len(ref)) and (mine[i].digest, mine[i].event_type) == (ref[i].digest, ref[i].event_type):
        i += 1
    return Explanation(rtmr, replayed == quoted, replayed, tuple(mine[i:]), True)
