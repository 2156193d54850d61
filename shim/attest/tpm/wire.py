"""The TPM 2.0 commands BACON needs, marshalled here and sent over the TCTI directly.

``TPM2_CreatePrimary`` (the AK under the endorsement hierarchy), ``TPM2_Quote``, ``TPM2_PCR_Read``,
``TPM2_FlushContext``, and ``TPM2_PCR_Extend`` (a measured launch, :mod:`shim.attest.measure`), with the
empty-password session (``TPM_RS_PW``) where the TPM asks for one, over the kernel's resource manager
(``device:/dev/tpmrm0``: write a command, read the response) or swtpm's server socket
(``swtpm:host=…,port=…``: raw commands, as tpm2-tss's swtpm TCTI sends them).

Why not tpm2-pytss (which :mod:`shim.attest.tpm.device` still uses for ``tabrmd`` and ``mssim``): importing it
costs ~110 ms and ~9 MB of memory per admission, for four fixed commands of a few dozen bytes each
(TPM 2.0 Part 3 §12.1, §18.4, §22.4, §28.4; structures in Part 2, big-endian). Nothing here decides:
the quote, the AK's public key and the PCR values are verified in software by :mod:`shim.attest.tpm.attest`
and compared with the baseline by :mod:`shim.attest.tpm.check`, exactly as before. Responses are parsed with
every length bounded; anything unexpected is a :class:`WireError` (the device turns it into
:class:`shim.common.errors.Unavailable`: fail closed).

The AK templates are byte for byte what tpm2-tools / tpm2-pytss build for ``ecc256:ecdsa-sha256:null``
and ``rsa2048:rsassa-sha256:null`` with the restricted-signing attributes, so the TPM derives the same
AK as before (a unit test compares them with tpm2-pytss, the integration tests with ``tpm2_checkquote``).

Standard library only (``socket``, ``struct``).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

ST_NO_SESSIONS, ST_SESSIONS = 0x8001, 0x8002
CC_CREATE_PRIMARY, CC_QUOTE, CC_PCR_READ, CC_FLUSH_CONTEXT, CC_PCR_EXTEND = 0x131, 0x158, 0x17E, 0x165, 0x182
RH_ENDORSEMENT, RS_PW = 0x4000000B, 0x40000009
ALG_NULL = 0x0010
HASH_ALGS = {"sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
TYPE_RSA, TYPE_ECC = 0x0001, 0x0023
ECC_NIST_P256 = 0x0003
# TPM2B_PUBLIC templates (Part 2 §12.2.5): restricted signing key, fixedTPM|fixedParent|sensitiveDataOrigin|
# userWithAuth|restricted|sign (0x00050072), nameAlg SHA-256, no policy, ECDSA-SHA256 on P-256 or RSASSA-SHA256
# 2048 bits, empty unique.
AK_TEMPLATES = {
    "ecc256": bytes.fromhex("00180023000b00050072000000100018000b0003001000000000"),
    "rsa2048": bytes.fromhex("00180001000b00050072000000100014000b0800000000000000"),
}
MAX_RESPONSE = 4096  # TPM_MAX_COMMAND_SIZE on every TPM in use; a response is never larger
RC_RETRY, RC_YIELDED, RC_TESTING = 0x922, 0x908, 0x90A
RETRIES = 5
SOCKET_TIMEOUT = 30.0
_PW_SESSION = struct.pack(">IIHBH", 9, RS_PW, 0, 0, 0)  # authorizationSize, handle, nonce, attributes, hmac


class WireError(Exception):
    """The TPM answered with an error, or with something that is not a valid response."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        super().__init__(message)
        self.rc = rc


def describe_rc(rc: int) -> str:
    """A response code as tpm2-tss would name its class (enough to act on: authorization or not)."""
    if rc & 0x80 and rc & 0x3F in (0x0E, 0x22):  # format 1: TPM_RC_AUTH_FAIL, TPM_RC_BAD_AUTH
        return f"authorization failed (TPM_RC 0x{rc:03x})"
    return f"TPM_RC 0x{rc:03x}"


