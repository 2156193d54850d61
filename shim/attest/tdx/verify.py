"""Appraising a TD quote: genuine, current, fresh, not debug, and measuring what we expect.

Every decision here is a pure function over data (quote bytes, collateral text, a time, the expected
REPORTDATA, parsed settings, and optionally the parsed event log). The quote cryptography is dcap-qvl's
(``verify_with_root_ca``: PCK chain to the pinned root with CRLs, QE report signed by the PCK leaf, QE
report binding the attestation key, quote signed by that key, TCB Info and QE Identity signed by Intel,
TCB level matching): nothing of it is re-implemented. dcap-qvl is imported only inside these
functions: it costs start-up time and only the TDX path needs it.

What we add on top, in this order (each refusal names the field and shows expected → actual):
collateral validity window (so an expired item is named), TDX quote type, debug attribute, dcap-qvl's
verification, TCB status against ``accept_tcb_status``, REPORTDATA, then the reference measurements.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shim.attest.tdx import ccel
from shim.attest.tdx.collateral import HINT_REFRESH, Window, require_current, validity_window
from shim.attest.tdx.settings import REFERENCE_FIELDS, TdxSettings
from shim.common.errors import Denied

TDX_TEE_TYPE = 0x81
TD_ATTR_DEBUG = 0x01  # TDATTRIBUTES byte 0 bit 0 (TUD.DEBUG)
FIELD_LABELS = {
    "mrtd": "MRTD", "rtmr0": "RTMR0", "rtmr1": "RTMR1", "rtmr2": "RTMR2", "rtmr3": "RTMR3",
    "mrconfigid": "MRCONFIGID", "mrowner": "MROWNER", "mrownerconfig": "MROWNERCONFIG",
}  # fmt: skip


@dataclass(frozen=True)
class Measurements:
    """The TD body fields we report and compare (raw bytes)."""

    mrtd: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    report_data: bytes
    td_attributes: bytes
    xfam: bytes
    mrseam: bytes
    tee_tcb_svn: bytes

    def get(self, name: str) -> bytes:
        if name.startswith("rtmr"):
            return self.rtmr[int(name[4:])]
        value: bytes = getattr(self, name)
        return value

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes[0] & TD_ATTR_DEBUG)

    def to_json(self) -> dict[str, str]:
        out = {name: self.get(name).hex() for name in REFERENCE_FIELDS}
        out.update(report_data=self.report_data.hex(), td_attributes=self.td_attributes.hex(), xfam=self.xfam.hex(),
                   mrseam=self.mrseam.hex(), tee_tcb_svn=self.tee_tcb_svn.hex())
        return out


@dataclass(frozen=True)
class ParsedQuote:
    version: int
    tee_type: int
    fmspc: str
    measurements: Measurements


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: bytes
    actual: bytes

    def text(self) -> str:
        return f"{FIELD_LABELS[self.field]} expected {self.expected.hex()} → actual {self.actual.hex()}"


@dataclass(frozen=True)
class Appraisal:
    """A quote that passed: what dcap-qvl said and what the TD measured."""

    status: str
    advisory_ids: tuple[str, ...]
    quote: ParsedQuote
    root: str
    root_is_test: bool
    window: Window
    now: int
    matched: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def measurements(self) -> Measurements:
        return self.quote.measurements

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
            "quote_version": self.quote.version,
            "fmspc": self.quote.fmspc,
            "root": self.root,
            "root_is_test": self.root_is_test,
            "collateral_window": self.window.to_json(),
            "at": self.now,
            "measurements": self.measurements.to_json(),
            "reference_matched": list(self.matched),
        }


class MeasurementMismatch(Denied):
    """The quote verified but measured something else than the reference values."""

    def __init__(self, message: str, mismatches: Sequence[Mismatch], quote: ParsedQuote, *, hint: str) -> None:
        super().__init__(message, check="tdx", hint=hint)
        self.mismatches = tuple(mismatches)
        self.quote = quote


def _flat(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def parse(quote: bytes) -> ParsedQuote:
    """Parse a TD quote (no verification). Raises :class:`Denied` when it is not one."""
    import dcap_qvl

    try:
        q = dcap_qvl.parse_quote(bytes(quote))
        header = q.header
        if header.tee_type != TDX_TEE_TYPE:
            raise Denied(f"the quote is not a TDX quote (tee_type 0x{header.tee_type:x})", check="tdx")
        r = q.report
        fmspc = q.fmspc()
        m = Measurements(
            mrtd=bytes(r.mr_td), rtmr=(bytes(r.rt_mr0), bytes(r.rt_mr1), bytes(r.rt_mr2), bytes(r.rt_mr3)),
            mrconfigid=bytes(r.mr_config_id), mrowner=bytes(r.mr_owner), mrownerconfig=bytes(r.mr_owner_config),
            report_data=bytes(r.report_data), td_attributes=bytes(r.td_attributes), xfam=bytes(r.xfam),
            mrseam=bytes(r.mr_seam), tee_tcb_svn=bytes(r.tee_tcb_svn),
        )  # fmt: skip
    except (ValueError, AttributeError, TypeError) as e:
        raise Denied(f"the TD quote is malformed: {_flat(e)}", check="tdx",
                     hint="the provider returned something that is not a TD quote") from e
    return ParsedQuote(version=int(header.version), tee_type=int(header.tee_type), fmspc=fmspc, measurements=m)


def _strict_fail(what: str) -> Denied:
    return Denied(f"the TD quote is not in canonical form: {what}", check="tdx",
                  hint="the quote was altered in transit or by the provider")


def require_canonical(quote: bytes, root_der: bytes) -> None:
    """Refuse encodings dcap-qvl tolerates but a genuine quote never has. Raises :class:`Denied`.

    dcap-qvl verifies every signature but accepts, for example, a ``signature data`` length larger than
    what it holds, an outer certification-data type other than 6, PEM with altered line breaks or armor,
    and any certificate in the place of the root in the embedded chain (it anchors to its own root).
    A flipped byte in any of those would go unnoticed, so the layout is checked here: lengths must tie
    up exactly (zero padding after the quote is allowed: sample files are padded), the types must be
    6 then 5, the PEM must be the canonical encoding of exactly three certificates, and the last of them
    must be the pinned root. Only the structure is parsed; the cryptography stays dcap-qvl's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        version = struct.unpack_from("<H", quote, 0)[0]
        if version == 4:
            off = 48 + 584
        elif version == 5:
            off = 54 + struct.unpack_from("<I", quote, 50)[0]
        else:
            raise _strict_fail(f"quote version {version}")
        (sig_len,) = struct.unpack_from("<I", quote, off)
        sig = quote[off + 4 : off + 4 + sig_len]
        if len(sig) != sig_len or any(quote[off + 4 + sig_len :]):
            raise _strict_fail("signature data length does not match the data (or non-zero bytes follow)")
        cert_type, cert_size = struct.unpack_from("<HI", sig, 128)
        if cert_type != 6 or 134 + cert_size != sig_len:
            raise _strict_fail(f"certification data type {cert_type} / size {cert_size} (expected type 6 filling "
                               "the signature data)")
        inner = sig[134:]
        (auth_len,) = struct.unpack_from("<H", inner, 448)
        p = 450 + auth_len
        pem_type, pem_size = struct.unpack_from("<HI", inner, p)
        pem = inner[p + 6 :]
        if pem_type != 5 or len(pem) != pem_size:
            raise _strict_fail(f"inner certification data type {pem_type} / size {pem_size} (expected type 5 "
                               "filling the QE certification data)")
        certs = x509.load_pem_x509_certificates(pem.rstrip(b"\x00"))
    except (struct.error, ValueError, x509.InvalidVersion) as e:  # InvalidVersion: a certificate's version byte
        raise _strict_fail(f"unparsable signature data ({e})") from e
    canonical = b"".join(c.public_bytes(Encoding.PEM) for c in certs)
    if pem not in (canonical, canonical + b"\x00"):
        raise _strict_fail("the embedded PEM certificate chain is not canonically encoded")
    if len(certs) != 3 or certs[-1].public_bytes(Encoding.DER) != root_der:
        raise _strict_fail("the embedded certificate chain is not PCK leaf → PCK CA → the pinned root")


