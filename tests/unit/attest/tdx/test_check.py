"""The admission check end to end with an in-memory provider signing with the TEST chain.

The same cases through the kernel-shaped FUSE provider are in test_tdx_provider_fuse.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shim.attest.tdx import check
from shim.attest.tdx import settings as tdx_settings
from shim.common.errors import ConfigError, Denied, Unavailable
from tests.tdx_provider import DAY, TdxEnv, chain, make_env

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"


class MemProvider:
    """Signs a quote over whatever REPORTDATA it is asked for (or a fixed one, to play a replaying provider)."""

    def __init__(self, env: TdxEnv, body: chain.TdBody | None = None, report_data: bytes | None = None) -> None:
        self.env, self.body, self.report_data = env, body or env.body, report_data
        self.calls = 0

    def get_quote(self, report_data: bytes) -> bytes:
        self.calls += 1
        return chain.make_quote(self.env.pki, self.report_data or report_data, self.body)


@pytest.fixture
def env(tmp_path: Path) -> TdxEnv:
    return make_env(tmp_path / "tdx")


RD = check.report_data_for(b"n" * 32, "sha256:" + "ab" * 32)


def test_admitted(env: TdxEnv) -> None:
    r = check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=MemProvider(env))
    assert r.name == "tdx"
    assert "TEST root" in r.summary
    assert "MRTD, RTMR0, RTMR1, RTMR2, RTMR3 match" in r.summary
    assert r.details["status"] == "UpToDate"
    assert r.details["measurements"]["report_data"] == RD.hex()


def test_report_data_binds_nonce_and_subject() -> None:
    a = check.report_data_for(b"n" * 32, "sha256:aa")
    assert len(a) == 64
    assert a != check.report_data_for(b"n" * 32, "sha256:ab")
    assert a != check.report_data_for(b"m" * 32, "sha256:aa")
    with pytest.raises(ValueError, match="16"):
        check.report_data_for(b"short", "x")


@pytest.mark.parametrize("field", ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"])
def test_a_differing_measurement_is_refused_by_name(env: TdxEnv, field: str) -> None:
    body = chain.TdBody()
    if field == "mrtd":
        body.mrtd = b"\x99" * 48
    else:
        rt = list(body.rtmr)
        rt[int(field[4:])] = b"\x99" * 48
        body.rtmr = (rt[0], rt[1], rt[2], rt[3])
    with pytest.raises(Denied) as e:
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=MemProvider(env, body))
    label = field.upper()
    assert e.value.check == "tdx"
    assert f"{label} expected " in e.value.message
    assert "→ actual " + "99" * 48 in e.value.message


def test_rtmr_mismatch_is_explained_from_the_event_log(tmp_path: Path) -> None:
    env = make_env(tmp_path / "tdx")
    ccel = tmp_path / "CCEL"
    shutil.copy(VECTORS / "ccel_data.dat", ccel)
    cos = (VECTORS / "cos-113-tdx-quote.dat").read_bytes()
    from shim.attest.tdx.verify import parse

    rt = parse(cos).measurements.rtmr
    body = chain.TdBody(rtmr=rt)  # the TD measured what this log says; the reference says otherwise
    with pytest.raises(Denied) as e:
        check.run_tdx_check(tdx_settings.parse(env.section(ccel=str(ccel))), RD, now=env.now,
                            provider=MemProvider(env, body))
    msg = e.value.message
    assert "RTMR2 expected" in msg
    assert "events for RTMR2:" in msg
    assert "EV_IPL" in msg


def test_report_data_not_carrying_the_nonce_is_refused(env: TdxEnv) -> None:
    replay = MemProvider(env, report_data=bytes(64))
    with pytest.raises(Denied, match="REPORTDATA does not carry the nonce"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=replay)


def test_expired_collateral_is_refused(env: TdxEnv) -> None:
    env.write_collateral(env.now - 40 * DAY, env.now - 10 * DAY)
    with pytest.raises(Denied, match="collateral expired") as e:
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=MemProvider(env))
    assert e.value.hint
    assert "bacon tdx collateral refresh" in e.value.hint


def test_missing_collateral_is_unavailable(env: TdxEnv) -> None:
    env.collateral.unlink()
    with pytest.raises(Unavailable, match="no TDX collateral"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=MemProvider(env))


def test_missing_provider_is_unavailable(env: TdxEnv) -> None:
    with pytest.raises(Unavailable, match="not a TDX guest"):
        check.run_tdx_check(tdx_settings.parse(env.section(configfs_root=str(env.root / "absent"))), RD, now=env.now)


def test_failing_provider_is_unavailable(env: TdxEnv) -> None:
    class Broken:
        def get_quote(self, report_data: bytes) -> bytes:
            raise Unavailable("reading the quote failed", hint="QGS")

    with pytest.raises(Unavailable):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=Broken())


def test_garbage_from_the_provider_is_denied(env: TdxEnv) -> None:
    class Garbage:
        def get_quote(self, report_data: bytes) -> bytes:
            return b"\x04\x00\x02\x00\x81" + bytes(700)

    with pytest.raises(Denied):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=Garbage())


def test_the_real_intel_root_refuses_test_quotes(env: TdxEnv) -> None:
    sec = env.section()
    del sec["root_ca"]
    with pytest.raises(Denied, match=r"pinned root|Intel SGX Root CA"):
        check.run_tdx_check(tdx_settings.parse(sec), RD, now=env.now, provider=MemProvider(env))


def test_no_reference_mrtd_is_a_configuration_error(env: TdxEnv) -> None:
    sec = env.section()
    sec["reference"] = {}
    with pytest.raises(ConfigError, match="no mrtd"):
        check.run_tdx_check(tdx_settings.parse(sec), RD, now=env.now, provider=MemProvider(env))


def test_debug_td_is_refused(env: TdxEnv) -> None:
    body = chain.TdBody(td_attributes=chain.TD_ATTR_DEBUG)
    with pytest.raises(Denied, match="DEBUG"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now, provider=MemProvider(env, body))