class _Reader:
    """Bounded big-endian reads over a response."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise WireError(f"{self.what}: response truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def tpm2b(self, limit: int) -> bytes:
        size = self.u16()
        if size > limit:
            raise WireError(f"{self.what}: a {size}-byte field exceeds {limit}")
        return self.take(size)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise WireError(f"{self.what}: {len(self.data) - self.pos} unexpected trailing bytes")


def pcr_selection(bank: str, pcrs: Sequence[int]) -> bytes:
    """TPML_PCR_SELECTION for one bank (three select bytes: PCRs 0..23)."""
    bits = bytearray(3)
    for p in pcrs:
        if not 0 <= p < 24:
            raise WireError(f"PCR {p} is out of range")
        bits[p // 8] |= 1 << (p % 8)
    return struct.pack(">IHB", 1, HASH_ALGS[bank], 3) + bytes(bits)


def _command(tag: int, cc: int, handles: bytes, params: bytes) -> bytes:
    body = handles + (_PW_SESSION if tag == ST_SESSIONS else b"") + params
    return struct.pack(">HII", tag, 10 + len(body), cc) + body


class Transport:
    """One connection to the TPM: ``transmit`` a command, get its response."""

    def transmit(self, command: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class DeviceTransport(Transport):
    """``/dev/tpmrm0`` (or ``/dev/tpm0``): one write, one read, as the kernel's driver expects."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def transmit(self, command: bytes) -> bytes:
        if os.write(self.fd, command) != len(command):
            raise WireError("short write to the TPM device")
        return os.read(self.fd, MAX_RESPONSE)

    def close(self) -> None:
        os.close(self.fd)


class SocketTransport(Transport):
    """swtpm's server socket (TCP), as tpm2-tss's ``swtpm`` TCTI uses it: the raw command, then the raw
    response, whose header says how long it is."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT)

    def _recv(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(n - got)
            if not chunk:
                raise WireError("the TPM simulator closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def transmit(self, command: bytes) -> bytes:
        self.sock.sendall(command)
        head = self._recv(6)  # tag, size
        (size,) = struct.unpack(">I", head[2:])
        if not 10 <= size <= MAX_RESPONSE:
            raise WireError(f"the TPM simulator announced a {size}-byte response")
        return head + self._recv(size - 6)

    def close(self) -> None:
        self.sock.close()


def open_transport(name: str, conf: str) -> Transport:
    """A transport for TCTI ``name`` with ``conf`` (``device`` or ``swtpm``). Raises ``OSError``."""
    if name == "device":
        return DeviceTransport(conf or "/dev/tpmrm0")
    if name == "swtpm":
        opts = dict(part.split("=", 1) for part in conf.split(",") if "=" in part) if conf else {}
        return SocketTransport(opts.get("host", "localhost"), int(opts.get("port", "2321")))
    raise WireError(f"TCTI {name!r} is not spoken directly")


class Tpm:
    """The commands, over one :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def _call(self, command: bytes, what: str) -> _Reader:
        for attempt in range(RETRIES + 1):
            raw = self.transport.transmit(command)
            r = _Reader(raw, what)
            tag, size, rc = r.u16(), r.u32(), r.u32()
            if size != len(raw) or tag not in (ST_NO_SESSIONS, ST_SESSIONS):
                raise WireError(f"{what}: malformed response header")
            if rc in (RC_RETRY, RC_YIELDED, RC_TESTING) and attempt < RETRIES:
                time.sleep(0.01 * (attempt + 1))
                continue
            if rc != 0:
                raise WireError(f"{what}: {describe_rc(rc)}", rc)
            return r
        raise AssertionError("unreachable")

    def create_primary_ak(self, kind: str) -> tuple[int, bytes]:
        """Create the AK (template :data:`AK_TEMPLATES`) under the endorsement hierarchy: its handle and its
        TPM2B_PUBLIC (with the size prefix)."""
        params = (struct.pack(">H", 4) + b"\0\0\0\0"  # TPM2B_SENSITIVE_CREATE: empty userAuth and data
                  + AK_TEMPLATES[kind] + b"\0\0"  # inPublic, outsideInfo (empty)
                  + struct.pack(">I", 0))  # creationPCR: none
        r = self._call(_command(ST_SESSIONS, CC_CREATE_PRIMARY, struct.pack(">I", RH_ENDORSEMENT), params),
                       "TPM2_CreatePrimary")
        handle, psize = r.u32(), r.u32()
        p = _Reader(r.take(psize), "TPM2_CreatePrimary")
        public = p.tpm2b(MAX_RESPONSE)
        return handle, struct.pack(">H", len(public)) + public

    def quote(self, handle: int, nonce: bytes, bank: str, pcrs: Sequence[int]) -> tuple[bytes, bytes]:
        """TPM2_Quote with the key's own scheme: the TPMS_ATTEST bytes and the marshalled TPMT_SIGNATURE."""
        if len(nonce) > 64:
            raise WireError("the nonce is longer than 64 bytes")
        params = struct.pack(">H", len(nonce)) + nonce + struct.pack(">H", ALG_NULL) + pcr_selection(bank, pcrs)
        r = self._call(_command(ST_SESSIONS, CC_QUOTE, struct.pack(">I", handle), params), "TPM2_Quote")
        p = _Reader(r.take(r.u32()), "TPM2_Quote")
        attest = p.tpm2b(MAX_RESPONSE)
        signature = p.take(len(p.data) - p.pos)
        if not attest or not signature:
            raise WireError("TPM2_Quote: empty quote or signature")
        return attest, signature

    def pcr_read(self, bank: str, pcrs: Sequence[int]) -> tuple[list[int], list[bytes]]:
        """TPM2_PCR_Read of up to 8 PCRs: the PCRs the TPM says it returned (ascending) and their values."""
        r = self._call(_command(ST_NO_SESSIONS, CC_PCR_READ, b"", pcr_selection(bank, pcrs)), "TPM2_PCR_Read")
        r.u32()  # pcrUpdateCounter
        selected: list[int] = []
        for _ in range(_bounded(r.u32(), 16, "selections")):
            alg, size = r.u16(), r.u8()
            bits = r.take(_bounded(size, 32, "select bytes"))
            if alg != HASH_ALGS[bank]:
                if any(bits):
                    raise WireError(f"TPM2_PCR_Read returned values of another bank (0x{alg:04x})")
                continue
            selected.extend(i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1)
        values = [r.tpm2b(64) for _ in range(_bounded(r.u32(), 8, "digests"))]
        r.end()
        return sorted(selected), values

    def pcr_extend(self, pcr: int, bank: str, digest: bytes) -> None:
        """TPM2_PCR_Extend of ``pcr`` in ``bank`` by ``digest`` (its size is the bank's), empty-password auth."""
        if not 0 <= pcr < 24:
            raise WireError(f"PCR {pcr} is out of range")
        params = struct.pack(">IH", 1, HASH_ALGS[bank]) + digest  # TPML_DIGEST_VALUES of one TPMT_HA
        self._call(_command(ST_SESSIONS, CC_PCR_EXTEND, struct.pack(">I", pcr), params), "TPM2_PCR_Extend")

    def flush(self, handle: int) -> None:
        self._call(_command(ST_NO_SESSIONS, CC_FLUSH_CONTEXT, b"", struct.pack(">I", handle)), "TPM2_FlushContext")


