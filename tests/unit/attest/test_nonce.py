"""shim.attest.nonce: the one reading of ``--nonce HEX`` (quote tpm, quote tdx, evidence)."""

from __future__ import annotations

import re

import pytest

from shim.attest import evidence
from shim.attest.nonce import parse_hex
from shim.attest.tdx import operations as tdx_operations
from shim.attest.tpm import operations as tpm_operations
from shim.common.errors import UsageError


def test_hex_with_or_without_0x_and_any_case() -> None:
    assert parse_hex(" 0xABcd\n", max_size=4) == b"\xab\xcd"
    assert parse_hex("abcd", min_size=2, max_size=2) == b"\xab\xcd"


@pytest.mark.parametrize(("text", "says"), [
    ("", "must be 1..4 bytes (2 to 8 hex digits), got 0"),
    ("xyz", "must be hex, got 'xyz'"),
    ("abc", "must be hex"),
    ("00" * 5, "must be 1..4 bytes (2 to 8 hex digits), got 5"),
])
def test_refusals_are_usage_errors_with_a_hint(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)) as e:
        parse_hex(text, max_size=4)
    assert e.value.exit_code == 64
    assert e.value.hint == "e.g. --nonce $(openssl rand -hex 32)"


def test_each_command_keeps_its_sizes() -> None:
    assert tpm_operations.parse_nonce("01") == b"\x01"
    assert tdx_operations.parse_nonce("01") == b"\x01" + bytes(63)
    with pytest.raises(UsageError, match=re.escape("16..64 bytes")):
        evidence.parse_nonce("01" * 15)
    assert evidence.parse_nonce("01" * 16) == b"\x01" * 16
    for parse in (tpm_operations.parse_nonce, tdx_operations.parse_nonce, evidence.parse_nonce):
        with pytest.raises(UsageError, match="got 65"):
            parse("00" * 65)
