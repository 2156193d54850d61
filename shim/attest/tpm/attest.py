"""Verify a TPM 2.0 quote in software: TPMS_ATTEST, TPMT_SIGNATURE, the AK's public key, the PCR values.

What is checked, in the order ``tpm2_checkquote`` checks it (tpm2-tools ``tools/misc/tpm2_checkquote.c``):

1. the signature over the raw ``TPMS_ATTEST`` bytes, by the attestation key (ECDSA, RSASSA-PKCS1-v1_5 or
   RSASSA-PSS; SHA-256/384/512 only);
2. ``magic`` is ``TPM_GENERATED_VALUE`` (0xFF544347) and ``type`` is ``TPM_ST_ATTEST_QUOTE`` (0x8018);
3. ``extraData`` is the verifier's nonce (constant-time compare);
4. the quote selects exactly the PCRs the verifier asked for, in the expected bank;
5. ``pcrDigest`` = H(the selected PCR values, ascending index), H being the signature's hash.

Why this is hand-parsed rather than done with tpm2-pytss (``TPMS_ATTEST.unmarshal``,
``TPMT_SIGNATURE.verify_signature``):

- The verifier must not depend on the thing it verifies. Parsing here is strict (every length bounded, no
  trailing bytes, unknown algorithms refused) and the policy is ours (no SHA-1, RSA >= 2048, exact PCR
  selection), where ``verify_signature`` accepts whatever scheme the signature names.
- It runs where there is no TPM and no libtss2: an outside verifier, ``bacon quote`` self-checks, the unit
  tests over the real vector. tpm2-pytss needs the native tss2 libraries and costs ~110 ms to import; this
  module needs only ``cryptography`` (which tpm2-pytss itself uses for the same verification).
- The structures involved are small and fixed by the TPM 2.0 spec, Part 2 (big-endian, TPM2B = u16 size +
  bytes): about a hundred lines.

Pure: functions over bytes. Raises :class:`QuoteError` (subclasses say which check failed).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
MAX_ATTEST_SIZE = 1024  # sizeof(TPMS_ATTEST) is far below this
MAX_SIGNATURE_SIZE = 1024

HASH_ALGS: Mapping[int, str] = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
HASH_IDS: Mapping[str, int] = {v: k for k, v in HASH_ALGS.items()}
ACCEPTED_HASHES = frozenset({"sha256", "sha384", "sha512"})
SIG_RSASSA, SIG_RSAPSS, SIG_ECDSA = 0x0014, 0x0016, 0x0018
SIG_NAMES: Mapping[int, str] = {SIG_RSASSA: "rsassa", SIG_RSAPSS: "rsapss", SIG_ECDSA: "ecdsa"}
MIN_RSA_BITS = 2048
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

AkPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class QuoteError(ValueError):
    """The quote does not verify (the message says which check failed)."""


class BadSignature(QuoteError):
    """The signature is not the AK's over these bytes."""


class NonceMismatch(QuoteError):
    """The quote is not for this nonce (a replay, or another verifier's quote)."""


class PcrDigestMismatch(QuoteError):
    """The PCR values given are not those the TPM quoted (changed in between, or not this TPM's)."""


