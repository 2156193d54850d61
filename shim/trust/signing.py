"""Sign an image digest in cosign's classic format, as ``cosign sign --key`` does (docs/signatures.md §1).

The payload is :func:`shim.trust.signatures.classic_payload`; the signature goes into a new layer appended to
the existing ``sha256-<hex>.sig`` manifest (existing signature layers are kept, as cosign keeps them);
the config is go-containerregistry's empty config with ``rootfs.diff_ids`` listing the layers, as cosign
writes it. The tag update is a read-modify-write, racy between concurrent signers exactly as cosign's.

Nothing is uploaded to a transparency log: verifiers use ``--insecure-ignore-tlog=true`` with cosign, or
BACON's key-based verification.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shim.common.errors import IntegrityError, NotFound
from shim.images import oci
from shim.images.registry import Client, Repository
from shim.trust.keys import SigningKey
from shim.trust.registry_signatures import docker_reference
from shim.trust.signatures import (
    DEFAULT_LIMITS,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
    Limits,
    classic_payload,
    sig_tag,
)

CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Signed:
    """What was pushed: the signed digest, the ``.sig`` tag and its new manifest digest, the layer count."""

    digest: str
    tag: str
    manifest_digest: str
    layers: int
    key_id: str


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def signature_config(layer_digests: list[str]) -> bytes:
    """go-containerregistry's empty image config over the signature layers (what cosign pushes)."""
    return _compact({"architecture": "", "created": _ZERO_TIME,
                     "history": [{"created": _ZERO_TIME} for _ in layer_digests], "os": "",
                     "rootfs": {"type": "layers", "diff_ids": layer_digests}, "config": {}})


def _layer(payload: bytes, signature: bytes) -> dict[str, Any]:
    return {"mediaType": SIMPLESIGNING_MEDIA_TYPE, "size": len(payload), "digest": oci.sha256_digest(payload),
            "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}}


def signature_manifest(existing: bytes | None, payload: bytes, signature: bytes,
                       limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, bytes]:
    """``(manifest, config)`` for the ``.sig`` tag: the existing layers (descriptors kept as they were)
    plus one for ``payload``. A layer with the same payload and signature is not added twice. Raises
    :class:`IntegrityError` when the existing manifest is malformed or the layer limit would be passed."""
    layers: list[dict[str, Any]] = []
    if existing is not None:
        parsed = oci.parse_manifest(existing, max_layers=limits.max_layers)  # validates every descriptor
        old = json.loads(existing).get("layers") or []
        layers = [dict(x) for x in old]
        if [x.get("digest") for x in layers] != [d.digest for d in parsed.layers]:
            # Go's decoder also reads "Layers"/"Digest"…; we keep descriptors verbatim, so only as cosign spells them.
            raise IntegrityError("the existing signature manifest does not spell its layers as cosign does "
                                 "(\"layers\", \"digest\"); refusing to rewrite it",
                                 hint="delete the signature tag and sign again")
    new = _layer(payload, signature)
    if not any(x.get("digest") == new["digest"] and x.get("annotations") == new["annotations"] for x in layers):
        layers.append(new)
    if len(layers) > limits.max_layers:
        raise IntegrityError(f"the signature manifest already has {len(layers) - 1} layers; "
                             f"the limit is {limits.max_layers}")
    config = signature_config([str(x["digest"]) for x in layers])
    manifest = _compact({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                         "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": len(config),
                                    "digest": oci.sha256_digest(config)},
                         "layers": layers})
    return manifest, config


def sign(client: Client, repo: Repository, digest: str, key: SigningKey, *,
         annotations: Mapping[str, str] | None = None, limits: Limits = DEFAULT_LIMITS) -> Signed:
    """Sign ``digest`` in ``repo`` with ``key`` and push the signature to ``sha256-<hex>.sig``.

    The payload's ``docker-reference`` is ``repo`` (:func:`shim.trust.registry_signatures.docker_reference`);
    ``annotations`` go to ``optional`` (cosign's ``-a``). Raises :class:`shim.common.errors.Unavailable`,
    :class:`IntegrityError`."""
    if not oci.is_digest(digest):
        raise IntegrityError(f"not a sha256 digest: {digest!r}")
    payload = classic_payload(digest, docker_reference(repo), annotations)
    signature = key.sign(payload)
    key.public_key().verify(signature, payload)  # never push a signature we would not accept
    tag = sig_tag(digest)
    try:
        existing: bytes | None = client.get_manifest(repo, tag, accept=oci.MANIFEST_TYPES).data
    except NotFound:
        existing = None
    manifest, config = signature_manifest(existing, payload, signature, limits)
    client.push_blob(repo, payload)
    client.push_blob(repo, config)
    pushed = client.put_manifest(repo, tag, manifest, oci.MEDIA_OCI_MANIFEST)
    return Signed(digest=digest, tag=tag, manifest_digest=pushed, layers=len(json.loads(manifest)["layers"]),
                  key_id=key.public_key().key_id)
