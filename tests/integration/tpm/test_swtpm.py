"""The TPM check, baseline, quote and status against a real software TPM (Debian's swtpm), and interop with
tpm2-tools both ways (``tpm2_checkquote`` on our quotes, our verifier on ``tpm2_quote``'s).

PCRs on swtpm start at zero (0–16, 23) or all-FF (17–22, not extendable from locality 0). Tests extend
PCR 23 (application support) and PCR 7 (Secure Boot policy) with ``tpm2_pcrextend``; extensions only
accumulate, so each test records its own baseline first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shim.attest.tpm import attest, check
from shim.attest.tpm import baseline as bl
from shim.attest.tpm import operations as cli
from shim.attest.tpm.settings import TpmSettings, parse
from shim.common.errors import Denied, Unavailable
from tests.harness.swtpm import Swtpm

pytestmark = [pytest.mark.integration, pytest.mark.swtpm]

PCRS = [0, 1, 2, 3, 4, 5, 7, 23]


def section(tpm: Swtpm, **kw: Any) -> TpmSettings:
    return parse({"tcti": tpm.tcti, "pcrs": PCRS, "eventlog": "", **kw})


def tools_env(tpm: Swtpm) -> dict[str, str]:
    return {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti, "TSS2_LOG": "all+NONE"}


def tool(tpm: Swtpm, *argv: str, cwd: Path | None = None, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tpm2-tools command against ``tpm``, then flush transient objects (no resource manager)."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (apt-get install tpm2-tools)")
    r = subprocess.run(list(argv), env=tools_env(tpm), cwd=cwd, capture_output=True, text=True, timeout=60,
                       check=False)
    subprocess.run(["tpm2_flushcontext", "-t"], env=tools_env(tpm), capture_output=True, timeout=60, check=False)
    if check_rc:
        assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r


def extend(tpm: Swtpm, pcr: int, data: bytes) -> None:
    tool(tpm, "tpm2_pcrextend", f"{pcr}:sha256={hashlib.sha256(data).hexdigest()}")


def read_pcr(tpm: Swtpm, pcr: int) -> bytes:
    r = tool(tpm, "tpm2_pcrread", f"sha256:{pcr}")
    return bytes.fromhex(r.stdout.split("0x")[-1].strip())


# --- the check --------------------------------------------------------------------------------------------

def test_record_check_extend_deny_rerecord_pass(swtpm: Swtpm, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert cli.cmd_baseline_record(section(swtpm), state) == 0
    assert "recorded TPM baseline sha256:0,1,2,3,4,5,7,23" in capsys.readouterr().out
    path = bl.path_for(state)
    assert path.stat().st_mode & 0o777 == 0o600

    r = check.run_tpm_check(section(swtpm), state)
    assert r.name == "tpm"
    assert "match the baseline" in r.summary

    before = read_pcr(swtpm, 23)
    extend(swtpm, 23, b"container runtime changed")
    after = read_pcr(swtpm, 23)
    assert after != before
    with pytest.raises(Denied) as e:
        check.run_tpm_check(section(swtpm), state)
    assert e.value.check == "tpm"
    assert e.value.message.startswith(f"PCR 23 changed: {before.hex()[:16]}… → {after.hex()[:16]}…")
    assert "PCR 7" not in e.value.message
    assert e.value.hint is not None
    assert "bacon baseline record" in e.value.hint

    assert cli.cmd_baseline_record(section(swtpm), state) == 0
    assert check.run_tpm_check(section(swtpm), state).details["pcrs"]["23"] == after.hex()


def test_extending_a_boot_pcr_is_denied_naming_it(swtpm: Swtpm, tmp_path: Path) -> None:
    assert cli.cmd_baseline_record(section(swtpm), tmp_path) == 0
    extend(swtpm, 7, b"secure boot db changed")
    with pytest.raises(Denied, match=r"^PCR 7 changed: [0-9a-f]{16}… → [0-9a-f]{16}…"):
        check.run_tpm_check(section(swtpm), tmp_path)


def test_every_quote_uses_a_fresh_nonce(swtpm: Swtpm, tmp_path: Path) -> None:
    assert cli.cmd_baseline_record(section(swtpm), tmp_path) == 0
    a = check.run_tpm_check(section(swtpm), tmp_path)
    b = check.run_tpm_check(section(swtpm), tmp_path)
    assert a.details["nonce"] != b.details["nonce"]
    given = check.run_tpm_check(section(swtpm), tmp_path, nonce=b"\x01" * 32)
    assert given.details["nonce"] == "01" * 32


def test_rsa_attestation_key(swtpm: Swtpm, tmp_path: Path) -> None:
    assert cli.cmd_baseline_record(section(swtpm, ak="rsa2048"), tmp_path) == 0
    assert check.run_tpm_check(section(swtpm, ak="rsa2048"), tmp_path).name == "tpm"
    with pytest.raises(Denied, match="another TPM, or its endorsement hierarchy was cleared"):
        check.run_tpm_check(section(swtpm), tmp_path)  # ecc256 AK ≠ the recorded rsa2048 AK


def test_stopped_swtpm_is_unavailable(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    assert cli.cmd_baseline_record(section(spare_swtpm), tmp_path) == 0
    spare_swtpm.stop()
    with pytest.raises(Unavailable) as e:
        check.run_tpm_check(section(spare_swtpm), tmp_path)
    assert e.value.exit_code == 69
    assert f"cannot reach the TPM at {spare_swtpm.tcti}" in e.value.message
    assert e.value.hint is not None
    assert "start the TPM simulator" in e.value.hint
    s = cli.status(section(spare_swtpm), tmp_path)
    assert s["present"] is False
    assert s["baseline"]["recorded"] is True


def test_another_tpm_is_denied(swtpm: Swtpm, spare_swtpm: Swtpm, tmp_path: Path) -> None:
    assert cli.cmd_baseline_record(section(swtpm, pcrs=[17]), tmp_path) == 0  # same value on both: all FF
    with pytest.raises(Denied, match=r"presents endorsement key .* the baseline pinned .* another TPM"):
        check.run_tpm_check(section(spare_swtpm, pcrs=[17]), tmp_path)


def test_another_tpm_under_a_baseline_without_the_ek_is_denied_by_its_ak(swtpm: Swtpm, spare_swtpm: Swtpm,
                                                                          tmp_path: Path) -> None:
    """A baseline recorded before the EK was pinned: the AK pin still tells another TPM."""
    import json

    assert cli.cmd_baseline_record(section(swtpm, pcrs=[17]), tmp_path) == 0
    path = tmp_path / "tpm-baseline.json"
    doc = json.loads(path.read_text())
    del doc["ek"]
    path.write_text(json.dumps(doc))
    with pytest.raises(Denied, match=r"signed by attestation key .* another TPM"):
        check.run_tpm_check(section(spare_swtpm, pcrs=[17]), tmp_path)


def test_missing_baseline_is_denied(swtpm: Swtpm, tmp_path: Path) -> None:
    with pytest.raises(Denied, match="no TPM baseline recorded"):
        check.run_tpm_check(section(swtpm), tmp_path)


# --- baseline show, status --------------------------------------------------------------------------------

def test_baseline_show_and_diff(swtpm: Swtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli.cmd_baseline_record(section(swtpm), tmp_path)
    capsys.readouterr()
    assert cli.cmd_baseline_show(section(swtpm), tmp_path, json_out=False, diff=True) == 0
    assert "match the baseline" in capsys.readouterr().out
    extend(swtpm, 23, b"diff")
    assert cli.cmd_baseline_show(section(swtpm), tmp_path, json_out=True, diff=True) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [d["pcr"] for d in doc["diff"]] == [23]
    assert doc["matches"] is False
    assert doc["baseline"]["pcrs"]["23"] == doc["diff"][0]["baseline"]
    assert cli.cmd_baseline_show(section(swtpm), tmp_path, json_out=False, diff=False) == 0
    assert "PCR 23" in capsys.readouterr().out


def test_status(swtpm: Swtpm, tmp_path: Path) -> None:
    s = cli.status(section(swtpm), tmp_path, efivars=tmp_path)
    assert s["present"] is True
    assert s["matches_baseline"] is None
    assert s["secure_boot"] == "unknown"
    cli.cmd_baseline_record(section(swtpm), tmp_path)
    s = cli.status(section(swtpm), tmp_path, efivars=tmp_path)
    assert s["matches_baseline"] is True
    assert {r["state"] for r in s["pcrs"]} == {"match"}
    extend(swtpm, 23, b"status")
    s = cli.status(section(swtpm), tmp_path, efivars=tmp_path)
    assert s["matches_baseline"] is False
    assert [r["pcr"] for r in s["pcrs"] if r["state"] == "changed"] == [23]
    json.dumps(s)
    assert any("DIFFER" in line for line in cli.format_status(s))


def test_pcr_read_in_batches(swtpm: Swtpm, tmp_path: Path) -> None:
    cli.cmd_baseline_record(section(swtpm, pcrs=list(range(24))), tmp_path)
    base = bl.load(tmp_path)
    assert base is not None
    assert sorted(base.pcrs) == list(range(24))
    assert all(base.pcrs[p] == b"\xff" * 32 for p in range(17, 23))
    assert check.run_tpm_check(section(swtpm, pcrs=list(range(24))), tmp_path).name == "tpm"


# --- interop with tpm2-tools ------------------------------------------------------------------------------

@pytest.mark.parametrize("ak", ["ecc256", "rsa2048"])
def test_tpm2_checkquote_accepts_bacon_quote(swtpm: Swtpm, tmp_path: Path, ak: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    nonce = os.urandom(32).hex()
    out = tmp_path / "quote"
    assert cli.cmd_quote(section(swtpm, ak=ak), nonce, "0,7,23", out) == 0
    printed = capsys.readouterr().out
    assert f"for nonce {nonce}" in printed
    doc = json.loads((out / "quote.json").read_text())
    argv = doc["checkquote"].split()
    assert printed.strip().endswith(doc["checkquote"])
    tool(swtpm, *argv)
    # the TSS-format public key works too
    tool(swtpm, *[str(out / "ak.pub") if a.endswith("ak.pub.pem") else a for a in argv])
    # and tpm2_checkquote refuses another nonce
    wrong = [*argv[:-1], ("00" if nonce[:2] != "00" else "01") + nonce[2:]]
    assert tool(swtpm, *wrong, check_rc=False).returncode != 0


def test_bacon_quote_to_stdout(swtpm: Swtpm, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_quote(section(swtpm), "abcd", None, None) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nonce"] == "abcd"
    assert doc["selection"] == "sha256:0,1,2,3,4,5,7,23"
    key = attest.load_public_key(doc["ak_public_pem"].encode())
    attest.verify_quote(bytes.fromhex(doc["message"]), bytes.fromhex(doc["signature"]), key, nonce=b"\xab\xcd",
                        pcrs={int(p): bytes.fromhex(v) for p, v in doc["pcrs"].items()})


def _tpm2_quote(tpm: Swtpm, d: Path, nonce: str, ak: str, fmt: str = "values") -> None:
    tool(tpm, "tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub", cwd=d)
    tool(tpm, "tpm2_createak", "-C", "ek.ctx", "-c", f"{ak}.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa",
         "-u", f"{ak}.pem", "-f", "pem", "-n", f"{ak}.name", cwd=d)
    tool(tpm, "tpm2_quote", "-c", f"{ak}.ctx", "-l", "sha256:0,7,23", "-q", nonce, "-m", "quote.msg",
         "-s", "quote.sig", "-o", f"pcrs.{fmt}", "-F", fmt, "-g", "sha256", cwd=d)


def test_our_verifier_and_tpm2_quote(swtpm: Swtpm, tmp_path: Path) -> None:
    nonce = os.urandom(20)
    _tpm2_quote(swtpm, tmp_path, nonce.hex(), "ak")
    msg, sig = (tmp_path / "quote.msg").read_bytes(), (tmp_path / "quote.sig").read_bytes()
    key = attest.load_public_key((tmp_path / "ak.pem").read_bytes())
    pcrs = attest.parse_pcr_values((tmp_path / "pcrs.values").read_bytes(), [0, 7, 23], 32)
    attest.verify_quote(msg, sig, key, nonce=nonce, pcrs=pcrs)

    with pytest.raises(attest.NonceMismatch):
        attest.verify_quote(msg, sig, key, nonce=os.urandom(20), pcrs=pcrs)
    for i in (0, 10, len(msg) // 2, len(msg) - 1):
        flipped = bytearray(msg)
        flipped[i] ^= 0x01
        with pytest.raises(attest.QuoteError):
            attest.verify_quote(bytes(flipped), sig, key, nonce=nonce, pcrs=pcrs)
    flipped_sig = bytearray(sig)
    flipped_sig[-1] ^= 0x01
    with pytest.raises(attest.BadSignature):
        attest.verify_quote(msg, bytes(flipped_sig), key, nonce=nonce, pcrs=pcrs)

    tool(swtpm, "tpm2_createak", "-C", "ek.ctx", "-c", "other.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa",
         "-u", "other.pem", "-f", "pem", "-n", "other.name", cwd=tmp_path)
    other = attest.load_public_key((tmp_path / "other.pem").read_bytes())
    assert attest.fingerprint(other) != attest.fingerprint(key)
    with pytest.raises(attest.BadSignature, match="another key"):
        attest.verify_quote(msg, sig, other, nonce=nonce, pcrs=pcrs)


def test_our_verifier_reads_tpm2_quote_serialized_pcrs(swtpm: Swtpm, tmp_path: Path) -> None:
    nonce = os.urandom(16)
    _tpm2_quote(swtpm, tmp_path, nonce.hex(), "ak", fmt="serialized")
    pcrs = attest.parse_serialized_pcrs((tmp_path / "pcrs.serialized").read_bytes())
    assert sorted(pcrs["sha256"]) == [0, 7, 23]
    attest.verify_quote((tmp_path / "quote.msg").read_bytes(), (tmp_path / "quote.sig").read_bytes(),
                        attest.load_public_key((tmp_path / "ak.pem").read_bytes()), nonce=nonce, pcrs=pcrs["sha256"])
