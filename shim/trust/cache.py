"""Signature material kept under the state directory, so that ``run`` of a pulled image can re-verify it
with the registry unreachable.

Layout under ``<state_dir>/signatures/``::

    blobs/sha256/<hex>          every manifest, payload and bundle, named by the sha256 of its bytes
    images/sha256/<hex>.json    for an image digest: which blobs are its .sig manifest, payloads, bundles

Blobs are checked against their names when read, so nothing can be substituted; the image entry holds
only digests. The cache is not trusted: what it returns is re-verified cryptographically (signature, key,
claimed digest) at every decision, exactly as material fresh from the registry. Writes are atomic
(temporary file, fsync, ``os.replace``). Store after verifying: a lazily fetched ``blobs`` mapping holds
only the payloads the verifier asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from shim.common import atomicfile, strictjson
from shim.common.errors import IntegrityError
from shim.images import oci
from shim.trust.signatures import Material

MAX_ENTRY_BYTES = 256 << 10
MAX_BLOB_BYTES = 4 << 20


def _root(state_dir: Path) -> Path:
    return state_dir / "signatures"


def _hex(digest: str) -> str:
    if not oci.is_digest(digest):
        raise IntegrityError(f"not a sha256 digest: {digest!r}")
    return digest.removeprefix("sha256:")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    atomicfile.write(path, data, sync_directory=False)  # a lost entry is fetched and verified again


def _put_blob(root: Path, data: bytes) -> str:
    digest = oci.sha256_digest(data)
    path = root / "blobs" / "sha256" / _hex(digest)
    if not path.exists():
        _write_atomic(path, data)
    return digest


def _get_blob(root: Path, digest: str) -> bytes:
    path = root / "blobs" / "sha256" / _hex(digest)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BLOB_BYTES + 1)
    except OSError as e:
        raise IntegrityError(f"signature cache: blob {digest} is missing ({e.strerror})") from e
    oci.verify_digest(data, digest, f"signature cache blob {path}")
    return data


def store(state_dir: Path, material: Material) -> None:
    """Keep ``material`` for its digest (replacing what was kept before). Raises ``OSError``."""
    root = _root(state_dir)
    entry = {
        "digest": material.digest,
        "classic_manifest": _put_blob(root, material.classic_manifest) if material.classic_manifest else None,
        "payloads": sorted(_put_blob(root, data) for data in material.blobs.values()),
        "bundles": [_put_blob(root, b) for b in material.bundles],
    }
    _write_atomic(root / "images" / "sha256" / f"{_hex(material.digest)}.json",
                  json.dumps(entry, sort_keys=True).encode())


def load(state_dir: Path, digest: str) -> Material | None:
    """What was kept for ``digest``, or ``None``. Raises :class:`IntegrityError` when the entry or a blob
    is corrupt (a blob whose bytes do not match its name)."""
    root = _root(state_dir)
    path = root / "images" / "sha256" / f"{_hex(digest)}.json"
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_ENTRY_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IntegrityError(f"signature cache: cannot read {path}: {e.strerror}") from e
    try:
        entry = strictjson.loads(raw, max_size=MAX_ENTRY_BYTES)
    except strictjson.Invalid:
        entry = None
    if not isinstance(entry, dict) or entry.get("digest") != digest:
        raise IntegrityError(f"signature cache: {path} is corrupt")
    classic, payloads, bundles = entry.get("classic_manifest"), entry.get("payloads"), entry.get("bundles")
    if not (classic is None or isinstance(classic, str)) or not isinstance(payloads, list) \
            or not isinstance(bundles, list):
        raise IntegrityError(f"signature cache: {path} is corrupt")
    return Material(
        digest=digest,
        classic_manifest=_get_blob(root, classic) if classic else None,
        blobs={d: _get_blob(root, d) for d in payloads if isinstance(d, str)},
        bundles=tuple(_get_blob(root, d) for d in bundles if isinstance(d, str)),
    )
