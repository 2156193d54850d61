"""The direct TPM commands (``shim.attest.tpm.wire``) over canned responses: framing, bounds, errors, templates."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from shim.attest.tpm import wire


class Canned(wire.Transport):
    """A transport that records commands and answers from a list."""

    def __init__(self, *responses: bytes) -> None:
        self.responses: Iterator[bytes] = iter(responses)
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return next(self.responses)

    def close(self) -> None:
        pass


def response(body: bytes = b"", rc: int = 0, tag: int = wire.ST_NO_SESSIONS) -> bytes:
    return struct.pack(">HII", tag, 10 + len(body), rc) + body


def pcr_read_response(values: dict[int, bytes], alg: int = wire.HASH_ALGS["sha256"]) -> bytes:
    bits = bytearray(3)
    for p in values:
        bits[p // 8] |= 1 << (p % 8)
    body = struct.pack(">I", 7) + struct.pack(">IHB", 1, alg, 3) + bytes(bits) + struct.pack(">I", len(values))
    body += b"".join(struct.pack(">H", len(v)) + v for _, v in sorted(values.items()))
    return response(body)


def test_templates_are_tpm2_pytss_templates() -> None:
    pytest.importorskip("tpm2_pytss")
    from tpm2_pytss.constants import TPMA_OBJECT
    from tpm2_pytss.types import TPM2B_PUBLIC, TPMT_PUBLIC

    attrs = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
             | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT)
    for kind, alg in (("ecc256", "ecc256:ecdsa-sha256:null"), ("rsa2048", "rsa2048:rsassa-sha256:null")):
        template = TPM2B_PUBLIC(TPMT_PUBLIC.parse(alg=alg, objectAttributes=attrs))
        assert bytes(template.marshal()) == wire.AK_TEMPLATES[kind]


def test_pcr_selection() -> None:
    assert wire.pcr_selection("sha256", [0, 7, 23]) == bytes.fromhex("00000001000b03810080")
    with pytest.raises(wire.WireError):
        wire.pcr_selection("sha256", [24])


def test_pcr_read() -> None:
    values = {0: b"\0" * 32, 7: b"\7" * 32}
    t = Canned(pcr_read_response(values))
    got, digests = wire.Tpm(t).pcr_read("sha256", [0, 7])
    assert got == [0, 7]
    assert digests == [values[0], values[7]]
    assert t.sent[0][:10] == struct.pack(">HII", wire.ST_NO_SESSIONS, len(t.sent[0]), wire.CC_PCR_READ)


@pytest.mark.parametrize("mangle", [
    lambda r: r[:-1],  # truncated
    lambda r: r + b"\0",  # longer than its header says
    lambda r: r[:2] + struct.pack(">I", len(r) + 1) + r[6:] + b"\0",  # trailing bytes
    lambda r: r[:14] + struct.pack(">I", 99) + r[18:],  # 99 selections
])
def test_malformed_pcr_read_is_an_error(mangle: object) -> None:
    assert callable(mangle)
    t = Canned(mangle(pcr_read_response({0: b"\0" * 32})))
    with pytest.raises(wire.WireError):
        wire.Tpm(t).pcr_read("sha256", [0])


def test_values_of_another_bank_are_refused() -> None:
    t = Canned(pcr_read_response({0: b"\0" * 48}, alg=wire.HASH_ALGS["sha384"]))
    with pytest.raises(wire.WireError, match="another bank"):
        wire.Tpm(t).pcr_read("sha256", [0])


def test_error_codes_and_retries() -> None:
    t = Canned(response(rc=wire.RC_RETRY), response(rc=wire.RC_YIELDED), pcr_read_response({0: b"\0" * 32}))
    assert wire.Tpm(t).pcr_read("sha256", [0])[0] == [0]
    assert len(t.sent) == 3
    with pytest.raises(wire.WireError, match="authorization failed") as e:
        wire.Tpm(Canned(response(rc=0x98E, tag=wire.ST_SESSIONS))).create_primary_ak("ecc256")
    assert e.value.rc == 0x98E
    with pytest.raises(wire.WireError, match="0x101"):
        wire.Tpm(Canned(response(rc=0x101))).pcr_read("sha256", [0])
    with pytest.raises(wire.WireError, match="header"):
        wire.Tpm(Canned(response()[:-1] + b"\0\0")).pcr_read("sha256", [0])  # size says 10, 11 bytes came
    with pytest.raises(wire.WireError, match="header"):
        wire.Tpm(Canned(struct.pack(">HII", 0x1234, 10, 0))).pcr_read("sha256", [0])


def test_quote_splits_attest_and_signature() -> None:
    attest, signature = b"\xffTCG" + b"a" * 20, struct.pack(">HH", 0x18, 0x0B) + b"\0\x02rr\0\x02ss"
    params = struct.pack(">H", len(attest)) + attest + signature
    body = struct.pack(">I", len(params)) + params + b"\0\0\x01\0\0"  # the password session's response
    t = Canned(response(body, tag=wire.ST_SESSIONS))
    assert wire.Tpm(t).quote(0x80000000, b"n" * 32, "sha256", [0]) == (attest, signature)
    sent = t.sent[0]
    assert struct.unpack(">HII", sent[:10]) == (wire.ST_SESSIONS, len(sent), wire.CC_QUOTE)
    assert sent[10:14] == struct.pack(">I", 0x80000000)
    with pytest.raises(wire.WireError):
        wire.Tpm(Canned()).quote(0x80000000, b"n" * 65, "sha256", [0])


def test_public_key_pem_refuses_what_is_not_an_ak() -> None:
    with pytest.raises(wire.WireError):
        wire.public_key_pem(wire.AK_TEMPLATES["ecc256"])  # the template: empty point
    with pytest.raises(wire.WireError):
        wire.public_key_pem(wire.AK_TEMPLATES["ecc256"] + b"\0")
    with pytest.raises(wire.WireError):
        wire.public_key_pem(b"\0\x02\0\x25")
