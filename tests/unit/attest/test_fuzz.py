"""Fuzzing the attestation parsers with the real vectors as seeds: the TPM quote (TPMS_ATTEST, signature,
AK), the TPM event log, the CCEL, TD quotes and their collateral. A mutated quote never verifies; every
parser answers with its own error (QuoteError, EventLogError) or Denied, never another exception,
including a panic from dcap-qvl (``tests.fuzz.targets``)."""

from __future__ import annotations

import json
import struct
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from shim.attest.tdx import collateral
from shim.attest.tpm import attest
from shim.common.errors import Denied
from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import json_values, mutated

# -- TPM quotes ---------------------------------------------------------------------------------------------


def test_real_tpm_quote_passes_the_target() -> None:
    message, sig, ak, _, _ = targets.tpm_evidence()
    targets.check_tpm(message, sig, ak)


@fuzz(400)
@given(st.data())
def test_mutated_tpm_quotes_never_verify(data: st.DataObject) -> None:
    message, sig, ak, _, _ = targets.tpm_evidence()
    part = data.draw(st.sampled_from(("message", "signature", "both", "ak")))
    if part in ("message", "both"):
        message = data.draw(mutated(message))
    if part in ("signature", "both"):
        sig = data.draw(mutated(sig))
    targets.check_tpm(message, sig, data.draw(mutated(ak)) if part == "ak" else ak)


@fuzz(200)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_arbitrary_tpm_quote_bytes(message: bytes, sig: bytes) -> None:
    targets.check_tpm(message, sig, None)


