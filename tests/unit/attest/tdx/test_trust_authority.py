"""Remote appraisal by Intel Trust Authority, against a loopback stand-in of ITA (tests/ita_standin.py)
speaking its HTTP protocol and signing tokens with a TEST chain; the quotes come from the TEST TDX chain.
The local verification still runs: both must pass."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shim.admission.checks import CheckResult
from shim.attest.tdx import check, settings
from shim.attest.tdx import trust_authority as ta
from shim.common.errors import ConfigError, Denied, Unavailable
from tests import ita_standin
from tests.tdx_provider import TdxEnv, chain, make_env

RD = check.report_data_for(b"n" * 32, "sha256:" + "ab" * 32)


class MemProvider:
    def __init__(self, env: TdxEnv) -> None:
        self.env = env
        self.asked: list[bytes] = []

    def get_quote(self, report_data: bytes) -> bytes:
        self.asked.append(report_data)
        return chain.make_quote(self.env.pki, report_data, self.env.body)


@pytest.fixture(scope="module")
def pki() -> ita_standin.ItaPki:
    import time

    return ita_standin.make_pki(int(time.time()))


@pytest.fixture
def ita(pki: ita_standin.ItaPki) -> Iterator[ita_standin.Ita]:
    with ita_standin.serve(pki) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> TdxEnv:
    return make_env(tmp_path / "tdx")


def run(env: TdxEnv, ita: ita_standin.Ita, **extra: object) -> CheckResult:
    sec = env.section(trust_authority=ita_standin.section(ita, env.root, **extra))
    return check.run_tdx_check(settings.parse(sec), RD, now=env.now, provider=MemProvider(env))


def test_admitted_when_ita_appraises_the_same_quote(env: TdxEnv, ita: ita_standin.Ita) -> None:
    r = run(env, ita)
    assert "appraised by Intel Trust Authority" in r.summary
    assert r.details["trust_authority"]["tcb_status"] == "UpToDate"
    nonce_req, attest_req, certs_req = ita.requests
    assert [q["path"] for q in ita.requests] == ["/appraisal/v2/nonce", "/appraisal/v2/attest", "/certs"]
    assert all(q["api_key"] == "test-api-key" for q in (nonce_req, attest_req))
    assert certs_req["api_key"] is None  # the JWKS is public: the API key is not sent where it is not needed
    body = attest_req["body"]
    assert base64.b64decode(body["runtime_data"]) == RD  # BACON's own binding travels as runtime data
    assert body["token_signing_alg"] == "PS384"
    assert "policy_ids" not in body


def test_reportdata_binds_the_ita_nonce_to_the_admission(env: TdxEnv, ita: ita_standin.Ita) -> None:
    provider = MemProvider(env)
    check.run_tdx_check(settings.parse(env.section(trust_authority=ita_standin.section(ita, env.root))), RD,
                        now=env.now, provider=provider)
    vn = ita.requests[1]["body"]["verifier_nonce"]
    nonce = ta.VerifierNonce(base64.b64decode(vn["val"]), base64.b64decode(vn["iat"]), b"")
    assert provider.asked == [ta.report_data(nonce, RD)]


@pytest.mark.parametrize(("claims", "match"), [
    ({"tdx_mrtd": "00" * 48}, "saw tdx_mrtd"),
    ({"tdx_rtmr2": "11" * 48}, "saw tdx_rtmr2"),
    ({"tdx_report_data": "22" * 64}, "tdx_report_data is not the REPORTDATA"),
    ({"attester_tcb_status": "OutOfDate"}, "appraised the TCB as 'OutOfDate'"),
    ({"verifier_nonce": {"val": "AAAA", "iat": "AAAA"}}, "verifier nonce"),
    ({"exp": 1000, "iat": 900, "nbf": 900}, "expired"),
    ({"nbf": 4_000_000_000}, "not valid before"),
])
def test_a_token_that_disagrees_is_denied(env: TdxEnv, ita: ita_standin.Ita, claims: dict[str, object],
                                          match: str) -> None:
    ita.behave["claims"] = claims
    with pytest.raises(Denied, match=match):
        run(env, ita)


def test_unmatched_policies_are_denied(env: TdxEnv, ita: ita_standin.Ita) -> None:
    ita.behave["claims"] = {"policy_ids_unmatched": [{"id": "p1"}]}
    with pytest.raises(Denied, match="policies not matched"):
        run(env, ita, policy_ids=["p1"])
    assert ita.requests[1]["body"]["policy_ids"] == ["p1"]
    assert ita.requests[1]["body"]["policy_must_match"] is True


def test_a_token_signed_by_another_key_is_denied(env: TdxEnv, ita: ita_standin.Ita) -> None:
    ita.behave["signing_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Denied, match="does not verify"):
        run(env, ita)


def test_a_chain_to_another_root_is_denied(env: TdxEnv, ita: ita_standin.Ita) -> None:
    import time

    other = ita_standin.make_pki(int(time.time()), cn="Some Other Root CA")
    ita.behave["x5c_chain"] = other.chain
    with pytest.raises(Denied, match="pinned Intel Trust Authority root"):
        run(env, ita)


def test_an_empty_or_overlong_chain_is_denied(env: TdxEnv, ita: ita_standin.Ita) -> None:
    ita.behave["x5c_chain"] = []
    with pytest.raises(Denied, match="certificates"):
        run(env, ita)
    ita.behave["x5c_chain"] = ita.pki.chain * 3
    with pytest.raises(Denied, match="certificates"):
        run(env, ita)


def test_another_algorithm_than_configured_is_denied(env: TdxEnv, ita: ita_standin.Ita) -> None:
    ita.behave["alg"] = "RS256"
    with pytest.raises(Denied, match="signed with 'RS256'"):
        run(env, ita)


def test_rs256_when_configured(env: TdxEnv, ita: ita_standin.Ita) -> None:
    assert run(env, ita, token_signing_alg="RS256").details["trust_authority"]["tcb_status"] == "UpToDate"


def test_ita_answering_500_is_unavailable(env: TdxEnv, ita: ita_standin.Ita) -> None:
    ita.behave["status"] = 500
    with pytest.raises(Unavailable, match="answered 500"):
        run(env, ita)


def test_ita_unreachable_is_unavailable(env: TdxEnv, ita: ita_standin.Ita) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ita.url = f"http://127.0.0.1:{port}"
    with pytest.raises(Unavailable, match="cannot be reached"):
        run(env, ita, timeout=2)


def test_the_local_verification_still_applies(env: TdxEnv, ita: ita_standin.Ita) -> None:
    sec = env.section(trust_authority=ita_standin.section(ita, env.root))
    sec["reference"] = {**sec["reference"], "mrtd": "77" * 48}
    with pytest.raises(Denied, match="MRTD"):
        check.run_tdx_check(settings.parse(sec), RD, now=env.now, provider=MemProvider(env))
    assert [q["path"] for q in ita.requests] == ["/appraisal/v2/nonce"]  # no token asked for a failed quote


def test_api_key_file_readable_by_others_is_refused(env: TdxEnv, ita: ita_standin.Ita) -> None:
    sec = ita_standin.section(ita, env.root)
    Path(sec["api_key_file"]).chmod(0o644)
    with pytest.raises(ConfigError, match="private to root"):
        check.run_tdx_check(settings.parse(env.section(trust_authority=sec)), RD, now=env.now,
                            provider=MemProvider(env))


@pytest.mark.parametrize(("table", "match"), [
    ({"enabled": True, "url": "https://ita.example", "api_key_file": "/k"}, "root_ca"),
    ({"enabled": True, "url": "http://ita.example", "api_key_file": "/k", "root_ca": "/r"}, "must be https"),
    ({"enabled": True, "url": "https://ita.example", "jwks_url": "http://keys.example/certs", "api_key_file": "/k",
      "root_ca": "/r"}, "'jwks_url' must be https"),
    ({"enabled": True, "url": "https://ita.example", "api_key_file": "/k", "root_ca": "/r",
      "token_signing_alg": "HS256"}, "PS384 or RS256"),
])
def test_settings_refuse_unsafe_tables(env: TdxEnv, table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings.parse(env.section(trust_authority=table))


def test_claims_check_is_pure() -> None:
    nonce = ta.VerifierNonce(b"v", b"i", b"s")
    rd = ta.report_data(nonce, b"x" * 64)
    good = {"tdx_report_data": rd.hex(), "tdx_mrtd": "aa" * 48, "attester_tcb_status": "UpToDate",
            "verifier_nonce": {"val": base64.b64encode(b"v").decode()}}
    ta.check_claims(good, report_data=rd, nonce=nonce, measurements={"mrtd": bytes.fromhex("aa" * 48)},
                    accept_tcb_status=frozenset({"UpToDate"}), policy_ids=())
    for missing in ("tdx_report_data", "tdx_mrtd"):
        bad = {k: v for k, v in good.items() if k != missing}
        with pytest.raises(Denied, match=f"no {missing} claim"):
            ta.check_claims(bad, report_data=rd, nonce=nonce, measurements={"mrtd": bytes.fromhex("aa" * 48)},
                            accept_tcb_status=frozenset({"UpToDate"}), policy_ids=())
