"""Whether a container's rootfs descends from an image's layers, decided from containerd's snapshots.

An image config lists its layers' uncompressed digests (``rootfs.diff_ids``). The OCI image spec defines
the chain ID of the layers 0..n: ``ChainID(L0) = DiffID(L0)``, ``ChainID(L0..n) = sha256(ChainID(L0..n-1)
+ " " + DiffID(Ln))``. containerd unpacks an image into committed snapshots *named* by those chain IDs,
each the parent of the next, and a container's rootfs is an active (or view) snapshot whose parent is the
top one. So a container descends from an image exactly when the walk from its snapshot down the parents
is its own snapshot, then the image's chain IDs from the top to the bottom, then nothing. A container
made from other content (another image's layers under a signed image's name, a retag after creation)
has another chain and is refused. See docs/runtime.md.

:func:`diff_ids`, :func:`chain_ids`, :func:`layer_chain` and :func:`check_descends` are pure; :func:`verify`
and :func:`verify_chain` do the reads (the image config through the content store, the walk through the
snapshots service).

A container the nerdctl wrapper admitted carries, in its admission record, the chain IDs of the checked
image's layers (:func:`layer_chain`, from the config the wrapper checked): the runtime gate walks the
container's snapshot against them (:func:`verify_chain`) without resolving the image again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shim.common.errors import Denied, IntegrityError
from shim.images import oci

if TYPE_CHECKING:
    from shim.images.containerd import Client, ContainerRecord, ResolvedImage

MAX_LAYERS = 1000  # containerd's own overlay snapshotter cannot mount more than ~500 lowerdirs

# containerd's snapshot kinds (api/services/snapshots/v1: Kind)
VIEW, ACTIVE, COMMITTED = 1, 2, 3


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as containerd's ``Snapshots.Stat`` describes it."""

    name: str
    parent: str
    kind: int


def diff_ids(config: bytes) -> tuple[str, ...]:
    """The ``rootfs.diff_ids`` of an image config (bottom layer first). Raises :class:`IntegrityError`."""
    # The same strict reading as the config's labels (shim.images.oci): UTF-8 JSON, no duplicate keys, struct
    # fields matched as Go's decoder matches them.
    obj = oci._struct(oci._load_json(config, "image config", oci.MAX_CONFIG_BYTES), ("rootfs",), "image config")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict):
        raise IntegrityError("image config: 'rootfs' is missing or not an object")
    fields = oci._struct(rootfs, ("type", "diff_ids"), "image config: rootfs")
    if fields.get("type") != "layers":
        raise IntegrityError(f"image config: rootfs type is {fields.get('type')!r}, not 'layers'")
    ids = fields.get("diff_ids")
    ids = [] if ids is None else ids
    if not isinstance(ids, list) or not all(isinstance(d, str) and oci.is_digest(d) for d in ids):
        raise IntegrityError("image config: rootfs.diff_ids is not a list of digests")
    if len(ids) > MAX_LAYERS:
        raise IntegrityError(f"image config lists {len(ids)} layers, more than the limit of {MAX_LAYERS}")
    return tuple(ids)


def chain_ids(diffs: Sequence[str]) -> tuple[str, ...]:
    """The chain ID of each prefix of ``diffs`` (bottom first), as the OCI image spec defines it."""
    out: list[str] = []
    for d in diffs:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return tuple(out)


def check_descends(container: str, image: str, walk: Sequence[Snapshot], chain: Sequence[str]) -> None:
    """Raise :class:`Denied` unless ``walk`` (the container's snapshot, then its parents in order) is the
    container's own snapshot on exactly the image's ``chain`` (bottom first)."""
    def refuse(why: str) -> Denied:
        return Denied(f"container {container[:12]}'s rootfs does not descend from the layers of {image}: {why}",
                      check="rootfs", image=image,
                      hint="create the container from the image itself (nerdctl run through the wrapper)")

    if not walk:
        raise refuse("it has no snapshot")
    top, parents = walk[0], list(walk[1:])
    if top.kind not in (ACTIVE, VIEW):
        raise refuse(f"its snapshot {top.name!r} is not an active or view snapshot")
    want = list(reversed(chain))
    got = [s.name for s in parents]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        seen = got[first] if first < len(got) else "nothing"
        expected = want[first] if first < len(want) else "nothing"
        raise refuse(f"{first} layer(s) below its top it has {seen}, the image has {expected}")
    for s in parents:
        if s.kind != COMMITTED:
            raise refuse(f"the layer snapshot {s.name} is not committed")
    last = walk[-1]
    if last.parent:
        raise refuse(f"its chain continues below the image's bottom layer ({last.parent})")


def layer_chain(config: bytes) -> tuple[str, ...]:
    """The chain IDs of an image config's layers, bottom first. Raises :class:`IntegrityError`."""
    return chain_ids(diff_ids(config))


def known_layer_chain(config: bytes) -> tuple[str, ...] | None:
    """:func:`layer_chain`, or None when the config's ``rootfs`` cannot be read (whoever checks the rootfs
    then reads the config again, and refuses)."""
    try:
        return layer_chain(config)
    except IntegrityError:
        return None


def verify(client: Client, container: ContainerRecord, resolved: ResolvedImage) -> None:
    """Check that ``container``'s rootfs descends from ``resolved``'s layers (raises :class:`Denied`)."""
    _require_snapshot(container)
    config = client.read_blob(resolved.config_digest, oci.MAX_CONFIG_BYTES)
    verify_chain(client, container, layer_chain(config), container.image)


def verify_chain(client: Client, container: ContainerRecord, chain: Sequence[str], image: str) -> None:
    """Check that ``container``'s rootfs descends from the layers whose chain IDs are ``chain`` (bottom first;
    ``image`` names them in a refusal). Raises :class:`Denied`."""
    _require_snapshot(container)
    walk = client.snapshot_chain(container.snapshotter, container.snapshot_key, limit=len(chain) + 2)
    check_descends(container.id, image, walk, chain)


def _require_snapshot(container: ContainerRecord) -> None:
    if not container.snapshot_key or not container.snapshotter:
        raise Denied(f"container {container.id[:12]} has no rootfs snapshot to check", check="rootfs",
                     image=container.image, hint="create the container from an image (nerdctl run through the wrapper)")
