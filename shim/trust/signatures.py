"""Cosign-compatible image signatures by trusted keys or keyless identities (docs/signatures.md).

Two formats, either of which admits a digest:

- **classic**: the ``sha256-<hex>.sig`` tag holds an image manifest with one layer per signature; the layer
  blob is the simple-signing payload, the ``dev.cosignproject.cosign/signature`` annotation its signature.
  A layer counts when its blob hashes to the layer digest, a trusted key verifies the signature over the
  exact blob bytes, and the payload's ``critical.image.docker-manifest-digest`` equals the digest being
  admitted (and ``critical.type`` is cosign's). Every layer is tried; any one suffices.
- **bundle**: a Sigstore bundle v0.3 (found as an OCI 1.1 referrer) whose DSSE envelope has payload type
  in-toto, a signature by a trusted key over the PAE, and an in-toto statement with cosign's sign
  predicate type whose subject sha256 equals the digest.
- **keyless bundle**: the same bundle with a Fulcio certificate instead of a key, verified offline by
  sigstore-python (:mod:`shim.trust.keyless`) for a ``[trust] identities`` entry against ``[trust]
  trusted_root``; then the same statement checks (:func:`_check_statement`). A classic ``.sig`` layer
  signed keyless (certificate and SET annotations) is refused: it cannot become a verifiable bundle.

:func:`verify` raises :class:`shim.common.errors.Denied` (check ``signature``) saying what was wrong, or returns
:class:`Verified`. Limits are explicit (:class:`Limits`). Nothing here does IO: the registry side
(:func:`shim.trust.registry_signatures.fetch_signatures`) and the cache (:mod:`shim.trust.cache`) hand in
:class:`Material`; its ``blobs`` may be a lazy mapping that fetches a payload when first asked for.

The key path is hand-written rather than taken from sigstore-python: it cannot verify a bundle signed
with a bare key (sigstore-python#1244), does not read the classic ``.sig`` format, and costs 0.4 s to
import. The checks are the ones cosign makes with ``--key`` (docs/signatures.md §1-2), and a few
lines each. sigstore-python is imported only for a certificate-bearing bundle when identities are
configured; nothing else here needs it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shim.admission.checks import CheckResult
from shim.common import strictjson
from shim.common.config import TrustedIdentity
from shim.common.errors import Denied, IntegrityError
from shim.images import oci
from shim.trust import scopes
from shim.trust.keys import PublicKey

if TYPE_CHECKING:
    from shim.trust.keyless import Signer

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CLAIM_TYPE = "cosign container image signature"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = frozenset({BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
INTOTO_STATEMENT_TYPES = frozenset({"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"})
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

CLASSIC = "classic"
BUNDLE = "bundle"
KEYLESS_BUNDLE = "keyless bundle"
RESIGN_HINT = ("re-sign it in the bundle format (cosign sign --new-bundle-format, the default from cosign 3), "
               "which BACON verifies offline for the identities under [trust] identities")


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted signature material. cosign allows 1000 layers and 128 MiB payloads; a
    simple-signing payload is a few hundred bytes and a bundle a few kilobytes, so ours are far smaller,
    each and in total: a signature manifest of 1000 layers of 64 KiB each would be 64 MiB to fetch and
    hold (``max_payload_total``; the smallest payloads are tried first, so padding the manifest with
    large layers does not hide a real signature)."""

    max_layers: int = 1000
    max_payload_bytes: int = 64 << 10
    max_payload_total: int = 1 << 20
    max_bundle_bytes: int = 1 << 20
    max_bundle_total: int = 2 << 20
    max_bundles: int = 32
    max_dsse_signatures: int = 16
    max_subjects: int = 1000


DEFAULT_LIMITS = Limits()


def sig_tag(digest: str) -> str:
    """The classic signature tag for ``digest``: ``sha256-<hex>.sig``."""
    return _tag_base(digest) + ".sig"


def referrers_tag(digest: str) -> str:
    """The OCI referrers fallback tag for ``digest``: ``sha256-<hex>``."""
    return _tag_base(digest)


def _tag_base(digest: str) -> str:
    if not oci.is_digest(digest):
        raise IntegrityError(f"not a sha256 digest: {digest!r}")
    return digest.replace(":", "-")


