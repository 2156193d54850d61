"""The ``tpm`` admission check: a fresh quote, verified in software, compared with the recorded baseline.

:func:`run_tpm_check` is the glue (config → baseline file → TPM → decision); :func:`judge_quote` is the decision,
pure over data, so every rule is tested without a TPM:

- no baseline, or one that does not cover the configured bank and PCRs → denied ("run bacon baseline record");
- the TPM presents another endorsement key than the baseline pinned → denied, before any session is salted
  to it (:mod:`shim.attest.tpm.ek`); a baseline recorded before EKs were pinned admits with "EK not pinned"
  in the check's summary and details, or is denied under ``[tpm] unpinned_ek = "deny"``;
- the quote is signed by another AK than the baseline's (another or a cleared TPM) → denied;
- the quote fails verification (signature, magic, type, nonce, PCR selection, PCR digest) → denied;
- any PCR differs from the baseline → denied, naming each PCR (old → new) and, where the kernel exposes an
  event log, the events that now differ from the baseline's;
- the TPM cannot be reached or errors → :class:`Unavailable` (the gate denies: fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from shim.admission.checks import CheckResult
from shim.attest.tpm import attest
from shim.attest.tpm import baseline as bl
from shim.attest.tpm import ek as ek_pin
from shim.attest.tpm.device import Quote, open_tpm
from shim.attest.tpm.settings import TpmSettings, effective, format_selection
from shim.common.errors import BaconError, Denied, Unavailable

CHECK = "tpm"
T = TypeVar("T")
NONCE_SIZE = 32
MAX_NONCE_SIZE = 64  # TPM2B_DATA holds at most sizeof(TPMU_HA)
RECORD_HINT = "if this change is expected (firmware, boot loader or Secure Boot update), run `bacon baseline record`"


def _short(fp: str) -> str:
    return fp[:23] + "…"


def _denied(message: str, hint: str | None = None) -> Denied:
    return Denied(message, check=CHECK, hint=hint)


def missing_device(settings: TpmSettings | None) -> str | None:
    """The TPM device the configuration names when it does not exist (a host without a TPM), else None
    (present, or a TCTI whose presence only a connection tells)."""
    if settings is None or settings.tcti.name != "device":
        return None
    path = settings.tcti.conf or "/dev/tpmrm0"
    return None if os.path.exists(path) else path


def baseline_or_deny(state_dir: Path, settings: TpmSettings | None = None) -> bl.Baseline:
    """Load the baseline; deny when it is missing, unsafe or corrupt. Without a baseline on a host that has
    no TPM device, the denial says so: "record a baseline" cannot be done there."""
    try:
        base = bl.load(state_dir)
    except bl.BaselineError as e:
        raise _denied(f"the TPM baseline cannot be trusted: {e}",
                      hint=f"fix the file's owner/mode (root, 0600) or re-record it: `bacon baseline record` "
                           f"(writes {bl.path_for(state_dir)})") from e
    if base is None:
        device = missing_device(settings)
        if device is not None:
            raise _denied(f"this host has no TPM ({device} does not exist), and this image's level requires the "
                          "tpm check", hint="run it on a host with a TPM (`bacon status` shows which levels this "
                          "host can meet), or point [tpm] tcti at this host's TPM if it has one elsewhere")
        raise _denied(f"no TPM baseline recorded ({bl.path_for(state_dir)} does not exist)",
                      hint="on a host in a known-good state run `sudo bacon baseline record`")
    return base


def covers(settings: TpmSettings, base: bl.Baseline) -> None:
    """Deny when the baseline was recorded for another bank or lacks configured PCRs."""
    if base.bank != settings.bank:
        raise _denied(f"the TPM baseline holds the {base.bank} bank, the configuration asks for {settings.bank}",
                      hint="run `bacon baseline record` to record the configured bank")
    missing = [p for p in settings.pcrs if p not in base.pcrs]
    if missing:
        raise _denied(f"the TPM baseline has no value for PCR {', '.join(map(str, missing))} "
                      f"(recorded: {format_selection(base.bank, list(base.pcrs))})",
                      hint="the [tpm] pcrs changed since recording; run `bacon baseline record`")


def pinned(settings: TpmSettings, base: bl.Baseline) -> None:
    """Deny a baseline that does not pin the endorsement key when ``[tpm] unpinned_ek = "deny"``."""
    if base.ek is None and settings.unpinned_ek == "deny":
        raise _denied(f"{ek_pin.UNPINNED} (baseline of {base.recorded_at}; [tpm] unpinned_ek = \"deny\")",
                      hint="on a known-good boot: sudo bacon baseline record")


def verify(settings: TpmSettings, quote: Quote, nonce: bytes) -> tuple[attest.Attest, str]:
    """Verify ``quote`` for ``nonce`` and the configured PCRs; return it parsed and its AK fingerprint.
    Raises :class:`attest.QuoteError`."""
    key = attest.load_public_key(quote.ak_pem)
    values = {p: quote.pcrs[p] for p in settings.pcrs if p in quote.pcrs}
    if len(values) != len(settings.pcrs):
        raise attest.QuoteError("the PCR values read do not cover the configured PCRs")
    att = attest.verify_quote(quote.message, quote.signature, key, nonce=nonce, pcrs=values, bank=settings.bank)
    return att, attest.fingerprint(key)


def explain(settings: TpmSettings, base: bl.Baseline, changes: Sequence[bl.Change], log_bytes: bytes | None,
            limit: int = 4) -> list[str]:
    """Lines naming the events that explain each changed PCR (pure; ``log_bytes`` None: no log)."""
    if log_bytes is None:
        return []
    from shim.attest.tpm import eventlog  # local: only a mismatch needs the parser

    try:
        log = eventlog.parse(log_bytes)
    except eventlog.EventLogError as e:
        return [f"(event log unusable: {e})"]
    out: list[str] = []
    ref_events = base.eventlog.events if base.eventlog is not None else {}
    for c in changes:
        if c.new is None:
            continue
        ref = ref_events.get(c.pcr)
        try:
            ex = eventlog.explain(log, c.pcr, c.new, settings.bank,
                                  [(t, d) for t, d, _ in ref] if ref is not None else None)
        except eventlog.EventLogError as e:
            return [f"(event log unusable: {e})"]
        out.extend(ex.lines(limit))
    return out


def judge_quote(settings: TpmSettings, base: bl.Baseline, quote: Quote, nonce: bytes,
                log_bytes: bytes | None = None) -> CheckResult:
    """The decision. Returns a passing :class:`CheckResult` or raises :class:`Denied`."""
    covers(settings, base)
    pinned(settings, base)
    try:
        ek_pin.judge(base.ek, quote.ek.name if quote.ek is not None else None, str(settings.tcti))
    except ek_pin.EkMismatch as e:
        raise _denied(e.message, hint=e.hint) from e
    try:
        key = attest.load_public_key(quote.ak_pem)
    except attest.QuoteError as e:
        raise _denied(f"the TPM's attestation key is unusable: {e}") from e
    fp = attest.fingerprint(key)
    if fp != base.ak_fingerprint:
        raise _denied(f"the quote is signed by attestation key {_short(fp)}, the baseline was recorded with "
                      f"{_short(base.ak_fingerprint)}: another TPM, or its endorsement hierarchy was cleared",
                      hint="if the TPM was replaced or cleared on purpose (or [tpm] ak changed), "
                           "run `bacon baseline record`")
    try:
        att, _ = verify(settings, quote, nonce)
    except attest.QuoteError as e:
        raise _denied(f"the TPM quote does not verify: {e}",
                      hint="retry; if it persists the TPM or the path to it is not trustworthy "
                           "(check [tpm] tcti and `bacon doctor`)") from e
    changes = bl.diff(base.pcrs, quote.pcrs, settings.pcrs)
    if changes:
        lines = explain(settings, base, changes, log_bytes)
        hint = RECORD_HINT + ("\n" + "\n".join(lines) if lines else "")
        raise _denied("; ".join(c.describe() for c in changes) + f" (baseline of {base.recorded_at})", hint=hint)
    ek_note = f", EK {base.ek.short}" if base.ek is not None else f"; {ek_pin.UNPINNED}"
    return CheckResult(
        name=CHECK,
        summary=f"PCRs {settings.selection} match the baseline of {base.recorded_at} "
                f"(fresh quote by AK {_short(fp)}{ek_note})",
        details={
            "tcti": str(settings.tcti),
            "bank": settings.bank,
            "pcrs": {str(p): quote.pcrs[p].hex() for p in settings.pcrs},
            "ak": fp,
            "nonce": nonce.hex(),
            "baseline_recorded_at": base.recorded_at,
            "reset_count": att.reset_count,
            "restart_count": att.restart_count,
            **ek_pin.describe(base.ek),
        },
    )


def fresh_quote(settings: TpmSettings, nonce: bytes, expected: Mapping[int, bytes] | None = None,
                ek: ek_pin.EkIdentity | None = None) -> Quote:
    """Quote the configured PCRs with ``nonce``; re-quote once when a PCR moved between quote and read.
    With ``ek`` (the baseline's), the session is salted only to that endorsement key
    (:class:`shim.attest.tpm.ek.EkMismatch` otherwise, before anything is quoted).

    With ``expected`` (the baseline's values): when the quote verifies with them (its signed PCR digest is
    their digest), they are the quote's values and the PCRs are not read again (a command in the TPM's
    session costs milliseconds, and the values read are only ever bound to the quote by that digest);
    otherwise the PCRs are read, to say which one changed."""
    with open_tpm(settings, ek) as dev:
        if expected is not None and all(p in expected for p in settings.pcrs):
            from dataclasses import replace

            quote = dev.quote(settings.bank, settings.pcrs, nonce, settings.ak, read=False)
            claimed = replace(quote, pcrs={p: expected[p] for p in settings.pcrs})
            try:
                verify(settings, claimed, nonce)
                return claimed
            except attest.QuoteError:
                quote = replace(quote, pcrs=dev.read_pcrs(settings.bank, settings.pcrs))
        else:
            quote = dev.quote(settings.bank, settings.pcrs, nonce, settings.ak)
        try:
            verify(settings, quote, nonce)
        except attest.PcrDigestMismatch:
            quote = dev.quote(settings.bank, settings.pcrs, nonce, settings.ak)
        except attest.QuoteError:
            pass  # judge_quote() denies with the reason
    return quote


def within_deadline(settings: TpmSettings, quote: Callable[[], T]) -> T:
    """``quote()`` (or any TPM work) waited for at most ``settings.timeout`` seconds (:mod:`shim.common.deadline`);
    then the TPM is :class:`Unavailable`."""
    from shim.common.deadline import bounded

    return bounded(settings.timeout, quote, lambda: Unavailable(
        f"the TPM ({settings.tcti}) did not answer within {settings.timeout:g}s",
        hint="check the TPM (or the simulator / resource manager behind [tpm] tcti); "
             "[tpm] timeout sets how long BACON waits"), name="tpm")


def read_eventlog(settings: TpmSettings) -> bytes | None:
    """The event log's bytes, or None when not configured or not readable (it only explains, never decides)."""
    if settings.eventlog is None:
        return None
    from shim.attest.tpm import eventlog

    try:
        return eventlog.read_log(settings.eventlog)
    except eventlog.EventLogError:
        return None


