"""The recorded PCR baseline: what the host's measured boot looked like when the operator said it was good.

Stored as JSON at ``<state_dir>/tpm-baseline.json``::

    {"version": 1, "bank": "sha256", "pcrs": {"0": "<hex>", …}, "recorded_at": "…Z", "tcti": "…",
     "ak": {"fingerprint": "sha256:…", "pem": "-----BEGIN PUBLIC KEY-----…"},
     "ek": {"name": "000b…", "public": "<TPMT_PUBLIC hex>", "pem": "-----BEGIN PUBLIC KEY-----…"},
     "eventlog": {"path": "…", "replay_matches": {"0": true, …},
                  "events": {"0": [[<event type>, "<digest hex>", "<description>"], …], …}}   # or {"path", "error"}
    }

The AK's public key is pinned: the AK is derived from the TPM's endorsement seed, so a quote by another
key means another TPM (or a cleared one), and is denied rather than trusted on first use at every check.
The endorsement key the record's session was salted to is pinned too (:mod:`shim.attest.tpm.ek`): every
later session is salted only to that EK. A baseline recorded before EKs were pinned has no ``ek``: it
loads with ``ek`` None (the check reports it, ``[tpm] unpinned_ek`` decides whether it admits); an ``ek``
that is there but malformed (``null``, a name that is not its public area's digest) makes the whole
baseline unusable, never an unpinned one.

Written atomically (temporary file in the same directory, fsync, ``os.replace``, fsync of the directory),
mode 0600. Read with ``O_NOFOLLOW`` and refused when it is a symlink, not a regular file, owned by someone
other than root (or the effective user), or writable by group or others; the same for its directory.

Pure parts (:func:`to_json`, :func:`from_json`, :func:`diff`) are separate from the file IO
(:func:`write`, :func:`load`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shim.attest.tpm import ek as ek_pin
from shim.attest.tpm.settings import BANKS, PCR_COUNT
from shim.common import atomicfile, strictjson
from shim.common.errors import ConfigError

FILENAME = "tpm-baseline.json"
VERSION = 1
MAX_SIZE = 1 << 20

EventRef = tuple[int, str, str]  # (event type, digest hex, description)


class BaselineError(ValueError):
    """The baseline file cannot be trusted or read (the message says why)."""


@dataclass(frozen=True)
class EventLogRecord:
    """What the event log said at record time: its replay per PCR and the events behind each recorded PCR."""

    path: str
    error: str | None = None
    replay_matches: Mapping[int, bool] = field(default_factory=dict)
    events: Mapping[int, Sequence[EventRef]] = field(default_factory=dict)
    measured: tuple[int, ...] = ()  # every PCR the log has events for (what this boot measured)


@dataclass(frozen=True)
class Baseline:
    bank: str
    pcrs: Mapping[int, bytes]
    recorded_at: str
    tcti: str
    ak_fingerprint: str
    ak_pem: str
    eventlog: EventLogRecord | None = None
    ek: ek_pin.EkIdentity | None = None  # None: recorded before EKs were pinned


@dataclass(frozen=True)
class Change:
    """One PCR that differs: ``old`` is the baseline's value (None: not in the baseline), ``new`` the current."""

    pcr: int
    old: bytes | None
    new: bytes | None

    def describe(self) -> str:
        old = self.old.hex()[:16] + "…" if self.old is not None else "(not in the baseline)"
        new = self.new.hex()[:16] + "…" if self.new is not None else "(not read)"
        return f"PCR {self.pcr} changed: {old} → {new}"


def path_for(state_dir: Path) -> Path:
    return state_dir / FILENAME


def diff(baseline: Mapping[int, bytes], current: Mapping[int, bytes], pcrs: Sequence[int]) -> list[Change]:
    """The PCRs among ``pcrs`` whose current value is not the baseline's, ascending."""
    return [Change(p, baseline.get(p), current.get(p)) for p in sorted(pcrs)
            if baseline.get(p) is None or baseline.get(p) != current.get(p)]


def to_json(b: Baseline) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": VERSION,
        "bank": b.bank,
        "pcrs": {str(k): v.hex() for k, v in sorted(b.pcrs.items())},
        "recorded_at": b.recorded_at,
        "tcti": b.tcti,
        "ak": {"fingerprint": b.ak_fingerprint, "pem": b.ak_pem},
        "eventlog": None,
    }
    if b.ek is not None:
        doc["ek"] = ek_pin.to_json(b.ek)
    if b.eventlog is not None:
        el: dict[str, Any] = {"path": b.eventlog.path}
        if b.eventlog.error is not None:
            el["error"] = b.eventlog.error
        else:
            el["replay_matches"] = {str(k): v for k, v in sorted(b.eventlog.replay_matches.items())}
            el["events"] = {str(k): [list(e) for e in v] for k, v in sorted(b.eventlog.events.items())}
            el["measured"] = list(b.eventlog.measured)
        doc["eventlog"] = el
    return doc


def _pcr_key(k: object) -> int:
    if not isinstance(k, str) or not k.isdigit() or not 0 <= int(k) < PCR_COUNT:
        raise BaselineError(f"baseline names PCR {k!r}")
    return int(k)


