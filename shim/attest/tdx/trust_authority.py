"""Optional remote appraisal of the TD quote by Intel Trust Authority (ITA), off by default.

Protocol (docs/attestation.md §4; intel/trustauthority-client-for-go ``go-connector``):

1. ``GET {url}/appraisal/v2/nonce`` with ``x-api-key`` → ``{"val": b64, "iat": b64, "signature": b64}``.
2. The quote is made over ``REPORTDATA = SHA-512(val ‖ iat ‖ runtime_data)``; ``runtime_data`` is the
   64 bytes BACON would otherwise have put in REPORTDATA (a fresh nonce bound to the admitted image).
3. ``POST {url}/appraisal/v2/attest`` ``{quote, verifier_nonce, runtime_data, policy_ids,
   token_signing_alg, policy_must_match}`` (bytes as standard base64) → ``{"token": JWT}``.
4. The JWT is verified here: its ``kid`` is looked up in the JWKS at ``jwks_url``; that key's ``x5c``
   chain must chain to the root the configuration pins (``root_ca``, a PEM file: there is no default,
   BACON does not ship ITA's root) and be valid now; the signature (PS384 or RS256 only, as configured)
   and ``exp``/``iat`` are checked by PyJWT. Then the claims must say what the local verification saw:
   ``tdx_report_data`` is the REPORTDATA asked for, ``tdx_mrtd``/``tdx_rtmr0..3`` equal the quote's,
   ``attester_tcb_status`` is accepted by ``[tdx] accept_tcb_status``, the verifier nonce is ours, and no
   configured policy went unmatched.

The remote appraisal only adds to the local one (dcap-qvl, reference values): both must pass. Any
network failure is :class:`Unavailable` (the gate denies); any disagreement is :class:`Denied`.
Certificate revocation of ITA's signing chain (CRL distribution points) is not checked: that would need
the network at admission time beyond ITA itself.

HTTP is the standard library's ``urllib`` (two small JSON calls, bounded sizes and a timeout); JWT
verification is PyJWT, certificates are ``cryptography``. Plain ``http://`` is accepted only for a
loopback ``url`` (tests; the API key must not cross a network in clear).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.attest.tdx.settings import TrustAuthoritySettings
from shim.common import strictjson
from shim.common.errors import ConfigError, Denied, Unavailable

NONCE_PATH = "/appraisal/v2/nonce"
ATTEST_PATH = "/appraisal/v2/attest"
MAX_RESPONSE = 1 << 20
MAX_CHAIN = 4
HINT_NET = "check [tdx.trust_authority] url and that this host reaches it, or set enabled = false"

# (method, url, headers, body or None, timeout) -> (status, body bytes)
Transport = Callable[[str, str, Mapping[str, str], bytes | None, float], tuple[int, bytes]]


@dataclass(frozen=True)
class VerifierNonce:
    val: bytes
    iat: bytes
    signature: bytes

    def to_json(self) -> dict[str, str]:
        return {k: base64.b64encode(getattr(self, k)).decode() for k in ("val", "iat", "signature")}


def report_data(nonce: VerifierNonce, runtime_data: bytes) -> bytes:
    """The REPORTDATA ITA expects: SHA-512(val ‖ iat ‖ runtime_data)."""
    return hashlib.sha512(nonce.val + nonce.iat + runtime_data).digest()


def urllib_transport(method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                     timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310 - checked scheme
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as e:
        return e.code, e.read(4096)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise Unavailable(f"Intel Trust Authority at {url} cannot be reached: {reason}", hint=HINT_NET) from e


def read_api_key(path: Path) -> str:
    """The API key from a root-only file (owned by root or this user, no access for group/others)."""
    from shim.common import trustedfile

    key = trustedfile.read(path, "[tdx.trust_authority] api_key_file", max_size=4096, private=True,
                           missing_hint="write the API key to that file, owned by root, mode 0600",
                           ).decode("ascii", "replace").strip()
    if not key:
        raise ConfigError(f"[tdx.trust_authority] api_key_file {path} is empty")
    return key


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise Denied(f"Intel Trust Authority sent a malformed {what}", check="tdx")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise Denied(f"Intel Trust Authority sent a malformed {what}: {e}", check="tdx") from e


def _json(status: int, body: bytes, url: str) -> dict[str, Any]:
    if status != 200:
        snippet = body[:200].decode("utf-8", "replace")
        raise Unavailable(f"Intel Trust Authority answered {status} at {url}: {snippet}", hint=HINT_NET)
    try:
        return strictjson.load_object(body, max_size=MAX_RESPONSE)
    except strictjson.Invalid as e:
        raise Denied(f"Intel Trust Authority's answer at {url} {e}", check="tdx") from e


def load_root(path: Path) -> Any:
    from cryptography import x509

    from shim.common import trustedfile

    pem = trustedfile.read(path, "[tdx.trust_authority] root_ca")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise ConfigError(f"[tdx.trust_authority] root_ca {path} is not a readable PEM certificate: {e}",
                          hint="download Intel Trust Authority's root CA certificate and name it in root_ca") from e


def verify_chain(x5c: Sequence[object], root: Any, now: datetime) -> Any:
    """The leaf certificate of ``x5c`` (leaf first, DER base64) once it chains to ``root`` at ``now``."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    if not x5c or len(x5c) > MAX_CHAIN:
        raise Denied(f"the token signing key carries {len(x5c)} certificates (1 to {MAX_CHAIN} expected)",
                     check="tdx")
    try:
        certs = [x509.load_der_x509_certificate(_b64(c, "x5c certificate")) for c in x5c]
    except (ValueError, x509.InvalidVersion) as e:
        raise Denied(f"a token signing certificate does not parse: {e}", check="tdx") from e
    if certs[-1].fingerprint(root.signature_hash_algorithm) == root.fingerprint(root.signature_hash_algorithm):
        certs = certs[:-1]  # the chain may end with the root itself
    chain = [*certs, root]
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Denied(f"token signing certificate {cert.subject.rfc4514_string()} is not valid now",
                         check="tdx")
        if i == len(chain) - 1:
            break
        issuer = chain[i + 1]
        try:
            bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType, ValueError) as e:
            raise Denied(f"token signing certificate {issuer.subject.rfc4514_string()} has malformed "
                         f"extensions: {e}", check="tdx") from e
        if bc is None or not bc.ca:
            raise Denied(f"{issuer.subject.rfc4514_string()} is not a CA, yet it issued the token signing chain",
                         check="tdx")
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise Denied(f"the token signing chain does not lead to the pinned Intel Trust Authority root: "
                         f"{cert.subject.rfc4514_string()} is not issued by {issuer.subject.rfc4514_string()}",
                         check="tdx", hint="check [tdx.trust_authority] root_ca") from e
    return certs[0] if certs else root


