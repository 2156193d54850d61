"""Measured launches in a TD: RTMR3 through the kernel's measurement files, and TD quotes in the evidence.

No TDX hardware here: the measurement files are a TEST stand-in (tests/tdx_provider/fuse_measurements.py, a
FUSE file system where a 48-byte write extends the register, as the kernel's does), and the TD quotes come
from the configfs-tsm stand-in (tests/tdx_provider/fuse_tsm.py), signed by the tests' own root, carrying
the RTMRs the measurement stand-in holds. The TPM is a real swtpm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shim.attest import cel, launchlog, launchreplay
from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.integration.test_evidence import NONCE, bacon, booted_config
from tests.integration.test_gate import assert_denied, nerdctl
from tests.tdx_provider import FuseMeasurements, FuseProvider, TdxEnv, toml_table

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


@pytest.fixture
def measurements(tdx: tuple[TdxEnv, FuseProvider]) -> Iterator[FuseMeasurements]:
    env, provider = tdx
    m = FuseMeasurements(env, provider)
    yield m
    m.stop()


def td_section(env: TdxEnv) -> str:
    return toml_table("tdx", env.section())


def test_launches_extend_rtmr3_and_the_log_replays_to_it(gate_host: Host, signed: Signed,
                                                         tdx: tuple[TdxEnv, FuseProvider],
                                                         measurements: FuseMeasurements) -> None:
    env, _provider = tdx
    trusted_config(gate_host, signed.trusted, extra=f'[measure]\ninto = ["rtmr"]\nmeasurements = "{measurements.dir}"\n'
                                                    + td_section(env))
    start = measurements.rtmr(3)
    for _ in range(2):
        ran = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
        assert ran.rc == 0, ran.stderr
    parsed = cel.parse(launchlog.log_path(gate_host.state_dir).read_bytes())
    assert {(r.register_type, r.index) for r in parsed.records} == {(cel.CCMR, 4)}  # RTMR3, as go-eventlog writes
    rep = launchreplay.replay(launchreplay.decode(parsed.records), cel.CCMR, 4, "sha384", start, measurements.rtmr(3))
    assert len(rep.launched) == 2

    out = gate_host.root / "evidence"
    r = bacon(gate_host, "evidence", "--nonce", NONCE, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert {"td-quote.dat", "td-collateral.json", "launch-log.cel"} <= set(json.loads(r.stdout)["files"])
    # verified with the host's [tdx] only for its TEST root (a challenger checks against Intel's, built in)
    r = bacon(gate_host, "evidence", "verify", str(out), "--nonce", NONCE, "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["verdict"] == "verified"
    assert [s["check"] for s in doc["steps"]][-2:] == ["td quote", "RTMR3"]
    assert len(doc["launched"]) == 2

    r = bacon(gate_host, "evidence", "verify", str(out), "--nonce", "ab" * 32)
    assert r.returncode == 77
    assert "REPORTDATA" in r.stderr


def test_a_failed_rtmr_extend_is_a_denial(gate_host: Host, signed: Signed, tdx: tuple[TdxEnv, FuseProvider],
                                          measurements: FuseMeasurements) -> None:
    env, _provider = tdx
    trusted_config(gate_host, signed.trusted, extra=f'[measure]\ninto = ["rtmr"]\nmeasurements = "{measurements.dir}"\n'
                                                    + td_section(env))
    measurements.stop()
    r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
    assert_denied(r, signed["low"].ref, "measure", signed["low"].digest)


@pytest.mark.swtpm
def test_a_td_with_a_tpm_measures_into_both_and_evidence_checks_both(
        gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm, tdx: tuple[TdxEnv, FuseProvider],
        measurements: FuseMeasurements) -> None:
    env, _provider = tdx
    extra = booted_config(gate_host, tpm, into='["tpm", "rtmr"]')
    trusted_config(gate_host, signed.trusted, extra=extra + f'measurements = "{measurements.dir}"\n' + td_section(env))
    for _ in range(2):
        assert nerdctl(gate_host, "run", "--rm", signed["low"].ref).rc == 0
    out = gate_host.root / "evidence"
    assert bacon(gate_host, "evidence", "--nonce", NONCE, "--out", str(out)).returncode == 0
    r = bacon(gate_host, "evidence", "verify", str(out), "--nonce", NONCE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replays to the quoted PCR 14: 2 launches" in r.stdout
    assert "replays to the quoted RTMR3: 2 launches" in r.stdout
