"""OCI and Docker image structures: digests, descriptors, manifests, indexes, configs.

Pure functions over bytes. Every parser here takes untrusted input: it checks types, bounds sizes and
counts, and raises :class:`shim.common.errors.IntegrityError` for anything malformed, never a bare exception.

Hand-written rather than taken from a library: the Python OCI libraries (oras, python-dxf) parse into
dicts without keeping the raw bytes, do not pick a platform the way containerd does, and pull in HTTP
stacks; what is needed here is ~150 lines of checks over ``json``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shim.common import strictjson
from shim.common.errors import IntegrityError

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})

MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
MAX_INDEX_ENTRIES = 1000
MAX_LABELS = 4096

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")  # whole string only: fullmatch (a "$" would take a trailing newline)


def is_digest(value: str) -> bool:
    """A full sha256 digest in canonical form (``sha256:`` + 64 lowercase hex): what BACON checks content
    against. (An argument nerdctl reads as an image ID is :func:`shim.images.reference.is_image_id`.)"""
    return bool(_DIGEST_RE.fullmatch(value))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_digest(data: bytes, expected: str, what: str) -> None:
    """Raise unless ``data`` hashes to ``expected`` (only sha256 is accepted)."""
    if not is_digest(expected):
        raise IntegrityError(f"{what}: unsupported or malformed digest {expected!r}")
    actual = sha256_digest(data)
    if actual != expected:
        raise IntegrityError(f"{what}: content is {actual}, expected {expected}")


@dataclass(frozen=True)
class Platform:
    """An OCI platform as written (``shim.images.platforms`` normalizes and matches it, as containerd does)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        from shim.images.platforms import format_all

        return format_all(self)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


def _load_json(data: bytes, what: str, limit: int) -> dict[str, Any]:
    """``data`` read as :mod:`shim.common.strictjson` reads untrusted JSON: bounded, UTF-8 only (what Go's
    decoder in containerd and nerdctl accepts), no duplicate key, no NaN/Infinity."""
    try:
        return strictjson.load_object(data, max_size=limit)
    except strictjson.Invalid as e:
        raise IntegrityError(f"{what} {e}") from e


# Go's encoding/json (containerd, nerdctl) matches an object key to a struct field case-insensitively,
# with two non-ASCII letters folding to ASCII ones, and decodes every key that matches in order (the
# last value wins; maps merge). So ``"labels"`` or ``"Label\u017f"`` sets ``Labels`` there, and
# ``"config"`` next to ``"Config"`` is one field with two values. We read struct fields the same way and
# refuse an object where two keys name the same field: a decision must not depend on which one is read.
_GO_FOLD = {"\u017f": "s", "\u212a": "k"}  # LATIN SMALL LETTER LONG S, KELVIN SIGN


def _go_fold(key: str) -> str:
    return "".join(c.lower() if c.isascii() else _GO_FOLD.get(c, c) for c in key)


def _struct(obj: dict[str, Any], fields: tuple[str, ...], what: str) -> dict[str, Any]:
    """The ``fields`` (as spelled in the OCI spec) present in ``obj``, matched as Go matches them."""
    want = {f.lower(): f for f in fields}
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in obj.items():
        field = want.get(_go_fold(key))
        if field is None:
            continue
        if field in seen:
            raise IntegrityError(f"{what}: keys {seen[field]!r} and {key!r} both set the field {field!r} "
                                 "(Go's decoder matches keys case-insensitively)")
        seen[field] = key
        out[field] = value
    return out


def go_struct(obj: dict[str, Any], fields: tuple[str, ...], what: str) -> dict[str, Any]:
    """The ``fields`` of ``obj`` as Go's decoder fills a struct with those JSON names (case-insensitive,
    the last of two keys for one field wins there): refused (:class:`IntegrityError`) when two keys name
    one field. For other documents signed or parsed in Go (cosign's simple-signing payload)."""
    return _struct(obj, fields, what)


