"""`bacon evidence` on a real swtpm, and `bacon evidence verify` in a process with no TPM and no configuration.

The swtpm is "booted" first: a TCG2 event log made here is extended into it event by event (PCRs 0, 7 and
the launch PCR 14, as shim would measure its MOK list), so the boot log replays to the quoted boot PCRs and
the launch log continues from the boot log's PCR 14. Launches go through the nerdctl wrapper (the stand-in
nerdctl runs them through ctr).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shim.attest import cel
from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.integration.test_gate import nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.swtpm]

NONCE = "5eed" * 16


def tcg2_log(events: list[tuple[int, int, bytes]]) -> bytes:
    """A TCG2 crypto-agile log (Spec ID event, then one SHA-256 TCG_PCR_EVENT2 per (pcr, type, data))."""
    spec = (b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 1) + struct.pack("<HH", 0x0B, 32)
            + b"\x00")
    out = struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(spec)) + spec
    for pcr, etype, data in events:
        out += (struct.pack("<IIIH", pcr, etype, 1, 0x0B) + hashlib.sha256(data).digest()
                + struct.pack("<I", len(data)) + data)
    return out


def boot(tpm: swtpm_h.Swtpm, path: Path, later: tuple[tuple[int, int, bytes], ...] = ()) -> None:
    """Extend the swtpm as a firmware would, and write that boot's event log to ``path`` (plus ``later``
    boot stages: e.g. PCR 9, an initrd)."""
    events = [(0, 0x8, b"firmware version 1"), (0, 0x4, bytes(4)), (7, 0x800000E0, b"db: test key"),
              (7, 0x4, bytes(4)), (14, 0xD, b"MokList"), *later]
    path.write_bytes(tcg2_log(events))
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti}
    for pcr, _t, data in events:
        subprocess.run(["tpm2_pcrextend", f"{pcr}:sha256={hashlib.sha256(data).hexdigest()}"], env=env, check=True,
                       capture_output=True)


def booted_config(host: Host, tpm: swtpm_h.Swtpm, into: str = '["tpm"]') -> str:
    """Boot the swtpm (:func:`boot`); the ``[tpm]`` and ``[measure]`` tables that use it (``[measure]`` last)."""
    log = host.root / "binary_bios_measurements"
    boot(tpm, log)
    return f'[tpm]\ntcti = "{tpm.tcti}"\npcrs = [0, 7]\neventlog = "{log}"\n[measure]\ninto = {into}\n'


@pytest.fixture
def booted(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> Host:
    trusted_config(gate_host, signed.trusted, extra=booted_config(gate_host, tpm))
    return gate_host


def bacon(host: Host, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=env or host.env(), capture_output=True, text=True, timeout=120)


def elsewhere(host: Host) -> dict[str, str]:
    """A challenger's environment: no BACON configuration at all (so no TPM either)."""
    env = host.env()
    env["BACON_CONFIG"] = str(host.root / "no-such-config.toml")
    return env


