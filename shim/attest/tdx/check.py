"""The ``tdx`` admission check: a fresh quote from this TD, verified, compared, or a refusal.

The gate calls :func:`run_tdx_check` with the ``[tdx]`` table and the 64 bytes of REPORTDATA it wants
the quote to carry (a fresh nonce, or :func:`report_data_for` binding a nonce to the image digest being
admitted). IO happens here and only here: the provider (configfs-tsm), the collateral cache, and, only
to explain an RTMR mismatch, the event log. The decision is :func:`shim.attest.tdx.verify.verify_quote`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from shim.admission.checks import CheckResult
from shim.attest.tdx import ccel, collateral, settings, trust_authority, verify
from shim.attest.tdx.configfs import REPORTDATA_SIZE, ConfigfsQuoteProvider
from shim.common.errors import ConfigError, Denied, Unavailable

REPORTDATA_DOMAIN = b"BACON-TDX-REPORTDATA-v1\x00"
MAX_CCEL = 16 << 20


class QuoteProvider(Protocol):
    def get_quote(self, report_data: bytes) -> bytes: ...


def report_data_for(nonce: bytes, subject: str) -> bytes:
    """REPORTDATA binding a fresh nonce to what is being admitted (e.g. an image digest): SHA-512 over a
    domain tag, the nonce and the subject, so a quote made for one admission cannot serve another."""
    if len(nonce) < 16:
        raise ValueError("the nonce must be at least 16 random bytes")
    return hashlib.sha512(REPORTDATA_DOMAIN + len(nonce).to_bytes(2, "big") + nonce + subject.encode()).digest()


MEASURES = {"mrtd": "virtual firmware", "rtmr0": "firmware configuration", "rtmr1": "kernel and initrd",
            "rtmr2": "kernel command line", "rtmr3": "runtime measurements"}


def _what(fields: Sequence[str]) -> str:
    return ", ".join(MEASURES.get(f, f) for f in fields)


def not_compared_note(s: settings.TdxSettings) -> str:
    """``; not compared: …`` for the TD measurements no reference value covers (and which were opted out)."""
    if not s.not_compared:
        return ""
    names = ", ".join(f"{verify.FIELD_LABELS[f]} ({MEASURES[f]})" for f in s.not_compared)
    out = f"; not compared: {names}"
    if s.opted_out:
        out += f" — [tdx] require_reference leaves out {', '.join(s.opted_out)}"
    return out


class BoundedProvider:
    """configfs-tsm, every read within ``[tdx] timeout`` (:mod:`shim.common.deadline`): reading ``outblob`` blocks
    until the Quote Generation Service answers, and it may never."""

    def __init__(self, inner: ConfigfsQuoteProvider, timeout: float) -> None:
        self.inner, self.timeout = inner, timeout

    def _timed_out(self) -> Unavailable:
        return Unavailable(f"the TDX quote provider ({self.inner.root}) did not answer within {self.timeout:g}s",
                           hint="check the TD's Quote Generation Service (qgsd on the host); [tdx] timeout sets how "
                                "long BACON waits")

    def get_quote(self, report_data: bytes) -> bytes:
        from shim.common.deadline import bounded

        return bounded(self.timeout, lambda: self.inner.get_quote(report_data), self._timed_out, name="tdx")

    def provider_name(self) -> str:
        from shim.common.deadline import bounded

        return bounded(self.timeout, self.inner.provider_name, self._timed_out, name="tdx")


def provider_for(s: settings.TdxSettings) -> BoundedProvider:
    return BoundedProvider(ConfigfsQuoteProvider(root=s.configfs_root, busy_retries=s.busy_retries,
                                                 busy_wait=s.busy_wait, max_quote_size=s.max_quote_size), s.timeout)


def read_event_log(path: Path) -> list[ccel.Event] | None:
    """The parsed event log at ``path``, or ``None`` when it is absent or unreadable (it only explains)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CCEL)
        return ccel.parse(raw)
    except (OSError, ccel.EventLogError):
        return None


