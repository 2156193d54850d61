"""``bacon tdx verify`` / ``bacon quote tdx`` input handling and output (real vectors, Intel root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shim.attest.tdx import operations as cli
from shim.attest.tdx import settings as tdx_settings
from shim.common.errors import ConfigError, Denied, UsageError

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"
Q, C = str(VECTORS / "tdx_quote"), str(VECTORS / "tdx_quote_collateral.json")
AT = 1750329147 + 3600
MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"


def test_verify_prints_status_and_measurements(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_verify(Q, C, AT, False, tdx_settings.parse({"reference": {"mrtd": MRTD}})) == 0
    out = capsys.readouterr().out
    assert "status       UpToDate" in out
    assert "advisories   none" in out
    assert f"mrtd         {MRTD}  = reference" in out
    assert "rtmr3" in out


def test_verify_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_verify(Q, C, AT, True, tdx_settings.parse({})) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "UpToDate"
    assert doc["verdict"] == "verified"
    assert doc["advisory_ids"] == []
    assert doc["measurements"]["mrtd"] == MRTD
    assert doc["collateral_window"]["not_after"] == 1752919234


def test_verify_outside_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Denied, match="expired"):
        cli.cmd_verify(Q, C, 1752919235, True, tdx_settings.parse({}))
    assert json.loads(capsys.readouterr().out)["verdict"] == "denied"


def test_verify_reference_mismatch_prints_then_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Denied, match="RTMR0 expected 00"):
        cli.cmd_verify(Q, C, AT, False, tdx_settings.parse({"reference": {"mrtd": MRTD, "rtmr0": "00" * 48}}))
    assert "≠ reference" in capsys.readouterr().out


def test_verify_missing_files() -> None:
    with pytest.raises(UsageError, match="cannot read quote"):
        cli.cmd_verify("/nonexistent", C, AT, False, tdx_settings.parse({}))


@pytest.mark.parametrize("bad", ["", "xyz", "00" * 65])
def test_bad_nonce(bad: str) -> None:
    with pytest.raises(UsageError, match="--nonce"):
        cli.parse_nonce(bad)


def test_nonce_is_padded_to_64_bytes() -> None:
    assert cli.parse_nonce("0xAbCd") == b"\xab\xcd" + bytes(62)
    assert cli.parse_nonce("11" * 64) == b"\x11" * 64


def test_status_off_a_tdx_guest(tmp_path: Path) -> None:
    doc = cli.status(tdx_settings.parse({"configfs_root": str(tmp_path / "none")}))
    assert doc["provider"] is None
    assert "not a TDX guest" in doc["error"]
    json.dumps(doc)


def test_status_with_an_unreadable_root() -> None:
    """A bad table never reaches status (the configuration's load refuses it); a test root that cannot be
    read is reported, not raised."""
    with pytest.raises(ConfigError, match="unknown key"):
        tdx_settings.parse({"bogus": True})
    doc = cli.status(tdx_settings.parse_table({"root_ca": "/nonexistent/root.der"}))
    assert "does not exist" in doc["error"]


def test_verify_says_what_was_not_compared_and_what_an_admission_needs(capsys: pytest.CaptureFixture[str]) -> None:
    """A real quote checked against an MRTD alone: the RTMRs were not compared, and an admission would need
    RTMR0-2 (before, nothing said either)."""
    assert cli.cmd_verify(Q, C, AT, False, tdx_settings.parse({"reference": {"mrtd": MRTD}})) == 0
    out = capsys.readouterr().out
    assert "not compared rtmr0, rtmr1, rtmr2, rtmr3 (no reference value)" in out
    assert "an admission needs reference values for rtmr0, rtmr1, rtmr2" in out
    only_mrtd = tdx_settings.parse({"reference": {"mrtd": MRTD}, "require_reference": ["mrtd"]})
    assert cli.cmd_verify(Q, C, AT, True, only_mrtd) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["not_compared"] == ["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
    assert doc["missing_reference"] == []
    assert doc["opted_out"] == ["rtmr0", "rtmr1", "rtmr2"]
