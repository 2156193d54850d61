"""Keyless signatures: Sigstore bundles v0.3 whose signer is a Fulcio certificate, verified OFFLINE by
sigstore-python against a configured Sigstore ``trusted_root.json`` (docs/signatures.md §3).

sigstore-python checks the certificate chain to the trusted CA at a verified time (Rekor integrated time
with its inclusion promise, or an RFC 3161 timestamp), the certificate's SCT, the Sigstore X.509 profile,
the identity policy, the Rekor inclusion proof and checkpoint, and the DSSE signature over the PAE. It
does not look at what was signed: :mod:`shim.trust.signatures` checks the statement (payload type, cosign's
sign predicate, subject digest) exactly as for a key-signed bundle.

No network: the trusted root is a file (no TUF refresh), and :meth:`Verifier.verify_dsse` makes no
online lookups. This module imports sigstore (about 0.4 s) and is imported only when a bundle carries a
certificate and ``[trust] identities`` are configured; nothing on the forwarding path or on a key-only
admission imports it.

Raises :class:`Rejected` for a bundle that does not verify (``malformed`` tells a broken bundle from one
that is well-formed but not from a trusted identity) and :class:`shim.common.errors.ConfigError` for a missing or
malformed trusted root.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy

from shim.common import strictjson, trustedfile
from shim.common.config import TrustedIdentity
from shim.common.errors import ConfigError

# Fulcio's certificate extensions (fulcio docs/oid-info.md).
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OTHERNAME_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
MAX_SAN_CHARS = 4096
MAX_TRUSTED_ROOT = 1 << 20  # bytes of a trusted_root.json read (as every trusted file)

# sigstore logs warnings of its own (a bundle that carries a root CA …); with no handler configured Python
# would print them to stderr, ahead of the denial line that must come first.
logging.getLogger("sigstore").addHandler(logging.NullHandler())


class Rejected(Exception):
    """A keyless bundle that does not verify; ``malformed`` when it could not even be read."""

    def __init__(self, reason: str, *, malformed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.malformed = malformed


@dataclass(frozen=True)
class Signer:
    """Who signed, as the verified certificate says: one of its SANs and its OIDC issuer, and the
    configured identity that admitted them."""

    identity: str
    issuer: str
    rule: TrustedIdentity

    @property
    def name(self) -> str:
        return f"{self.identity} (issuer {self.issuer})"


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String with a short or long definite length, else None."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    n, off = der[1], 2
    if n & 0x80:
        width = n & 0x7F
        if width == 0 or width > 2 or len(der) < 2 + width:
            return None
        n, off = int.from_bytes(der[2:2 + width], "big"), 2 + width
    if len(der) != off + n:
        return None
    try:
        return der[off:].decode()
    except UnicodeDecodeError:
        return None


def certificate_sans(cert: x509.Certificate) -> list[str]:
    """The identities a Fulcio certificate names: email and URI SANs, and Sigstore's other-name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = list(san.get_values_for_type(x509.RFC822Name)) + list(san.get_values_for_type(x509.UniformResourceIdentifier))
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_OID and (text := _utf8_string(other.value)) is not None:
            out.append(text)
    return out


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer in a Fulcio certificate: the v1 extension (raw text), which is what
    sigstore-python's ``Identity`` policy compares; the v2 one (a UTF8String) when only it is present."""
    for oid in (OIDC_ISSUER_OID, OIDC_ISSUER_V2_OID):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        text = _utf8_string(raw) if oid == OIDC_ISSUER_V2_OID else raw.decode(errors="replace")
        if text:
            return text
    return None


class SubjectRegexp:
    """A sigstore verification policy: the certificate's OIDC issuer equals ``issuer`` and one of its SANs
    matches ``pattern`` as a whole (sigstore-python has no regexp policy)."""

    def __init__(self, *, pattern: str, issuer: str) -> None:
        self._pattern = re.compile(pattern)
        self._issuer = issuer

    def verify(self, cert: x509.Certificate) -> None:
        got = certificate_issuer(cert)
        if got != self._issuer:
            raise VerificationError(f"certificate's OIDC issuer is {got!r}, not {self._issuer!r}")
        sans = certificate_sans(cert)
        if not any(len(s) <= MAX_SAN_CHARS and self._pattern.fullmatch(s) for s in sans):
            raise VerificationError(f"no SAN of the certificate matches {self._pattern.pattern!r}; SANs: {sans}")


