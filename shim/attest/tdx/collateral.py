"""TDX collateral: the local cache (read, validity window) and its refresh from Intel PCS or a PCCS.

Collateral is what turns "a genuine Intel QE signed this TD body" into a TCB status: TCB Info, QE
Identity, the root CA and PCK CRLs, and the issuer chains of each. It is stored as dcap-qvl's JSON
(``QuoteCollateralV3.to_json()``: hex for DER and signatures, PEM chains, the signed JSON strings as they
were signed). The admission check reads only this file; the network is used only by
``bacon tdx collateral refresh``.

The validity window is computed here from every dated item (TCB Info and QE Identity issueDate /
nextUpdate, both CRLs' thisUpdate / nextUpdate, every certificate's notBefore / notAfter), so a refusal
can say which item expired and when. dcap-qvl enforces the same dates again during verification.

Refresh speaks the PCS v4 REST API (the same endpoints dcap-qvl's own ``get_collateral`` uses) with
urllib rather than that function: its HTTP client is compiled in, has no seam for tests, and would
make our tests need the network. The new collateral is verified against a fresh quote of this host
before it replaces the cache (tmp file + fsync + ``os.replace``), so a bad download never lands.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.common import atomicfile, strictjson
from shim.common.errors import Denied, Unavailable

MAX_COLLATERAL = 4 << 20
MAX_RESPONSE = 4 << 20
HINT_REFRESH = "run `bacon tdx collateral refresh` on a host that reaches Intel PCS or your PCCS ([tdx] pccs_url)"
COLLATERAL_KEYS = (
    "pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info",
    "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature",
)  # fmt: skip


@dataclass(frozen=True)
class Window:
    """When a collateral set may be used: ``start`` ≤ now ≤ ``end`` (Unix seconds), and which items bound it."""

    start: int
    end: int
    start_item: str
    end_item: str

    def contains(self, now: int) -> bool:
        return self.start <= now <= self.end

    def to_json(self) -> dict[str, Any]:
        return {"not_before": self.start, "not_after": self.end, "not_before_item": self.start_item,
                "not_after_item": self.end_item}


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_document(text: str) -> dict[str, Any]:
    """The collateral JSON as a dict with every required key. Raises :class:`Denied` (bad collateral)."""
    try:
        doc = strictjson.load_object(text, max_size=MAX_COLLATERAL)
    except strictjson.Invalid as e:
        raise Denied(f"TDX collateral {e}", check="tdx", hint=HINT_REFRESH) from e
    missing = [k for k in COLLATERAL_KEYS if not isinstance(doc.get(k), str)]
    if missing:
        raise Denied(f"TDX collateral lacks {', '.join(missing)}", check="tdx", hint=HINT_REFRESH)
    return doc


def validity_window(text: str) -> Window:
    """The window in which every dated item of the collateral is valid. Raises :class:`Denied`."""
    from cryptography import x509

    doc = parse_document(text)
    starts: list[tuple[int, str]] = []
    ends: list[tuple[int, str]] = []
    try:
        for key, name in (("tcb_info", "TCB Info"), ("qe_identity", "QE Identity")):
            try:
                body = strictjson.loads(doc[key], max_size=MAX_COLLATERAL)
            except strictjson.Invalid as e:
                raise ValueError(f"{name} {e}") from e
            starts.append((_ts(body["issueDate"]), f"{name} issueDate"))
            ends.append((_ts(body["nextUpdate"]), f"{name} nextUpdate"))
        for key, name in (("root_ca_crl", "root CA CRL"), ("pck_crl", "PCK CRL")):
            crl = x509.load_der_x509_crl(bytes.fromhex(doc[key]))
            starts.append((int(crl.last_update_utc.timestamp()), f"{name} thisUpdate"))
            if crl.next_update_utc is None:
                raise ValueError(f"{name} has no nextUpdate")
            # a CRL is stale from its nextUpdate on (webpki: now >= nextUpdate), hence the -1
            ends.append((int(crl.next_update_utc.timestamp()) - 1, f"{name} nextUpdate"))
        for key in ("tcb_info_issuer_chain", "qe_identity_issuer_chain", "pck_crl_issuer_chain"):
            for cert in x509.load_pem_x509_certificates(doc[key].encode()):
                cn = cert.subject.rfc4514_string()
                starts.append((int(cert.not_valid_before_utc.timestamp()), f"certificate {cn} notBefore"))
                ends.append((int(cert.not_valid_after_utc.timestamp()), f"certificate {cn} notAfter"))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, x509.InvalidVersion) as e:
        # AttributeError: a date that is not a string;
        # InvalidVersion: a certificate whose version is neither v1 nor v3
        raise Denied(f"TDX collateral is malformed: {e}", check="tdx", hint=HINT_REFRESH) from e
    start = max(starts)
    end = min(ends)
    return Window(start=start[0], end=end[0], start_item=start[1], end_item=end[1])


def require_current(window: Window, now: int) -> None:
    """Refuse a time outside the window, naming the item that bounds it."""
    if now > window.end:
        raise Denied(
            f"TDX collateral expired: {window.end_item} was {iso(window.end)}, now is {iso(now)}",
            check="tdx",
            hint=HINT_REFRESH,
        )
    if now < window.start:
        raise Denied(
            f"TDX collateral is not valid yet: {window.start_item} is {iso(window.start)}, now is {iso(now)}",
            check="tdx",
            hint="check the host clock, then refresh the collateral",
        )


def load(path: Path) -> str:
    """The cached collateral text. Raises :class:`Unavailable` when there is none."""
    from shim.common import trustedfile

    if not os.path.lexists(path):
        raise Unavailable(f"no TDX collateral at {path}", hint=HINT_REFRESH)
    fd = trustedfile.open_checked(path, "TDX collateral")  # it decides which TCB levels are current
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_COLLATERAL + 1)
    if len(raw) > MAX_COLLATERAL:
        raise Unavailable(f"TDX collateral {path} is larger than {MAX_COLLATERAL} bytes", hint=HINT_REFRESH)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unavailable(f"TDX collateral {path} is not UTF-8", hint=HINT_REFRESH) from e


def store(path: Path, text: str) -> None:
    """Write the collateral atomically (:mod:`shim.common.atomicfile`), mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    atomicfile.write(path, text.encode("utf-8"))