def _descriptor(obj: object, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise IntegrityError(f"{what}: descriptor is not an object")
    obj = _struct(obj, ("mediaType", "digest", "size", "platform", "annotations"), what)
    mt, dg, size = obj.get("mediaType", ""), obj.get("digest"), obj.get("size")
    if not isinstance(mt, str) or not isinstance(dg, str) or not is_digest(dg):
        raise IntegrityError(f"{what}: descriptor has a bad mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(f"{what}: descriptor has a bad size")
    p = obj.get("platform")
    plat = None if p is None else _platform(p, f"{what} platform")
    ann = obj.get("annotations")
    ann = {} if ann is None else ann
    if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise IntegrityError(f"{what}: descriptor has bad annotations")
    return Descriptor(mt, dg, size, plat, ann)


def _platform(obj: object, what: str) -> Platform:
    """An OCI platform object as Go decodes it: absent fields are empty (an empty OS is the host's, to
    containerd), a field of the wrong type makes the whole document invalid."""
    if not isinstance(obj, dict):
        raise IntegrityError(f"{what} is not an object")
    obj = _struct(obj, ("os", "architecture", "variant", "os.version", "os.features"), what)
    strings = {k: obj.get(k) for k in ("os", "architecture", "variant", "os.version")}
    if not all(v is None or isinstance(v, str) for v in strings.values()):
        raise IntegrityError(f"{what} has a field that is not a string")
    features = obj.get("os.features")
    features = [] if features is None else features
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise IntegrityError(f"{what}: os.features is not a list of strings")
    return Platform(strings["os"] or "", strings["architecture"] or "", strings["variant"] or "",
                    strings["os.version"] or "", tuple(features))


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]
    subject: Descriptor | None = None
    artifact_type: str = ""


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def media_type_of(data: bytes, declared: str = "") -> str:
    """The media type of a manifest: its own ``mediaType`` field, else the declared one, else by shape."""
    obj = _struct(_load_json(data, "manifest", MAX_MANIFEST_BYTES), ("mediaType", "manifests"), "manifest")
    mt = obj.get("mediaType")
    if isinstance(mt, str) and mt:
        if declared and declared != mt and declared in INDEX_TYPES | MANIFEST_TYPES:
            raise IntegrityError(f"manifest says it is {mt} but was served as {declared}")
        return mt
    if declared:
        return declared
    return MEDIA_OCI_INDEX if "manifests" in obj else MEDIA_OCI_MANIFEST


def parse_manifest(data: bytes, max_layers: int = 10000) -> Manifest:
    obj = _struct(_load_json(data, "image manifest", MAX_MANIFEST_BYTES),
                  ("mediaType", "schemaVersion", "config", "layers", "annotations", "subject", "artifactType"),
                  "image manifest")
    mt = obj.get("mediaType", MEDIA_OCI_MANIFEST)
    if not isinstance(mt, str) or mt not in MANIFEST_TYPES:
        raise IntegrityError(f"expected an image manifest, got media type {mt!r}")
    if obj.get("schemaVersion") != 2:
        raise IntegrityError("image manifest: schemaVersion is not 2")
    layers = obj.get("layers", [])
    if not isinstance(layers, list):
        raise IntegrityError("image manifest: layers is not a list")
    if len(layers) > max_layers:
        raise IntegrityError(f"image manifest has {len(layers)} layers, more than the limit of {max_layers}")
    ann = obj.get("annotations")
    ann = {} if ann is None else ann
    if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise IntegrityError("image manifest: bad annotations")
    subject = _descriptor(obj["subject"], "manifest subject") if obj.get("subject") is not None else None
    at = obj.get("artifactType", "")
    return Manifest(
        media_type=mt,
        config=_descriptor(obj.get("config"), "manifest config"),
        layers=tuple(_descriptor(x, f"layer {i}") for i, x in enumerate(layers)),
        annotations=ann,
        subject=subject,
        artifact_type=at if isinstance(at, str) else "",
    )


def parse_index(data: bytes) -> Index:
    obj = _struct(_load_json(data, "image index", MAX_MANIFEST_BYTES), ("mediaType", "manifests"), "image index")
    mt = obj.get("mediaType", MEDIA_OCI_INDEX)
    if not isinstance(mt, str) or mt not in INDEX_TYPES:
        raise IntegrityError(f"expected an image index, got media type {mt!r}")
    entries = obj.get("manifests")
    if not isinstance(entries, list):
        raise IntegrityError("image index: manifests is not a list")
    if len(entries) > MAX_INDEX_ENTRIES:
        raise IntegrityError(f"image index has {len(entries)} entries, more than the limit of {MAX_INDEX_ENTRIES}")
    return Index(mt, tuple(_descriptor(x, f"index entry {i}") for i, x in enumerate(entries)))


@dataclass(frozen=True)
class ImageConfig:
    labels: Mapping[str, str]
    platform: Platform  # as written; an absent field is empty


def parse_config(data: bytes) -> ImageConfig:
    """The parts of an image config the gate reads: ``config.Labels`` and the platform.

    Duplicate keys anywhere make the config invalid (see :func:`_load_json`)."""
    obj = _load_json(data, "image config", MAX_CONFIG_BYTES)
    plat = _platform(obj, "image config")  # containerd's ConfigPlatform: the platform fields of the config
    obj = _struct(obj, ("config",), "image config")
    cfg = obj.get("config")
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise IntegrityError("image config: 'config' is not an object")
    labels = _struct(cfg, ("Labels",), "image config: config").get("Labels")
    labels = {} if labels is None else labels
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise IntegrityError("image config: Labels is not a map of strings")
    if len(labels) > MAX_LABELS:
        raise IntegrityError(f"image config has {len(labels)} labels, more than the limit of {MAX_LABELS}")
    return ImageConfig(labels=dict(labels), platform=plat)