def _bounded(n: int, limit: int, what: str) -> int:
    if n > limit:
        raise WireError(f"TPM2_PCR_Read: {n} {what}, more than {limit}")
    return n


def public_key_pem(tpm2b_public: bytes) -> bytes:
    """The PEM SubjectPublicKeyInfo of an ECC P-256 or RSA TPM2B_PUBLIC (as tpm2-pytss ``to_pem``)."""
    from cryptography.hazmat.primitives import serialization

    r = _Reader(tpm2b_public, "TPM2B_PUBLIC")
    body = _Reader(r.tpm2b(MAX_RESPONSE), "TPMT_PUBLIC")
    r.end()
    kind, _name_alg, _attrs = body.u16(), body.u16(), body.u32()
    body.tpm2b(64)  # authPolicy
    if body.u16() != ALG_NULL:  # symmetric: a signing key has none
        raise WireError("TPMT_PUBLIC: the attestation key has a symmetric algorithm")
    if body.u16() != ALG_NULL:  # scheme and its hash
        body.u16()
    try:
        key = _public_key(kind, body)
    except ValueError as e:  # not a point on the curve, a bad modulus
        raise WireError(f"TPMT_PUBLIC: not a valid public key ({e})") from e
    body.end()
    return bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _public_key(kind: int, body: _Reader) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == TYPE_ECC:
        if body.u16() != ECC_NIST_P256:
            raise WireError("TPMT_PUBLIC: the attestation key is not on P-256")
        if body.u16() != ALG_NULL:  # kdf
            body.u16()
        x, y = body.tpm2b(32), body.tpm2b(32)
        return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                             ec.SECP256R1()).public_key()
    if kind == TYPE_RSA:
        body.u16()  # keyBits
        exponent = body.u32() or 65537
        modulus = body.tpm2b(512)
        return rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "big")).public_key()
    raise WireError(f"TPMT_PUBLIC: unsupported key type 0x{kind:04x}")
