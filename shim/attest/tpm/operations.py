"""The TPM operator commands, called by the ``bacon`` CLI: ``baseline record|show``, ``quote tpm``, ``status``.

Each ``cmd_*`` prints to stdout and returns an exit status; errors are raised as
:class:`shim.common.errors.BaconError` for ``main()`` to render. :func:`status` never raises: it reports what it
could not find out, so ``bacon status`` works on a host without a TPM.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.attest import secureboot
from shim.attest.nonce import parse_hex
from shim.attest.tpm import attest
from shim.attest.tpm import baseline as bl
from shim.attest.tpm import ek as ek_pin
from shim.attest.tpm.check import (
    MAX_NONCE_SIZE,
    NONCE_SIZE,
    explain,
    fresh_quote,
    read_eventlog,
    verify,
    within_deadline,
)
from shim.attest.tpm.device import Quote, open_tpm
from shim.attest.tpm.settings import (
    BANKS,
    TpmSettings,
    coverage,
    default_selection,
    effective,
    format_selection,
    parse_pcrs,
)
from shim.common import atomicfile
from shim.common.errors import BaconError, IntegrityError, NotFound, Unavailable, UsageError

EFIVARS = secureboot.EFIVARS
SECURE_BOOT_VAR = secureboot.VARIABLE


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _verified_quote(settings: TpmSettings, nonce: bytes) -> tuple[Quote, attest.Attest, str]:
    quote = within_deadline(settings, lambda: fresh_quote(settings, nonce))  # a stalled TPM must not hang us
    try:
        att, fp = verify(settings, quote, nonce)
    except attest.QuoteError as e:
        raise Unavailable(f"the TPM ({settings.tcti}) produced a quote that does not verify: {e}",
                          hint="retry; if it persists the TPM or the path to it is not trustworthy") from e
    return quote, att, fp


# --- bacon baseline record -------------------------------------------------------------------------------

def cmd_baseline_record(settings: TpmSettings, state_dir: Path, exclude: Sequence[int] = ()) -> int:
    """Quote the PCRs (fresh nonce, verified), add the event log's replay, store the baseline. The PCRs are
    ``[tpm] pcrs`` when set; else the default and every later boot stage the event log shows was measured
    (:func:`shim.attest.tpm.settings.default_selection`), except ``exclude`` (the launch PCR).

    Raises Unavailable (no TPM), BaconError (cannot write the state directory).
    """
    log_bytes, log_error = None, None
    if settings.eventlog is not None:
        from shim.attest.tpm import eventlog

        try:
            log_bytes = eventlog.read_log(settings.eventlog)
        except eventlog.EventLogError as e:
            log_error = str(e)
    if not settings.pcrs_configured:
        settings = replace(settings, pcrs=default_selection(_measured_in(log_bytes), exclude))
    quote, _att, fp = _verified_quote(settings, os.urandom(NONCE_SIZE))
    if quote.ek is None:  # the device always says which EK its session was salted to
        raise Unavailable(f"the TPM ({settings.tcti}) quote came without the endorsement key it was salted to",
                          hint="retry; if it persists, report it: a baseline is never recorded without its EK")
    # the AK is pinned from a quote its session authorized: the TPM that holds this EK used that AK
    base = bl.build(bank=settings.bank, pcrs={p: quote.pcrs[p] for p in settings.pcrs}, recorded_at=_now(),
                    tcti=str(settings.tcti), ak_fingerprint=fp, ak_pem=quote.ak_pem.decode(),
                    eventlog_path=settings.eventlog, eventlog_bytes=log_bytes, eventlog_error=log_error,
                    ek=quote.ek)
    previous = _previous_ek(state_dir)
    try:
        path = bl.write(state_dir, base)
    except OSError as e:
        raise BaconError(f"cannot write the TPM baseline to {state_dir}: {e.strerror or e}",
                         hint="run as root (sudo bacon baseline record); the state directory must be root's") from e
    _out(f"recorded TPM baseline {settings.selection} in {path}")
    for line in _baseline_lines(base):
        _out(line)
    note = repin_note(previous, quote.ek)
    if note:
        _out(note)
    return 0


def _previous_ek(state_dir: Path) -> ek_pin.EkIdentity | str:
    """The EK the baseline being replaced pinned; ``"unpinned"`` for one recorded before the pin, ``"none"``
    without a usable baseline (only informs what re-recording changes)."""
    try:
        old = bl.load(state_dir)
    except bl.BaselineError:
        return "none"
    if old is None:
        return "none"
    return old.ek if old.ek is not None else "unpinned"


def repin_note(previous: ek_pin.EkIdentity | str, now: ek_pin.EkIdentity) -> str | None:
    """What re-recording did to the EK pin (pure): None when it pinned the same EK or there was no baseline."""
    if previous == "unpinned":
        return f"EK pinned: {now.name} (the replaced baseline did not pin one)"
    if isinstance(previous, ek_pin.EkIdentity) and previous.name != now.name:
        return (f"EK CHANGED: the replaced baseline pinned {previous.name}, this TPM presents {now.name} "
                "(another TPM, or its endorsement seed changed): admissions now trust this one")
    return None


# --- bacon baseline show [--diff] [--json] ---------------------------------------------------------------

def _baseline_lines(base: bl.Baseline) -> list[str]:
    lines = [f"recorded   {base.recorded_at} via {base.tcti}", f"AK         {base.ak_fingerprint}",
             f"EK         {base.ek.name if base.ek is not None else ek_pin.UNPINNED}", f"bank       {base.bank}"]
    el = base.eventlog
    for p, v in sorted(base.pcrs.items()):
        note = ""
        if el is not None and el.error is None and p in el.replay_matches:
            note = "  (event log replays to it)" if el.replay_matches[p] else "  (event log does NOT replay to it)"
        lines.append(f"PCR {p:<2}     {v.hex()}{note}")
    if el is None:
        lines.append("event log  not configured")
    elif el.error is not None:
        lines.append(f"event log  {el.path}: {el.error}")
    else:
        lines.append(f"event log  {el.path}: {sum(len(v) for v in el.events.values())} events for these PCRs")
    return lines


def _load_baseline(state_dir: Path) -> bl.Baseline:
    try:
        base = bl.load(state_dir)
    except bl.BaselineError as e:
        raise IntegrityError(f"the TPM baseline cannot be trusted: {e}",
                             hint="fix its owner/mode (root, 0600) or re-record it: `bacon baseline record`") from e
    if base is None:
        raise NotFound(f"no TPM baseline recorded ({bl.path_for(state_dir)} does not exist)",
                       hint="run `bacon baseline record`")
    return base


def read_pcrs(settings: TpmSettings, bank: str, pcrs: Sequence[int],
              ek: ek_pin.EkIdentity | None = None) -> dict[int, bytes]:
    """The current values of ``pcrs``, within ``[tpm] timeout`` (a TPM that stops answering, or answers a
    byte at a time, must not hold any command longer than an admission would wait); with ``ek`` (the
    baseline's), read only in a session salted to that endorsement key
    (:class:`shim.attest.tpm.ek.EkMismatch` otherwise)."""
    def work() -> dict[int, bytes]:
        with open_tpm(settings, ek) as dev:
            return dev.read_pcrs(bank, pcrs)

    return within_deadline(settings, work)


def cmd_baseline_show(settings: TpmSettings, state_dir: Path, json_out: bool, diff: bool) -> int:
    """Show the baseline; with ``diff``, read the current PCRs and show what changed.

    Returns 0, or 1 when ``diff`` finds a change (like diff(1)). Raises NotFound (no baseline, exit 64),
    IntegrityError (unsafe or corrupt baseline, or ``diff`` meets another endorsement key than the
    baseline's, exit 77), Unavailable (``diff`` without a TPM).
    """
    base = _load_baseline(state_dir)
    doc: dict[str, Any] = {"path": str(bl.path_for(state_dir)), "baseline": bl.to_json(base)}
    changes: list[bl.Change] = []
    lines: list[str] = []
    if diff:
        pcrs = sorted(set(settings.pcrs) | set(base.pcrs))
        current = read_pcrs(settings, base.bank, pcrs, base.ek)
        changes = bl.diff(base.pcrs, current, pcrs)
        lines = explain(settings, base, changes, read_eventlog(settings)) if changes else []
        doc["diff"] = [{"pcr": c.pcr, "baseline": c.old.hex() if c.old else None,
                        "current": c.new.hex() if c.new else None} for c in changes]
        doc["explanation"] = lines
        doc["matches"] = not changes
    if json_out:
        _out(json.dumps(doc, indent=2))
    else:
        _out(f"TPM baseline {doc['path']}")
        for line in _baseline_lines(base):
            _out(line)
        if diff:
            if not changes:
                _out(f"current PCRs {format_selection(base.bank, list(base.pcrs))} match the baseline")
            for c in changes:
                old = c.old.hex() if c.old else "(not in the baseline)"
                new = c.new.hex() if c.new else "(not read)"
                _out(f"PCR {c.pcr} changed: {old} → {new}")
            for line in lines:
                _out(line)
    return 1 if changes else 0


# --- bacon quote tpm --nonce HEX [--pcrs …] [--out DIR] ---------------------------------------------------

def parse_nonce(nonce_hex: str) -> bytes:
    """The operator's nonce: 1..64 bytes of hex. Raises :class:`UsageError`."""
    return parse_hex(nonce_hex, max_size=MAX_NONCE_SIZE)


def _selection(settings: TpmSettings, pcrs: str | Sequence[int] | None) -> TpmSettings:
    if pcrs is None:
        return settings
    bank = settings.bank
    if isinstance(pcrs, str) and ":" in pcrs:
        bank = pcrs.split(":", 1)[0].strip()
        if bank not in BANKS:
            raise UsageError(f"--pcrs names an unknown bank {bank!r}", hint=f"use one of {', '.join(BANKS)}")
    chosen = parse_pcrs(pcrs if isinstance(pcrs, str) else list(pcrs), "--pcrs", UsageError)
    return replace(settings, pcrs=chosen, bank=bank)


def cmd_quote(settings: TpmSettings, nonce_hex: str, pcrs: str | Sequence[int] | None,
              out_dir: Path | None) -> int:
    """Quote PCRs with the operator's nonce; write the files ``tpm2_checkquote`` takes, or print JSON.

    Files in ``out_dir``: ``quote.msg`` (TPMS_ATTEST), ``quote.sig`` (TPMT_SIGNATURE), ``ak.pub.pem`` and
    ``ak.pub`` (TPM2B_PUBLIC), ``pcrs.bin`` (values, ascending), ``quote.json`` (all of it, hex/PEM).
    Raises UsageError, Unavailable.
    """
    nonce = parse_nonce(nonce_hex)
    settings = _selection(settings, pcrs)
    quote, att, fp = _verified_quote(settings, nonce)
    sig_hash = attest.parse_signature(quote.signature).hash
    order = sorted(settings.pcrs)
    doc: dict[str, Any] = {
        "tcti": str(settings.tcti),
        "nonce": nonce.hex(),
        "selection": settings.selection,
        "hash": sig_hash,
        "pcrs": {str(p): quote.pcrs[p].hex() for p in order},
        "message": quote.message.hex(),
        "signature": quote.signature.hex(),
        "ak_public_pem": quote.ak_pem.decode(),
        "ak_fingerprint": fp,
        "reset_count": att.reset_count,
        "restart_count": att.restart_count,
    }
    if out_dir is None:
        _out(json.dumps(doc, indent=2))
        return 0
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "quote.msg": quote.message,
            "quote.sig": quote.signature,
            "ak.pub.pem": quote.ak_pem,
            "ak.pub": quote.ak_tss,
            "pcrs.bin": b"".join(quote.pcrs[p] for p in order),
        }
        cmd = (f"tpm2_checkquote -u {out_dir / 'ak.pub.pem'} -m {out_dir / 'quote.msg'} -s {out_dir / 'quote.sig'} "
               f"-f {out_dir / 'pcrs.bin'} -l {settings.selection} -g {sig_hash} -q {nonce.hex()}")
        doc["checkquote"] = cmd
        files["quote.json"] = (json.dumps(doc, indent=2) + "\n").encode()
        for name, data in files.items():
            atomicfile.write(out_dir / name, data)
    except OSError as e:
        raise BaconError(f"cannot write the quote to {out_dir}: {e.strerror or e}") from e
    _out(f"quote of {settings.selection} for nonce {nonce.hex()} by AK {fp} written to {out_dir}")
    _out(f"verify with: {cmd}")
    return 0


# --- bacon status ----------------------------------------------------------------------------------------

def secure_boot_state(efivars: Path = EFIVARS) -> str:
    """``enabled``, ``disabled``, or ``unknown`` (no EFI variable: not booted with UEFI, or efivarfs absent)."""
    return secureboot.read(efivars).state


def status(settings: TpmSettings, state_dir: Path, *, efivars: Path = EFIVARS,
           launch_pcr: int | None = None) -> dict[str, Any]:
    """The TPM part of ``bacon status`` (JSON-able): TPM present, PCRs against the baseline, Secure Boot.

    Never raises for what it cannot find out; ``error``/``hint`` say what and how to fix it. Reads PCRs only
    (no quote): it informs, the ``tpm`` check decides.
    """
    out: dict[str, Any] = {"secure_boot": secure_boot_state(efivars), "present": False, "tcti": None,
                           "error": None, "hint": None, "bank": None, "pcrs": [], "matches_baseline": None,
                           "baseline": {"path": str(bl.path_for(state_dir)), "recorded": False},
                           "eventlog": None}
    out.update(tcti=str(settings.tcti), bank=settings.bank)
    if settings.eventlog is not None:
        out["eventlog"] = {"path": str(settings.eventlog), "readable": os.access(settings.eventlog, os.R_OK)}
    base: bl.Baseline | None = None
    try:
        base = bl.load(state_dir)
    except bl.BaselineError as e:
        out["baseline"]["error"] = str(e)
    if base is not None:
        out["baseline"].update(recorded=True, recorded_at=base.recorded_at, bank=base.bank, ak=base.ak_fingerprint,
                               unpinned_ek=settings.unpinned_ek, **ek_pin.describe(base.ek))
        if base.bank == settings.bank:
            settings = effective(settings, list(base.pcrs), exclude=() if launch_pcr is None else (launch_pcr,))
    current: dict[int, bytes] = {}
    try:
        current = read_pcrs(settings, settings.bank, settings.pcrs, base.ek if base is not None else None)
        out["present"] = True
    except ek_pin.EkMismatch as e:  # a TPM answered, with another EK: its PCR values are not read
        out.update(present=True, error=e.message, hint=e.hint, ek_mismatch=True)
    except BaconError as e:
        out["present"] = "did not answer within" in e.message  # there, but stalled
        out.update(error=e.message, hint=e.hint)
    rows = []
    for p in settings.pcrs:
        cur = current.get(p)
        ref = base.pcrs.get(p) if base is not None and base.bank == settings.bank else None
        state = ("unknown" if cur is None else "no baseline" if ref is None else "match" if ref == cur else "changed")
        rows.append({"pcr": p, "current": cur.hex() if cur else None, "baseline": ref.hex() if ref else None,
                     "state": state})
    out["pcrs"] = rows
    out["coverage"] = coverage(settings.pcrs, _measured_pcrs(settings))
    out["ak_trust"] = AK_TRUST
    if current and base is not None:
        out["matches_baseline"] = all(r["state"] == "match" for r in rows)
    return out


AK_TRUST = ("pinned at `bacon baseline record` (trust on first use), with the endorsement key its quote's session "
            "was salted to: a quote proves the PCRs come from the same TPM key that was there then, used by the TPM "
            "that holds the pinned endorsement key; it does not prove that TPM is genuine (neither key is checked "
            "against the TPM maker's endorsement key certificate), so the baseline must be recorded on a host you "
            "trust")


def _measured_pcrs(settings: TpmSettings) -> set[int] | None:
    """The PCRs this boot's event log shows events for, or None without a readable log."""
    return _measured_in(read_eventlog(settings))


def _measured_in(raw: bytes | None) -> set[int] | None:
    if raw is None:
        return None
    from shim.attest.tpm import eventlog

    try:
        return eventlog.measured_pcrs(eventlog.parse(raw))
    except eventlog.EventLogError:
        return None


def format_status(s: Mapping[str, Any]) -> list[str]:
    """Human lines for :func:`status`'s result."""
    lines = [f"Secure Boot  {s['secure_boot']}"]
    tpm = "present" if s["present"] else "not available"
    lines.append(f"TPM          {tpm}" + (f" ({s['tcti']})" if s["tcti"] else ""))
    if s["error"]:
        lines.append(f"  error: {s['error']}")
        if s["hint"]:
            lines.append(f"  hint: {s['hint']}")
    b = s["baseline"]
    if b.get("error"):
        lines.append(f"baseline     unusable: {b['error']}")
    elif b["recorded"]:
        lines.append(f"baseline     recorded {b['recorded_at']} ({b['path']})")
        lines.append(f"EK           {'pinned ' if b['ek_pinned'] else ''}{b['ek']}")
    else:
        lines.append(f"baseline     none ({b['path']}); run `bacon baseline record`")
    for r in s["pcrs"]:
        cur = r["current"][:16] + "…" if r["current"] else "-"
        ref = r["baseline"][:16] + "…" if r["baseline"] else "-"
        lines.append(f"  PCR {r['pcr']:<2} {r['state']:<11} current {cur}  baseline {ref}")
    if s.get("eventlog"):
        el = s["eventlog"]
        lines.append(f"event log    {el['path']} ({'readable' if el['readable'] else 'not readable'})")
    if s["matches_baseline"] is not None:
        lines.append("PCRs         " + ("match the baseline" if s["matches_baseline"] else "DIFFER from the baseline"))
    return lines