# ---------------------------------------------------------------- refresh (network edge)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


Fetcher = Callable[[str], Response]


def urllib_fetcher(timeout: float = 30.0) -> Fetcher:
    """GET with urllib: bounded body, headers case-insensitive. Raises :class:`Unavailable`."""
    import urllib.error
    import urllib.request  # ~25 ms: only refresh needs it

    def fetch(url: str) -> Response:
        if not url.startswith(("https://", "http://")):
            raise Unavailable(f"refusing to fetch non-http(s) URL {url!r}")
        req = urllib.request.Request(url, headers={"Accept": "*/*"})  # noqa: S310 - scheme checked above
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                body = r.read(MAX_RESPONSE + 1)
                headers = {k.lower(): v for k, v in r.headers.items()}
                status = r.status
        except urllib.error.HTTPError as e:
            return Response(e.code, {}, b"")
        except (urllib.error.URLError, OSError) as e:
            raise Unavailable(f"cannot reach {url}: {getattr(e, 'reason', e)}",
                              hint="check [tdx] pccs_url and this host's network/proxy") from e
        if len(body) > MAX_RESPONSE:
            raise Unavailable(f"{url} returned more than {MAX_RESPONSE} bytes")
        return Response(status, headers, body)

    return fetch


def _raw_member(text: str, key: str) -> str:
    """The exact source text of a top-level member's value: Intel signs those bytes, not a re-serialization."""
    dec = json.JSONDecoder()
    i = text.index("{") + 1
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == "}":
            raise KeyError(key)
        name, i = dec.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        start = i
        _, i = dec.raw_decode(text, i)
        if name == key:
            return text[start:i]


