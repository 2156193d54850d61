"""The endorsement key pin on real swtpms (docs/tpm.md, "The endorsement key pin"): the baseline records the
EK the TPM's own tools read; every session is salted only to that EK, so an interposer that presents its
own EK (the only way to play the TPM's side of the session) is denied before the salt is sent, and a TPM
that is not the recorded one cannot vouch for PCR values even where no quote is made (status, --diff)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.attest.tpm import check
from shim.attest.tpm import operations as cli
from shim.attest.tpm.device import open_tpm
from shim.attest.tpm.ek import EkIdentity
from shim.attest.tpm.settings import parse
from shim.common.errors import Denied, IntegrityError, Unavailable
from tests.harness import faults
from tests.harness import swtpm as swtpm_h
from tests.harness.swtpm import Swtpm
from tests.integration.tpm.test_session import (
    CC_CREATE_PRIMARY,
    CC_START_AUTH_SESSION,
    code,
    loaded,
    tapped,
)

pytestmark = [pytest.mark.integration, pytest.mark.swtpm]

PCRS = [0, 7]  # the same on two fresh swtpms: another TPM cannot be told from the recorded one by them
UNPINNED = "EK not pinned; re-record the baseline to pin it"


def section(tcti: str, **kw: Any) -> dict[str, Any]:
    return {"tcti": tcti, "pcrs": PCRS, "eventlog": "", "timeout": 10, **kw}


@pytest.fixture
def other_swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    """A second fresh TPM (another endorsement seed: another EK, another AK; the same PCR values)."""
    if swtpm_h.binary() is None:
        pytest.skip("swtpm is not installed (apt-get install swtpm)")
    tpm = swtpm_h.start(Path(str(tmp_path)), "swtpm-other")
    yield tpm
    tpm.stop()


def record(tpm: Swtpm, state: Path) -> dict[str, Any]:
    assert cli.cmd_baseline_record(parse(section(tpm.tcti)), state) == 0
    doc: dict[str, Any] = json.loads((state / "tpm-baseline.json").read_text())
    return doc


def unpin(state: Path) -> None:
    """Make the baseline one an older BACON wrote: no 'ek' at all."""
    path = state / "tpm-baseline.json"
    doc = json.loads(path.read_text())
    del doc["ek"]
    path.write_text(json.dumps(doc))


def ek_of(tpm: Swtpm) -> EkIdentity:
    """The EK ``tpm`` presents (what BACON's device saw when it started its session there)."""
    with open_tpm(parse(section(tpm.tcti))) as dev:
        dev.read_pcrs("sha256", [0])
        assert dev.ek is not None
        return dev.ek


def test_the_baseline_records_the_ek_the_tpm_tools_read(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    doc = record(spare_swtpm, tmp_path)
    env = {**os.environ, "TPM2TOOLS_TCTI": spare_swtpm.tcti, "TSS2_LOG": "all+NONE"}
    ctx, name = tmp_path / "ek.ctx", tmp_path / "ek.name"
    subprocess.run(["tpm2_createek", "-G", "ecc", "-c", str(ctx)], env=env, check=True, capture_output=True)
    subprocess.run(["tpm2_readpublic", "-c", str(ctx), "-n", str(name)], env=env, check=True, capture_output=True)
    subprocess.run(["tpm2_flushcontext", "-t"], env=env, check=True, capture_output=True)
    assert doc["ek"]["name"] == name.read_bytes().hex()
    assert doc["ek"]["pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_an_admission_on_the_recorded_tpm_passes_with_its_ek(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    doc = record(spare_swtpm, tmp_path)
    result = check.run_tpm_check(parse(section(spare_swtpm.tcti)), tmp_path)
    assert result.details["ek_pinned"] is True
    assert result.details["ek"] == doc["ek"]["name"]
    assert loaded(spare_swtpm) == []


def swap_ek(real: EkIdentity, impostor: EkIdentity) -> Any:
    """Rewrite the TPM's answer to the EK's creation: the impostor's public area and name in place of the
    real ones (no HMAC covers that answer; what an interposer that holds the impostor's private key does)."""
    def tpm2b(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    old_public, old_name = tpm2b(bytes.fromhex(real.public)), tpm2b(bytes.fromhex(real.name))
    new_public, new_name = tpm2b(bytes.fromhex(impostor.public)), tpm2b(bytes.fromhex(impostor.name))

    def tamper(response: bytes) -> bytes:
        if old_public not in response:  # the AK's creation: left alone
            return response
        out = response.replace(old_public, new_public).replace(old_name, new_name)
        params = int.from_bytes(out[14:18], "big") + len(out) - len(response)
        out = out[:14] + params.to_bytes(4, "big") + out[18:]
        return out[:2] + len(out).to_bytes(4, "big") + out[6:]
    return tamper


def test_an_interposer_presenting_another_ek_is_denied_before_the_salt_is_sent(spare_swtpm: Swtpm, other_swtpm: Swtpm,
                                                                               tmp_path: Path) -> None:
    record(spare_swtpm, tmp_path)
    real, impostor = ek_of(spare_swtpm), ek_of(other_swtpm)
    tap = faults.TpmTap(code=CC_CREATE_PRIMARY, tamper=swap_ek(real, impostor))
    with tapped(spare_swtpm, tap) as tcti, pytest.raises(Denied) as e:
        check.run_tpm_check(parse(section(tcti)), tmp_path)
    assert tap.tampered == 1
    assert e.value.check == "tpm"
    assert e.value.exit_code == 77
    assert f"presents endorsement key {impostor.short}, the baseline pinned {real.short}" in e.value.message
    assert e.value.hint is not None
    assert "sudo bacon baseline record" in e.value.hint
    assert CC_START_AUTH_SESSION not in [code(c) for c in tap.commands], "a salt was encrypted to the impostor's EK"
    assert loaded(spare_swtpm) == []  # the EK created for the session is flushed


def test_another_tpm_cannot_vouch_for_pcr_values_read_without_a_quote(spare_swtpm: Swtpm, other_swtpm: Swtpm,
                                                                      tmp_path: Path) -> None:
    """``bacon baseline show --diff`` and ``bacon status`` read PCRs without a quote: a TPM that is not the
    recorded one (here with exactly the recorded values) used to make them say "match"."""
    record(spare_swtpm, tmp_path)
    other = parse(section(other_swtpm.tcti))
    with pytest.raises(IntegrityError, match="presents endorsement key") as e:
        cli.cmd_baseline_show(other, tmp_path, json_out=False, diff=True)
    assert e.value.exit_code == 77
    s = cli.status(other, tmp_path)
    assert s["matches_baseline"] is None
    assert s["ek_mismatch"] is True
    assert "presents endorsement key" in s["error"]
    assert "sudo bacon baseline record" in s["hint"]
    assert all(r["state"] == "unknown" for r in s["pcrs"])
    assert cli.cmd_baseline_show(parse(section(spare_swtpm.tcti)), tmp_path, json_out=False, diff=True) == 0


def test_another_tpm_is_denied_at_admission_by_its_ek(spare_swtpm: Swtpm, other_swtpm: Swtpm, tmp_path: Path) -> None:
    record(spare_swtpm, tmp_path)
    tap = faults.TpmTap()
    with tapped(other_swtpm, tap) as tcti, pytest.raises(Denied, match="presents endorsement key"):
        check.run_tpm_check(parse(section(tcti)), tmp_path)
    assert CC_START_AUTH_SESSION not in [code(c) for c in tap.commands]


def test_a_baseline_recorded_before_the_pin_admits_and_says_so(spare_swtpm: Swtpm, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    record(spare_swtpm, tmp_path)
    unpin(tmp_path)
    settings = parse(section(spare_swtpm.tcti))
    result = check.run_tpm_check(settings, tmp_path)
    assert result.details["ek_pinned"] is False
    assert result.details["ek"] == UNPINNED
    assert UNPINNED in result.summary
    s = cli.status(settings, tmp_path)
    assert s["matches_baseline"] is True
    assert s["baseline"]["ek"] == UNPINNED
    assert "EK           " + UNPINNED in cli.format_status(s)
    capsys.readouterr()
    assert cli.cmd_baseline_show(settings, tmp_path, json_out=False, diff=True) == 0
    assert "EK         " + UNPINNED in capsys.readouterr().out
    strict = parse(section(spare_swtpm.tcti, unpinned_ek="deny"))
    with pytest.raises(Denied, match=UNPINNED) as e:
        check.run_tpm_check(strict, tmp_path)
    assert e.value.exit_code == 77
    capsys.readouterr()
    record(spare_swtpm, tmp_path)  # re-recording pins it, and says so
    pinned_now = f"EK pinned: {ek_of(spare_swtpm).name} (the replaced baseline did not pin one)"
    assert pinned_now in capsys.readouterr().out
    assert check.run_tpm_check(strict, tmp_path).details["ek_pinned"] is True


def test_re_recording_on_another_tpm_says_the_ek_changed(spare_swtpm: Swtpm, other_swtpm: Swtpm, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    record(spare_swtpm, tmp_path)
    assert "EK CHANGED" not in capsys.readouterr().out
    record(spare_swtpm, tmp_path)
    assert "EK CHANGED" not in capsys.readouterr().out
    record(other_swtpm, tmp_path)
    out = capsys.readouterr().out
    assert (f"EK CHANGED: the replaced baseline pinned {ek_of(spare_swtpm).name}, this TPM presents "
            f"{ek_of(other_swtpm).name}") in out
    assert check.run_tpm_check(parse(section(other_swtpm.tcti)), tmp_path).details["ek_pinned"] is True


def test_a_malformed_ek_in_the_baseline_is_a_denial_not_an_unpinned_baseline(spare_swtpm: Swtpm,
                                                                           tmp_path: Path) -> None:
    doc = record(spare_swtpm, tmp_path)
    doc["ek"]["name"] = doc["ek"]["name"][:-2] + ("00" if doc["ek"]["name"][-2:] != "00" else "01")
    (tmp_path / "tpm-baseline.json").write_text(json.dumps(doc))
    with pytest.raises(Denied, match="endorsement key is malformed") as e:
        check.run_tpm_check(parse(section(spare_swtpm.tcti)), tmp_path)
    assert e.value.exit_code == 77
    s = cli.status(parse(section(spare_swtpm.tcti)), tmp_path)
    assert "endorsement key is malformed" in s["baseline"]["error"]


def test_the_pin_costs_no_tpm_command(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    """The EK is created for the salt anyway: comparing its name is local work, no extra command."""
    record(spare_swtpm, tmp_path)
    tap = faults.TpmTap()
    with tapped(spare_swtpm, tap) as tcti:
        check.run_tpm_check(parse(section(tcti)), tmp_path)
    assert [code(c) for c in tap.commands].count(CC_CREATE_PRIMARY) == 2  # the EK and the AK, as before


def test_a_tpm_that_is_gone_is_still_unavailable_not_an_ek_mismatch(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    record(spare_swtpm, tmp_path)
    spare_swtpm.stop()
    with pytest.raises(Unavailable):
        check.run_tpm_check(parse(section(spare_swtpm.tcti)), tmp_path)
