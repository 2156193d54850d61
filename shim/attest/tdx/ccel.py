"""The TDX event log (ACPI CCEL): parse it, replay it to RTMR values, and explain an RTMR mismatch.

The CCEL is a TCG2 "crypto agile" log (TCG PC Client Platform Firmware Profile, §10): a first event in
the SHA-1 format carrying the ``Spec ID Event03`` (which lists the digest algorithms and their sizes),
then ``TCG_PCR_EVENT2`` records. In a TD the record's "PCR index" is the CC measurement register index:
0 = MRTD, 1..4 = RTMR0..3. Replay: ``RTMR = SHA384(RTMR ‖ digest)`` from 48 zero bytes, skipping
``EV_NO_ACTION``. The table is padded (0xFF or 0x00) after the last record.

The format is parsed by ``shim.attest.tcg2`` (shared with the TPM's event log; hand-written, it says why); this
module adds what is TDX-specific: indexes are measurement registers, and only SHA-384 counts.

Pure: functions over bytes; reading ``/sys/firmware/acpi/tables/data/CCEL`` is the caller's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from shim.attest import tcg2

SHA384_SIZE = 48
EV_NO_ACTION = tcg2.EV_NO_ACTION
RTMR_COUNT = 4
EventLogError = tcg2.EventLogError


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
        return tcg2.type_name(self.event_type)

    def describe(self) -> str:
        """A one-line human description: index, type, digest prefix, and printable event data if any."""
        text = f"#{self.seq} {self.type_name} sha384:{self.digest.hex()[:16]}…"
        label = tcg2.printable(self.data)
        return f"{text} {label!r}" if label else text


def parse(log: bytes) -> list[Event]:
    """Parse a CCEL (``shim.attest.tcg2``), keeping each event's SHA-384 digest (a TD's registers are SHA-384).
    Raises :class:`EventLogError`, also for a log that does not carry SHA-384 or an event without one."""
    parsed = tcg2.parse(log, require_bank="sha384")
    events = []
    for r in parsed.records:
        digest = r.digests.get("sha384")
        if digest is None:
            raise EventLogError(f"event #{r.seq} has no SHA-384 digest")
        events.append(Event(seq=r.seq, mr_index=r.index, event_type=r.event_type, digest=digest, data=r.data))
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
