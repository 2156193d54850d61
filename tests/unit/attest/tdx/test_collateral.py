"""Collateral: the validity window, atomic storage, and refresh from a PCCS (a loopback HTTP server that
serves the TEST chain's collateral in the PCS v4 shape; no test reaches the internet)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shim.attest.tdx import collateral
from shim.attest.tdx import operations as cli
from shim.attest.tdx import settings as tdx_settings
from shim.common.errors import Denied, Unavailable
from tests.tdx_provider import DAY, TdxEnv, chain, make_env

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"


def test_window_names_the_earliest_expiry() -> None:
    w = collateral.validity_window((VECTORS / "tdx_quote_outdated_collateral.json").read_text())
    assert (w.start, w.end) == (1771412331, 1774003274)
    assert w.start_item == "TCB Info issueDate"
    assert w.end_item == "PCK CRL nextUpdate"
    assert w.contains(w.start)
    assert w.contains(w.end)
    assert not w.contains(w.end + 1)


@pytest.mark.parametrize(("text", "match"), [("nope", "not JSON"), ("[]", "not a JSON object"),
                                             ('{"tcb_info": "x"}', "lacks"),
                                             (json.dumps({k: "zz" for k in collateral.COLLATERAL_KEYS}), "malformed")])
def test_bad_collateral_is_refused(text: str, match: str) -> None:
    with pytest.raises(Denied, match=match):
        collateral.validity_window(text)


def test_store_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "collateral.json"
    collateral.store(target, "first")
    collateral.store(target, "second")
    assert collateral.load(target) == "second"
    assert [p.name for p in target.parent.iterdir()] == ["collateral.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no TDX collateral") as e:
        collateral.load(tmp_path / "absent.json")
    assert e.value.hint
    assert "refresh" in e.value.hint


def test_raw_member_keeps_the_signed_bytes() -> None:
    body = '{ "tcbInfo" : {"b":1, "a":[1, 2]} , "signature":"00"}'
    assert collateral._raw_member(body, "tcbInfo") == '{"b":1, "a":[1, 2]}'
    assert collateral._raw_member(body, "signature") == '"00"'


# ---------------------------------------------------------------- a loopback PCCS


class Pccs:
    def __init__(self, text: str) -> None:
        self.doc = json.loads(text)
        self.requests: list[str] = []
        self.fail: set[str] = set()
        self.first_tcb_info: str | None = None  # a second tcbInfo member before the signed one

    def respond(self, path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(path)
        url = urllib.parse.urlsplit(path)
        q = urllib.parse.parse_qs(url.query)
        d = self.doc
        if any(f in url.path for f in self.fail):
            return 404, {}, b""
        if url.path.endswith("/sgx/certification/v4/pckcrl") and q.get("ca") == ["platform"]:
            return 200, {"SGX-PCK-CRL-Issuer-Chain": urllib.parse.quote(d["pck_crl_issuer_chain"])}, \
                bytes.fromhex(d["pck_crl"])
        if url.path.endswith("/tdx/certification/v4/tcb") and q.get("fmspc") == ["B0C06F000000"]:
            body = '{"tcbInfo":' + d["tcb_info"] + ',"signature":"' + d["tcb_info_signature"] + '"}'
            if self.first_tcb_info is not None:
                body = '{"tcbInfo":' + self.first_tcb_info + "," + body[1:]
            return 200, {"TCB-Info-Issuer-Chain": urllib.parse.quote(d["tcb_info_issuer_chain"])}, body.encode()
        if url.path.endswith("/tdx/certification/v4/qe/identity"):
            body = '{"enclaveIdentity":' + d["qe_identity"] + ',"signature":"' + d["qe_identity_signature"] + '"}'
            return 200, {"SGX-Enclave-Identity-Issuer-Chain": urllib.parse.quote(d["qe_identity_issuer_chain"])}, \
                body.encode()
        if url.path.endswith("/sgx/certification/v4/rootcacrl"):
            return 200, {}, d["root_ca_crl"].encode()
        return 404, {}, b""


@pytest.fixture
def env(tmp_path: Path) -> TdxEnv:
    return make_env(tmp_path / "tdx")


@pytest.fixture
def pccs(env: TdxEnv) -> Iterator[tuple[Pccs, str]]:
    state = Pccs(chain.make_collateral(env.pki, env.now - DAY, env.now + 20 * DAY))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = state.respond(self.path)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Provider:
    def __init__(self, env: TdxEnv) -> None:
        self.env = env

    def get_quote(self, report_data: bytes) -> bytes:
        return chain.make_quote(self.env.pki, report_data)


def test_refresh_fetches_verifies_and_stores(env: TdxEnv, pccs: tuple[Pccs, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    state, url = pccs
    env.collateral.unlink()
    rc = cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url + "/sgx/certification/v4")),
                                    provider=Provider(env), fetch=collateral.urllib_fetcher(timeout=5), now=env.now)
    assert rc == 0
    stored = json.loads(collateral.load(env.collateral))
    assert stored == state.doc  # byte-exact signed members, CRLs as hex
    assert "stored TDX collateral" in capsys.readouterr().out
    assert any("fmspc=B0C06F000000" in r for r in state.requests)


def test_refresh_refuses_collateral_that_does_not_verify(env: TdxEnv, pccs: tuple[Pccs, str]) -> None:
    state, url = pccs
    before = env.collateral.read_text()
    other = chain.make_pki(env.now)
    state.doc = json.loads(chain.make_collateral(other, env.now - DAY, env.now + DAY))
    with pytest.raises(Unavailable, match="refusing to store"):
        cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url)), provider=Provider(env),
                                   fetch=collateral.urllib_fetcher(timeout=5), now=env.now)
    assert env.collateral.read_text() == before


def test_refresh_refuses_expired_collateral(env: TdxEnv, pccs: tuple[Pccs, str]) -> None:
    state, url = pccs
    state.doc = json.loads(chain.make_collateral(env.pki, env.now - 9 * DAY, env.now - DAY))
    with pytest.raises(Unavailable, match=r"refusing to store.*expired"):
        cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url)), provider=Provider(env),
                                   fetch=collateral.urllib_fetcher(timeout=5), now=env.now)


def test_refresh_reports_http_errors(env: TdxEnv, pccs: tuple[Pccs, str]) -> None:
    state, url = pccs
    state.fail.add("/tcb")
    with pytest.raises(Unavailable, match="HTTP 404"):
        cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url)), provider=Provider(env),
                                   fetch=collateral.urllib_fetcher(timeout=5), now=env.now)


def test_refresh_follows_the_root_crl_distribution_point_when_there_is_no_rootcacrl(
        env: TdxEnv, pccs: tuple[Pccs, str]) -> None:
    state, url = pccs
    state.fail.add("/rootcacrl")
    with pytest.raises(Unavailable, match="no CRL distribution point"):
        cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url)), provider=Provider(env),
                                   fetch=collateral.urllib_fetcher(timeout=5), now=env.now)


def test_unreachable_pccs() -> None:
    fetch = collateral.urllib_fetcher(timeout=2)
    with pytest.raises(Unavailable, match="cannot reach"):
        fetch("http://127.0.0.1:9/")
    with pytest.raises(Unavailable, match="non-http"):
        fetch("file:///etc/passwd")


def test_refresh_refuses_a_tcb_info_given_twice(env: TdxEnv, pccs: tuple[Pccs, str]) -> None:
    """Which of two tcbInfo members is signed and which is kept must not depend on the parser: refused."""
    state, url = pccs
    before = env.collateral.read_text()
    state.first_tcb_info = '{"version": 3}'
    with pytest.raises(Unavailable, match=r"malformed.*duplicate key 'tcbInfo'"):
        cli.cmd_collateral_refresh(tdx_settings.parse(env.section(pccs_url=url)), provider=Provider(env),
                                   fetch=collateral.urllib_fetcher(timeout=5), now=env.now)
    assert env.collateral.read_text() == before