def explained(err: verify.MeasurementMismatch, s: settings.TdxSettings) -> verify.MeasurementMismatch:
    """Re-raise-ready: the mismatch with the events that explain any RTMR difference."""
    if not any(m.field.startswith("rtmr") for m in err.mismatches):
        return err
    events = read_event_log(s.ccel)
    ref_events: Sequence[ccel.Event] | None = read_event_log(s.reference_ccel) if s.reference_ccel else None
    names = ", ".join(verify.FIELD_LABELS[m.field] for m in err.mismatches)
    msg = f"{names} differ from the reference: " + verify.mismatch_message(
        err.mismatches, err.quote.measurements, events, ref_events
    )
    return verify.MeasurementMismatch(msg, err.mismatches, err.quote, hint=err.hint or "")


def run_tdx_check(
    tdx: settings.TdxSettings,
    report_data: bytes,
    *,
    now: int | None = None,
    provider: QuoteProvider | None = None,
    ita_transport: trust_authority.Transport | None = None,
) -> CheckResult:
    """Admit only when a fresh quote of this TD verifies and measures the reference values (and, when
    ``[tdx.trust_authority]`` is enabled, Intel Trust Authority appraises the same quote alike).

    Raises :class:`Denied` (the host fails), :class:`Unavailable` (no quote or no collateral: the gate
    denies too), :class:`ConfigError` (no reference MRTD to compare with, or a root CA that cannot be read).
    """
    s = tdx
    if s.missing_reference:
        raise ConfigError(
            f"[tdx.reference] has no {', '.join(s.missing_reference)}: without them a TD with any "
            f"{_what(s.missing_reference)} would be admitted",
            hint="record the reference values from `bacon tdx verify` on a known-good TD into [tdx.reference] (or, "
                 "to knowingly leave one out, list only what is compared: [tdx] require_reference = [\"mrtd\", …])",
        )
    if len(report_data) != REPORTDATA_SIZE:
        raise ValueError(f"report_data must be {REPORTDATA_SIZE} bytes, got {len(report_data)}")
    at = int(time.time()) if now is None else now
    text = collateral.load(s.collateral)
    ita = trust_authority.Client(s.trust_authority, ita_transport) if s.trust_authority.enabled else None
    ita_nonce = ita.nonce() if ita else None
    asked = trust_authority.report_data(ita_nonce, report_data) if ita_nonce else report_data
    quote = (provider or provider_for(s)).get_quote(asked)
    try:
        appraisal = verify.verify_quote(quote, text, at, asked, s)
    except verify.MeasurementMismatch as e:
        raise explained(e, s) from None
    details: dict[str, Any] = appraisal.to_json()
    if ita and ita_nonce:
        claims = ita.verify_token(ita.attest(quote, ita_nonce, report_data), at)
        m = appraisal.measurements
        trust_authority.check_claims(
            claims, report_data=asked, nonce=ita_nonce,
            measurements={f: m.get(f) for f in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")},
            accept_tcb_status=s.accept_tcb_status, policy_ids=s.trust_authority.policy_ids)
        details["trust_authority"] = {"tcb_status": claims.get("attester_tcb_status"), "jti": claims.get("jti"),
                                      "url": s.trust_authority.url}
    details["quote_sha256"] = hashlib.sha256(quote).hexdigest()
    test = " with a TEST root" if appraisal.root_is_test else ""
    remote = ", appraised by Intel Trust Authority" if ita else ""
    details["not_compared"] = list(s.not_compared)
    details["opted_out"] = list(s.opted_out)
    summary = (
        f"TD quote verified{test}{remote}: TCB {appraisal.status}, "
        f"{', '.join(verify.FIELD_LABELS[f] for f in appraisal.matched)} match the reference"
        + not_compared_note(s)
    )
    return CheckResult(name="tdx", summary=summary, details=details)


__all__ = ["Denied", "QuoteProvider", "Unavailable", "report_data_for", "run_tdx_check"]
