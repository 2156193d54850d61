"""shim.attest.secureboot: the one reading of the SecureBoot EFI variable (status and the TPM status use it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.attest import secureboot
from shim.attest.secureboot import DISABLED, ENABLED, NO_EFIVARFS, NO_VARIABLE, UNKNOWN, Reading


def test_absent_or_empty_efivarfs(tmp_path: Path) -> None:
    assert secureboot.read(tmp_path / "none") == Reading(UNKNOWN, NO_EFIVARFS)
    assert secureboot.read(tmp_path) == Reading(UNKNOWN, NO_EFIVARFS)
    (tmp_path / f"Boot0000-{secureboot.GLOBAL_VARIABLE}").write_bytes(b"\x07\x00\x00\x00")
    assert secureboot.read(tmp_path) == Reading(UNKNOWN, NO_VARIABLE)


@pytest.mark.parametrize(("data", "expected"), [
    (b"\x06\x00\x00\x00\x01", Reading(ENABLED)),
    (b"\x06\x00\x00\x00\x00", Reading(DISABLED)),
    (b"\x06\x00\x00\x00\x02", Reading(UNKNOWN, "5-byte SecureBoot variable")),
    (b"\x06\x00\x00\x00", Reading(UNKNOWN, "4-byte SecureBoot variable")),
    (b"\x06\x00\x00\x00\x01\x00", Reading(UNKNOWN, "6-byte SecureBoot variable")),
])
def test_the_value_follows_four_bytes_of_attributes(tmp_path: Path, data: bytes, expected: Reading) -> None:
    (tmp_path / secureboot.VARIABLE).write_bytes(data)
    assert secureboot.read(tmp_path) == expected


def test_an_unreadable_variable_is_unknown_not_an_error(tmp_path: Path) -> None:
    (tmp_path / secureboot.VARIABLE).mkdir()
    got = secureboot.read(tmp_path)
    assert got.state == UNKNOWN
    assert got.why.startswith(f"cannot read {tmp_path / secureboot.VARIABLE}: ")
