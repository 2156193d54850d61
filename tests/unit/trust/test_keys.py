"""Trusted public keys and signing keys: formats, key types, algorithms, cosign's encrypted key file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import nacl.secret
import nacl.utils
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from shim.common.errors import ConfigError, Denied
from shim.trust import keys
from tests.harness.sigimages import cosign_binary

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def pub_pem(k: PrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def pkcs8_pem(k: PrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def cosign_encrypt(k: PrivateKey, password: bytes, n: int = 1 << 15,
                   label: str = "ENCRYPTED SIGSTORE PRIVATE KEY") -> bytes:
    """cosign's encrypted key format, written independently of shim.trust.keys (docs/signatures.md §4)."""
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    salt, nonce = os.urandom(32), nacl.utils.random(24)
    secret = hashlib.scrypt(password, salt=salt, n=n, r=8, p=1, dklen=32, maxmem=256 << 20)
    ct = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(ct).decode()}
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_p256_public_key_loads_with_cosign_hint(p256: ec.EllipticCurvePrivateKey) -> None:
    k = keys.load_public_key(pub_pem(p256), "team.pub")
    der = p256.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert k.key_type == keys.ECDSA_P256
    assert k.key_id == "sha256:" + hashlib.sha256(der).hexdigest()
    assert k.hint == base64.b64encode(hashlib.sha256(der).digest()).decode()
    k.verify(p256.sign(b"msg", ec.ECDSA(hashes.SHA256())), b"msg")


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(65537, 2048),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()),
    ed25519.Ed25519PrivateKey.generate,
], ids=["rsa", "p384", "p521", "ed25519"])
def test_other_key_types_are_refused_where_p256_is_expected(make: object) -> None:
    k = make()  # type: ignore[operator]
    with pytest.raises(ConfigError, match="accepts only ecdsa-p256"):
        keys.load_public_key(pub_pem(k), "team.pub")


def test_other_key_types_load_when_allowed_and_verify_their_own_algorithm() -> None:
    msg = b"payload"
    p384 = ec.generate_private_key(ec.SECP384R1())
    k = keys.load_public_key(pub_pem(p384), "k", allowed=keys.KEY_TYPES)
    assert k.key_type == keys.ECDSA_P384
    k.verify(p384.sign(msg, ec.ECDSA(hashes.SHA384())), msg)
    with pytest.raises(Denied):  # the right key, another hash: a different algorithm
        k.verify(p384.sign(msg, ec.ECDSA(hashes.SHA256())), msg)

    r = rsa.generate_private_key(65537, 2048)
    rk = keys.load_public_key(pub_pem(r), "r", allowed={keys.RSA})
    rk.verify(r.sign(msg, padding.PKCS1v15(), hashes.SHA256()), msg)
    with pytest.raises(Denied):  # RSA-PSS is not what an RSA key verifies here
        rk.verify(r.sign(msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()), msg)

    e = ed25519.Ed25519PrivateKey.generate()
    keys.load_public_key(pub_pem(e), "e", allowed={keys.ED25519}).verify(e.sign(msg), msg)


def test_p256_key_refuses_sha384_signatures(p256: ec.EllipticCurvePrivateKey) -> None:
    k = keys.load_public_key(pub_pem(p256), "team.pub")
    with pytest.raises(Denied, match="does not verify"):
        k.verify(p256.sign(b"m", ec.ECDSA(hashes.SHA384())), b"m")


def test_small_rsa_and_unknown_types_are_refused() -> None:
    small = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key is the test
    with pytest.raises(ConfigError, match="1024 bits"):
        keys.load_public_key(pub_pem(small), "small", allowed=keys.KEY_TYPES)
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(ConfigError, match="unsupported elliptic curve"):
        keys.load_public_key(pub_pem(k1), "k1", allowed=keys.KEY_TYPES)
    with pytest.raises(ConfigError, match="unknown key types"):
        keys.load_trusted_keys([], allowed={"dsa"})


@pytest.mark.parametrize("data", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                  b"x" * (keys.MAX_KEY_FILE_BYTES + 1)])
def test_garbage_public_keys_are_config_errors(data: bytes) -> None:
    with pytest.raises(ConfigError):
        keys.load_public_key(data, "bad")