def _spki_with_curve(oid: bytes) -> bytes:
    der = ec.derive_private_key(5, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    p256 = bytes.fromhex("06082a8648ce3d030107")
    assert len(oid) == len(p256)
    return der.replace(p256, oid)


@pytest.mark.parametrize("ak", [_spki_with_curve(bytes.fromhex("06082a8648ce3d030100")),
                                _spki_with_curve(bytes.fromhex("06082a8648ce3d0301ff"))])
def test_ak_on_an_unknown_curve_is_a_quote_error(ak: bytes) -> None:
    """Regression: cryptography's UnsupportedAlgorithm escaped load_public_key (and the tpm check)."""
    with pytest.raises(attest.QuoteError, match="not a PEM or DER public key"):
        attest.load_public_key(ak)
    message, sig, _, _, _ = targets.tpm_evidence()
    targets.check_tpm(message, sig, ak)  # the tpm check denies it


# -- event logs ---------------------------------------------------------------------------------------------


@cache
def _tpm_log() -> bytes:
    return (targets.VECTORS / "tpm" / "event-sd-boot-fedora37.bin").read_bytes()


@cache
def _ccel() -> bytes:
    return (targets.CORPUS / "ccel" / "seed-000").read_bytes()


def _event_offsets(log: bytes, first: int) -> list[int]:
    """Offsets of the TCG_PCR_EVENT2 headers (from the real log, for mutations aimed at them)."""
    out, off = [], first
    (n_algs,) = struct.unpack_from("<I", log, 32 + 24)
    sizes = dict(struct.unpack_from("<HH", log, 32 + 28 + 4 * i) for i in range(n_algs))
    while off + 12 <= len(log):
        pcr, _, count = struct.unpack_from("<III", log, off)
        if pcr == 0xFFFFFFFF or count == 0:
            break
        out.append(off)
        p = off + 12
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", log, p)
            p += 2 + sizes[alg]
        (dlen,) = struct.unpack_from("<I", log, p)
        off = p + 4 + dlen
    return out


@st.composite
def mutated_log(draw: st.DrawFn, log: bytes) -> bytes:
    first = 32 + struct.unpack_from("<I", log, 28)[0]
    offsets = [0, *_event_offsets(log, first)]
    at = draw(st.sampled_from(offsets))
    return draw(mutated(log, focus=(at, at + draw(st.sampled_from((12, 16, 64))))))


@fuzz(300)
@given(st.data())
def test_mutated_tpm_event_logs(data: st.DataObject) -> None:
    log = _tpm_log()
    targets.tpm_eventlog(data.draw(st.one_of(mutated_log(log), mutated(log))))


@fuzz(200)
@given(st.data())
def test_mutated_ccel(data: st.DataObject) -> None:
    log = _ccel()
    targets.ccel_log(data.draw(st.one_of(mutated_log(log), mutated(log))))


# -- TD quotes and collateral -----------------------------------------------------------------------------


@cache
def _td_quotes() -> list[bytes]:
    return [p.read_bytes()[1:] for p in targets.corpus("tdx") if p.read_bytes()[:1] == b"\x00"]


# Regions of a v4 quote: header, TD body (MRTD, RTMRs, REPORTDATA …), signature length, ECDSA signature,
# attestation key, certification data header, QE report, QE report signature, QE auth data, PEM chain.
_REGIONS = ((0, 48), (48, 632), (632, 636), (636, 700), (700, 764), (764, 770), (770, 1154), (1154, 1218),
            (1218, 1260), (1260, 4936))


@fuzz(300)
@given(st.data())
def test_mutated_td_quotes_are_denied(data: st.DataObject) -> None:
    quote = data.draw(st.sampled_from(_td_quotes()))
    focus = data.draw(st.one_of(st.none(), st.sampled_from(_REGIONS)))
    targets.check_td_quote(data.draw(mutated(quote, focus=focus)))


_COLLATERAL_KEYS = st.sampled_from(collateral.COLLATERAL_KEYS)


@fuzz(200)
@given(_COLLATERAL_KEYS, st.one_of(json_values, st.text(max_size=20)))
def test_collateral_fields_replaced(key: str, value: object) -> None:
    _, text, _ = targets.tdx_real()
    doc = json.loads(text)
    doc[key] = value
    targets.tdx(b"\x01" + json.dumps(doc).encode())


@fuzz(200)
@given(st.sampled_from(("tcb_info", "qe_identity")), st.sampled_from(("issueDate", "nextUpdate", "tcbLevels",
                                                                       "fmspc", "version", "id")), json_values)
def test_signed_collateral_documents_edited(key: str, field: str, value: object) -> None:
    _, text, _ = targets.tdx_real()
    doc = json.loads(text)
    inner = json.loads(doc[key])
    body = inner.get("tcbInfo") or inner.get("enclaveIdentity") or inner
    body[field] = value
    doc[key] = json.dumps(inner)
    targets.tdx(b"\x01" + json.dumps(doc).encode())


@pytest.mark.parametrize("edit", ["date-not-a-string", "deep-signed-json", "deep-document"])
def test_hostile_collateral_is_denied(edit: str) -> None:
    """Regressions: AttributeError (a date that is a number) and RecursionError (nested JSON) escaped."""
    _, text, _ = targets.tdx_real()
    doc = json.loads(text)
    if edit == "date-not-a-string":
        inner = json.loads(doc["tcb_info"])
        (inner.get("tcbInfo") or inner)["issueDate"] = 5
        doc["tcb_info"] = json.dumps(inner)
        bad = json.dumps(doc)
    elif edit == "deep-signed-json":
        doc["qe_identity"] = "[" * 100_000 + "]" * 100_000
        bad = json.dumps(doc)
    else:
        bad = "[" * 100_000 + "]" * 100_000
    with pytest.raises(Denied, match=r"collateral is (malformed|not JSON)"):
        collateral.validity_window(bad)
    targets.tdx(b"\x01" + bad.encode())


def _cert_with_version(pem: bytes, version: int, index: int = 0) -> bytes:
    """``pem`` with its ``index``-th certificate's version field set to ``version`` (same length)."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificates(pem)[index]
    der = cert.public_bytes(Encoding.DER)
    v3 = b"\xa0\x03\x02\x01\x02"
    bad = der.replace(v3, b"\xa0\x03\x02\x01" + bytes([version]), 1)
    body = base64.b64encode(bad)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    new = b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"
    old = cert.public_bytes(Encoding.PEM)
    assert len(new) == len(old)
    assert old in pem
    return pem.replace(old, new)


def test_td_quote_with_a_certificate_of_invalid_version_is_denied() -> None:
    """Regression (atheris): cryptography's InvalidVersion escaped require_canonical and appraise."""
    from shim.attest.tdx import verify

    quote, text, intel = targets.tdx_real()
    start = quote.index(b"-----BEGIN CERTIFICATE-----")
    bad = quote[:start] + _cert_with_version(quote[start:].rstrip(b"\x00"), 22, index=1)
    bad += bytes(len(quote) - len(bad))
    assert len(bad) == len(quote)
    assert bad != quote
    with pytest.raises(Denied, match="not in canonical form"):
        verify.appraise(bad, text, targets.TDX_NOW, intel)
    targets.check_td_quote(bad)


def test_collateral_with_a_certificate_of_invalid_version_is_denied() -> None:
    _, text, _ = targets.tdx_real()
    doc = json.loads(text)
    doc["tcb_info_issuer_chain"] = _cert_with_version(doc["tcb_info_issuer_chain"].encode(), 22).decode()
    with pytest.raises(Denied, match="collateral is malformed"):
        collateral.validity_window(json.dumps(doc))


def test_token_certificate_of_invalid_version_is_denied() -> None:
    """The same InvalidVersion in Intel Trust Authority's token chain (x5c) is a denial too."""
    import base64
    from datetime import UTC, datetime

    from cryptography import x509

    from shim.attest.tdx import trust_authority

    der = (targets.VECTORS / "tdx" / "intel_sgx_root_ca.der").read_bytes()
    root = x509.load_der_x509_certificate(der)
    bad = der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x16", 1)
    with pytest.raises(Denied, match="does not parse"):
        trust_authority.verify_chain([base64.b64encode(bad).decode()], root, datetime(2026, 1, 1, tzinfo=UTC))
