"""TEST stand-in for Intel's attestation PKI and a TD's Quoting Enclave: a test root CA, PCK CA, PCK leaf
(with the SGX extension dcap-qvl reads), TCB signing certificate, attestation key, QE report, and signed
collateral (TCB Info, QE Identity, both CRLs). It exists because no TDX hardware or Intel-signed test
chain is available here; ``dcap_qvl.verify_with_root_ca`` accepts what it makes when given its test root,
and nothing it makes verifies against the real Intel SGX Root CA.

Layouts follow the Intel TDX DCAP quote format (v4: 48-byte header, 584-byte TD report, signature data
with certification data type 6 wrapping the QE report and a type-5 PEM chain) and the PCS v4 JSON for
collateral, as documented in docs/attestation.md §2-3. The DER of the SGX extension is
hand-encoded: cryptography has no public generic DER encoder and the structure is five nested
SEQUENCE{OID, value} pairs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
SGX_EXT = "1.2.840.113741.1.13.1"
FMSPC = bytes.fromhex("B0C06F000000")
CPU_SVN = bytes([3, 3, 2, 2, 4, 1, 0, 5] + [0] * 8)
PCE_SVN = 11
QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
TEE_TCB_SVN_UPTODATE = bytes([6, 1, 3] + [0] * 13)
TEE_TCB_SVN_OUTOFDATE = bytes([3, 1, 1] + [0] * 13)
TD_ATTR_SEPT_VE_DISABLE = bytes.fromhex("0000001000000000")
TD_ATTR_DEBUG = bytes.fromhex("0100001000000000")
DAY = 86400


# ---------------------------------------------------------------- minimal DER (see module docstring)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(value)) + value


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, body)


def _int(v: int, tag: int = 0x02) -> bytes:
    raw = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return _tlv(tag, raw)


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _pair(oid: str, value: bytes) -> bytes:
    return _seq(_oid(oid), value)


def sgx_extension(fmspc: bytes, cpu_svn: bytes, pce_svn: int, ppid: bytes) -> bytes:
    """The Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1) as DER."""
    tcb = [_pair(f"{SGX_EXT}.2.{i + 1}", _int(cpu_svn[i])) for i in range(16)]
    tcb.append(_pair(f"{SGX_EXT}.2.17", _int(pce_svn)))
    tcb.append(_pair(f"{SGX_EXT}.2.18", _tlv(0x04, cpu_svn)))
    return _seq(
        _pair(f"{SGX_EXT}.1", _tlv(0x04, ppid)),
        _pair(f"{SGX_EXT}.2", _seq(*tcb)),
        _pair(f"{SGX_EXT}.3", _tlv(0x04, b"\x00\x00")),
        _pair(f"{SGX_EXT}.4", _tlv(0x04, fmspc)),
        _pair(f"{SGX_EXT}.5", _int(0, tag=0x0A)),
    )


# ---------------------------------------------------------------- the test PKI


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "BACON TEST (not Intel)"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])  # fmt: skip


def _ts(t: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _iso(t: int) -> str:
    return _ts(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=sign, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, path_len: int | None, start: int, end: int,
          extra: bytes | None = None) -> x509.Certificate:
    pub = key.public_key()
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject))
         .issuer_name(issuer.subject if issuer else _name(subject))
         .public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(_ts(start))
         .not_valid_after(_ts(end))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
         .add_extension(_usage(sign=not ca, ca=ca), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                        critical=False))  # fmt: skip
    if extra is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXT), extra), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, start: int, end: int) -> bytes:
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(issuer.subject)
           .last_update(_ts(start))
           .next_update(_ts(end))
           .add_extension(x509.CRLNumber(1), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
           .sign(key, hashes.SHA256()))  # fmt: skip
    return crl.public_bytes(serialization.Encoding.DER)


@dataclass
class TestPki:
    """A complete TEST chain: keys and certificates, and the attestation key of a test QE."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck: x509.Certificate
    tcb_key: ec.EllipticCurvePrivateKey
    tcb_signer: x509.Certificate
    att_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)