@dataclass(frozen=True)
class Attest:
    """A parsed ``TPMS_ATTEST`` of type quote."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    selection: tuple[tuple[str, tuple[int, ...]], ...]  # (bank, PCRs) per TPMS_PCR_SELECTION
    pcr_digest: bytes


@dataclass(frozen=True)
class Signature:
    """A parsed ``TPMT_SIGNATURE``: scheme (``ecdsa``, ``rsassa``, ``rsapss``), hash, and the value(s)."""

    scheme: str
    hash: str
    value: bytes  # RSA: the signature; ECDSA: DER-encoded (r, s)


class _Reader:
    def __init__(self, buf: bytes, what: str) -> None:
        self.buf, self.off, self.what = buf, 0, what

    def take(self, n: int, field: str) -> bytes:
        if self.off + n > len(self.buf):
            raise QuoteError(f"{self.what} is truncated in {field} (offset {self.off})")
        out = self.buf[self.off : self.off + n]
        self.off += n
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int(struct.unpack(">H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack(">I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        return int(struct.unpack(">Q", self.take(8, field))[0])

    def tpm2b(self, field: str, limit: int) -> bytes:
        n = self.u16(field)
        if n > limit:
            raise QuoteError(f"{self.what}: {field} claims {n} bytes (at most {limit})")
        return self.take(n, field)

    def end(self) -> None:
        if self.off != len(self.buf):
            raise QuoteError(f"{self.what} has {len(self.buf) - self.off} trailing bytes")


def parse_attest(raw: bytes) -> Attest:
    """Parse a quote's ``TPMS_ATTEST`` (not its checks: see :func:`verify_quote`). Raises :class:`QuoteError`."""
    if len(raw) > MAX_ATTEST_SIZE:
        raise QuoteError(f"quote message is {len(raw)} bytes, more than {MAX_ATTEST_SIZE}")
    r = _Reader(raw, "quote message (TPMS_ATTEST)")
    magic = r.u32("magic")
    typ = r.u16("type")
    if typ != TPM_ST_ATTEST_QUOTE:
        raise QuoteError(f"TPMS_ATTEST type is 0x{typ:04x}, not a quote (0x{TPM_ST_ATTEST_QUOTE:04x})")
    signer = r.tpm2b("qualifiedSigner", 2 + 64)
    extra = r.tpm2b("extraData", 64)
    clock, reset, restart, safe = r.u64("clock"), r.u32("resetCount"), r.u32("restartCount"), r.u8("safe")
    fw = r.u64("firmwareVersion")
    count = r.u32("pcrSelect.count")
    if count > 16:
        raise QuoteError(f"quote selects {count} PCR banks")
    selection: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(count):
        alg = r.u16("pcrSelect.hash")
        size = r.u8("pcrSelect.sizeofSelect")
        if size > 4:
            raise QuoteError(f"quote's PCR select is {size} bytes (at most 4)")
        bits = r.take(size, "pcrSelect.pcrSelect")
        pcrs = tuple(i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1)
        name = HASH_ALGS.get(alg, f"0x{alg:04x}")
        selection.append((name, pcrs))
    digest = r.tpm2b("pcrDigest", 64)
    r.end()
    return Attest(magic, typ, signer, extra, clock, reset, restart, bool(safe), fw, tuple(selection), digest)


def parse_signature(raw: bytes) -> Signature:
    """Parse a marshalled ``TPMT_SIGNATURE`` (``tpm2_quote -s``, format tss). Raises :class:`QuoteError`."""
    if len(raw) > MAX_SIGNATURE_SIZE:
        raise QuoteError(f"signature is {len(raw)} bytes, more than {MAX_SIGNATURE_SIZE}")
    r = _Reader(raw, "signature (TPMT_SIGNATURE)")
    alg = r.u16("sigAlg")
    scheme = SIG_NAMES.get(alg)
    if scheme is None:
        raise QuoteError(f"signature scheme 0x{alg:04x} is not accepted (ECDSA, RSASSA or RSAPSS)")
    hash_id = r.u16("hash")
    hash_name = HASH_ALGS.get(hash_id, f"0x{hash_id:04x}")
    if hash_name not in ACCEPTED_HASHES:
        raise QuoteError(f"signature hash {hash_name} is not accepted (SHA-256, SHA-384 or SHA-512)")
    if alg == SIG_ECDSA:
        sig_r = int.from_bytes(r.tpm2b("signatureR", 66), "big")
        sig_s = int.from_bytes(r.tpm2b("signatureS", 66), "big")
        value = encode_dss_signature(sig_r, sig_s)
    else:
        value = r.tpm2b("sig", 512)
    r.end()
    return Signature(scheme, hash_name, value)


def load_public_key(data: bytes) -> AkPublicKey:
    """The AK's public key from PEM or DER SubjectPublicKeyInfo. Raises :class:`QuoteError`."""
    try:
        key = (serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----")
               else serialization.load_der_public_key(data))
    except (ValueError, UnsupportedAlgorithm) as e:  # UnsupportedAlgorithm: e.g. an EC key on an unknown curve
        raise QuoteError(f"the AK public key is not a PEM or DER public key: {e}") from e
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise QuoteError(f"the AK is a {key.key_size}-bit RSA key (at least {MIN_RSA_BITS} bits)")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise QuoteError(f"the AK's curve {key.curve.name} is not accepted (P-256, P-384, P-521)")
        return key
    raise QuoteError(f"the AK is a {type(key).__name__}, not an RSA or ECC key")