def collect(host: Host, out: Path) -> dict[str, object]:
    r = bacon(host, "evidence", "--nonce", NONCE, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    manifest: dict[str, object] = json.loads(r.stdout)
    return manifest


def test_a_challengers_round_trip(booted: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    low = signed["low"]
    assert nerdctl(booted, "run", "--rm", low.ref).rc == 0
    assert nerdctl(booted, "run", "--rm", low.ref).rc == 0
    out = booted.root / "evidence"
    manifest = collect(booted, out)
    files = manifest["files"]
    assert isinstance(files, dict)
    assert {"quote.msg", "quote.sig", "ak.pub.pem", "ak.pub", "pcrs.bin", "boot-eventlog.bin",
            "launch-log.cel"} <= set(files)
    tpm.stop()  # the challenger's side needs no TPM

    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, env=elsewhere(booted))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: verified" in r.stdout
    assert "replays to the quoted PCRs 0,7" in r.stdout
    assert r.stdout.count(low.digest) == 2

    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, "--json", "--ak", str(out / "ak.pub.pem"),
              env=elsewhere(booted))
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "verified"
    assert [ln["command"] for ln in doc["launched"]] == ["run", "run"]
    assert doc["launched"][0]["argv"][-1].endswith(low.digest)

    # tpm2-tools' own verifier accepts the quote too
    tpm_info = manifest["tpm"]
    assert isinstance(tpm_info, dict)
    check = subprocess.run(str(tpm_info["checkquote"]).split(), cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_a_stale_nonce_fails(booted: Host, signed: Signed) -> None:
    assert nerdctl(booted, "run", "--rm", signed["low"].ref).rc == 0
    out = booted.root / "evidence"
    collect(booted, out)
    r = bacon(booted, "evidence", "verify", str(out), "--nonce", "0badc0de" * 8, env=elsewhere(booted))
    assert r.returncode == 77, r.stdout + r.stderr
    assert "not for this nonce" in r.stderr
    assert "verdict: FAILED" in r.stdout


def _records(log: bytes) -> list[bytes]:
    recs = cel.parse(log).records
    bounds = [r.offset for r in recs] + [len(log)]
    return [log[a:b] for a, b in itertools.pairwise(bounds)]


def _rewrite(out: Path, log: bytes) -> None:
    """The launch log replaced, and the manifest updated to match (as a forger would)."""
    (out / "launch-log.cel").write_bytes(log)
    manifest = json.loads((out / "evidence.json").read_text())
    manifest["files"]["launch-log.cel"] = hashlib.sha256(log).hexdigest()
    (out / "evidence.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("edit", "named"), [
    ("removed", "record #1 is missing"),
    ("changed", "record #1 (run 127.0.0.1"),
    ("reordered", "record #2 comes before record #1"),
    ("appended", "record #3 repeats record #2"),
])
def test_a_launch_log_edited_after_the_fact_fails_with_the_record_named(
        booted: Host, signed: Signed, edit: str, named: str) -> None:
    for _ in range(3):
        assert nerdctl(booted, "run", "--rm", signed["low"].ref).rc == 0
    out = booted.root / "evidence"
    collect(booted, out)
    log = (out / "launch-log.cel").read_bytes()
    recs = _records(log)
    if edit == "removed":
        forged = recs[0] + recs[2]
    elif edit == "changed":
        forged = recs[0] + recs[1].replace(b"--rm", b"--rX") + recs[2]
    elif edit == "reordered":
        forged = recs[0] + recs[2] + recs[1]
    else:
        forged = log + recs[2][:5] + struct.pack(">Q", 3) + recs[2][13:]
    _rewrite(out, forged)
    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, env=elsewhere(booted))
    assert r.returncode == 77, r.stdout + r.stderr
    assert named in r.stderr, r.stderr

    (out / "launch-log.cel").write_bytes(log)  # the true log, but the manifest no longer lists its hash
    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, env=elsewhere(booted))
    assert r.returncode == 77
    assert "launch-log.cel does not have the SHA-256" in r.stderr


