"""Trusted public keys (verification) and signing keys, in the formats cosign reads and writes.

Public keys are PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo). **A key's own type decides the one algorithm
it verifies with**; a signature made with another algorithm (another hash, RSA-PSS for a PKCS#1 key …)
does not verify:

=================  ===========================  ==============================================
key type            algorithm                    accepted as a trusted key
=================  ===========================  ==============================================
``ecdsa-p256``      ECDSA, SHA-256, ASN.1 DER    by default (what ``cosign generate-key-pair`` makes)
``ecdsa-p384``      ECDSA, SHA-384, ASN.1 DER    only when listed in ``allowed``
``ecdsa-p521``      ECDSA, SHA-512, ASN.1 DER    only when listed in ``allowed``
``rsa``             RSASSA-PKCS1-v1_5, SHA-256   only when listed in ``allowed``; 2048-8192 bits
``ed25519``         Ed25519 (pure)               only when listed in ``allowed``
=================  ===========================  ==============================================

The hash per curve follows sigstore's algorithm registry (sigstore-go, cosign 3). Debian's cosign 2.5
imports and signs with P-256 and Ed25519 keys only (``import-key-pair`` refuses P-384 and RSA keys), so
interop is tested with those two. Trusting only P-256 by default means a host configured with the team's
P-256 key refuses an RSA or P-384 key put in its place (a :class:`ConfigError`), not only signatures made
with one.

Signing keys: cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` (and the legacy ``ENCRYPTED COSIGN PRIVATE
KEY``): JSON with scrypt parameters and a NaCl secretbox over the PKCS#8 DER (docs/signatures.md
§4); the password comes from ``COSIGN_PASSWORD``. Also plain PKCS#8 / ``EC PRIVATE KEY`` PEM. The scrypt
KDF is ``hashlib.scrypt`` (OpenSSL) with an explicit ``maxmem``; the secretbox is PyNaCl, as
``cryptography`` has no XSalsa20-Poly1305. Both are a few lines here because no Python library reads
cosign's key file (sigstore-python signs keyless only, sigstore-python#916).

``cryptography`` is imported at module level (every user of this module verifies or signs); ``nacl`` only
when an encrypted cosign key is opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from shim.common import trustedfile
from shim.common.errors import ConfigError, Denied

ECDSA_P256 = "ecdsa-p256"
ECDSA_P384 = "ecdsa-p384"
ECDSA_P521 = "ecdsa-p521"
RSA = "rsa"
ED25519 = "ed25519"
KEY_TYPES: frozenset[str] = frozenset({ECDSA_P256, ECDSA_P384, ECDSA_P521, RSA, ED25519})
DEFAULT_ALLOWED: frozenset[str] = frozenset({ECDSA_P256})

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
MAX_KEY_FILE_BYTES = 64 << 10
MAX_SIGNATURE_BYTES = 2048  # RSA-8192 is 1024 bytes; anything longer is not a signature we verify

# scrypt parameters cosign writes (N = 2^15 … 2^17, r = 8, p = 1); anything else is refused so that a
# key file cannot make us allocate gigabytes.
SCRYPT_N = frozenset({1 << 15, 1 << 16, 1 << 17})
SCRYPT_R = 8
SCRYPT_P = 1
COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")

_CURVES = {"secp256r1": (ECDSA_P256, hashes.SHA256), "secp384r1": (ECDSA_P384, hashes.SHA384),
           "secp521r1": (ECDSA_P521, hashes.SHA512)}

PublicKeyObject = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKeyObject = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _key_type(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        entry = _CURVES.get(key.curve.name)
        if entry is None:
            raise ConfigError(f"unsupported elliptic curve {key.curve.name}", hint="use an ECDSA P-256 key")
        return entry[0]
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise ConfigError(f"RSA key of {key.key_size} bits: only {RSA_MIN_BITS}-{RSA_MAX_BITS} bits are accepted")
        return RSA
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return ED25519
    raise ConfigError(f"unsupported key type {type(key).__name__}",
                      hint="use an ECDSA P-256 key (cosign generate-key-pair)")


def _hash_for(key_type: str) -> hashes.HashAlgorithm:
    for kt, h in _CURVES.values():
        if kt == key_type:
            return h()
    return hashes.SHA256()


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key. ``name`` says where it came from (a path), for messages and the audit.

    ``key_id`` is ``sha256:`` + hex of the DER SubjectPublicKeyInfo; ``hint`` is cosign's spelling of
    the same hash (std base64), as found in a bundle's ``verificationMaterial.publicKey.hint``."""

    name: str
    key_type: str
    der: bytes
    key: PublicKeyObject

    @property
    def key_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    @property
    def hint(self) -> str:
        return base64.b64encode(hashlib.sha256(self.der).digest()).decode()

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`Denied` unless ``signature`` is this key's signature over ``message`` with the
        key type's algorithm (module docstring)."""
        if not signature or len(signature) > MAX_SIGNATURE_BYTES:
            raise Denied(f"signature of {len(signature)} bytes cannot be from key {self.name}", check="signature")
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, message, ec.ECDSA(_hash_for(self.key_type)))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                self.key.verify(signature, message)
        except (InvalidSignature, ValueError) as e:
            raise Denied(f"signature does not verify with key {self.name}", check="signature") from e