def public_key_pem(key: AkPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key: AkPublicKey) -> str:
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo: how an AK is named in messages and baselines."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _hash_obj(name: str) -> hashes.HashAlgorithm:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]


def verify_signature(message: bytes, sig: Signature, key: AkPublicKey) -> None:
    """Raise :class:`BadSignature` unless ``sig`` is ``key``'s signature over ``message``."""
    h = _hash_obj(sig.hash)
    try:
        if sig.scheme == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise BadSignature("the signature is ECDSA but the AK is an RSA key")
            key.verify(sig.value, message, ec.ECDSA(h))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise BadSignature(f"the signature is {sig.scheme.upper()} but the AK is an ECC key")
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if sig.scheme == "rsassa"
                else padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO))
            key.verify(sig.value, message, pad, h)
    except InvalidSignature as e:
        raise BadSignature("the quote's signature does not verify with the attestation key "
                           f"{fingerprint(key)}: the quote was altered or signed by another key") from e


def pcr_digest(values: Sequence[bytes], hash_name: str) -> bytes:
    """H(v0 ‖ v1 ‖ …): the quote's ``pcrDigest`` over PCR values in ascending index order."""
    return hashlib.new(hash_name, b"".join(values)).digest()


def verify_quote(
    message: bytes,
    signature: bytes,
    ak: AkPublicKey,
    *,
    nonce: bytes,
    pcrs: Mapping[int, bytes],
    bank: str = "sha256",
) -> Attest:
    """Verify a quote against the verifier's nonce and the PCR values it was given; return the parsed quote.

    ``pcrs``: every PCR the quote must cover (exactly those) → its value in ``bank``.
    Raises :class:`QuoteError` (:class:`BadSignature`, :class:`NonceMismatch`, :class:`PcrDigestMismatch`).
    """
    sig = parse_signature(signature)
    verify_signature(message, sig, ak)
    att = parse_attest(message)
    if att.magic != TPM_GENERATED_VALUE:
        raise QuoteError(f"TPMS_ATTEST magic is 0x{att.magic:08x}, not TPM_GENERATED_VALUE: not made by a TPM")
    if not hmac.compare_digest(att.extra_data, nonce):
        raise NonceMismatch(f"the quote is for nonce {att.extra_data.hex() or '(empty)'}, not {nonce.hex()}: "
                            "a replayed or foreign quote")
    selected: dict[str, set[int]] = {}
    for name, sel in att.selection:
        if sel:
            selected.setdefault(name, set()).update(sel)
    want = {bank: set(pcrs)}
    if selected != want:
        got = "; ".join(f"{b}:{','.join(map(str, sorted(s)))}" for b, s in sorted(selected.items())) or "none"
        raise QuoteError(f"the quote covers PCRs {got}, not {bank}:{','.join(map(str, sorted(pcrs)))}")
    expected = pcr_digest([pcrs[i] for i in sorted(pcrs)], sig.hash)
    if not hmac.compare_digest(att.pcr_digest, expected):
        raise PcrDigestMismatch(
            f"the quote's PCR digest {att.pcr_digest.hex()[:16]}… is not the digest of the PCR values read "
            f"({expected.hex()[:16]}…): the PCRs changed between read and quote, or the values are not this TPM's")
    return att


def parse_pcr_values(blob: bytes, pcrs: Sequence[int], size: int) -> dict[int, bytes]:
    """Split a ``values``-format PCR file (``tpm2_pcrread -o``, ``tpm2_quote -o``): the digests concatenated
    in ascending PCR order. Raises :class:`QuoteError` when the size does not fit the selection."""
    order = sorted(pcrs)
    if len(blob) != size * len(order):
        raise QuoteError(f"PCR file is {len(blob)} bytes, expected {len(order)} values of {size} bytes")
    return {p: blob[i * size : (i + 1) * size] for i, p in enumerate(order)}


