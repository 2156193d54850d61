"""Levels that require host attestation, end to end through the `nerdctl` wrapper.

- ``Mid`` requires the TPM: a real swtpm, the baseline recorded with `bacon baseline record`, PCR 7
  extended with tpm2-tools, the swtpm stopped.
- ``High`` requires TDX here (``[levels.High] require = ["signature", "tdx"]``, to test it alone): the
  configfs-tsm-shaped FUSE provider signing quotes with the tests' own chain (no TDX hardware here).
"""

from __future__ import annotations

import json
import os
import re
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
        imported = [e["modules"] for e in served.events() if e["event"] == "imported while deciding"]
        assert imported == [], imported  # a Mid decision (a quote) imports nothing the service had not
        tpm.stop()
        r = nerdctl(gate_host, "run", "--rm", mid.ref, timeout=60)
        assert_denied(r, mid.ref, "tpm", mid.digest)
        assert "TPM" in r.first_line
        assert served.requests() == 3  # decided by the service, not by the wrapper alone
    finally:
        served.stop()


UNPINNED = "EK not pinned; re-record the baseline to pin it"


def _record_on(host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    """`bacon baseline record` on ``tpm`` through a configuration of its own (same state directory), while
    the host's configuration keeps naming its TPM."""
    other = host.root / "etc" / "record-on.toml"
    other.write_text(re.sub(r'(?m)^tcti = ".*"$', f'tcti = "{tpm.tcti}"', host.config.read_text()))
    other.chmod(0o644)
    r = subprocess.run([*host.bacon, "baseline", "record"], env=host.env(BACON_CONFIG=str(other)),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _tpm_check(host: Host) -> dict[str, object]:
    line = json.loads(host.audit_log.read_text().splitlines()[-1])
    [tpm_check] = [c for c in line["checks"] if c["check"] == "tpm"]
    return dict(tpm_check)


@pytest.mark.swtpm
def test_mid_image_on_a_tpm_whose_ek_is_not_the_pinned_one_is_denied_wrapper_and_served(
        gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm, tmp_path: Path) -> None:
    """The baseline pins the EK at `bacon baseline record`; a TPM presenting another EK (here another swtpm
    with the same boot PCRs) is denied at each admission, by the wrapper alone and by a `bacon serve`
    worker (which pre-loads tpm2-pytss, never the pin: it reads the baseline and compares per request)."""
    from tests.integration.test_service import Served

    other = swtpm_h.start(tmp_path, "swtpm-other")
    served = Served(gate_host)
    try:
        trusted_config(gate_host, signed.trusted, level="Mid",
                       extra=f'[service]\nsocket = "{served.socket}"\n[tpm]\ntcti = "{tpm.tcti}"\n'
                             'pcrs = [0, 7]\neventlog = ""\ntimeout = 10\n')
        mid = signed["mid"]
        assert bacon(gate_host, "baseline", "record").returncode == 0
        r = nerdctl(gate_host, "run", "--rm", mid.ref)
        assert r.rc == 0, r.stderr
        assert _tpm_check(gate_host)["ek_pinned"] is True

        _record_on(gate_host, signed, other)  # the baseline now pins the other TPM's EK
        r = nerdctl(gate_host, "run", "--rm", mid.ref)
        assert_denied(r, mid.ref, "tpm", mid.digest)
        assert "presents endorsement key" in r.first_line
        assert "bacon baseline record" in r.stderr
        denied = json.loads(gate_host.audit_log.read_text().splitlines()[-1])
        assert denied["verdict"] == "denied"
        assert "presents endorsement key" in json.dumps(denied)

        served.start()
        try:
            r = nerdctl(gate_host, "run", "--rm", mid.ref)
            assert_denied(r, mid.ref, "tpm", mid.digest)
            assert "presents endorsement key" in r.first_line
            assert bacon(gate_host, "baseline", "record").returncode == 0  # the hint: re-record on this TPM
            r = nerdctl(gate_host, "run", "--rm", mid.ref)
            assert r.rc == 0, r.stderr
            _record_on(gate_host, signed, other)  # the next worker reads the pin again
            r = nerdctl(gate_host, "run", "--rm", mid.ref)
            assert_denied(r, mid.ref, "tpm", mid.digest)
            assert served.requests() == 3
        finally:
            served.stop()
    finally:
        other.stop()


@pytest.mark.swtpm
def test_mid_image_under_a_baseline_recorded_before_the_ek_pin(gate_host: Host, signed: Signed,
                                                               tpm: swtpm_h.Swtpm) -> None:
    """An older baseline (no "ek") keeps admitting, and says so in the audit, `bacon status` and `bacon
    doctor`; `[tpm] unpinned_ek = "deny"` refuses it; a malformed "ek" is never taken for an older baseline."""
    section = f'[tpm]\ntcti = "{tpm.tcti}"\npcrs = [0, 7]\neventlog = ""\ntimeout = 10\n'
    trusted_config(gate_host, signed.trusted, level="Mid", extra=section)
    mid = signed["mid"]
    assert bacon(gate_host, "baseline", "record").returncode == 0
    path = gate_host.state_dir / "tpm-baseline.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "ek"}))

    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert r.rc == 0, r.stderr
    tpm_check = _tpm_check(gate_host)
    assert tpm_check["ek"] == UNPINNED
    assert tpm_check["ek_pinned"] is False
    st = bacon(gate_host, "status")
    assert st.returncode == 0, st.stdout + st.stderr  # a warning, not a missing requirement
    assert UNPINNED in st.stdout
    assert "warn" in st.stdout
    assert "requirements met" in st.stdout
    doctor = bacon(gate_host, "doctor")
    assert doctor.returncode == 0
    assert UNPINNED in doctor.stdout

    trusted_config(gate_host, signed.trusted, level="Mid", extra=section + 'unpinned_ek = "deny"\n')
    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert UNPINNED in r.first_line
    assert bacon(gate_host, "status").returncode == 1

    path.write_text(json.dumps({**doc, "ek": None}))
    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert "endorsement key is malformed" in r.first_line
    show = bacon(gate_host, "baseline", "show")
    assert show.returncode == 77
    assert "endorsement key is malformed" in show.stderr


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
