from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shim.common.errors import (
    ConfigError,
    Denied,
    NoPermission,
    NotFound,
    Unavailable,
    UsageError,
    exit_status,
    missing_extra,
    printable,
)


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


def test_a_missing_optional_extra_is_69_with_the_line_that_installs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Not `internal error: ModuleNotFoundError` (70): the extra's name and how to install it."""
    from shim.operator import cli

    config = tmp_path / "config.toml"
    config.write_text(f'level = "Low"\nnerdctl = "/bin/true"\nstate_dir = "{tmp_path}/state"\n')
    config.chmod(0o644)
    tmp_path.chmod(0o755)
    monkeypatch.setenv("BACON_CONFIG", str(config))
    monkeypatch.delenv("SUDO_USER", raising=False)
    for name in [m for m in sys.modules if m == "dcap_qvl" or (m.startswith(("dcap_qvl.", "shim.attest.tdx"))
                 and m != "shim.attest.tdx.settings")]:  # parsed at load: the configuration's, needs no extra
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dcap_qvl", None)  # as when the tdx extra is not installed
    vectors = Path(__file__).parents[2] / "vectors" / "tdx"
    assert cli.main(["tdx", "verify", "--quote", str(vectors / "tdx_quote"), "--collateral",
                     str(vectors / "tdx_quote_collateral.json")]) == 69
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert "'tdx' extra" in err
    assert "pip install '.[tdx]'" in err

    e = missing_extra(ModuleNotFoundError("no", name="sigstore.verify"))
    assert e is not None
    assert e.exit_code == 69
    assert "[keyless]" in (e.hint or "")
    assert missing_extra(ModuleNotFoundError("no", name="shim.nonexistent")) is None  # a bug stays a bug (70)


def test_no_permission_is_69_and_says_so() -> None:
    e = NoPermission("you may not read x", hint="sudo bacon audit")
    assert e.exit_code == 69
    assert e.render().startswith("bacon: permission denied: ")


def _raise(e: BaseException) -> int:
    raise e


@pytest.mark.parametrize(("failure", "status", "says"), [
    (Denied("no signature", check="signature"), 77, "bacon: denied: image - digest -: check signature failed: "
                                                     "no signature\n"),
    (ConfigError("bad", hint="fix it"), 78, "bacon: config: bad\nbacon: hint: fix it\n"),
    (KeyboardInterrupt(), 130, "bacon: interrupted\n"),
    (ModuleNotFoundError("no", name="dcap_qvl"), 69, "'tdx' extra"),
    (ModuleNotFoundError("no", name="shim.nonexistent"), 70, "bacon: internal error: ModuleNotFoundError: no\n"),
    (KeyError("x"), 70, "bacon: internal error: KeyError: 'x'\nbacon: hint: nothing was run\n"),
])
def test_exit_status_is_the_one_place_failures_become_text(capsys: pytest.CaptureFixture[str],
                                                            failure: BaseException, status: int, says: str) -> None:
    assert exit_status(lambda: _raise(failure), internal_hint="nothing was run") == status
    assert says in capsys.readouterr().err
    assert exit_status(lambda: 3) == 3


def test_what_an_image_says_reaches_the_terminal_escaped() -> None:
    """Messages quote labels, platforms and names from images: control characters are shown, not sent."""
    assert printable("plain ≤ text, ünïcode") == "plain ≤ text, ünïcode"
    assert printable("a\x1b[2Jb\x07c\u202ed\u00a0e\u2028f\tg") == "a\\x1b[2Jb\\x07c\\u202ed\\xa0e\\u2028f\tg"
    forged = "x\nbacon: hint: sudo bacon policy set High"
    lines = Denied(forged, check="level", image="i\x1b", hint="h\r").render().splitlines()
    assert lines == ["bacon: denied: image i\\x1b digest -: check level failed: x",
                     "  bacon: hint: sudo bacon policy set High", "bacon: hint: h\\r"]
    assert NotFound(forged).render().splitlines()[1].startswith("  ")


def test_an_unexpected_error_reaches_the_terminal_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise RuntimeError("bad\x1b[2J\nbacon: hint: forged")

    assert exit_status(body) == 70
    assert capsys.readouterr().err.splitlines() == ["bacon: internal error: RuntimeError: bad\\x1b[2J",
                                                    "  bacon: hint: forged"]
