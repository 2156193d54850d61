"""Replaying a launch log against a register value someone vouches for (a quoted PCR, a TD quote's RTMR3):
which launches the register holds, or the first record where log and register part ways.

The rules, in order, each failure naming its record:

1. the records are numbered 0, 1, 2, … in file order (a gap: a record was removed; a step back: reordered);
2. each record's digest is the digest of its content (else the content was edited), and no two records
   of a register have the same digest (every launch has its own time and prior: a repeat is a copy);
3. for one register, each record's ``prior`` (the value the writer read just before it) is what the
   records before it give: when it is not, the log breaks there: a record before was removed or
   changed, or something outside BACON extended the register;
4. a record whose successor's ``prior`` equals its own ``prior`` was logged but never extended (the launch
   was refused: a failed extend, or a crash between log and extend); it is reported, not counted;
5. the replay ends at the vouched-for value, else the last record was changed or the register was
   extended after it without a record.

Pure: functions over parsed records.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from shim.attest import cel, launchlog


class ReplayError(ValueError):
    """The log does not reproduce the register (the message names the record)."""


@dataclass(frozen=True)
class Replay:
    """A log that reproduces the register: the launches it holds and the records never extended."""

    register: str
    value: bytes
    launched: tuple[launchlog.Entry, ...]
    not_extended: tuple[launchlog.Entry, ...]


def _label(e: launchlog.Entry) -> str:
    ev = e.event
    return f"record #{e.record.recnum} ({ev.command} {ev.image} at {ev.time})"


def check_sequence(records: Sequence[cel.Record]) -> None:
    """Rule 1. Raises :class:`ReplayError`."""
    numbers = [r.recnum for r in records]
    for i, n in enumerate(numbers):
        if n == i:
            continue
        if i in numbers[i + 1 :]:
            raise ReplayError(f"record #{n} comes before record #{i}: the records were reordered")
        if n > i:
            raise ReplayError(f"record #{i} is missing: the log goes from #{i - 1} to #{n} (a record was removed)"
                              if i else f"record #0 is missing: the log starts at #{n} (a record was removed)")
        raise ReplayError(f"record #{n} appears again after #{numbers[i - 1]}: a record was duplicated")


def decode(records: Sequence[cel.Record]) -> list[launchlog.Entry]:
    """Rules 1 and 2, and each content decoded. Raises :class:`ReplayError`."""
    check_sequence(records)
    out = []
    seen: dict[tuple[int, bytes], int] = {}
    for r in records:
        for d in r.digests.values():
            first = seen.setdefault((r.register_type, d), r.recnum)
            if first != r.recnum:
                raise ReplayError(f"record #{r.recnum} repeats record #{first}: a record was duplicated")
        try:
            entry = launchlog.decode_event(r)
        except cel.CelError as e:
            raise ReplayError(str(e)) from e
        for bank, digest in r.digests.items():
            if not hmac.compare_digest(cel.content_digest(r.content_type, r.content, bank), digest):
                raise ReplayError(f"{_label(entry)}: its content does not hash to its {bank} digest: "
                                  "the record was edited after it was written")
        out.append(entry)
    return out


def replay(entries: Sequence[launchlog.Entry], register_type: int, index: int, bank: str, start: bytes,
           final: bytes) -> Replay:
    """Rules 3-5 for one register, from ``start`` (its value before the first launch) to ``final`` (the
    vouched-for value). Raises :class:`ReplayError`."""
    mine = [e for e in entries if e.record.register_type == register_type and e.record.index == index]
    name = (f"PCR {index}" if register_type == cel.PCR else f"RTMR{index - 1}")
    launched: list[launchlog.Entry] = []
    skipped: list[launchlog.Entry] = []
    value = start
    for i, e in enumerate(mine):
        digest = e.record.digests.get(bank)
        if digest is None:
            raise ReplayError(f"{_label(e)}: no {bank} digest for {name}")
        if not hmac.compare_digest(e.prior, value):
            before = f"after {_label(mine[i - 1])}" if i else "at the first launch"
            raise ReplayError(f"the log breaks at {_label(e)}: {name} held {e.prior.hex()[:16]}… before it, "
                              f"but the records before it give {value.hex()[:16]}… ({before}): a record was "
                              f"removed, changed or reordered there, or something outside BACON extended {name}")
        after = cel.extend(value, digest, bank)
        nxt = mine[i + 1] if i + 1 < len(mine) else None
        extended = (not hmac.compare_digest(nxt.prior, value)) if nxt is not None else (
            hmac.compare_digest(after, final) or not hmac.compare_digest(value, final))
        if extended:
            launched.append(e)
            value = after
        else:
            skipped.append(e)
    if not hmac.compare_digest(value, final):
        last = f"the last record, {_label(mine[-1])}, was changed, or " if mine else ""
        raise ReplayError(f"the log replays {name} to {value.hex()[:16]}…, but it holds {final.hex()[:16]}…: "
                          f"{last}{name} was extended without a record")
    return Replay(register=name, value=value, launched=tuple(launched), not_extended=tuple(skipped))
