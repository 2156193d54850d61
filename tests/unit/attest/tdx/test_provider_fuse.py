"""The admission check and the CLI against the configfs-tsm-shaped FUSE provider (a real mount, the real
OsFs protocol: mkdir, flock, generation, inblob committed on close, outblob generated on read, rmdir).

Quotes are signed with the TEST chain; the configuration names its root. Needs root, /dev/fuse,
libfuse3 and mfusepy: skipped otherwise (a failure under BACON_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.attest.tdx import check
from shim.attest.tdx import operations as cli
from shim.attest.tdx import settings as tdx_settings
from shim.attest.tdx.verify import parse
from shim.common.errors import ConfigError, Denied, Unavailable
from tests.tdx_provider import DAY, FuseProvider, TdxEnv, fuse_unavailable_reason, make_env

pytestmark = pytest.mark.integration
VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"
RD = check.report_data_for(os.urandom(32), "sha256:" + "cd" * 32)


@pytest.fixture
def env(tmp_path: Path) -> TdxEnv:
    return make_env(tmp_path / "tdx")


@pytest.fixture
def tsm(env: TdxEnv) -> Iterator[FuseProvider]:
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(reason)
    p = FuseProvider(env)
    yield p
    p.stop()


def entries(env: TdxEnv) -> list[str]:
    return os.listdir(env.configfs)


def test_admitted_when_quote_verifies_and_measurements_match(env: TdxEnv, tsm: FuseProvider) -> None:
    r = check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)
    assert r.details["status"] == "UpToDate"
    assert r.details["root_is_test"]
    assert r.details["measurements"]["report_data"] == RD.hex()
    assert entries(env) == []  # the report entry was removed


def test_refused_when_mrtd_differs(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(body={"mrtd": "77" * 48})
    with pytest.raises(Denied, match="MRTD expected " + env.body.mrtd.hex() + " → actual " + "77" * 48):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_refused_when_an_rtmr_differs(env: TdxEnv, tsm: FuseProvider, i: int) -> None:
    tsm.set(body={f"rtmr{i}": "55" * 48})
    with pytest.raises(Denied, match=f"RTMR{i} expected .* → actual {'55' * 48}"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


def test_refused_when_reportdata_does_not_carry_the_nonce(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(report_data="ee" * 64)
    with pytest.raises(Denied, match="REPORTDATA does not carry the nonce"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


def test_refused_when_the_provider_is_missing(env: TdxEnv, tsm: FuseProvider) -> None:
    with pytest.raises(Unavailable, match="no configfs-tsm report directory"):
        check.run_tdx_check(tdx_settings.parse(env.section(configfs_root=str(env.configfs / "missing"))), RD,
                            now=env.now)


def test_refused_when_the_provider_fails(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(fail_outblob=True)
    with pytest.raises(Unavailable, match="outblob failed") as e:
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)
    assert e.value.hint
    assert "Quote Generation Service" in e.value.hint
    assert entries(env) == []


def test_refused_when_the_provider_is_not_tdx(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(provider="sev_guest")
    with pytest.raises(Unavailable, match="sev_guest"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


def test_refused_when_the_collateral_has_expired(env: TdxEnv, tsm: FuseProvider) -> None:
    env.write_collateral(env.now - 60 * DAY, env.now - 30 * DAY)
    with pytest.raises(Denied, match="collateral expired"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


def test_busy_inblob_is_retried(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(ebusy=2)
    assert check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now).name == "tdx"


def test_an_interleaved_generation_is_refused(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(interleave=True)
    with pytest.raises(Unavailable, match="another writer interleaved"):
        check.run_tdx_check(tdx_settings.parse(env.section()), RD, now=env.now)


def test_concurrent_callers_get_their_own_quotes(env: TdxEnv, tsm: FuseProvider) -> None:
    errors: list[str] = []

    def run(n: int) -> None:
        rd = bytes([n]) * 64
        for _ in range(4):
            try:
                check.run_tdx_check(tdx_settings.parse(env.section()), rd, now=env.now)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(f"{n}: {e}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert entries(env) == []


def test_provider_serving_the_real_vector_quote(env: TdxEnv, tsm: FuseProvider) -> None:
    """A configfs provider returning Intel's real quote: genuine, but not over our nonce."""
    tsm.set(fixed_quote=str(VECTORS / "tdx_quote"))
    sec = env.section(collateral=str(VECTORS / "tdx_quote_collateral.json"))
    del sec["root_ca"]
    with pytest.raises(Denied, match="REPORTDATA does not carry the nonce"):
        check.run_tdx_check(tdx_settings.parse(sec), RD, now=1750329147 + 60)