def _go_json(obj: object) -> bytes:
    """Go's ``json.Marshal`` for strings, maps, null: compact, UTF-8, ``<>&`` and U+2028/9 escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode()


def classic_payload(digest: str, docker_reference: str, optional: Mapping[str, str] | None = None) -> bytes:
    """The simple-signing payload cosign signs, byte for byte (sigstore/sigstore payload.go): compact,
    fields in struct order, ``optional`` keys sorted as Go sorts a map, ``null`` when empty."""
    if not oci.is_digest(digest):
        raise IntegrityError(f"not a sha256 digest: {digest!r}")
    # Build the text in struct order; only the values go through the encoder.
    critical = (b'{"identity":{"docker-reference":' + _go_json(docker_reference) + b'},"image":'
                b'{"docker-manifest-digest":' + _go_json(digest) + b'},"type":' + _go_json(CLAIM_TYPE) + b"}")
    opt = _go_json(dict(sorted(optional.items()))) if optional else b"null"
    return b'{"critical":' + critical + b',"optional":' + opt + b"}"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Material:
    """What was found for one digest, raw: the classic ``.sig`` manifest (if any), payload blobs by
    digest, and bundle documents. ``blobs`` may fetch lazily; the verifier re-checks every blob's hash."""

    digest: str
    classic_manifest: bytes | None = None
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    bundles: tuple[bytes, ...] = ()

    @property
    def empty(self) -> bool:
        return self.classic_manifest is None and not self.bundles


@dataclass(frozen=True)
class KeylessTrust:
    """Who may sign keyless (``[trust] identities``) and the Sigstore trusted root to verify them with."""

    identities: tuple[TrustedIdentity, ...]
    trusted_root: Path


@dataclass(frozen=True)
class Verified:
    """Which digest was signed, in which format, by whom: a trusted key, or a keyless signer (the
    certificate's identity and OIDC issuer); the signature's annotations (a classic payload's
    ``optional``: cosign's ``-a``, BACON's provenance); once policy judged it, the signer's configured
    name and scope (``info``); and ``evidence``, the sha256 of the payload blob or bundle that verified
    (what :func:`evidence_of` keeps)."""

    digest: str
    format: str
    signer: PublicKey | Signer
    annotations: Mapping[str, str] = field(default_factory=dict)
    info: scopes.SignerInfo | None = None
    evidence: str = ""

    @property
    def key(self) -> PublicKey:
        """The trusted key that signed; a keyless signature has none (:class:`TypeError`)."""
        if not isinstance(self.signer, PublicKey):
            raise TypeError(f"{self.format} signature on {self.digest} was made keyless, not with a key")
        return self.signer

    def check_result(self) -> CheckResult:
        s = self.signer
        scoped: dict[str, Any] = {}
        if self.info is not None:
            scoped = {"signer": self.info.name, "signed_by": self.info.shown, "scope": self.info.scope.describe(),
                      "signer_max_level": self.info.scope.max_level}
        if self.annotations:
            scoped["annotations"] = dict(self.annotations)
        by = self.info.shown if self.info is not None else s.name
        if isinstance(s, PublicKey):
            return CheckResult("signature", f"{self.format} signature on {self.digest} by {by}",
                               {"format": self.format, "signed_digest": self.digest, "key": s.name,
                                "key_id": s.key_id, **scoped})
        return CheckResult("signature", f"{self.format} signature on {self.digest} by {by}",
                           {"format": self.format, "signed_digest": self.digest, "identity": s.identity,
                            "issuer": s.issuer, "trusted_identity": s.rule.name, **scoped})


# Policy over one verified signature: why its signer may not vouch for this image (None: it may), and
# the signer as policy sees it (name, scope). Supplied by the caller (shim.trust.signers).
Judge = Callable[[Verified], tuple[str | None, scopes.SignerInfo]]
MAX_ANNOTATIONS = 64
MAX_ANNOTATION_CHARS = 1024


# Why one candidate (layer, bundle) was rejected; the worst kind decides the denial's message.
_NONE, _UNSUPPORTED, _UNTRUSTED, _MALFORMED, _OTHER_DIGEST, _OUT_OF_SCOPE = 0, 1, 2, 3, 4, 5