def _hint_for(message: str) -> str:
    low = message.lower()
    if "expired" in low or "future" in low or "crlexpired" in low or "not valid" in low:
        return HINT_REFRESH
    if "no matching tcb level" in low:
        return "the platform's TCB is below every level Intel lists: update BIOS/microcode/TDX module"
    if "revoked" in low:
        return "Intel revoked this platform's TCB or key: this host cannot attest until it is updated"
    if "fmspc" in low:
        return "the collateral is for another platform: " + HINT_REFRESH
    return "the quote, or its collateral, is not genuine or was altered in transit"


def appraise(quote: bytes, collateral_text: str, now: int, settings: TdxSettings) -> Appraisal:
    """Verify the quote's signatures and TCB with dcap-qvl and apply the status and debug policy.

    Raises :class:`Denied`.
    """
    import dcap_qvl

    window = validity_window(collateral_text)
    require_current(window, now)
    parsed = parse(quote)
    if parsed.measurements.debug:
        raise Denied(
            f"the TD has the DEBUG attribute (TDATTRIBUTES {parsed.measurements.td_attributes.hex()}): "
            "its memory and registers are visible to the host",
            check="tdx",
            hint="launch the TD without debug",
        )
    require_canonical(quote, settings.root_ca.der)
    try:
        col = dcap_qvl.QuoteCollateralV3.from_json(collateral_text)
        report = dcap_qvl.verify_with_root_ca(bytes(quote), col, settings.root_ca.der, now)
    except ValueError as e:
        msg = _flat(e)
        raise Denied(f"TD quote verification against {settings.root_ca.name} failed: {msg}", check="tdx",
                     hint=_hint_for(msg)) from e
    status = str(report.status)
    advisories = tuple(str(a) for a in report.advisory_ids)
    if status not in settings.accept_tcb_status:
        raise Denied(
            f"TCB status {status} is not accepted (accepted: {', '.join(sorted(settings.accept_tcb_status))})"
            + (f"; advisories {', '.join(advisories)}" if advisories else ""),
            check="tdx",
            hint="update the platform (BIOS/microcode/TDX module), or list the status in [tdx] accept_tcb_status",
        )
    return Appraisal(status=status, advisory_ids=advisories, quote=parsed, root=settings.root_ca.name,
                     root_is_test=settings.root_ca.is_test, window=window, now=now)


