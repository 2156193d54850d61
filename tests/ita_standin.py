"""STAND-IN for Intel Trust Authority (ITA), which cannot be reached from here (no internet, no API key).

A loopback HTTP server speaking ITA's appraisal v2 protocol (docs/attestation.md §4): it hands out
verifier nonces, appraises a TD quote the way ITA's token says it did (REPORTDATA must be
SHA-512(val ‖ iat ‖ runtime_data); the measurements are read from the quote) and signs a JWT with a TEST
chain (root → signing CA → leaf) published as a JWKS with ``x5c``. It records every request, and
``behave`` makes it misbehave the ways a test needs (tampered claims, another key, expiry, errors).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shim.attest.tdx import verify

KID = "bacon-test-ita-1"


def _cert(cn: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
          ca: bool, now: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer[0].subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(dt.datetime.fromtimestamp(now - 86400, dt.UTC))
         .not_valid_after(dt.datetime.fromtimestamp(now + 30 * 86400, dt.UTC))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return b.sign(issuer[1] if issuer else key, hashes.SHA384())


@dataclass
class ItaPki:
    root: x509.Certificate
    chain: list[x509.Certificate]  # leaf first, without the root
    leaf_key: rsa.RSAPrivateKey

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)


def make_pki(now: int, cn: str = "BACON TEST ITA Root CA") -> ItaPki:
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=3072) for _ in range(3)]
    root = _cert(cn, keys[0], None, True, now)
    ca = _cert("BACON TEST ITA Signing CA", keys[1], (root, keys[0]), True, now)
    leaf = _cert("BACON TEST ITA Token Signing", keys[2], (ca, keys[1]), False, now)
    return ItaPki(root=root, chain=[leaf, ca], leaf_key=keys[2])


@dataclass
class Ita:
    pki: ItaPki
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    behave: dict[str, Any] = field(default_factory=dict)
    nonces: dict[str, bytes] = field(default_factory=dict)

    def jwks(self) -> dict[str, Any]:
        pub = self.pki.leaf_key.public_key().public_numbers()

        def b64u(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

        chain = self.behave.get("x5c_chain", self.pki.chain)
        x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
        return {"keys": [{"kty": "RSA", "kid": KID, "n": b64u(pub.n), "e": b64u(pub.e), "x5c": x5c}]}

    def nonce(self) -> dict[str, str]:
        val, iat = secrets.token_bytes(32), str(int(time.time())).encode()
        self.nonces[base64.b64encode(val).decode()] = iat
        return {"val": base64.b64encode(val).decode(), "iat": base64.b64encode(iat).decode(),
                "signature": base64.b64encode(secrets.token_bytes(64)).decode()}

    def attest(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        quote = base64.b64decode(req["quote"])
        vn = req["verifier_nonce"]
        val, iat = base64.b64decode(vn["val"]), base64.b64decode(vn["iat"])
        runtime = base64.b64decode(req.get("runtime_data", ""))
        m = verify.parse(quote).measurements
        if m.report_data != hashlib.sha512(val + iat + runtime).digest():
            return 400, {"error": "REPORTDATA does not bind the verifier nonce and runtime data"}
        now = int(time.time())
        claims: dict[str, Any] = {
            "tdx_report_data": m.report_data.hex(), "tdx_mrtd": m.get("mrtd").hex(),
            **{f"tdx_rtmr{i}": m.get(f"rtmr{i}").hex() for i in range(4)},
            "attester_tcb_status": "UpToDate", "verifier_nonce": vn, "jti": secrets.token_hex(8),
            "iat": now, "nbf": now, "exp": now + 300,
        }
        claims.update(self.behave.get("claims", {}))
        alg = self.behave.get("alg", req.get("token_signing_alg", "PS384"))
        key = self.behave.get("signing_key", self.pki.leaf_key)
        return 200, {"token": jwt.encode(claims, key, algorithm=alg, headers={"kid": KID})}


@contextmanager
def serve(pki: ItaPki) -> Iterator[Ita]:
    ita = Ita(pki=pki)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: dict[str, Any] | None) -> bool:
            ita.requests.append({"method": self.command, "path": self.path,
                                 "api_key": self.headers.get("x-api-key"), "body": body})
            status = ita.behave.get("status")
            if status:
                self._send(int(status), {"error": "stand-in told to fail"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._record(None):
                return
            if self.path == "/appraisal/v2/nonce":
                self._send(200, ita.nonce())
            elif self.path == "/certs":
                self._send(200, ita.jwks())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if not self._record(body):
                return
            if self.path == "/appraisal/v2/attest":
                self._send(*ita.attest(body))
            else:
                self._send(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ita.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ita
    finally:
        server.shutdown()
        server.server_close()


def section(ita: Ita, directory: Path, **extra: Any) -> dict[str, Any]:
    """A ``[tdx.trust_authority]`` table for ``ita``, with its API key and pinned root written to ``directory``."""
    key, root = directory / "ita.key", directory / "ita-root.pem"
    key.write_text("test-api-key\n")
    key.chmod(0o600)
    root.write_bytes(ita.pki.root_pem())
    return {"enabled": True, "url": ita.url, "api_key_file": str(key), "root_ca": str(root), **extra}
