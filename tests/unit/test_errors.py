from __future__ import annotations

from shim.errors import ConfigError, Denied, NotFound, Unavailable, UsageError


def test_exit_codes_follow_the_contract() -> None:
    assert Denied("x", check="signature").exit_code == 77
    assert UsageError("x").exit_code == 64
    assert NotFound("x").exit_code == 64
    assert ConfigError("x").exit_code == 78
    assert Unavailable("x").exit_code == 69


def test_denial_first_line_names_image_digest_and_check() -> None:
    e = Denied("no signature from a trusted key", check="signature", image="r/x:1", digest="sha256:ab",
               hint="sign it with bacon sign")
    first, second = e.render().splitlines()
    assert first.startswith("bacon: denied: ")
    assert "r/x:1" in first
    assert "sha256:ab" in first
    assert "signature" in first
    assert second == "bacon: hint: sign it with bacon sign"