def check_report_data(measurements: Measurements, expected: bytes) -> None:
    """REPORTDATA must be exactly what was asked for (a fresh nonce or its binding). Raises :class:`Denied`."""
    if not hmac.compare_digest(measurements.report_data, expected):
        raise Denied(
            f"REPORTDATA does not carry the nonce: expected {expected.hex()} → actual {measurements.report_data.hex()}",
            check="tdx",
            hint="the quote is stale or was made for another request; the provider may be shared or replaying",
        )


def compare(measurements: Measurements, reference: Mapping[str, bytes]) -> list[Mismatch]:
    """The configured reference fields that differ, in a fixed order."""
    return [
        Mismatch(name, reference[name], measurements.get(name))
        for name in REFERENCE_FIELDS
        if name in reference and not hmac.compare_digest(reference[name], measurements.get(name))
    ]


def mismatch_message(
    mismatches: Sequence[Mismatch],
    measurements: Measurements,
    events: Sequence[ccel.Event] | None = None,
    reference_events: Sequence[ccel.Event] | None = None,
) -> str:
    """What differs, and for an RTMR the events that explain it when the event log is at hand."""
    parts = ["; ".join(m.text() for m in mismatches)]
    for m in mismatches:
        if not m.field.startswith("rtmr"):
            continue
        index = int(m.field[4:])
        if events is None:
            parts.append(f"(no event log to explain {FIELD_LABELS[m.field]})")
            continue
        exp = ccel.explain(events, index, measurements.rtmr[index], reference_events)
        parts.append("\n".join(exp.lines()))
    return "\n".join(parts)


def verify_quote(
    quote: bytes,
    collateral_text: str,
    now: int,
    expected_report_data: bytes | None,
    settings: TdxSettings,
    *,
    events: Sequence[ccel.Event] | None = None,
    reference_events: Sequence[ccel.Event] | None = None,
) -> Appraisal:
    """The whole decision: :func:`appraise`, REPORTDATA (unless ``None``), reference values.

    Raises :class:`Denied` (:class:`MeasurementMismatch` for reference values).
    """
    appraisal = appraise(quote, collateral_text, now, settings)
    if expected_report_data is not None:
        check_report_data(appraisal.measurements, expected_report_data)
    mismatches = compare(appraisal.measurements, settings.reference)
    if mismatches:
        names = ", ".join(FIELD_LABELS[m.field] for m in mismatches)
        raise MeasurementMismatch(
            f"{names} differ from the reference: "
            + mismatch_message(mismatches, appraisal.measurements, events, reference_events),
            mismatches,
            appraisal.quote,
            hint="if this TD image/configuration is the new intended one, update [tdx.reference] from "
            "`bacon tdx verify`; otherwise investigate the listed events",
        )
    matched = tuple(name for name in REFERENCE_FIELDS if name in settings.reference)
    return Appraisal(**{**appraisal.__dict__, "matched": matched})