def load_public_key(pem: bytes, name: str, allowed: Collection[str] = DEFAULT_ALLOWED) -> PublicKey:
    """One PEM ``PUBLIC KEY``. Raises :class:`ConfigError` when it is not one, or its type is not in
    ``allowed``."""
    if len(pem) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"key {name} is larger than {MAX_KEY_FILE_BYTES} bytes")
    if b"-----BEGIN PUBLIC KEY-----" not in pem:
        raise ConfigError(f"key {name} is not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                          hint="use the .pub file written by cosign generate-key-pair")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ConfigError(f"key {name} is not a valid PEM public key: {e}") from e
    key_type = _key_type(key)
    if key_type not in allowed:
        raise ConfigError(
            f"key {name} is an {key_type} key; this host accepts only {', '.join(sorted(allowed))} keys",
            hint="use the team's ECDSA P-256 key (cosign generate-key-pair), or allow the key type explicitly")
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(name=name, key_type=key_type, der=der, key=key)


def load_trusted_keys(paths: Sequence[Path], allowed: Collection[str] = DEFAULT_ALLOWED) -> tuple[PublicKey, ...]:
    """Every configured trusted key. Raises :class:`ConfigError` for a missing, unreadable or wrong key
    (one bad key makes the trust configuration wrong, it is not skipped)."""
    unknown = set(allowed) - KEY_TYPES
    if unknown:
        raise ConfigError(f"unknown key types {sorted(unknown)}; known: {sorted(KEY_TYPES)}")
    out = []
    for p in paths:  # owned by root, writable by nobody else along its path: whoever can write it is trusted
        data = trustedfile.read(p, "trusted key", max_size=MAX_KEY_FILE_BYTES + 1)
        out.append(load_public_key(data, str(p), allowed))
    return tuple(out)


@dataclass(frozen=True)
class SigningKey:
    """A private key to sign with, and its public half."""

    name: str
    key_type: str
    key: PrivateKeyObject

    def public_key(self) -> PublicKey:
        pub = self.key.public_key()
        der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return PublicKey(name=self.name, key_type=self.key_type, der=der, key=pub)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, message: bytes) -> bytes:
        """The signature over ``message`` in the key type's algorithm (ECDSA: ASN.1 DER)."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(message, ec.ECDSA(_hash_for(self.key_type)))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(message)


def _pem_body(pem: bytes, label: str) -> bytes:
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    start = pem.index(begin) + len(begin)
    stop = pem.index(end, start)
    try:
        return base64.b64decode(b"".join(pem[start:stop].split()), validate=True)
    except binascii.Error as e:
        raise ConfigError(f"{label}: the PEM body is not base64") from e


def _b64(obj: Mapping[str, Any], key: str, what: str) -> bytes:
    v = obj.get(key)
    if not isinstance(v, str):
        raise ConfigError(f"{what}: missing {key}")
    try:
        return base64.b64decode(v, validate=True)
    except binascii.Error as e:
        raise ConfigError(f"{what}: {key} is not base64") from e


def decrypt_cosign_key(body: bytes, password: bytes, name: str) -> bytes:
    """The PKCS#8 DER inside a cosign encrypted key body (the JSON). Raises :class:`ConfigError`."""
    what = f"cosign key {name}"
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = params["N"], params["r"], params["p"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{what}: not a cosign encrypted key ({e})") from e
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise ConfigError(f"{what}: unsupported kdf {kdf.get('name')!r} or cipher {cipher.get('name')!r}")
    if n not in SCRYPT_N or r != SCRYPT_R or p != SCRYPT_P:
        raise ConfigError(f"{what}: scrypt parameters N={n} r={r} p={p} are not ones cosign writes")
    salt, nonce, ciphertext = _b64(kdf, "salt", what), _b64(cipher, "nonce", what), _b64(doc, "ciphertext", what)
    # OpenSSL needs 128*r*(N+2) bytes for V plus 128*r*p for B; leave 1 MiB of room.
    maxmem = 128 * r * (n + 2) + 128 * r * p + (1 << 20)
    secret = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)
    import nacl.exceptions
    import nacl.secret

    try:
        return bytes(nacl.secret.SecretBox(secret).decrypt(ciphertext, nonce))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise ConfigError(f"{what}: cannot decrypt it (wrong COSIGN_PASSWORD?)",
                          hint="set COSIGN_PASSWORD to the key's password") from e


def load_signing_key(pem: bytes, name: str, password: bytes | None = None) -> SigningKey:
    """A signing key from a cosign encrypted key, or a plain PKCS#8 / EC PEM private key.

    ``password`` is needed for an encrypted key (an empty password is a password). Raises
    :class:`ConfigError`."""
    if len(pem) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"key {name} is larger than {MAX_KEY_FILE_BYTES} bytes")
    try:
        label = next((lb for lb in COSIGN_PEM_TYPES if f"-----BEGIN {lb}-----".encode() in pem), None)
        if label is not None:
            if password is None:
                raise ConfigError(f"signing key {name} is encrypted and COSIGN_PASSWORD is not set",
                                  hint="export COSIGN_PASSWORD (empty if the key has no password)")
            der = decrypt_cosign_key(_pem_body(pem, label), password, name)
            key = serialization.load_der_private_key(der, password=None)
        else:
            encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem
            key = serialization.load_pem_private_key(pem, password=password if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError(f"signing key {name} is not a key this tool reads: {e}",
                          hint="use cosign.key from cosign generate-key-pair, or a PKCS#8 PEM key") from e
    key_type = _key_type(key)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
    return SigningKey(name=name, key_type=key_type, key=key)


def load_signing_key_file(path: Path, environ: Mapping[str, str] | None = None) -> SigningKey:
    """:func:`load_signing_key` from a file, the password from ``COSIGN_PASSWORD`` in ``environ``."""
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read signing key {path}: {e.strerror}") from e
    pw = env.get("COSIGN_PASSWORD")
    return load_signing_key(data, str(path), pw.encode() if pw is not None else None)
