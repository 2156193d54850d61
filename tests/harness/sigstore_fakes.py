"""A test Sigstore instance: keyless bundles that verify for real, made without any network.

No public keyless bundle signs an image digest that the tests control, so this module plays every part
of Sigstore with its own keys, byte for byte in the formats sigstore-python verifies:

- **Fulcio**: a test root CA issues short-lived leaf certificates in Fulcio's profile (empty subject,
  critical SAN with the signer's email or URI, key usage digitalSignature, EKU codeSigning, the OIDC
  issuer in Fulcio's extensions ``1.3.6.1.4.1.57264.1.1`` and ``.8``), each with an embedded SCT.
- **CT log**: signs the SCT over the precertificate (RFC 6962 §3.2: the issuer key hash and the TBS
  without the SCT list extension).
- **Rekor (v1)**: a ``dsse`` 0.0.1 entry for the envelope, integrated at a time inside the certificate's
  validity, in a Merkle tree of several leaves (RFC 6962 inclusion proof), with a signed checkpoint (a
  signed note) and an inclusion promise (the SET over the RFC 8785 form of the entry).
- the **trusted root** that names the CA, the log keys and the CT key, as a Sigstore TrustedRoot JSON.

Written from the specifications and from what sigstore-python's verifier checks; no code was copied.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shim.trust.signatures import BUNDLE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, pae

ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw


def _der_octets(raw: bytes) -> bytes:
    return b"\x04" + _der_length(len(raw)) + raw


def _u24(n: int) -> bytes:
    return struct.pack("!I", n)[1:]


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


# -- RFC 6962 Merkle tree -------------------------------------------------------------------------------

def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), leaf to root."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


# -- the instance -----------------------------------------------------------------------------------------

@dataclass
class FakeSigstore:
    """One test Sigstore instance: its CA, CT log and Rekor keys. ``origin`` names the log in checkpoints."""

    origin: str = "rekor.example.com - 1"
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP384R1()))
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rekor_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ca_cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example.com"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "bacon test fulcio")])
        pub = self.ca_key.public_key()
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH - dt.timedelta(days=1)).not_valid_after(EPOCH + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .sign(self.ca_key, hashes.SHA384())
        )

    # -- trust ---------------------------------------------------------------------------------------------

    def trusted_root(self) -> dict[str, Any]:
        """The Sigstore TrustedRoot JSON (as a dict) that trusts this instance."""
        start = (EPOCH - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            pub = key.public_key()
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": _b64(_spki(pub)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": start}},
                    "logId": {"keyId": _b64(_key_id(pub))}}

        ca_der = self.ca_cert.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log(self.rekor_key, "https://rekor.example.com")],
            "certificateAuthorities": [{
                "subject": {"organization": "example.com", "commonName": "bacon test fulcio"},
                "uri": "https://fulcio.example.com",
                "certChain": {"certificates": [{"rawBytes": _b64(ca_der)}]},
                "validFor": {"start": start},
            }],
            "ctlogs": [log(self.ct_key, "https://ctfe.example.com")],
            "timestampAuthorities": [],
        }

    def trusted_root_json(self) -> bytes:
        return json.dumps(self.trusted_root(), indent=1).encode()

    # -- Fulcio and the CT log --------------------------------------------------------------------------

    def certificate(self, key: ec.EllipticCurvePublicKey, identity: str, issuer: str,
                    not_before: dt.datetime) -> x509.Certificate:
        """A Fulcio-style leaf for ``key``, valid ten minutes, with an SCT from the CT log."""
        san: x509.GeneralName = (x509.RFC822Name(identity) if "@" in identity and "://" not in identity
                                 else x509.UniformResourceIdentifier(identity))
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.ca_cert.subject).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_before + dt.timedelta(minutes=10))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V2_OID, der_utf8(issuer)), critical=False)
        )
        precert = builder.sign(self.ca_key, hashes.SHA384())
        # RFC 6962 §3.2: the SCT signs the issuer's key hash and the TBS without the SCT list; appending the
        # extension last keeps the final certificate's TBS minus that extension identical to this one.
        millis = int((not_before + dt.timedelta(seconds=1)).timestamp() * 1000)
        tbs = precert.tbs_certificate_bytes
        signed = (struct.pack("!BBQH", 0, 0, millis, 1) + _key_id(self.ca_key.public_key())
                  + _u24(len(tbs)) + tbs + struct.pack("!H", 0))
        sig = _sign(self.ct_key, signed)
        sct = (struct.pack("!B", 0) + _key_id(self.ct_key.public_key()) + struct.pack("!QH", millis, 0)
               + struct.pack("!BBH", 4, 3, len(sig)) + sig)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        return builder.add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, _der_octets(sct_list)),
                                     critical=False).sign(self.ca_key, hashes.SHA384())

    # -- Rekor ---------------------------------------------------------------------------------------------

    def log_entry(self, envelope: dict[str, Any], cert: x509.Certificate, integrated: dt.datetime,
                  *, tree_size: int = 7, index: int = 4) -> dict[str, Any]:
        """A Rekor v1 ``dsse`` 0.0.1 entry for ``envelope`` with inclusion proof, checkpoint and SET."""
        payload = base64.b64decode(envelope["payload"])
        pem = cert.public_bytes(serialization.Encoding.PEM)
        body = json.dumps({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"envelopeHash": {"algorithm": "sha256",
                                      "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest()},
                     "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                     "signatures": [{"signature": s["sig"], "verifier": _b64(pem)} for s in envelope["signatures"]]},
        }, separators=(",", ":")).encode()
        leaves = [_leaf(os.urandom(32)) for _ in range(tree_size)]
        leaves[index] = _leaf(body)
        root = merkle_root(leaves)
        log_id = _key_id(self.rekor_key.public_key())
        note = f"{self.origin}\n{tree_size}\n{_b64(root)}\n"
        note_sig = log_id[:4] + _sign(self.rekor_key, note.encode())
        checkpoint = note + "\n" + f"\u2014 {self.origin.split()[0]} {_b64(note_sig)}\n"
        when = int(integrated.timestamp())
        set_payload = json.dumps({"body": _b64(body), "integratedTime": when, "logID": log_id.hex(),
                                  "logIndex": index}, sort_keys=True, separators=(",", ":")).encode()
        return {
            "logIndex": str(index), "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(when),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.rekor_key, set_payload))},
            "inclusionProof": {"logIndex": str(index), "rootHash": _b64(root), "treeSize": str(tree_size),
                               "hashes": [_b64(h) for h in inclusion_path(index, leaves)],
                               "checkpoint": {"envelope": checkpoint}},
            "canonicalizedBody": _b64(body),
        }

    # -- a signer ------------------------------------------------------------------------------------------

    def sign_dsse(self, payload: bytes, identity: str, issuer: str, *, payload_type: str = INTOTO_PAYLOAD_TYPE,
                  when: dt.datetime | None = None) -> bytes:
        """What ``cosign sign`` (keyless, bundle format) makes: a v0.3 bundle with a DSSE envelope over
        ``payload``, signed by a fresh key certified for ``identity`` by ``issuer``."""
        not_before = when or dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.certificate(key.public_key(), identity, issuer, not_before)
        envelope = {"payload": _b64(payload), "payloadType": payload_type,
                    "signatures": [{"sig": _b64(_sign(key, pae(payload_type, payload)))}]}
        entry = self.log_entry(envelope, cert, not_before + dt.timedelta(seconds=2))
        return json.dumps({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                                     "tlogEntries": [entry]},
            "dsseEnvelope": envelope,
        }).encode()