class Client:
    """Talks to ITA; every method raises :class:`Unavailable` (cannot ask) or :class:`Denied` (bad answer)."""

    def __init__(self, s: TrustAuthoritySettings, transport: Transport | None = None) -> None:
        if s.api_key_file is None or s.root_ca is None:
            raise ConfigError("[tdx.trust_authority] needs api_key_file and root_ca when enabled")
        self.s = s
        self.root_ca: Path = s.root_ca
        self.transport = transport or urllib_transport
        self.api_key = read_api_key(s.api_key_file)

    def _call(self, method: str, url: str, body: bytes | None = None, *, credential: bool = True) -> dict[str, Any]:
        headers = {"x-api-key": self.api_key, "Accept": "application/json"} if credential else {
            "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        status, raw = self.transport(method, url, headers, body, self.s.timeout)
        return _json(status, raw, url)

    def nonce(self) -> VerifierNonce:
        doc = self._call("GET", self.s.url + NONCE_PATH)
        return VerifierNonce(val=_b64(doc.get("val"), "nonce"), iat=_b64(doc.get("iat"), "nonce iat"),
                             signature=_b64(doc.get("signature"), "nonce signature"))

    def attest(self, quote: bytes, nonce: VerifierNonce, runtime_data: bytes) -> str:
        req: dict[str, Any] = {
            "quote": base64.b64encode(quote).decode(),
            "verifier_nonce": nonce.to_json(),
            "runtime_data": base64.b64encode(runtime_data).decode(),
            "token_signing_alg": self.s.token_signing_alg,
        }
        if self.s.policy_ids:
            req["policy_ids"] = list(self.s.policy_ids)
            req["policy_must_match"] = True
        doc = self._call("POST", self.s.url + ATTEST_PATH, json.dumps(req).encode())
        token = doc.get("token")
        if not isinstance(token, str) or token.count(".") != 2:
            raise Denied("Intel Trust Authority's answer holds no token", check="tdx")
        return token

    def verify_token(self, token: str, now: int) -> dict[str, Any]:
        """The token's claims once its signature, chain and lifetime hold."""
        import jwt

        root = load_root(self.root_ca)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Denied(f"the attestation token is malformed: {e}", check="tdx") from e
        if header.get("alg") != self.s.token_signing_alg:
            raise Denied(f"the attestation token is signed with {header.get('alg')!r}, "
                         f"not the configured {self.s.token_signing_alg}", check="tdx")
        kid = header.get("kid")
        jwks = self._call("GET", self.s.jwks_url, credential=False)  # public keys: the API key is not theirs
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid] \
            if isinstance(jwks.get("keys"), list) else []
        if len(keys) != 1:
            raise Denied(f"Intel Trust Authority's JWKS has no single key with kid {kid!r}", check="tdx")
        leaf = verify_chain(keys[0].get("x5c") or [], root, datetime.fromtimestamp(now, UTC))
        try:
            return _decode_at(token, leaf.public_key(), self.s.token_signing_alg, now)
        except jwt.PyJWTError as e:
            raise Denied(f"the attestation token does not verify: {e}", check="tdx") from e