class _Reject(Exception):
    def __init__(self, kind: int, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _load_json(data: bytes, what: str, limit: int) -> dict[str, Any]:
    try:
        return strictjson.load_object(data, max_size=limit)
    except strictjson.Invalid as e:
        raise _Reject(_MALFORMED, f"{what} {e}") from e


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Reject(_MALFORMED, f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _Reject(_MALFORMED, f"{what} is not base64") from e


def _verify_with_keys(signature: bytes, message: bytes, keys: Sequence[PublicKey], what: str) -> PublicKey:
    for key in keys:
        try:
            key.verify(signature, message)
        except Denied:
            continue
        return key
    raise _Reject(_UNTRUSTED, f"{what} is not signed by a trusted key")


def _annotations(doc: Mapping[str, Any]) -> dict[str, str]:
    """A classic payload's ``optional`` map, its string entries only, bounded (shown, never decided on)."""
    optional = doc.get("optional")
    if not isinstance(optional, dict):
        return {}
    out: dict[str, str] = {}
    for k, v in optional.items():
        if isinstance(k, str) and isinstance(v, str) and len(out) < MAX_ANNOTATIONS:
            out[k[:MAX_ANNOTATION_CHARS]] = v[:MAX_ANNOTATION_CHARS]
    return out


def _check_layer(digest: str, layer: oci.Descriptor, blobs: Mapping[str, bytes], keys: Sequence[PublicKey],
                 limits: Limits, what: str, spent: list[int]) -> tuple[PublicKey, dict[str, str]]:
    if layer.media_type != SIMPLESIGNING_MEDIA_TYPE:
        raise _Reject(_NONE, f"{what} is a {layer.media_type!r}, not a simple-signing payload")
    if SIGNATURE_ANNOTATION not in layer.annotations:
        raise _Reject(_MALFORMED, f"{what} has no {SIGNATURE_ANNOTATION} annotation")
    if layer.size > limits.max_payload_bytes:
        raise _Reject(_MALFORMED, f"{what}: payload of {layer.size} bytes exceeds the limit of "
                                  f"{limits.max_payload_bytes}")
    if spent[0] + layer.size > limits.max_payload_total:
        raise _Reject(_MALFORMED, f"{what} was not tried: the payloads tried before it and its own come to more "
                                  f"than {limits.max_payload_total} bytes")
    spent[0] += layer.size
    try:
        payload = blobs.get(layer.digest)
    except IntegrityError as e:
        raise _Reject(_MALFORMED, f"{what}: {e.message}") from e
    if payload is None:
        raise _Reject(_NONE, f"{what}: payload {layer.digest} is not available")
    if len(payload) != layer.size or oci.sha256_digest(payload) != layer.digest:
        raise _Reject(_MALFORMED, f"{what}: payload does not match its digest {layer.digest}")
    signature = _b64(layer.annotations[SIGNATURE_ANNOTATION], f"{what}: signature annotation")
    try:
        key = _verify_with_keys(signature, payload, keys, what)
    except _Reject:
        if CERTIFICATE_ANNOTATION in layer.annotations:
            raise _Reject(_UNSUPPORTED, f"{what} is a keyless signature in cosign's classic .sig format "
                                        "(certificate and SET), which cannot be verified offline") from None
        raise
    doc = _load_json(payload, f"{what}: payload", limits.max_payload_bytes)
    try:  # as cosign's Go decoder reads it: "Critical" is critical, and two keys for one field are refused
        doc = oci.go_struct(doc, ("critical", "optional"), f"{what}: payload")
        critical = doc.get("critical")
        critical = oci.go_struct(critical, ("identity", "image", "type"), f"{what}: critical") \
            if isinstance(critical, dict) else None
        image = critical.get("image") if critical is not None else None
        image = oci.go_struct(image, ("docker-manifest-digest",), f"{what}: critical.image") \
            if isinstance(image, dict) else None
    except IntegrityError as e:
        raise _Reject(_MALFORMED, e.message) from e
    claimed = image.get("docker-manifest-digest") if image is not None else None
    if not isinstance(claimed, str) or critical is None:
        raise _Reject(_MALFORMED, f"{what}: payload signed by {key.name} has no critical.image.docker-manifest-digest")
    if claimed != digest:
        raise _Reject(_OTHER_DIGEST, f"{what}: signed by {key.name} for another digest, {claimed[:80]}")
    if critical.get("type") != CLAIM_TYPE:
        raise _Reject(_MALFORMED, f"{what}: payload type is {str(critical.get('type'))[:80]!r}, not {CLAIM_TYPE!r}")
    return key, _annotations(doc)


def verify_classic(digest: str, manifest: bytes, blobs: Mapping[str, bytes], keys: Sequence[PublicKey],
                   limits: Limits = DEFAULT_LIMITS) -> Verified:
    """A classic ``.sig`` manifest for ``digest``: any layer verified by a trusted key and claiming
    ``digest``. Raises :class:`Denied`."""
    return _best_verified([_classic_attempts(digest, manifest, blobs, keys, limits)], digest)


def _classic_attempts(digest: str, manifest: bytes, blobs: Mapping[str, bytes], keys: Sequence[PublicKey],
                      limits: Limits) -> Iterator[Verified | _Reject]:
    """Each layer's result, lazily (the caller stops at the first one it accepts)."""
    try:
        parsed = oci.parse_manifest(manifest, max_layers=limits.max_layers)
    except IntegrityError as e:
        yield _Reject(_MALFORMED, f"signature manifest {sig_tag(digest)}: {e.message}")
        return
    if not parsed.layers:
        yield _Reject(_NONE, f"signature manifest {sig_tag(digest)} has no layers")
        return
    spent = [0]  # payload bytes fetched so far, against limits.max_payload_total
    for i, layer in sorted(enumerate(parsed.layers), key=lambda x: x[1].size):  # smallest first, then in order
        try:
            key, annotations = _check_layer(digest, layer, blobs, keys, limits, f"{sig_tag(digest)} layer {i}",
                                            spent)
        except _Reject as r:
            yield r
            continue
        yield Verified(digest, CLASSIC, key, annotations, evidence=layer.digest)


def _check_statement(digest: str, payload_type: str, payload: bytes, signer: str, limits: Limits,
                     what: str) -> None:
    """What a DSSE envelope signed must be, however it was signed (key or keyless): an in-toto statement
    with cosign's sign predicate whose subjects include ``digest``. Raises :class:`_Reject`."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise _Reject(_MALFORMED, f"{what}: payload type {str(payload_type)[:80]!r} is not in-toto")
    statement = _load_json(payload, f"{what}: in-toto statement", limits.max_bundle_bytes)
    if not isinstance(statement.get("_type"), str) or statement["_type"] not in INTOTO_STATEMENT_TYPES:
        raise _Reject(_MALFORMED, f"{what}: not an in-toto statement")
    if statement.get("predicateType") != COSIGN_SIGN_PREDICATE:
        raise _Reject(_NONE, f"{what}: signed by {signer}, but its predicate "
                             f"{str(statement.get('predicateType'))[:80]!r} is an attestation, not an image signature")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or len(subjects) > limits.max_subjects:
        raise _Reject(_MALFORMED, f"{what}: statement has no subject, or too many")
    hexdigest = digest.removeprefix("sha256:")
    others = []
    for s in subjects:
        d = s.get("digest") if isinstance(s, dict) else None
        got = d.get("sha256") if isinstance(d, dict) else None
        if got == hexdigest:
            return
        others.append(f"sha256:{str(got)[:64]}")
    raise _Reject(_OTHER_DIGEST, f"{what}: signed by {signer} for another image, {', '.join(others[:3])}")


class _KeylessVerifier:
    """Loads the trusted root (and sigstore) on the first keyless bundle only, once per decision."""

    def __init__(self, trust: KeylessTrust | None) -> None:
        self.trust = trust
        self._verifier: Any = None

    def __call__(self, raw: bytes, what: str) -> tuple[str, bytes, Signer]:
        if self.trust is None or not self.trust.identities:
            raise _Reject(_UNTRUSTED, f"{what} is keyless (a certificate) and no keyless identities are "
                                      "configured ([trust] identities)")
        from shim.trust import keyless

        if self._verifier is None:
            self._verifier = keyless.load_verifier(self.trust.trusted_root)
        try:
            return keyless.verify_dsse(raw, self._verifier, self.trust.identities)
        except keyless.Rejected as e:
            raise _Reject(_MALFORMED if e.malformed else _UNTRUSTED, f"{what} (keyless) {e.reason}") from e


def _bundle_attempt(digest: str, raw: bytes, keys: Sequence[PublicKey], keyless: _KeylessVerifier,
                    limits: Limits, what: str) -> Verified:
    doc = _load_json(raw, what, limits.max_bundle_bytes)
    if not isinstance(doc.get("mediaType"), str) or doc["mediaType"] not in BUNDLE_MEDIA_TYPES:
        raise _Reject(_MALFORMED, f"{what} has media type {str(doc.get('mediaType'))[:80]!r}, not a v0.3 bundle")
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise _Reject(_NONE, f"{what} holds no DSSE envelope (a message signature is not an image signature)")
    if env.get("payloadType") != INTOTO_PAYLOAD_TYPE:
        raise _Reject(_MALFORMED, f"{what}: payload type {str(env.get('payloadType'))[:80]!r} is not in-toto")
    material = doc.get("verificationMaterial")
    if isinstance(material, dict) and ("certificate" in material or "x509CertificateChain" in material):
        payload_type, payload, signer = keyless(raw, what)
        _check_statement(digest, payload_type, payload, signer.name, limits, what)
        return Verified(digest, KEYLESS_BUNDLE, signer, evidence=oci.sha256_digest(raw))
    payload = _b64(env.get("payload"), f"{what}: DSSE payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise _Reject(_MALFORMED, f"{what}: DSSE envelope has no signatures")
    if len(sigs) > limits.max_dsse_signatures:
        raise _Reject(_MALFORMED, f"{what}: {len(sigs)} DSSE signatures, more than the limit of "
                                  f"{limits.max_dsse_signatures}")
    message = pae(INTOTO_PAYLOAD_TYPE, payload)
    key: PublicKey | None = None
    for i, s in enumerate(sigs):
        sig = _b64(s.get("sig") if isinstance(s, dict) else None, f"{what}: DSSE signature {i}")
        try:
            key = _verify_with_keys(sig, message, keys, what)
            break
        except _Reject:
            continue
    if key is None:
        raise _Reject(_UNTRUSTED, f"{what} is not signed by a trusted key")
    _check_statement(digest, INTOTO_PAYLOAD_TYPE, payload, key.name, limits, what)
    return Verified(digest, BUNDLE, key, evidence=oci.sha256_digest(raw))


def verify_bundle(digest: str, bundle: bytes, keys: Sequence[PublicKey], limits: Limits = DEFAULT_LIMITS,
                  keyless: KeylessTrust | None = None) -> Verified:
    """One Sigstore bundle for ``digest``, by a trusted key or (with ``keyless``) a trusted identity.
    Raises :class:`Denied`, or :class:`shim.common.errors.ConfigError` for an unusable trusted root."""
    return _best_verified([_bundle_attempts(digest, (bundle,), keys, _KeylessVerifier(keyless), limits)], digest,
                   keyless)


def _bundle_attempts(digest: str, bundles: Sequence[bytes], keys: Sequence[PublicKey], keyless: _KeylessVerifier,
                     limits: Limits) -> Iterator[Verified | _Reject]:
    """Each bundle's result, lazily (the caller stops at the first one it accepts)."""
    for i, raw in enumerate(bundles[: limits.max_bundles]):
        try:
            yield _bundle_attempt(digest, raw, keys, keyless, limits, f"bundle {i} for {digest}")
        except _Reject as r:
            yield r
    if len(bundles) > limits.max_bundles:
        yield _Reject(_MALFORMED, f"{len(bundles)} bundles; only the first {limits.max_bundles} were tried")


def verify(materials: Sequence[Material], keys: Sequence[PublicKey], limits: Limits = DEFAULT_LIMITS,
           keyless: KeylessTrust | None = None, judge: Judge | None = None) -> Verified:
    """Admit when any material (the image index's, the chosen platform manifest's) carries a valid
    signature for its own digest by a trusted key (either format) or, with ``keyless``, a keyless bundle
    by a trusted identity; bundles are tried first (cosign 3 does the same).

    With ``judge`` (scoped signers, :mod:`shim.trust.signers`) a valid signature counts only when its
    signer may vouch for this image's repository; among those, the signer allowed the highest level is
    returned (the level is checked once known, :mod:`shim.admission.decision`). A valid signature whose signer
    may not vouch for the repository is the denial's reason, naming the signer and its scope.

    Raises :class:`Denied` naming what was wrong, :class:`shim.common.errors.ConfigError` for an unusable trusted
    root; lets :class:`shim.common.errors.Unavailable` from a lazy blob fetch through (the decision could not be
    made)."""
    if not keys and not (keyless and keyless.identities):
        raise Denied("no trusted keys or keyless identities are configured", check="signature",
                     hint="list the team's public key under [trust] keys in /etc/bacon/config.toml")
    verifier = _KeylessVerifier(keyless)
    groups: list[Iterable[Verified | _Reject]] = []
    for m in materials:
        if m.bundles:
            groups.append(_bundle_attempts(m.digest, m.bundles, keys, verifier, limits))
        if m.classic_manifest is not None:
            groups.append(_classic_attempts(m.digest, m.classic_manifest, m.blobs, keys, limits))
    return _best_verified(groups, ", ".join(m.digest for m in materials) or "-", keyless, judge)


def evidence_of(materials: Sequence[Material], verified: Verified) -> Material | None:
    """Only what made ``verified``: its material's classic manifest and the one payload that verified, or
    the one bundle; ``None`` when none of ``materials`` holds it. What is worth keeping: the rest of the
    material (other layers' payloads, other bundles) may be up to the limits' totals of an attacker's bytes,
    which every later decision would otherwise read back."""
    for m in materials:
        if m.digest != verified.digest:
            continue
        if verified.format == CLASSIC and m.classic_manifest is not None:
            payload = m.blobs.get(verified.evidence)
            if payload is not None:
                return Material(m.digest, classic_manifest=m.classic_manifest, blobs={verified.evidence: payload})
        bundles = tuple(b for b in m.bundles if oci.sha256_digest(b) == verified.evidence)
        if verified.format != CLASSIC and bundles:
            return Material(m.digest, bundles=bundles[:1])
    return None


def _ceiling(info: scopes.SignerInfo) -> int:
    top = len(scopes.LEVELS) - 1
    return top if info.scope.max_level is None else scopes.LEVELS.index(info.scope.max_level)


def _best_verified(groups: Sequence[Iterable[Verified | _Reject]], digests: str, keyless: KeylessTrust | None = None,
            judge: Judge | None = None) -> Verified:
    rejects: list[_Reject] = []
    best: Verified | None = None
    for g in groups:
        for item in g:
            if isinstance(item, _Reject):
                rejects.append(item)
                continue
            if judge is None:
                return item
            refusal, info = judge(item)
            if refusal is not None:
                rejects.append(_Reject(_OUT_OF_SCOPE, refusal))
                continue
            if best is None or best.info is None or _ceiling(info) > _ceiling(best.info):
                best = replace(item, info=info)
            if _ceiling(info) == len(scopes.LEVELS) - 1:
                return best  # no signer could vouch for more
    if best is not None:
        return best
    # Not "sign it with bacon sign": that nudges whoever was refused to vouch for an image nobody reviewed.
    hint = ("do not sign it just to make it run: find out what it is first (`bacon image IMAGE` shows its digest "
            "and labels) and ask whoever builds and reviews it to sign that digest with a key listed under "
            "[trust] keys (cosign sign --key, or `nerdctl push` with [signing] key on their host)")
    if keyless and keyless.identities:
        hint += ", or keyless (cosign sign, bundle format) as an identity listed under [trust] identities"
    if not rejects or all(r.kind == _NONE for r in rejects):
        detail = f" ({rejects[0].reason})" if rejects else ""
        raise Denied(f"no signature found for {digests}{detail}", check="signature", hint=hint)
    worst = max(r.kind for r in rejects)
    shown = [r.reason for r in rejects if r.kind == worst][:3]
    more = len([r for r in rejects if r.kind == worst]) - len(shown)
    reasons = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    if worst == _UNSUPPORTED:
        hint = RESIGN_HINT
    if worst == _OUT_OF_SCOPE:
        hint = ("have the image signed by a signer whose scope covers its repository and level, or widen the "
                "signer's repositories/max_level under [trust] keys or identities (docs/scopes.md)")
    lead = {_UNSUPPORTED: "unsupported signature format", _UNTRUSTED: "signed only by untrusted keys or identities",
            _MALFORMED: "malformed signature", _OTHER_DIGEST: "signature for another digest",
            _OUT_OF_SCOPE: "no signer whose scope covers this image"}[worst]
    raise Denied(f"{lead}: {reasons}", check="signature", hint=hint)