def run_tpm_check(settings: TpmSettings, state_dir: Path, *, nonce: bytes | None = None,
                  launch_pcr: int | None = None) -> CheckResult:
    """The ``tpm`` check for the admission gate.

    ``settings``: the configuration's ``cfg.tpm``. Raises :class:`Denied` (no/unsafe baseline, quote
    fails, PCRs differ), :class:`shim.common.errors.Unavailable` (no TPM, TPM error).
    """
    base = baseline_or_deny(state_dir, settings)
    if base.bank == settings.bank:
        # what was chosen at record time from the event log, less the launch PCR (extended after boot)
        settings = effective(settings, list(base.pcrs), exclude=() if launch_pcr is None else (launch_pcr,))
    covers(settings, base)
    pinned(settings, base)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    if not 0 < len(nonce) <= MAX_NONCE_SIZE:
        raise BaconError(f"TPM nonce must be 1..{MAX_NONCE_SIZE} bytes, got {len(nonce)}")
    try:
        quote = within_deadline(settings, lambda: fresh_quote(settings, nonce, base.pcrs, base.ek))
    except ek_pin.EkMismatch as e:  # the TPM's answer to the EK's creation: nothing after it was trusted
        raise _denied(e.message, hint=e.hint) from e
    changed = bl.diff(base.pcrs, quote.pcrs, settings.pcrs)
    return judge_quote(settings, base, quote, nonce, read_eventlog(settings) if changed else None)
