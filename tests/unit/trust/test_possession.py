"""Signing proves possession (issue 15): where the password comes from, which keys are refused, and the
provenance annotations. Encrypted keys here are PKCS#8 ``ENCRYPTED PRIVATE KEY`` (what ``cryptography``
writes); keys in cosign's own encrypted format, written by the real cosign, are in
tests/integration/sig/test_push_possession.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shim.common.errors import Denied
from shim.trust import possession


def write_key(tmp_path: Path, password: bytes | None) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    p = tmp_path / ("enc.key" if password else "plain.key")
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    return p


def never_ask(prompt: str) -> str:
    raise AssertionError(f"asked {prompt!r}")


def test_a_key_without_a_password_is_refused_unless_unattended(tmp_path: Path) -> None:
    plain = write_key(tmp_path, None)
    with pytest.raises(Denied, match="has no password, so signing with it proves nothing") as e:
        possession.open_signing_key(plain, unattended=False, environ={"COSIGN_PASSWORD": "x"}, ask=never_ask)
    assert e.value.check == "sign"
    assert e.value.exit_code == 77
    assert "unattended = true" in (e.value.hint or "")
    assert possession.open_signing_key(plain, unattended=True, environ={}, ask=never_ask).key_type == "ecdsa-p256"


def test_the_password_comes_from_cosign_password_first(tmp_path: Path) -> None:
    enc = write_key(tmp_path, b"s3cret")
    key = possession.open_signing_key(enc, unattended=False, environ={"COSIGN_PASSWORD": "s3cret"},
                                      interactive=True, ask=never_ask)
    assert key.name == str(enc)


def test_without_cosign_password_a_terminal_is_asked_and_nothing_else(tmp_path: Path) -> None:
    enc = write_key(tmp_path, b"s3cret")
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "s3cret"

    possession.open_signing_key(enc, unattended=False, environ={}, interactive=True, ask=ask)
    assert asked == [f"Password for signing key {enc}: "]
    with pytest.raises(Denied, match="needs its password now, and none was given"):
        possession.open_signing_key(enc, unattended=True, environ={}, interactive=False, ask=never_ask)


@pytest.mark.parametrize("failure", [EOFError, KeyboardInterrupt])
def test_a_prompt_given_up_is_a_refusal(tmp_path: Path, failure: type[BaseException]) -> None:
    enc = write_key(tmp_path, b"s3cret")

    def ask(prompt: str) -> str:
        raise failure

    with pytest.raises(Denied, match="no password was entered"):
        possession.open_signing_key(enc, unattended=False, environ={}, interactive=True, ask=ask)


def test_wrong_or_empty_passwords_are_refusals(tmp_path: Path) -> None:
    enc = write_key(tmp_path, b"s3cret")
    with pytest.raises(Denied, match="the password given does not open signing key"):
        possession.open_signing_key(enc, unattended=False, environ={"COSIGN_PASSWORD": "guess"}, ask=never_ask)
    with pytest.raises(Denied, match="an empty password was given"):
        possession.open_signing_key(enc, unattended=False, environ={"COSIGN_PASSWORD": ""}, ask=never_ask)


def test_cosign_key_formats_count_as_protected() -> None:
    assert possession.is_protected(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert possession.is_protected(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    assert not possession.is_protected(b"-----BEGIN EC PRIVATE KEY-----\n")


def test_provenance_annotations() -> None:
    got = possession.provenance("Mid", environ={}, now=0)
    assert got == {"bacon.host": os.uname().nodename, "bacon.operator": possession.operator({}),
                   "bacon.time": "1970-01-01T00:00:00Z", "bacon.level": "Mid", "bacon.version": got["bacon.version"]}
    assert got["bacon.version"]


@pytest.mark.skipif(os.getuid() != 0, reason="the sudo user is believed only when the real uid is root")
def test_the_operator_is_the_sudo_user_under_sudo() -> None:
    assert possession.operator({"SUDO_USER": "alice", "SUDO_UID": "1000"}) == "alice"
    assert possession.operator({}) == "root"