def _decode_at(token: str, key: Any, alg: str, now: int) -> dict[str, Any]:
    """Signature by PyJWT; lifetime against ``now`` here (PyJWT reads the wall clock only)."""
    import jwt

    claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=[alg],
                                        options={"require": ["exp", "iat"], "verify_exp": False,
                                                 "verify_iat": False, "verify_nbf": False, "verify_aud": False})
    leeway = 60
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", claims.get("iat"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat, nbf)):
        raise jwt.InvalidTokenError("exp, iat and nbf must be numbers")
    if now > exp + leeway:  # type: ignore[operator]
        raise jwt.ExpiredSignatureError(f"the token expired at {exp}")
    if now + leeway < nbf:  # type: ignore[operator]
        raise jwt.ImmatureSignatureError(f"the token is not valid before {nbf}")
    return claims


def check_claims(claims: Mapping[str, Any], *, report_data: bytes, nonce: VerifierNonce,
                 measurements: Mapping[str, bytes], accept_tcb_status: frozenset[str],
                 policy_ids: Sequence[str]) -> None:
    """The token says what the local verification saw, for this request. Pure; raises :class:`Denied`."""

    def hex_claim(name: str) -> str:
        value = claims.get(name)
        if not isinstance(value, str):
            raise Denied(f"the attestation token has no {name} claim", check="tdx")
        return value.lower()

    if hex_claim("tdx_report_data") != report_data.hex():
        raise Denied("the attestation token's tdx_report_data is not the REPORTDATA this admission asked for",
                     check="tdx")
    for name, value in measurements.items():
        if hex_claim(f"tdx_{name}") != value.hex():
            raise Denied(f"Intel Trust Authority saw tdx_{name} {hex_claim(f'tdx_{name}')}, the quote carries "
                         f"{value.hex()}", check="tdx")
    status = claims.get("attester_tcb_status")
    if status not in accept_tcb_status:
        raise Denied(f"Intel Trust Authority appraised the TCB as {status!r}, not one of "
                     f"{', '.join(sorted(accept_tcb_status))}", check="tdx")
    vn = claims.get("verifier_nonce")
    if not isinstance(vn, dict) or vn.get("val") != base64.b64encode(nonce.val).decode():
        raise Denied("the attestation token does not carry this admission's verifier nonce", check="tdx")
    if policy_ids:
        unmatched = claims.get("policy_ids_unmatched") or []
        if unmatched:
            raise Denied(f"Intel Trust Authority policies not matched: {unmatched}", check="tdx")