@pytest.mark.parametrize(("damage", "words"), [
    ("no-manifest", "evidence.json is missing"),
    ("garbage-manifest", "not a bacon-evidence/1 manifest"),
    ("escaping-name", "not a file of the bundle"),
    ("missing-file", "lists quote.sig but it is missing"),
    ("unlisted-file", "not in its manifest"),
    ("torn-log", "bytes after the last whole record"),
    ("bad-pcrs", "PCR file is"),
    ("other-ak", "not the pinned"),
    ("bad-boot-log", "boot event log"),
])
def test_a_damaged_or_hostile_bundle_is_refused(booted: Host, signed: Signed, tmp_path: Path, damage: str,
                                                 words: str) -> None:
    assert nerdctl(booted, "run", "--rm", signed["low"].ref).rc == 0
    out = booted.root / "evidence"
    collect(booted, out)
    manifest = json.loads((out / "evidence.json").read_text())
    extra: list[str] = []

    def relist(name: str) -> None:
        manifest["files"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()

    if damage == "no-manifest":
        (out / "evidence.json").unlink()
    elif damage == "garbage-manifest":
        (out / "evidence.json").write_text("[1, 2")
    elif damage == "escaping-name":
        manifest["files"]["../../etc/passwd"] = "00" * 32
    elif damage == "missing-file":
        (out / "quote.sig").unlink()
    elif damage == "unlisted-file":
        del manifest["files"]["pcrs.bin"]
    elif damage == "torn-log":
        with (out / "launch-log.cel").open("ab") as f:
            f.write(b"\x00\x00\x00\x00\x08\x00\x00")
        relist("launch-log.cel")
    elif damage == "bad-pcrs":
        (out / "pcrs.bin").write_bytes(b"\x00" * 7)
        relist("pcrs.bin")
    elif damage == "other-ak":
        forged = tmp_path / "enrolled-ak.pem"  # the AK the challenger enrolled: another host's
        forged.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        extra = ["--ak", str(forged)]
    elif damage == "bad-boot-log":
        (out / "boot-eventlog.bin").write_bytes(tcg2_log([(0, 0x8, b"another firmware")]))
        relist("boot-eventlog.bin")
    if damage not in ("no-manifest", "garbage-manifest"):
        (out / "evidence.json").write_text(json.dumps(manifest))
    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, *extra, env=elsewhere(booted))
    assert r.returncode == 77, r.stdout + r.stderr
    assert words in r.stderr, r.stderr
    assert r.stderr.startswith("bacon: evidence does not verify: ")


def test_unset_boot_pcrs_are_what_this_boot_measured_never_the_launch_pcr(gate_host: Host, signed: Signed,
                                                                          tpm: swtpm_h.Swtpm) -> None:
    log = gate_host.root / "binary_bios_measurements"
    boot(tpm, log, later=((9, 0xD, b"initrd"),))
    trusted_config(gate_host, signed.trusted, extra=f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{log}"\n'
                                                    '[measure]\ninto = ["tpm"]\n')
    assert nerdctl(gate_host, "run", "--rm", signed["low"].ref).rc == 0
    out = gate_host.root / "evidence"
    manifest = collect(gate_host, out)
    assert manifest["tpm"]["boot_pcrs"] == [0, 1, 2, 3, 4, 5, 7, 9]  # type: ignore[index]
    r = bacon(gate_host, "evidence", "verify", str(out), "--nonce", NONCE, env=elsewhere(gate_host))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replays to the quoted PCRs 0,1,2,3,4,5,7,9" in r.stdout
    assert "replays to the quoted PCR 14: 1 launch" in r.stdout


def test_a_baseline_holding_the_launch_pcr_keeps_admitting_after_launches(
        gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    """The boot measured the launch PCR (shim's MOK list into 14) and the baseline was recorded before
    ``[measure]`` was turned on, so it holds PCR 14. Each admitted launch then extends 14: the ``tpm``
    check must not compare it (it refused every Mid admission after the first launch), and ``status``
    must not call it changed. Its boot part stays checked by ``evidence verify``'s replay."""
    log = gate_host.root / "binary_bios_measurements"
    boot(tpm, log)
    tpm_table = f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{log}"\n'
    trusted_config(gate_host, signed.trusted, level="Mid", extra=tpm_table)
    rec = bacon(gate_host, "baseline", "record")
    assert rec.returncode == 0, rec.stderr
    shown = bacon(gate_host, "baseline", "show", "--json")
    assert '"14"' in shown.stdout or '"pcr": 14' in shown.stdout, shown.stdout  # the boot measured 14: recorded

    trusted_config(gate_host, signed.trusted, level="Mid", extra=tpm_table + '[measure]\ninto = ["tpm"]\n')
    for _ in range(2):
        r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
        assert r.rc == 0, r.stderr
    r = nerdctl(gate_host, "run", "--rm", signed["mid"].ref)
    assert r.rc == 0, r.stderr  # the tpm check passed although PCR 14 moved twice since the baseline
    st = bacon(gate_host, "status", "--json")
    assert '"changed"' not in st.stdout, st.stdout

    out = gate_host.root / "evidence"
    collect(gate_host, out)
    v = bacon(gate_host, "evidence", "verify", str(out), "--nonce", NONCE, env=elsewhere(gate_host))
    assert v.returncode == 0, v.stdout + v.stderr
