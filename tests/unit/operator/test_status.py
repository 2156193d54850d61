"""The pure part of `bacon status` / `bacon doctor`: which items are needed, the level table, the text, the
JSON and the exit status; the Secure Boot probe on a made-up efivarfs; a probe that hangs or raises."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from shim.common import config as bconfig
from shim.common.errors import Unavailable
from shim.operator import status
from shim.operator.status import ALWAYS, FAIL, INFO, OK, WARN, Item


def cfg(level: str = "Mid", **require: list[str]) -> bconfig.Config:
    data: dict[str, object] = {"level": level}
    if require:
        data["levels"] = {k: {"require": v} for k, v in require.items()}
    return bconfig.parse(data, Path("/etc/bacon/config.toml"))


def items(tpm: str = OK, tdx: str = FAIL, keys: str = OK, containerd: str = OK) -> list[Item]:
    return [
        Item("config", "configuration", OK, "/etc/bacon/config.toml", requirement=ALWAYS),
        Item("keys", "trusted keys", keys, "1 key(s) loaded", "add a key", "signature"),
        Item("secure_boot", "Secure Boot", INFO, "not an EFI boot"),
        Item("tpm", "TPM", tpm, "present", "sudo bacon baseline record", "tpm", lines=("PCR 7  match",)),
        Item("tdx", "TDX", tdx, "not a TDX guest", "run inside a TD", "tdx"),
        Item("containerd", "containerd", containerd, "1.6.20", "start containerd", ALWAYS),
        Item("wrapper", "wrapper", WARN, "not the wrapper", "sudo bacon enable"),
    ]


def test_needed_checks_are_those_of_the_admitted_levels() -> None:
    assert status.needed_checks(cfg("Low"), "Low") == ("signature",)
    assert status.needed_checks(cfg("Mid"), "Mid") == ("signature", "tpm")
    assert status.needed_checks(cfg("High"), "High") == ("signature", "tdx", "tpm")
    # a Low level that itself requires the TPM makes the TPM needed even on a Low host
    assert status.needed_checks(cfg("Low", Low=["signature", "tpm"]), "Low") == ("signature", "tpm")


def test_a_mid_host_without_tdx_is_ready() -> None:
    r = status.build(Path("/etc/bacon/config.toml"), cfg("Mid"), "Mid", "/etc/bacon/config.toml", items())
    assert r.exit_status == 0
    assert r.problems == []
    tdx = r.item("tdx")
    assert tdx is not None
    assert tdx.needed is False
    rows = {row.level: row for row in r.levels}
    assert rows["Mid"].met
    assert rows["Mid"].admitted
    assert not rows["High"].met
    assert rows["High"].missing == ("tdx",)
    assert not rows["High"].admitted
    text = "\n".join(status.format_status(r))
    assert "  -     TDX            not a TDX guest  (not needed: no level up to Mid requires tdx)" in text
    assert "  ok    TPM            present" in text
    assert "PCR 7  match" in text
    assert "High  refused here   profile baseline    requires signature, tpm, tdx" in text
    assert "NOT met: tdx missing" in text
    assert text.endswith("result: ready: everything level Mid needs is in place")
    doc = r.to_json()
    json.dumps(doc)
    assert doc["ok"] is True
    assert doc["exit_status"] == 0
    assert doc["needed_checks"] == ["signature", "tpm"]


def test_a_needed_failure_is_exit_1_with_its_fix() -> None:
    r = status.build(Path("/c"), cfg("Mid"), "Mid", "/c", items(tpm=FAIL, containerd=FAIL))
    assert r.exit_status == status.EXIT_NOT_READY
    assert [i.key for i in r.problems] == ["tpm", "containerd"]
    text = status.format_status(r)
    assert "  FAIL  TPM            present" in text
    assert text[text.index("  FAIL  TPM            present") + 2].strip() == "fix: sudo bacon baseline record"
    assert "NOT READY: 2 needed item(s) fail: TPM, containerd (exit 1)" in text[-1]
    doctor = status.format_doctor(r)
    assert "missing  TPM            present; fix: sudo bacon baseline record" in doctor
    assert any(line.startswith("absent   TDX") for line in doctor)  # failing, but not needed here
    assert not any("Secure Boot" in line for line in doctor)  # informative only
    assert r.to_json()["problems"][0] == {"key": "tpm", "summary": "present", "fix": "sudo bacon baseline record"}


def test_an_unusable_configuration_is_exit_78() -> None:
    r = status.build(Path("/c"), None, None, None,
                     [Item("config", "configuration", FAIL, "/c is writable by others", "chmod go-w /c", ALWAYS)])
    assert r.exit_status == 78
    assert r.levels == ()
    assert "the configuration cannot be used" in status.format_status(r)[-1]


def test_every_failure_has_a_fix() -> None:
    bare = [Item("containerd", "containerd", FAIL, "failed version: INTERNAL", requirement=ALWAYS),
            Item("wrapper", "wrapper", WARN, "odd", "sudo bacon enable"), Item("secure_boot", "Secure Boot", OK, "on")]
    r = status.build(Path("/c"), cfg("Low"), "Low", "/c", bare)
    assert [i.fix for i in r.items] == [status.DEFAULT_FIXES["containerd"], "sudo bacon enable", None]


def test_secure_boot_states(tmp_path: Path) -> None:
    assert status.probe_secure_boot(tmp_path / "no-efi").summary.startswith("not an EFI boot")
    efi = tmp_path / "efi"
    (efi / "efivars").mkdir(parents=True)
    assert "efivarfs is not mounted" in status.probe_secure_boot(efi).summary
    (efi / "efivars" / "Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(b"\x07\x00\x00\x00")
    assert "no SecureBoot variable" in status.probe_secure_boot(efi).summary
    var = efi / "efivars" / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    var.write_bytes(b"\x06\x00\x00\x00\x01")
    assert (status.probe_secure_boot(efi).state, status.probe_secure_boot(efi).summary) == (OK, "enabled")
    var.write_bytes(b"\x06\x00\x00\x00\x00")
    off = status.probe_secure_boot(efi)
    assert (off.state, off.summary) == (WARN, "disabled")
    assert off.fix
    assert "baseline record" in off.fix


def test_probes_that_hang_or_raise_become_lines() -> None:
    never = threading.Event()

    def hangs() -> Item:
        never.wait(30)
        return Item("slow", "slow", OK, "too late")

    def raises() -> Item:
        raise Unavailable("the socket is gone", hint="start it")

    def bug() -> Item:
        raise KeyError("oops")

    start = time.monotonic()
    out = status.run_probes([status.ProbeSpec("slow", "slow", ALWAYS, hangs),
                             status.ProbeSpec("gone", "gone", "tpm", raises),
                             status.ProbeSpec("bug", "bug", None, bug),
                             status.ProbeSpec("fine", "fine", None, lambda: Item("fine", "fine", OK, "fine"))], 0.3)
    never.set()
    assert time.monotonic() - start < 5
    assert [(i.key, i.state) for i in out] == [("slow", FAIL), ("gone", FAIL), ("bug", FAIL), ("fine", OK)]
    assert out[0].summary == "did not answer within 0.3 s"
    assert out[0].requirement == ALWAYS
    assert (out[1].summary, out[1].fix, out[1].requirement) == ("the socket is gone", "start it", "tpm")
    assert "KeyError" in out[2].summary


@pytest.mark.parametrize(("keys", "state"), [((), FAIL), (("/nonexistent/team.pub",), FAIL)])
def test_keys_probe_without_usable_keys(keys: tuple[str, ...], state: str) -> None:
    c = bconfig.parse({"level": "Low", "trust": {"keys": list(keys)}}, Path("/c"))
    item = status.probe_keys(c)
    assert item.state == state
    assert item.fix


VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "sigstore"


def test_keys_probe_counts_keyless_identities_and_checks_their_root(tmp_path: Path) -> None:
    root = tmp_path / "trusted_root.json"
    root.write_bytes((VECTORS / "staging" / "trusted_root.json").read_bytes())
    root.chmod(0o644)
    ident = {"issuer": "https://accounts.example.com", "subject": "ops@example.com"}
    c = bconfig.parse({"level": "Low", "trust": {"identities": [ident], "trusted_root": str(root)}},
                      Path("/etc/bacon/config.toml"))
    item = status.probe_keys(c)
    assert item.state == OK, item
    assert "1 keyless identit" in item.summary
    assert any("ops@example.com" in line for line in item.lines)

    root.write_text("{}")
    item = status.probe_keys(c)
    assert item.state == FAIL
    assert any("trusted root" in line and "error" in line for line in item.lines)


def test_keys_probe_with_neither_keys_nor_identities_fails() -> None:
    item = status.probe_keys(bconfig.parse({"level": "Low"}, Path("/etc/bacon/config.toml")))
    assert item.state == FAIL
    assert "no trusted keys or identities" in item.summary
