"""The default PCR selection follows what this boot measured (the event log), not only PCRs 0-7: a change to
the kernel, initrd or command line (PCRs 8/9 for GRUB, 11/12 for a UKI, 14 for shim's MOK) is then seen.
The event log is a real one (tests/vectors/tpm, systemd-boot on Fedora 37: it measures PCRs 9 and 12); the
TPM is swtpm."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.integration.test_gate import assert_denied, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.swtpm]

LOG = Path(__file__).resolve().parents[1] / "vectors" / "tpm" / "event-sd-boot-fedora37.bin"


def bacon(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=host.env(), capture_output=True, text=True, timeout=120)


def extend(tpm: swtpm_h.Swtpm, pcr: int) -> None:
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti}
    subprocess.run(["tpm2_pcrextend", f"{pcr}:sha256=" + "ab" * 32], env=env, check=True, capture_output=True)


@pytest.mark.parametrize("pcr", [9, 12])
def test_a_later_boot_stage_the_log_shows_is_recorded_and_compared(gate_host: Host, signed: Signed,
                                                                   tpm: swtpm_h.Swtpm, pcr: int) -> None:
    trusted_config(gate_host, signed.trusted, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{LOG}"\n')
    rec = bacon(gate_host, "baseline", "record")
    assert rec.returncode == 0, rec.stderr
    assert "sha256:0,1,2,3,4,5,7,9,12" in rec.stdout, rec.stdout
    mid = signed["mid"]
    assert nerdctl(gate_host, "run", "--rm", mid.ref).rc == 0
    extend(tpm, pcr)  # another kernel, initrd or command line
    r = nerdctl(gate_host, "run", "--rm", mid.ref)
    assert_denied(r, mid.ref, "tpm", mid.digest)
    assert f"PCR {pcr} changed" in r.first_line
    status = json.loads(bacon(gate_host, "status", "--json").stdout)
    [item] = [i for i in status["items"] if i["key"] == "tpm"]
    assert pcr in item["details"]["coverage"]["covered"]
    assert item["details"]["coverage"]["uncovered"] == []


def test_the_configuration_narrows_it_and_status_says_what_is_left_out(gate_host: Host, signed: Signed,
                                                                       tpm: swtpm_h.Swtpm) -> None:
    trusted_config(gate_host, signed.trusted, level="Mid",
                   extra=f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{LOG}"\npcrs = [0, 1, 2, 3, 4, 5, 7]\n')
    rec = bacon(gate_host, "baseline", "record")
    assert rec.returncode == 0, rec.stderr
    extend(tpm, 9)
    mid = signed["mid"]
    assert nerdctl(gate_host, "run", "--rm", mid.ref).rc == 0  # narrowed on purpose: 9 is not compared
    r = bacon(gate_host, "status")
    assert "UNCOVERED PCR 9  files GRUB loaded (kernel, initrd)" in r.stdout, r.stdout
    assert "UNCOVERED PCR 12" in r.stdout
    assert "trust on first use" in r.stdout
