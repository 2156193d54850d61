"""Images and signature material for the signature tests.

Images: the harness's real OCI layout (``tests.harness.images.build_layout``: umoci, Debian's
busybox-static, one shared layer), copied with skopeo into a fresh repository per test so that the
signatures of one test never meet another's. Bundles: Sigstore v0.3 bundles with a DSSE envelope signed
by a given key, as cosign 3 writes them with ``--key`` (cosign 2.5, the interop binary, cannot write
them), and the OCI manifest that stores one as a referrer.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from shim.images import oci
from shim.trust.keys import SigningKey
from shim.trust.signatures import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, INTOTO_PAYLOAD_TYPE, pae
from tests.harness import images
from tests.harness.registry import Registry

EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
_counter = itertools.count()


def tools_available() -> bool:
    return images.tools_available()


def layout(workdir: Path) -> Path:
    """The OCI layout with the harness images (``low``, ``high``, ``multi`` …), built once per workdir."""
    return images.build_layout(workdir)


def push_fresh(layout_dir: Path, registry: Registry, name: str = "low", prefix: str = "sig") -> images.Image:
    """Copy the layout's ``name`` image into a repository no other test uses; digests preserved."""
    repo = f"{prefix}/{name}-{next(_counter)}"
    return images.push(layout_dir, registry, name, repo_path=repo)


def cosign_binary() -> str | None:
    """The real cosign: ``$BACON_COSIGN``, else /opt/bacon-test/cosign/cosign (scripts/fetch-cosign.sh),
    else PATH."""
    for cand in (os.environ.get("BACON_COSIGN"), "/opt/bacon-test/cosign/cosign"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return shutil.which("cosign")


def statement(digest: str, predicate_type: str = COSIGN_SIGN_PREDICATE, name: str = "image") -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
                       "predicateType": predicate_type, "predicate": {}}, separators=(",", ":")).encode()


def make_bundle(key: SigningKey, digest: str, *, payload: bytes | None = None,
                payload_type: str = INTOTO_PAYLOAD_TYPE, sign_pae: bool = True,
                extra_material: dict[str, Any] | None = None) -> bytes:
    """A v0.3 bundle over an in-toto statement for ``digest`` (or ``payload``), signed by ``key``."""
    body = payload if payload is not None else statement(digest)
    signed = pae(payload_type, body) if sign_pae else body
    sig = key.sign(signed)
    material: dict[str, Any] = {"publicKey": {"hint": key.public_key().hint}}
    material.update(extra_material or {})
    return json.dumps({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {"payload": base64.b64encode(body).decode(), "payloadType": payload_type,
                         "signatures": [{"sig": base64.b64encode(sig).decode()}]},
    }).encode()


def bundle_manifest(bundle: bytes, subject_digest: str, subject_size: int,
                    subject_media_type: str = oci.MEDIA_OCI_MANIFEST) -> bytes:
    """The OCI manifest cosign 3 stores a bundle in (docs/signatures.md §2)."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": oci.sha256_digest(EMPTY_CONFIG), "size": 2},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": oci.sha256_digest(bundle), "size": len(bundle)}],
        "subject": {"mediaType": subject_media_type, "digest": subject_digest, "size": subject_size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
                        "org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
    }, separators=(",", ":")).encode()


def referrers_index(entries: list[tuple[bytes, str]]) -> bytes:
    """An OCI index listing referrer manifests ``(manifest bytes, artifactType)`` (the fallback tag's)."""
    return json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": [
        {"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": oci.sha256_digest(m), "size": len(m), "artifactType": at}
        for m, at in entries]}, separators=(",", ":")).encode()