def policy_for(identity: TrustedIdentity) -> policy.VerificationPolicy:
    if identity.subject is not None:
        return policy.Identity(identity=identity.subject, issuer=identity.issuer)
    assert identity.subject_regexp is not None
    return SubjectRegexp(pattern=identity.subject_regexp, issuer=identity.issuer)


def _check_root_document(raw: bytes, path: Path) -> None:
    """Refuse what sigstore-python would accept only to fail later, with a message that names the file."""
    hint = "install the Sigstore trusted_root.json of the instance the signers use ([trust] trusted_root)"
    try:
        doc = strictjson.loads(raw, max_size=MAX_TRUSTED_ROOT)
    except strictjson.Invalid as e:
        raise ConfigError(f"trusted root {path} {e}", hint=hint) from e
    if not isinstance(doc, dict) or doc.get("mediaType") != TRUSTED_ROOT_MEDIA_TYPE:
        got = doc.get("mediaType") if isinstance(doc, dict) else None
        raise ConfigError(f"trusted root {path} has media type {str(got)[:80]!r}, not {TRUSTED_ROOT_MEDIA_TYPE!r}",
                          hint=hint)
    for key, what in (("certificateAuthorities", "certificate authority (Fulcio)"),
                      ("tlogs", "transparency log (Rekor)"), ("ctlogs", "certificate transparency log")):
        if not isinstance(doc.get(key), list) or not doc[key]:
            raise ConfigError(f"trusted root {path} lists no {what} ({key})", hint=hint)


def load_verifier(path: Path) -> Verifier:
    """A sigstore :class:`Verifier` over the trusted root at ``path`` (root-owned, like the
    configuration). Raises :class:`ConfigError`."""
    raw = trustedfile.read(path, "trusted root", max_size=MAX_TRUSTED_ROOT)
    _check_root_document(raw, path)
    try:
        return Verifier(trusted_root=TrustedRoot.from_file(str(path)))
    except (SigstoreError, ValueError, OSError) as e:
        raise ConfigError(f"trusted root {path} is not a usable Sigstore trusted root: {e}",
                          hint="install the Sigstore trusted_root.json of the instance the signers use") from e


def verify_dsse(raw: bytes, verifier: Verifier, identities: Sequence[TrustedIdentity]) -> tuple[str, bytes, Signer]:
    """Verify the bundle ``raw`` for any of ``identities``: ``(payload_type, payload, signer)``. The
    payload is NOT checked here (the caller must). Raises :class:`Rejected`."""
    if not identities:
        raise Rejected("no keyless identities are configured")
    try:
        bundle = Bundle.from_json(raw)
    except (SigstoreError, ValueError) as e:
        raise Rejected(f"not a keyless Sigstore bundle sigstore can read ({str(e)[:300]})", malformed=True) from e
    try:
        payload_type, payload = verifier.verify_dsse(bundle, policy.AnyOf([policy_for(i) for i in identities]))
    except SigstoreError as e:
        cert = bundle.signing_certificate
        raise Rejected(f"does not verify for a trusted identity (signer {_describe(cert)}): {str(e)[:300]}") from e
    except (ValueError, TypeError, KeyError, IndexError, UnicodeError) as e:
        raise Rejected(f"cannot be verified ({type(e).__name__}: {str(e)[:300]})", malformed=True) from e
    cert = bundle.signing_certificate
    return payload_type, payload, _signer(cert, identities)


def _describe(cert: x509.Certificate) -> str:
    sans = certificate_sans(cert)
    return f"{', '.join(s[:200] for s in sans[:3]) or 'no SAN'} from {str(certificate_issuer(cert))[:200]}"


def _signer(cert: x509.Certificate, identities: Sequence[TrustedIdentity]) -> Signer:
    """Which configured identity admitted ``cert`` (verified already: one does), and the SAN it matched."""
    issuer = certificate_issuer(cert) or "?"
    for rule in identities:
        try:
            policy_for(rule).verify(cert)
        except VerificationError:
            continue
        sans = certificate_sans(cert)
        if rule.subject is not None:
            matched = rule.subject
        else:
            pattern = re.compile(rule.subject_regexp or "")
            matched = next((s for s in sans if pattern.fullmatch(s)), sans[0] if sans else "?")
        return Signer(identity=matched, issuer=issuer, rule=rule)
    raise Rejected("verified, but no configured identity matches its certificate")  # not reached