def _get(fetch: Fetcher, url: str) -> Response:
    r = fetch(url)
    if r.status != 200:
        raise Unavailable(f"{url} answered HTTP {r.status}", hint="check [tdx] pccs_url; a PCCS must be populated")
    return r


def _header(r: Response, *names: str) -> str:
    for n in names:
        v = r.headers.get(n.lower())
        if v:
            return urllib.parse.unquote(v)
    raise Unavailable(f"collateral response lacks the {names[0]} header")


def fetch_collateral(base_url: str, fmspc: str, ca: str, fetch: Fetcher) -> str:
    """Collateral for a TDX platform (``fmspc``, PCK ``ca`` = platform|processor) as dcap-qvl JSON text.

    ``base_url`` is Intel PCS or a PCCS (``…/sgx/certification/v4`` suffixes are tolerated).
    Raises :class:`Unavailable`.
    """
    base = base_url.rstrip("/")
    for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):
        base = base.removesuffix(suffix)
    sgx = f"{base}/sgx/certification/v4"
    tdx = f"{base}/tdx/certification/v4"
    crl = _get(fetch, f"{sgx}/pckcrl?ca={urllib.parse.quote(ca)}&encoding=der")
    tcb = _get(fetch, f"{tdx}/tcb?fmspc={urllib.parse.quote(fmspc)}")
    qe = _get(fetch, f"{tdx}/qe/identity?update=standard")
    try:
        tcb_text = tcb.body.decode("utf-8")
        qe_text = qe.body.decode("utf-8")
        # strict: a duplicate key would let the signed member (_raw_member takes the first) differ from
        # the one a lax parser keeps (the last)
        tcb_sig = strictjson.loads(tcb_text, max_size=MAX_RESPONSE)["signature"]
        qe_sig = strictjson.loads(qe_text, max_size=MAX_RESPONSE)["signature"]
        doc: dict[str, str] = {
            "pck_crl_issuer_chain": _header(crl, "SGX-PCK-CRL-Issuer-Chain"),
            "root_ca_crl": "",
            "pck_crl": _der_or_hex(crl.body).hex(),
            "tcb_info_issuer_chain": _header(tcb, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
            "tcb_info": _raw_member(tcb_text, "tcbInfo"),
            "tcb_info_signature": bytes.fromhex(tcb_sig).hex(),
            "qe_identity_issuer_chain": _header(qe, "SGX-Enclave-Identity-Issuer-Chain"),
            "qe_identity": _raw_member(qe_text, "enclaveIdentity"),
            "qe_identity_signature": bytes.fromhex(qe_sig).hex(),
        }
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as e:
        raise Unavailable(f"collateral from {base} is malformed: {e!r}") from e
    doc["root_ca_crl"] = _root_ca_crl(sgx, doc["qe_identity_issuer_chain"], fetch).hex()
    return json.dumps(doc)


def _der_or_hex(body: bytes) -> bytes:
    """A CRL as PCS sends it (DER) or as a PCCS sends it (hex text)."""
    if body[:1] == b"\x30":
        return body
    return bytes.fromhex(body.decode("ascii").strip())


def _root_ca_crl(sgx: str, chain_pem: str, fetch: Fetcher) -> bytes:
    """The root CA CRL: a PCCS serves it at ``rootcacrl``; Intel PCS does not, so follow the root's CRL DP."""
    r = fetch(f"{sgx}/rootcacrl")
    if r.status == 200 and r.body:
        try:
            return _der_or_hex(r.body)
        except ValueError:
            pass
    from cryptography import x509

    root = x509.load_pem_x509_certificates(chain_pem.encode())[-1]
    try:
        cdp = root.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound as e:
        raise Unavailable("the root CA names no CRL distribution point and the PCCS has no rootcacrl") from e
    for dp in cdp:
        for name in dp.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier):
                return _der_or_hex(_get(fetch, name.value).body)
    raise Unavailable("the root CA's CRL distribution point has no URL")
