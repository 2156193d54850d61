"""The TPM measured-boot event log: parse a TCG2 crypto-agile log, replay it to PCR values, explain a PCR.

The kernel exposes the firmware's log at ``/sys/kernel/security/tpm0/binary_bios_measurements`` (TCG PC
Client Platform Firmware Profile §10): a first event in the SHA-1 ``TCG_PCClientPCREvent`` format carrying
the ``Spec ID Event03`` (the digest algorithms and their sizes), then ``TCG_PCR_EVENT2`` records, each with
one digest per declared bank. Replay, as tpm2-tools ``lib/tpm2_eventlog.c`` does it: every PCR starts at
zero, except that a ``StartupLocality`` ``EV_NO_ACTION`` event sets PCR 0 to ``00…00‖locality``; every
other ``EV_NO_ACTION`` is skipped; each event extends ``PCR = H(PCR ‖ digest)`` in every bank.

The format itself is parsed by ``shim.attest.tcg2`` (shared with ``shim.attest.tdx.ccel``; hand-written, it says why);
this module adds what is TPM-specific: indexes are PCRs, every bank is kept, PCR 0 starts at StartupLocality.

Pure: functions over bytes; reading the file is :func:`read_log`'s business, at the edge.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shim.attest import tcg2
from shim.attest.tpm.settings import PCR_COUNT

EV_NO_ACTION = tcg2.EV_NO_ACTION
MAX_EVENTS = tcg2.MAX_EVENTS
MAX_LOG_SIZE = tcg2.MAX_LOG_SIZE
ALG_SIZES = tcg2.ALG_SIZES
EventLogError = tcg2.EventLogError
printable = tcg2.printable


@dataclass(frozen=True)
class Event(tcg2.Record):
    """One measured event (a ``tcg2.Record`` whose index is the PCR it extended)."""

    @property
    def pcr(self) -> int:
        return self.index

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


def parse(log: bytes) -> EventLog:
    """Parse a TPM's TCG2 crypto-agile event log (``shim.attest.tcg2``), every index a PCR.
    Raises :class:`EventLogError`."""
    parsed = tcg2.parse(log)
    events = []
    for r in parsed.records:
        if r.index >= PCR_COUNT:
            raise EventLogError(f"event #{r.seq} names PCR {r.index}")
        events.append(Event(seq=r.seq, index=r.index, event_type=r.event_type, digests=r.digests, data=r.data))
    return EventLog(banks=parsed.banks, startup_locality=parsed.startup_locality, events=tuple(events))


def _hash(bank: str) -> str:
    if bank not in ALG_SIZES or bank == "sm3_256":
        raise EventLogError(f"cannot replay the {bank} bank")
    return bank


def measured(log: EventLog, pcr: int, bank: str = "sha256") -> list[Event]:
    """The events that extended ``pcr`` in ``bank``, in order (``EV_NO_ACTION`` excluded)."""
    return [e for e in log.events if e.pcr == pcr and e.event_type != EV_NO_ACTION and bank in e.digests]


def measured_pcrs(log: EventLog) -> set[int]:
    """Every PCR the log extends (``EV_NO_ACTION`` excluded): what this boot measured."""
    return {e.pcr for e in log.events if e.event_type != EV_NO_ACTION}


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