def test_cli_quote_and_verify_roundtrip(env: TdxEnv, tsm: FuseProvider, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.bin"
    assert cli.cmd_quote("c0ffee", str(out), tdx_settings.parse(env.section())) == 0
    assert parse(out.read_bytes()).measurements.report_data == bytes.fromhex("c0ffee") + bytes(61)
    capsys.readouterr()
    assert cli.cmd_verify(str(out), str(env.collateral), env.now, True, tdx_settings.parse(env.section())) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "verified"


def test_status_shows_guest_provider_and_rtmrs(env: TdxEnv, tsm: FuseProvider) -> None:
    tsm.set(body={"rtmr1": "33" * 48})
    doc = cli.status(tdx_settings.parse(env.section()))
    json.dumps(doc)
    assert doc["guest"]
    assert doc["provider"] == "tdx_guest"
    m = doc["measurements"]
    assert m["rtmr0"]["match"] is True
    assert m["mrtd"]["match"] is True
    assert m["rtmr1"] == {"current": "33" * 48, "reference": env.body.rtmr[1].hex(), "match": False}


@pytest.mark.parametrize("left_out", ["rtmr0", "rtmr1", "rtmr2"])
def test_firmware_config_kernel_and_cmdline_references_are_required_by_default(
        env: TdxEnv, tsm: FuseProvider, left_out: str) -> None:
    """Before, only MRTD was required: a TD that booted another kernel (RTMR1) or command line (RTMR2) was
    admitted when [tdx.reference] did not list them, and nothing said so."""
    sec = env.section()
    del sec["reference"][left_out]
    tsm.set(body={left_out: "77" * 48})  # it booted something else
    with pytest.raises(ConfigError, match=f"has no {left_out}") as e:
        check.run_tdx_check(tdx_settings.parse(sec), RD, now=env.now)
    assert e.value.exit_code == 78
    assert e.value.hint is not None
    assert "require_reference" in e.value.hint


def test_an_explicit_opt_out_admits_and_says_what_was_not_compared(env: TdxEnv, tsm: FuseProvider) -> None:
    sec = env.section(require_reference=["mrtd", "rtmr0"])
    for name in ("rtmr1", "rtmr2", "rtmr3"):
        del sec["reference"][name]
    r = check.run_tdx_check(tdx_settings.parse(sec), RD, now=env.now)
    assert "not compared: RTMR1 (kernel and initrd), RTMR2 (kernel command line), RTMR3" in r.summary
    assert "require_reference leaves out rtmr1, rtmr2" in r.summary
    assert r.details["not_compared"] == ["rtmr1", "rtmr2", "rtmr3"]
    assert r.details["opted_out"] == ["rtmr1", "rtmr2"]
    s = cli.status(tdx_settings.parse(sec))
    assert s["not_compared"] == ["rtmr1", "rtmr2", "rtmr3"]
    assert s["missing_reference"] == []


def test_require_reference_cannot_drop_mrtd_or_name_unknown_fields(env: TdxEnv) -> None:
    for bad in (["rtmr0"], ["mrtd", "rtmr9"], "mrtd", []):
        with pytest.raises(ConfigError, match="require_reference"):
            check.run_tdx_check(tdx_settings.parse(env.section(require_reference=bad)), RD, now=env.now)


@pytest.mark.parametrize("command", ["admission", "bacon quote tdx", "bacon status"])
def test_a_quote_provider_that_stops_answering_is_waited_for_only_until_the_deadline(
        env: TdxEnv, tsm: FuseProvider, command: str) -> None:
    """Reading outblob blocks until the Quote Generation Service answers; before, only nothing bounded it."""
    import time

    tsm.set(stall_outblob=6)
    sec = env.section(timeout=1)
    started = time.monotonic()
    if command == "admission":
        with pytest.raises(Unavailable, match="did not answer within 1s"):
            check.run_tdx_check(tdx_settings.parse(sec), RD, now=env.now)
    elif command == "bacon quote tdx":
        with pytest.raises(Unavailable, match="did not answer within 1s"):
            cli.cmd_quote("00" * 32, None, tdx_settings.parse(sec))
    else:
        s = cli.status(tdx_settings.parse(sec))
        assert "did not answer within 1s" in str(s["error"])
    assert time.monotonic() - started < 4
    tsm.set()  # the abandoned reader goes on: let it finish before the file system is unmounted
    for t in threading.enumerate():
        if t.name == "tdx":
            t.join(30)
    subprocess.run(["umount", "-l", str(env.configfs)], check=False, capture_output=True)  # nothing left behind