_SEL_SIZE, _SEL_SLOTS, _DIGEST_SLOTS, _DIGEST_BUF = 8, 16, 8, 64
_SEL_LIST_SIZE = 4 + _SEL_SLOTS * _SEL_SIZE  # TPML_PCR_SELECTION as a C struct
_DIGEST_LIST_SIZE = 4 + _DIGEST_SLOTS * (2 + _DIGEST_BUF)  # TPML_DIGEST as a C struct


def parse_serialized_pcrs(blob: bytes) -> dict[str, dict[int, bytes]]:
    """Parse tpm2-tools' ``serialized`` PCR file (``tpm2_quote -o`` without ``-F values``): the C structs
    ``TPML_PCR_SELECTION``, a u32 count and that many ``TPML_DIGEST``, in the host's (little-endian) layout.
    Returns bank → PCR → value. Raises :class:`QuoteError`."""
    if len(blob) < _SEL_LIST_SIZE + 4:
        raise QuoteError(f"PCR file is {len(blob)} bytes: not a serialized PCR file")
    (n_sel,) = struct.unpack_from("<I", blob, 0)
    (n_lists,) = struct.unpack_from("<I", blob, _SEL_LIST_SIZE)
    if n_sel > _SEL_SLOTS or len(blob) != _SEL_LIST_SIZE + 4 + n_lists * _DIGEST_LIST_SIZE:
        raise QuoteError(f"PCR file is {len(blob)} bytes: not a serialized PCR file")
    wanted: list[tuple[str, int]] = []
    for i in range(n_sel):
        alg, size = struct.unpack_from("<HB", blob, 4 + i * _SEL_SIZE)
        bits = blob[4 + i * _SEL_SIZE + 3 : 4 + i * _SEL_SIZE + 3 + min(size, 4)]
        name = HASH_ALGS.get(alg, f"0x{alg:04x}")
        wanted.extend((name, j * 8 + b) for j, byte in enumerate(bits) for b in range(8) if byte >> b & 1)
    values: list[bytes] = []
    for k in range(n_lists):
        base = _SEL_LIST_SIZE + 4 + k * _DIGEST_LIST_SIZE
        (count,) = struct.unpack_from("<I", blob, base)
        if count > _DIGEST_SLOTS:
            raise QuoteError("serialized PCR file has a digest list of more than 8 values")
        for j in range(count):
            off = base + 4 + j * (2 + _DIGEST_BUF)
            (size,) = struct.unpack_from("<H", blob, off)
            if size > _DIGEST_BUF:
                raise QuoteError("serialized PCR file has a digest larger than 64 bytes")
            values.append(blob[off + 2 : off + 2 + size])
    if len(values) != len(wanted):
        raise QuoteError(f"serialized PCR file selects {len(wanted)} PCRs but holds {len(values)} values")
    out: dict[str, dict[int, bytes]] = {}
    for (bank, pcr), value in zip(wanted, values, strict=True):
        out.setdefault(bank, {})[pcr] = value
    return out


def serialize_pcrs(bank: str, values: Mapping[int, bytes]) -> bytes:
    """The inverse of :func:`parse_serialized_pcrs` for one bank: tpm2-tools' ``serialized`` PCR file, the
    form Keylime's verifier takes a quote's PCRs in (``r<quote>:<signature>:<this>``, each base64)."""
    order = sorted(values)
    bits = bytearray(4)
    for p in order:
        bits[p // 8] |= 1 << (p % 8)
    selection = struct.pack("<I", 1) + struct.pack("<HB", HASH_IDS[bank], 3) + bytes(bits) + b"\0"
    selection = selection.ljust(_SEL_LIST_SIZE, b"\0")
    lists = [order[i : i + _DIGEST_SLOTS] for i in range(0, len(order), _DIGEST_SLOTS)]
    out = selection + struct.pack("<I", len(lists))
    for chunk in lists:
        body = struct.pack("<I", len(chunk)) + b"".join(
            struct.pack("<H", len(values[p])) + values[p].ljust(_DIGEST_BUF, b"\0") for p in chunk)
        out += body.ljust(_DIGEST_LIST_SIZE, b"\0")
    return out
