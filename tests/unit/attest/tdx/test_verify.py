"""Quote appraisal over data: the real vectors (Intel root) and quotes signed by the TEST chain."""

from __future__ import annotations

import dataclasses
import struct
import time
from pathlib import Path

import pytest

from shim.attest.tdx import settings, verify
from shim.attest.tdx.collateral import validity_window
from shim.common.errors import Denied
from tests.tdx_provider import chain

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"
QUOTE = (VECTORS / "tdx_quote").read_bytes()
COLLATERAL = (VECTORS / "tdx_quote_collateral.json").read_text()
OUTDATED = (VECTORS / "tdx_quote_outdated").read_bytes()
OUTDATED_COLLATERAL = (VECTORS / "tdx_quote_outdated_collateral.json").read_text()
START, END = 1750329147, 1752919234
INTEL = settings.parse({})


@pytest.mark.parametrize("now", [START, (START + END) // 2, END])
def test_real_quote_is_up_to_date_inside_its_window(now: int) -> None:
    a = verify.verify_quote(QUOTE, COLLATERAL, now, None, INTEL)
    assert (a.status, a.advisory_ids, a.root, a.root_is_test) == ("UpToDate", (), "Intel SGX Root CA", False)
    assert a.quote.fmspc == "B0C06F000000"
    assert a.quote.version == 4
    assert a.measurements.mrtd.hex().startswith("91eb2b44d141d4ec")


def test_window_is_the_documented_one() -> None:
    w = validity_window(COLLATERAL)
    assert (w.start, w.end) == (START, END)


@pytest.mark.parametrize(("now", "match"), [(END + 1, "expired: PCK CRL nextUpdate"),
                                            (START - 1, "not valid yet: QE Identity issueDate"),
                                            (END + 400 * 86400, "expired")])
def test_real_quote_fails_outside_its_window(now: int, match: str) -> None:
    with pytest.raises(Denied, match=match) as e:
        verify.verify_quote(QUOTE, COLLATERAL, now, None, INTEL)
    assert e.value.hint
    assert "refresh" in e.value.hint


def test_outdated_quote_is_refused() -> None:
    with pytest.raises(Denied, match="No matching TCB level found"):
        verify.verify_quote(OUTDATED, OUTDATED_COLLATERAL, 1771412331 + 60, None, INTEL)


def test_real_quote_with_the_other_platforms_collateral_is_refused() -> None:
    with pytest.raises(Denied):
        verify.verify_quote(QUOTE, OUTDATED_COLLATERAL, 1771412331 + 60, None, INTEL)


def test_every_flipped_byte_is_refused() -> None:
    """Header, TD body, signature data, and the zero padding after it: no single-bit change passes."""
    now = START + 60
    (sig_len,) = struct.unpack_from("<I", QUOTE, 632)
    assert 636 + sig_len < len(QUOTE)
    accepted = []
    for i in range(len(QUOTE)):
        flipped = bytearray(QUOTE)
        flipped[i] ^= 0x01
        try:
            verify.appraise(bytes(flipped), COLLATERAL, now, INTEL)
        except Denied:
            continue
        accepted.append(i)
    assert accepted == []


@pytest.mark.parametrize("offset", [0, 4, 12, 48 + 136, 48 + 520, 700, 2000, 4900])
def test_other_flips_are_refused_too(offset: int) -> None:
    flipped = bytearray(QUOTE)
    flipped[offset] ^= 0x80
    with pytest.raises(Denied):
        verify.appraise(bytes(flipped), COLLATERAL, START + 60, INTEL)


def test_reference_values_are_compared_and_named() -> None:
    a = verify.appraise(QUOTE, COLLATERAL, START + 60, INTEL)
    good = {"mrtd": a.measurements.mrtd, "rtmr0": a.measurements.rtmr[0], "mrowner": bytes(48)}
    ok = verify.verify_quote(QUOTE, COLLATERAL, START + 60, None, dataclasses.replace(INTEL, reference=good))
    assert ok.matched == ("mrtd", "rtmr0", "mrowner")
    bad = {**good, "rtmr2": b"\x00" * 48}
    with pytest.raises(verify.MeasurementMismatch) as e:
        verify.verify_quote(QUOTE, COLLATERAL, START + 60, None, dataclasses.replace(INTEL, reference=bad))
    assert [m.field for m in e.value.mismatches] == ["rtmr2"]
    assert "RTMR2 expected " + "00" * 48 + " → actual " + a.measurements.rtmr[2].hex() in e.value.message


def test_report_data_must_be_what_was_asked() -> None:
    a = verify.appraise(QUOTE, COLLATERAL, START + 60, INTEL)
    verify.check_report_data(a.measurements, a.measurements.report_data)
    with pytest.raises(Denied, match="REPORTDATA does not carry the nonce: expected 0000"):
        verify.verify_quote(QUOTE, COLLATERAL, START + 60, bytes(64), INTEL)


def test_status_outside_the_accepted_set_is_refused_even_when_genuine() -> None:
    only_sw = dataclasses.replace(INTEL, accept_tcb_status=frozenset({"SWHardeningNeeded"}))
    with pytest.raises(Denied, match="TCB status UpToDate is not accepted"):
        verify.verify_quote(QUOTE, COLLATERAL, START + 60, None, only_sw)


def test_not_a_quote() -> None:
    with pytest.raises(Denied, match=r"malformed|canonical"):
        verify.appraise(b"\x04\x00" + bytes(100), COLLATERAL, START + 60, INTEL)


# ---------------------------------------------------------------- the TEST chain


@pytest.fixture(scope="module")
def pki() -> chain.TestPki:
    return chain.make_pki(int(time.time()))


def _settings(pki: chain.TestPki) -> settings.TdxSettings:
    root = settings.RootCa(der=pki.root_der, name="TEST root", is_test=True, sha256="")
    return dataclasses.replace(INTEL, anchor=root)


def test_test_chain_quote_verifies_with_its_root_only(pki: chain.TestPki) -> None:
    now = int(time.time())
    col = chain.make_collateral(pki, now - 86400, now + 86400)
    rd = bytes(range(64))
    q = chain.make_quote(pki, rd)
    a = verify.verify_quote(q, col, now, rd, _settings(pki))
    assert a.status == "UpToDate"
    assert a.root_is_test
    with pytest.raises(Denied, match=r"pinned root|Intel SGX Root CA"):
        verify.verify_quote(q, col, now, rd, INTEL)


def test_out_of_date_is_refused_unless_accepted(pki: chain.TestPki) -> None:
    now = int(time.time())
    col = chain.make_collateral(pki, now - 86400, now + 86400)
    q = chain.make_quote(pki, bytes(64), chain.TdBody(tee_tcb_svn=chain.TEE_TCB_SVN_OUTOFDATE))
    s = _settings(pki)
    with pytest.raises(Denied, match="TCB status OutOfDate is not accepted"):
        verify.verify_quote(q, col, now, None, s)
    relaxed = dataclasses.replace(s, accept_tcb_status=frozenset({"UpToDate", "OutOfDate"}))
    assert verify.verify_quote(q, col, now, None, relaxed).status == "OutOfDate"


def test_debug_td_is_refused(pki: chain.TestPki) -> None:
    now = int(time.time())
    col = chain.make_collateral(pki, now - 86400, now + 86400)
    q = chain.make_quote(pki, bytes(64), chain.TdBody(td_attributes=chain.TD_ATTR_DEBUG))
    with pytest.raises(Denied, match="DEBUG attribute"):
        verify.verify_quote(q, col, now, None, _settings(pki))


def test_collateral_signed_by_another_root_is_refused(pki: chain.TestPki) -> None:
    now = int(time.time())
    other = chain.make_pki(now)
    col = chain.make_collateral(other, now - 86400, now + 86400)
    with pytest.raises(Denied, match="verification"):
        verify.verify_quote(chain.make_quote(pki, bytes(64)), col, now, None, _settings(pki))


def test_tampered_tcb_info_is_refused(pki: chain.TestPki) -> None:
    now = int(time.time())
    col = chain.make_collateral(pki, now - 86400, now + 86400).replace('\\"tcbEvaluationDataNumber\\":17',
                                                                       '\\"tcbEvaluationDataNumber\\":18', 1)
    with pytest.raises(Denied, match=r"tcb_info|Signature"):
        verify.verify_quote(chain.make_quote(pki, bytes(64)), col, now, None, _settings(pki))
