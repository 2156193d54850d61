"""Levels that require host attestation, end to end through the `nerdctl` wrapper.

- ``Mid`` requires the TPM: a real swtpm, the baseline recorded with `bacon baseline record`, PCR 7
  extended with tpm2-tools, the swtpm stopped.
- ``High`` requires TDX here (``[levels.High] require = ["signature", "tdx"]``, to test it alone): the
  configfs-tsm-shaped FUSE provider signing quotes with the tests' own chain (no TDX hardware here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.integration.test_gate import assert_denied, nerdctl
from tests.tdx_provider import FuseProvider, TdxEnv, toml_table

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]



def bacon(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=host.env(), capture_output=True, text=True, timeout=120)


@pytest.mark.swtpm
def test_mid_image_needs_the_measured_boot_baseline(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    trusted_config(gate_host, signed.trusted, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\n')
    mid = signed["mid"]

    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert "bacon baseline record" in r.stderr  # no baseline yet: says how to make one

    rec = bacon(gate_host, "baseline", "record")
    assert rec.returncode == 0, rec.stderr
    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert r.rc == 0, r.stderr
    assert "hello-from-mid" in r.stdout

    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti}
    subprocess.run(["tpm2_pcrextend", "7:sha256=" + "ab" * 32], env=env, check=True, capture_output=True)
    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert "PCR 7 changed" in r.first_line

    rec = bacon(gate_host, "baseline", "record")
    assert rec.returncode == 0, rec.stderr
    assert nerdctl(gate_host, "run", "--rm", mid.ref).rc == 0

    tpm.stop()
    r = nerdctl(gate_host, "run", "--rm", mid.ref, timeout=60)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert "TPM" in r.first_line


def _loaded(pid: int, name: str) -> bool:
    return name in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.swtpm
def test_mid_image_through_bacon_serve_quotes_with_the_library_it_loaded_once(gate_host: Host, signed: Signed,
                                                                              tpm: swtpm_h.Swtpm) -> None:
    """The served path: the service loaded tpm2-pytss before it forked its workers (a decision does not
    pay the import), each Mid decision quotes in a worker through it, and a TPM gone is a denial there."""
    from tests.integration.test_service import Served

    served = Served(gate_host)
    trusted_config(gate_host, signed.trusted, level="Mid",
                   extra=f'[service]\nsocket = "{served.socket}"\n[tpm]\ntcti = "{tpm.tcti}"\ntimeout = 10\n')
    assert bacon(gate_host, "baseline", "record").returncode == 0
    mid = signed["mid"]
    served.start()
    try:
        assert served.proc is not None
        assert _loaded(served.proc.pid, "_libtpm2_pytss"), "bacon serve did not preload tpm2-pytss"
        for _ in range(2):
            r = nerdctl(gate_host, "run", "--rm", mid.ref)
            assert r.rc == 0, r.stderr
            assert "hello-from-mid" in r.stdout
        assert served.requests() == 2
        tpm.stop()
        r = nerdctl(gate_host, "run", "--rm", mid.ref, timeout=60)
        assert_denied(r, mid.ref, "tpm", mid.digest)
        assert "TPM" in r.first_line
        assert served.requests() == 3  # decided by the service, not by the wrapper alone
    finally:
        served.stop()


@pytest.mark.swtpm
def test_low_image_does_not_need_the_tpm(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    trusted_config(gate_host, signed.trusted, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\n')
    tpm.stop()  # a Low image on a Mid host requires only its signature
    assert nerdctl(gate_host, "run", "--rm", signed["low"].ref).rc == 0


def high_host(host: Host, signed: Signed, env: TdxEnv) -> None:
    extra = '[levels.High]\nrequire = ["signature", "tdx"]\n' + toml_table("tdx", env.section())
    trusted_config(host, signed.trusted, level="High", extra=extra)


def test_high_image_admitted_with_a_verified_td_quote(gate_host: Host, signed: Signed,
                                                      tdx: tuple[TdxEnv, FuseProvider]) -> None:
    env, _provider = tdx
    high_host(gate_host, signed, env)
    r = nerdctl(gate_host, "run", "--rm", signed["high"].ref)
    assert r.rc == 0, r.stderr
    assert "hello-from-high" in r.stdout


def test_high_image_refused_when_mrtd_differs(gate_host: Host, signed: Signed,
                                              tdx: tuple[TdxEnv, FuseProvider]) -> None:
    env, provider = tdx
    high_host(gate_host, signed, env)
    provider.set(body={"mrtd": "77" * 48})
    r = nerdctl(gate_host, "run", "--rm", signed["high"].ref)
    assert_denied(r, signed["high"].ref, "tdx", signed["high"].digest)
    assert "MRTD" in r.first_line


def test_high_image_refused_when_the_provider_is_gone(gate_host: Host, signed: Signed,
                                                      tdx: tuple[TdxEnv, FuseProvider]) -> None:
    env, provider = tdx
    high_host(gate_host, signed, env)
    provider.stop()
    r = nerdctl(gate_host, "run", "--rm", signed["high"].ref)
    assert_denied(r, signed["high"].ref, "tdx", signed["high"].digest)
