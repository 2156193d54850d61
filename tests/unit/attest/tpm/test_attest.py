"""Quote verification in software: the real TPM quote from the vectors verifies and fails once any byte
changes; quotes crafted here (ECDSA, RSASSA, RSA-PSS AKs) exercise each check on its own.

``craft_quote`` builds a TPMS_ATTEST and signs it like a TPM would; the check tests reuse it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from shim.attest.tpm import attest

VECTORS = Path(__file__).parents[3] / "vectors" / "tpm"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Evidence:
    message: bytes
    signature: bytes
    ak: bytes
    pcrs: dict[int, bytes]
    nonce: bytes


@cache
def real_evidence() -> Evidence:
    doc = json.loads((VECTORS / "tpm_evidence.json").read_text())
    q = doc["tpm_quote"]
    message = base64.b64decode(q["message"])
    nonce = attest.parse_attest(message).extra_data
    return Evidence(message=message, signature=base64.b64decode(q["signature"]), ak=base64.b64decode(doc["ak_public"]),
                    pcrs={i: bytes.fromhex(v) for i, v in enumerate(q["pcrs"])}, nonce=nonce)


@cache
def ec_key(seed: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0x1234567 + seed, ec.SECP256R1())


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def build_attest(nonce: bytes, pcrs: Mapping[int, bytes], *, bank_id: int = 0x000B, hash_name: str = "sha256",
                 magic: int = attest.TPM_GENERATED_VALUE, typ: int = attest.TPM_ST_ATTEST_QUOTE,
                 digest: bytes | None = None, select: tuple[int, ...] | None = None) -> bytes:
    bits = bytearray(3)
    for p in select if select is not None else pcrs:
        bits[p // 8] |= 1 << (p % 8)
    if digest is None:
        digest = hashlib.new(hash_name, b"".join(pcrs[p] for p in sorted(pcrs))).digest()
    signer = b"\x00\x0b" + bytes(32)
    return (struct.pack(">IH", magic, typ) + struct.pack(">H", len(signer)) + signer
            + struct.pack(">H", len(nonce)) + nonce + struct.pack(">QIIB", 12345, 1, 0, 1) + struct.pack(">Q", 7)
            + struct.pack(">IHB", 1, bank_id, 3) + bytes(bits) + struct.pack(">H", len(digest)) + digest)


def sign(key: PrivateKey, message: bytes, scheme: str = "", hash_name: str = "sha256") -> bytes:
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hash_name]
    hid = attest.HASH_IDS[hash_name]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(h)))
        rb, sb = r.to_bytes(32, "big"), s.to_bytes(32, "big")
        return struct.pack(">HHH", attest.SIG_ECDSA, hid, 32) + rb + struct.pack(">H", 32) + sb
    if scheme == "rsapss":
        sig = key.sign(message, padding.PSS(mgf=padding.MGF1(h), salt_length=32), h)
        return struct.pack(">HHH", attest.SIG_RSAPSS, hid, len(sig)) + sig
    sig = key.sign(message, padding.PKCS1v15(), h)
    return struct.pack(">HHH", attest.SIG_RSASSA, hid, len(sig)) + sig


def craft_quote(nonce: bytes, pcrs: Mapping[int, bytes], key: PrivateKey | None = None, scheme: str = "",
                **kw: object) -> tuple[bytes, bytes]:
    """(TPMS_ATTEST, TPMT_SIGNATURE) for ``pcrs`` and ``nonce``, signed by ``key`` (default: ``ec_key()``)."""
    key = key or ec_key()
    message = build_attest(nonce, pcrs, **kw)  # type: ignore[arg-type]
    return message, sign(key, message, scheme)


PCRS = {0: bytes(32), 7: hashlib.sha256(b"sb").digest(), 23: b"\x17" * 32}
NONCE = bytes(range(32))


# --- the real quote ----------------------------------------------------------------------------------------

def test_real_quote_verifies() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    att = attest.verify_quote(ev.message, ev.signature, key, nonce=ev.nonce, pcrs=ev.pcrs)
    assert att.selection == (("sha256", tuple(range(24))),)
    assert attest.parse_signature(ev.signature).scheme == "rsassa"


def test_real_quote_fails_once_any_byte_of_the_message_changes() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    for i in range(len(ev.message)):
        flipped = bytearray(ev.message)
        flipped[i] ^= 0x01
        with pytest.raises(attest.QuoteError):
            attest.verify_quote(bytes(flipped), ev.signature, key, nonce=ev.nonce, pcrs=ev.pcrs)


def test_real_quote_fails_once_any_byte_of_the_signature_changes() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    for i in range(len(ev.signature)):
        flipped = bytearray(ev.signature)
        flipped[i] ^= 0x80
        with pytest.raises(attest.QuoteError):
            attest.verify_quote(ev.message, bytes(flipped), key, nonce=ev.nonce, pcrs=ev.pcrs)


def test_real_quote_fails_once_any_pcr_value_changes() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    for p in ev.pcrs:
        pcrs = dict(ev.pcrs)
        pcrs[p] = bytes(b ^ 1 for b in pcrs[p][:1]) + pcrs[p][1:]
        with pytest.raises(attest.PcrDigestMismatch):
            attest.verify_quote(ev.message, ev.signature, key, nonce=ev.nonce, pcrs=pcrs)


def test_real_quote_fails_with_another_nonce_or_key() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    with pytest.raises(attest.NonceMismatch, match="replayed or foreign"):
        attest.verify_quote(ev.message, ev.signature, key, nonce=bytes(32), pcrs=ev.pcrs)
    with pytest.raises(attest.BadSignature, match="another key"):
        attest.verify_quote(ev.message, ev.signature, rsa_key().public_key(), nonce=ev.nonce, pcrs=ev.pcrs)
    with pytest.raises(attest.BadSignature, match="ECC key"):
        attest.verify_quote(ev.message, ev.signature, ec_key().public_key(), nonce=ev.nonce, pcrs=ev.pcrs)


def test_real_quote_requires_exactly_its_pcr_selection() -> None:
    ev = real_evidence()
    key = attest.load_public_key(ev.ak)
    subset = {p: v for p, v in ev.pcrs.items() if p < 8}
    with pytest.raises(attest.QuoteError, match="covers PCRs sha256:0,1,2"):
        attest.verify_quote(ev.message, ev.signature, key, nonce=ev.nonce, pcrs=subset)


# --- crafted quotes: each check on its own -------------------------------------------------------------------

@pytest.mark.parametrize(("key", "scheme"), [(ec_key(), ""), (rsa_key(), "rsassa"), (rsa_key(), "rsapss")])
def test_crafted_quotes_verify_for_each_scheme(key: PrivateKey, scheme: str) -> None:
    message, sig = craft_quote(NONCE, PCRS, key, scheme)
    pub = attest.load_public_key(pem(key))
    att = attest.verify_quote(message, sig, pub, nonce=NONCE, pcrs=PCRS)
    assert att.extra_data == NONCE
    assert att.reset_count == 1
    assert att.safe
    assert attest.parse_signature(sig).scheme == (scheme or "ecdsa")


def test_wrong_magic_is_refused() -> None:
    message, sig = craft_quote(NONCE, PCRS, magic=0xFF544348)
    with pytest.raises(attest.QuoteError, match="magic"):
        attest.verify_quote(message, sig, ec_key().public_key(), nonce=NONCE, pcrs=PCRS)


def test_other_attestation_types_are_refused() -> None:
    message, sig = craft_quote(NONCE, PCRS, typ=0x8017)  # TPM_ST_ATTEST_CERTIFY
    with pytest.raises(attest.QuoteError, match="not a quote"):
        attest.verify_quote(message, sig, ec_key().public_key(), nonce=NONCE, pcrs=PCRS)


def test_other_bank_or_selection_is_refused() -> None:
    message, sig = craft_quote(NONCE, PCRS, bank_id=0x0004)
    with pytest.raises(attest.QuoteError, match="covers PCRs sha1:0,7,23"):
        attest.verify_quote(message, sig, ec_key().public_key(), nonce=NONCE, pcrs=PCRS)
    message, sig = craft_quote(NONCE, PCRS, select=(0, 7))
    with pytest.raises(attest.QuoteError, match="covers PCRs sha256:0,7,"):
        attest.verify_quote(message, sig, ec_key().public_key(), nonce=NONCE, pcrs=PCRS)


def test_pcr_digest_mismatch_is_its_own_error() -> None:
    message, sig = craft_quote(NONCE, PCRS, digest=bytes(32))
    with pytest.raises(attest.PcrDigestMismatch, match="changed between read and quote"):
        attest.verify_quote(message, sig, ec_key().public_key(), nonce=NONCE, pcrs=PCRS)


def test_trailing_bytes_and_truncation_are_refused() -> None:
    message, _ = craft_quote(NONCE, PCRS)
    for bad in (message + b"\x00", message[:-1]):
        with pytest.raises(attest.QuoteError, match=r"trailing|truncated"):
            attest.parse_attest(bad)
    _, sig = craft_quote(NONCE, PCRS)
    with pytest.raises(attest.QuoteError, match="trailing"):
        attest.parse_signature(sig + b"\x00")


def test_sha1_signatures_and_small_rsa_keys_are_refused() -> None:
    sig = struct.pack(">HHH", attest.SIG_RSASSA, 0x0004, 1) + b"\x00"
    with pytest.raises(attest.QuoteError, match="sha1 is not accepted"):
        attest.parse_signature(sig)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - a weak key the verifier must refuse
    with pytest.raises(attest.QuoteError, match="1024-bit"):
        attest.load_public_key(pem(small))
    with pytest.raises(attest.QuoteError, match="not a PEM or DER"):
        attest.load_public_key(b"garbage")


def test_der_and_pem_keys_have_the_same_fingerprint() -> None:
    der = ec_key().public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    a, b = attest.load_public_key(der), attest.load_public_key(pem(ec_key()))
    assert attest.fingerprint(a) == attest.fingerprint(b)
    assert attest.fingerprint(a).startswith("sha256:")


def test_parse_pcr_values_file() -> None:
    blob = b"".join(PCRS[p] for p in sorted(PCRS))
    assert attest.parse_pcr_values(blob, [23, 0, 7], 32) == PCRS
    with pytest.raises(attest.QuoteError, match="expected 3 values"):
        attest.parse_pcr_values(blob[:-1], [0, 7, 23], 32)


def test_serialized_pcrs_round_trip_for_keylime() -> None:
    values = {p: bytes([p]) * 32 for p in (0, 1, 2, 3, 4, 5, 7, 9, 14)}  # more than one TPML_DIGEST
    blob = attest.serialize_pcrs("sha256", values)
    assert attest.parse_serialized_pcrs(blob) == {"sha256": values}