def test_a_private_key_is_not_a_trusted_key(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ConfigError, match="not a PEM public key"):
        keys.load_public_key(pkcs8_pem(p256), "cosign.key")


def test_load_trusted_keys_reads_files_and_fails_on_a_missing_one(tmp_path: Path,
                                                                   p256: ec.EllipticCurvePrivateKey) -> None:
    (tmp_path / "a.pub").write_bytes(pub_pem(p256))
    (loaded,) = keys.load_trusted_keys([tmp_path / "a.pub"])
    assert loaded.name == str(tmp_path / "a.pub")
    with pytest.raises(ConfigError, match=r"trusted key .* does not exist"):
        keys.load_trusted_keys([tmp_path / "a.pub", tmp_path / "missing.pub"])


@pytest.mark.parametrize("label", keys.COSIGN_PEM_TYPES)
def test_cosign_encrypted_key_round_trip(tmp_path: Path, p256: ec.EllipticCurvePrivateKey, label: str) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_encrypt(p256, b"s3cret", label=label))
    sk = keys.load_signing_key_file(path, {"COSIGN_PASSWORD": "s3cret"})
    assert sk.key_type == keys.ECDSA_P256
    assert sk.public_key().der == keys.load_public_key(pub_pem(p256), "p").der
    sk.public_key().verify(sk.sign(b"hello"), b"hello")


def test_cosign_key_with_empty_password(tmp_path: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_encrypt(p256, b""))
    assert keys.load_signing_key_file(path, {"COSIGN_PASSWORD": ""}).key_type == keys.ECDSA_P256


def test_cosign_key_wrong_or_missing_password(tmp_path: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_encrypt(p256, b"right"))
    with pytest.raises(ConfigError, match="wrong COSIGN_PASSWORD"):
        keys.load_signing_key_file(path, {"COSIGN_PASSWORD": "wrong"})
    with pytest.raises(ConfigError, match="COSIGN_PASSWORD is not set"):
        keys.load_signing_key_file(path, {})


def test_cosign_key_with_unbounded_scrypt_parameters_is_refused(p256: ec.EllipticCurvePrivateKey) -> None:
    pem = cosign_encrypt(p256, b"pw", n=1 << 14)
    with pytest.raises(ConfigError, match="not ones cosign writes"):
        keys.load_signing_key(pem, "k", b"pw")
    body = base64.b64encode(json.dumps({"kdf": {"name": "scrypt", "params": {"N": 1 << 30, "r": 8, "p": 1},
                                                "salt": ""}, "cipher": {"name": "nacl/secretbox", "nonce": ""},
                                        "ciphertext": ""}).encode())
    label = b"ENCRYPTED SIGSTORE PRIVATE KEY"
    pem = b"-----BEGIN " + label + b"-----\n" + body + b"\n-----END " + label + b"-----\n"
    with pytest.raises(ConfigError, match="not ones cosign writes"):
        keys.load_signing_key(pem, "k", b"pw")


def test_plain_pkcs8_and_sec1_pem_signing_keys(p256: ec.EllipticCurvePrivateKey) -> None:
    assert keys.load_signing_key(pkcs8_pem(p256), "k").key_type == keys.ECDSA_P256
    sec1 = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    assert b"EC PRIVATE KEY" in sec1
    assert keys.load_signing_key(sec1, "k").key_type == keys.ECDSA_P256
    enc = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"pw"))
    assert keys.load_signing_key(enc, "k", b"pw").key_type == keys.ECDSA_P256
    with pytest.raises(ConfigError):
        keys.load_signing_key(b"garbage", "k")


@pytest.mark.cosign
def test_keys_made_by_real_cosign_generate_key_pair(tmp_path: Path) -> None:
    exe = cosign_binary()
    if exe is None:
        pytest.skip("cosign is not installed (scripts/fetch-cosign.sh)")
    env = {**os.environ, "COSIGN_PASSWORD": "from-cosign"}
    subprocess.run([exe, "generate-key-pair"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    sk = keys.load_signing_key_file(tmp_path / "cosign.key", env)
    (pk,) = keys.load_trusted_keys([tmp_path / "cosign.pub"])
    assert sk.public_key().der == pk.der
    pk.verify(sk.sign(b"x"), b"x")