def make_pki(now: int, *, fmspc: bytes = FMSPC, cpu_svn: bytes = CPU_SVN, pce_svn: int = PCE_SVN) -> TestPki:
    """A fresh TEST chain whose certificates are valid from a year before ``now`` for ten years."""
    start, end = now - 365 * DAY, now + 3650 * DAY
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]
    root_key, ca_key, pck_key, tcb_key = keys
    root = _cert("BACON TEST SGX Root CA", root_key, None, root_key, ca=True, path_len=1, start=start, end=end)
    ca = _cert("BACON TEST SGX PCK Platform CA", ca_key, root, root_key, ca=True, path_len=0, start=start, end=end)
    pck = _cert("BACON TEST SGX PCK Certificate", pck_key, ca, ca_key, ca=False, path_len=None, start=start,
                end=end, extra=sgx_extension(fmspc, cpu_svn, pce_svn, secrets.token_bytes(16)))
    tcb = _cert("BACON TEST SGX TCB Signing", tcb_key, root, root_key, ca=False, path_len=None, start=start, end=end)
    return TestPki(root_key, root, ca_key, ca, pck_key, pck, tcb_key, tcb)


# ---------------------------------------------------------------- collateral


def _tcb_level(sgx: list[int], pcesvn: int, tdx: list[int], status: str, date: str) -> dict[str, object]:
    return {
        "tcb": {
            "sgxtcbcomponents": [{"svn": v} for v in sgx],
            "pcesvn": pcesvn,
            "tdxtcbcomponents": [{"svn": v} for v in tdx],
        },
        "tcbDate": date,
        "tcbStatus": status,
    }


