"""The [tdx] table: defaults, refusals, the pinned Intel root and test roots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shim.attest.tdx import settings
from shim.common.errors import ConfigError


def test_defaults() -> None:
    s = settings.parse({})
    assert s.configfs_root == Path("/sys/kernel/config/tsm/report")
    assert s.accept_tcb_status == frozenset({"UpToDate"})
    assert not s.trust_authority.enabled
    assert s.root_ca.name == "Intel SGX Root CA"
    assert not s.root_ca.is_test
    assert hashlib.sha256(s.root_ca.der).hexdigest().upper() == settings.INTEL_ROOT_SHA256


def test_packaged_root_is_the_vector_root() -> None:
    vec = Path(__file__).resolve().parents[3] / "vectors" / "tdx" / "intel_sgx_root_ca.der"
    assert settings.intel_root_ca().der == vec.read_bytes()


def test_altered_packaged_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fake:
        def joinpath(self, _: str) -> Fake:
            return self

        def read_bytes(self) -> bytes:
            return b"not the root"

    monkeypatch.setattr("importlib.resources.files", lambda _pkg: Fake())
    with pytest.raises(ConfigError, match="SHA-256"):
        settings.intel_root_ca()


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"bogus": 1}, "unknown key"),
        ({"accept_tcb_status": ["Revoked"]}, "cannot be accepted"),
        ({"accept_tcb_status": []}, "non-empty"),
        ({"accept_tcb_status": "UpToDate"}, "non-empty list"),
        ({"configfs_root": "relative/path"}, "absolute path"),
        ({"pccs_url": "ftp://x"}, "http"),
        ({"pccs_url": "http://pccs.example:8081"}, "'pccs_url' must be https"),
        ({"reference": {"mrtd": "abcd"}}, "48 bytes"),
        ({"reference": {"mrtd": "zz" * 48}}, "not hex"),
        ({"reference": {"rtmr9": "00" * 48}}, "unknown key"),
        ({"busy_retries": 2.5}, "integer"),
        ({"busy_retries": -1}, "busy_retries"),
        ({"trust_authority": {"enabled": True}}, "required"),
        ({"trust_authority": {"enabled": "yes"}}, "true or false"),
        ({"root_ca": "/nonexistent/root.der"}, "does not exist"),
    ],
)
def test_refused(section: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings.parse(section)


def test_reference_values_and_statuses() -> None:
    s = settings.parse({"accept_tcb_status": ["UpToDate", "SWHardeningNeeded"],
                        "reference": {"mrtd": "0x" + "AB" * 48, "rtmr3": "00" * 48}})
    assert s.reference == {"mrtd": b"\xab" * 48, "rtmr3": bytes(48)}
    assert s.accept_tcb_status == frozenset({"UpToDate", "SWHardeningNeeded"})


def test_a_configured_test_root_is_marked_as_such(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    d.mkdir(mode=0o755)
    f = d / "root.der"
    f.write_bytes(b"\x30\x03\x02\x01\x00")
    f.chmod(0o644)
    s = settings.parse({"root_ca": str(f)})
    assert s.root_ca.is_test
    assert "TEST root" in s.root_ca.name


def test_a_writable_test_root_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    d.mkdir(mode=0o755)
    f = d / "root.der"
    f.write_bytes(b"x")
    f.chmod(0o666)
    with pytest.raises(ConfigError, match="writable"):
        settings.parse({"root_ca": str(f)})


def test_trust_authority_enabled() -> None:
    s = settings.parse({"trust_authority": {"enabled": True, "url": "https://ita.test/", "api_key_file": "/k",
                                            "root_ca": "/r.pem"}})
    ta = s.trust_authority
    assert ta.enabled
    assert ta.url == "https://ita.test"
    assert ta.jwks_url == "https://ita.test/certs"