def _eventlog_from_json(el: object) -> EventLogRecord | None:
    if el is None:
        return None
    if not isinstance(el, dict) or not isinstance(el.get("path"), str):
        raise BaselineError("baseline 'eventlog' is malformed")
    if "error" in el:
        return EventLogRecord(path=el["path"], error=str(el["error"]))
    matches = el.get("replay_matches", {})
    events = el.get("events", {})
    if not isinstance(matches, dict) or not isinstance(events, dict):
        raise BaselineError("baseline 'eventlog' is malformed")
    parsed: dict[int, list[EventRef]] = {}
    for k, v in events.items():
        if not isinstance(v, list):
            raise BaselineError("baseline 'eventlog.events' is malformed")
        refs: list[EventRef] = []
        for e in v:
            if (not isinstance(e, list) or len(e) != 3 or not isinstance(e[0], int) or not isinstance(e[1], str)
                    or not isinstance(e[2], str)):
                raise BaselineError("baseline 'eventlog.events' is malformed")
            refs.append((e[0], e[1], e[2]))
        parsed[_pcr_key(k)] = refs
    measured = el.get("measured", [])
    if not isinstance(measured, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in measured):
        raise BaselineError("baseline 'eventlog.measured' is malformed")
    return EventLogRecord(path=el["path"], replay_matches={_pcr_key(k): bool(v) for k, v in matches.items()},
                          events=parsed, measured=tuple(measured))


def from_json(doc: object) -> Baseline:
    """Parse and validate a baseline document. Raises :class:`BaselineError`."""
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise BaselineError(f"baseline is not a version {VERSION} BACON TPM baseline")
    bank = doc.get("bank")
    if bank not in BANKS:
        raise BaselineError(f"baseline bank {bank!r} is not one of {', '.join(BANKS)}")
    raw_pcrs = doc.get("pcrs")
    if not isinstance(raw_pcrs, dict) or not raw_pcrs:
        raise BaselineError("baseline has no PCR values")
    pcrs: dict[int, bytes] = {}
    for k, v in raw_pcrs.items():
        try:
            value = bytes.fromhex(v) if isinstance(v, str) else b""
        except ValueError:
            value = b""
        if len(value) != BANKS[str(bank)]:
            raise BaselineError(f"baseline value of PCR {k} is not a {bank} digest")
        pcrs[_pcr_key(k)] = value
    ak = doc.get("ak")
    if not isinstance(ak, dict) or not isinstance(ak.get("fingerprint"), str) or not isinstance(ak.get("pem"), str):
        raise BaselineError("baseline has no attestation key")
    recorded_at, tcti = doc.get("recorded_at"), doc.get("tcti")
    if not isinstance(recorded_at, str) or not isinstance(tcti, str):
        raise BaselineError("baseline lacks 'recorded_at' or 'tcti'")
    ek: ek_pin.EkIdentity | None = None
    if "ek" in doc:  # absent: recorded before EKs were pinned; present, it must be well-formed
        try:
            ek = ek_pin.from_json(doc["ek"])
        except ek_pin.EkError as e:
            raise BaselineError(f"baseline's endorsement key is malformed: {e}") from e
    return Baseline(bank=str(bank), pcrs=pcrs, recorded_at=recorded_at, tcti=tcti, ak_fingerprint=ak["fingerprint"],
                    ak_pem=ak["pem"], eventlog=_eventlog_from_json(doc.get("eventlog")), ek=ek)


def load(state_dir: Path) -> Baseline | None:
    """Read the baseline; None when none was recorded. Raises :class:`BaselineError` when unsafe or corrupt."""
    from shim.common import trustedfile

    path = path_for(state_dir)
    if not os.path.lexists(path):
        return None
    try:
        data = trustedfile.read(path, "TPM baseline", max_size=MAX_SIZE + 1, symlink=False)
    except ConfigError as e:
        raise BaselineError(e.message) from e
    try:
        doc = strictjson.loads(data, max_size=MAX_SIZE)
    except strictjson.Invalid as e:
        raise BaselineError(f"TPM baseline {path} {e}") from e
    try:
        return from_json(doc)
    except BaselineError as e:
        raise BaselineError(f"TPM baseline {path}: {e}") from e


def write(state_dir: Path, baseline: Baseline) -> Path:
    """Write the baseline atomically, mode 0600. Returns its path. Raises OSError."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = path_for(state_dir)
    data = (json.dumps(to_json(baseline), indent=2, sort_keys=True) + "\n").encode()
    atomicfile.write(path, data, mode=0o600)
    return path


def build(*, bank: str, pcrs: Mapping[int, bytes], recorded_at: str, tcti: str, ak_fingerprint: str, ak_pem: str,
          eventlog_path: Path | None, eventlog_bytes: bytes | None, eventlog_error: str | None = None,
          ek: ek_pin.EkIdentity | None = None) -> Baseline:
    """A baseline from verified PCR values and, when there is one, the event log (pure).

    The log's replay is compared with each recorded PCR, and the events behind each recorded PCR are kept
    so a later mismatch can name the events that differ.
    """
    from shim.attest.tpm import eventlog  # local: only recording and explaining need the parser

    record: EventLogRecord | None = None
    if eventlog_path is not None:
        if eventlog_bytes is None:
            record = EventLogRecord(path=str(eventlog_path), error=eventlog_error or "not readable")
        else:
            try:
                log = eventlog.parse(eventlog_bytes)
                replayed = eventlog.replay(log, bank)
            except eventlog.EventLogError as e:
                record = EventLogRecord(path=str(eventlog_path), error=str(e))
            else:
                record = EventLogRecord(
                    path=str(eventlog_path),
                    replay_matches={p: replayed.get(p) == v for p, v in pcrs.items() if p in replayed},
                    events={p: [(e.event_type, e.digests[bank].hex(), e.describe(bank))
                                for e in eventlog.measured(log, p, bank)] for p in pcrs},
                    measured=tuple(sorted(eventlog.measured_pcrs(log))),
                )
    return Baseline(bank=bank, pcrs=dict(pcrs), recorded_at=recorded_at, tcti=tcti, ak_fingerprint=ak_fingerprint,
                    ak_pem=ak_pem, eventlog=record, ek=ek)