def make_collateral(pki: TestPki, issue: int, next_update: int, *, fmspc: bytes = FMSPC,
                    qe_mrsigner: bytes = QE_MRSIGNER) -> str:
    """Collateral for ``pki`` valid in [issue, next_update], as dcap-qvl JSON.

    TCB levels: ``UpToDate`` for TEE_TCB_SVN ≥ 05 00 02 (module TDX_01 isvsvn ≥ 4), ``OutOfDate`` below
    that down to 03 00 01 (isvsvn ≥ 2); quotes below those match no level.
    """
    zeros48 = "00" * 48
    sgx = list(CPU_SVN)
    tcb_info = {
        "id": "TDX", "version": 3, "issueDate": _iso(issue), "nextUpdate": _iso(next_update),
        "fmspc": fmspc.hex().upper(), "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 17,
        "tdxModule": {"mrsigner": zeros48, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"},
        "tdxModuleIdentities": [{
            "id": "TDX_01", "mrsigner": zeros48, "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF",
            "tcbLevels": [
                {"tcb": {"isvsvn": 4}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"},
                {"tcb": {"isvsvn": 2}, "tcbDate": "2023-08-09T00:00:00Z", "tcbStatus": "OutOfDate"},
            ],
        }],
        "tcbLevels": [
            _tcb_level(sgx, PCE_SVN, [5, 0, 2] + [0] * 13, "UpToDate", "2024-03-13T00:00:00Z"),
            _tcb_level(sgx, PCE_SVN, [3, 0, 1] + [0] * 13, "OutOfDate", "2023-08-09T00:00:00Z"),
        ],
    }  # fmt: skip
    qe_identity = {
        "id": "TD_QE", "version": 2, "issueDate": _iso(issue), "nextUpdate": _iso(next_update),
        "tcbEvaluationDataNumber": 17, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": qe_mrsigner.hex().upper(), "isvprodid": 2,
        "tcbLevels": [{"tcb": {"isvsvn": 4}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"}],
    }  # fmt: skip
    tcb_text = json.dumps(tcb_info, separators=(",", ":"))
    qe_text = json.dumps(qe_identity, separators=(",", ":"))
    return json.dumps({
        "pck_crl_issuer_chain": _pem(pki.pck_ca, pki.root),
        "root_ca_crl": _crl(pki.root, pki.root_key, issue, next_update).hex(),
        "pck_crl": _crl(pki.pck_ca, pki.pck_ca_key, issue, next_update).hex(),
        "tcb_info_issuer_chain": _pem(pki.tcb_signer, pki.root),
        "tcb_info": tcb_text,
        "tcb_info_signature": _raw_sig(pki.tcb_key, tcb_text.encode()).hex(),
        "qe_identity_issuer_chain": _pem(pki.tcb_signer, pki.root),
        "qe_identity": qe_text,
        "qe_identity_signature": _raw_sig(pki.tcb_key, qe_text.encode()).hex(),
    })  # fmt: skip


# ---------------------------------------------------------------- quotes


@dataclass
class TdBody:
    """The TD report fields a test chooses (48-byte values unless said otherwise)."""

    mrtd: bytes = bytes.fromhex("11" * 48)
    rtmr: tuple[bytes, bytes, bytes, bytes] = (bytes.fromhex("a0" * 48), bytes.fromhex("a1" * 48),
                                               bytes.fromhex("a2" * 48), bytes(48))
    mrconfigid: bytes = bytes(48)
    mrowner: bytes = bytes(48)
    mrownerconfig: bytes = bytes(48)
    td_attributes: bytes = TD_ATTR_SEPT_VE_DISABLE  # 8 bytes
    tee_tcb_svn: bytes = TEE_TCB_SVN_UPTODATE  # 16 bytes
    xfam: bytes = bytes.fromhex("e702060000000000")
    mrseam: bytes = bytes.fromhex("5b" * 48)

    def encode(self, report_data: bytes) -> bytes:
        assert len(report_data) == 64
        out = (self.tee_tcb_svn + self.mrseam + bytes(48) + bytes(8) + self.td_attributes + self.xfam + self.mrtd
               + self.mrconfigid + self.mrowner + self.mrownerconfig + b"".join(self.rtmr) + report_data)
        assert len(out) == 584, len(out)
        return out


def _qe_report(report_data: bytes) -> bytes:
    out = (bytes(16) + struct.pack("<I", 0) + bytes(28) + bytes([0x11]) + bytes(15) + bytes(32) + bytes(32)
           + QE_MRSIGNER + bytes(96) + struct.pack("<HH", 2, 4) + bytes(60) + report_data)
    assert len(out) == 384
    return out


def make_quote(pki: TestPki, report_data: bytes, body: TdBody | None = None) -> bytes:
    """A TD quote v4 over ``report_data``, signed by the test QE's attestation key, certified by the PCK."""
    body = body or TdBody()
    header = struct.pack("<HHI", 4, 2, 0x81) + bytes(4) + INTEL_QE_VENDOR_ID + secrets.token_bytes(20)
    signed = header + body.encode(report_data)
    pub = pki.att_key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)[1:]
    auth = secrets.token_bytes(32)
    qe_report = _qe_report(hashlib.sha256(pub + auth).digest() + bytes(32))
    chain = _pem(pki.pck, pki.pck_ca, pki.root).encode()
    inner = (qe_report + _raw_sig(pki.pck_key, qe_report) + struct.pack("<H", len(auth)) + auth
             + struct.pack("<HI", 5, len(chain)) + chain)
    sig_data = _raw_sig(pki.att_key, signed) + pub + struct.pack("<HI", 6, len(inner)) + inner
    return signed + struct.pack("<I", len(sig_data)) + sig_data


# ---------------------------------------------------------------- sharing a PKI with the provider process

_PKI_FILES = ("root", "pck_ca", "pck", "tcb_signer")
_KEY_FILES = {"root": "root_key", "pck_ca": "pck_ca_key", "pck": "pck_key", "tcb_signer": "tcb_key",
              "att": "att_key"}


def save_pki(pki: TestPki, directory: str) -> None:
    """Write the TEST chain (certificates and private keys, PEM) so a provider process can sign with it."""
    import os

    os.makedirs(directory, exist_ok=True)
    for name in _PKI_FILES:
        cert: x509.Certificate = getattr(pki, name)
        with open(os.path.join(directory, f"{name}.crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    for name, attr in _KEY_FILES.items():
        key: ec.EllipticCurvePrivateKey = getattr(pki, attr)
        with open(os.path.join(directory, f"{name}.key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))


def load_pki(directory: str) -> TestPki:
    import os

    def cert(name: str) -> x509.Certificate:
        with open(os.path.join(directory, f"{name}.crt"), "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def key(name: str) -> ec.EllipticCurvePrivateKey:
        with open(os.path.join(directory, f"{name}.key"), "rb") as f:
            k = serialization.load_pem_private_key(f.read(), password=None)
        assert isinstance(k, ec.EllipticCurvePrivateKey)
        return k

    return TestPki(root_key=key("root"), root=cert("root"), pck_ca_key=key("pck_ca"), pck_ca=cert("pck_ca"),
                   pck_key=key("pck"), pck=cert("pck"), tcb_key=key("tcb_signer"), tcb_signer=cert("tcb_signer"),
                   att_key=key("att"))
