"""shim.images.rootfs, pure: diff IDs read strictly from an image config, chain IDs as the OCI image spec defines
them, and the walk down a container's snapshot compared with an image's chain."""

from __future__ import annotations

import hashlib
import json

import pytest

from shim.common.errors import Denied, IntegrityError
from shim.images import rootfs

A, B, C = ("sha256:" + c * 64 for c in "abc")


def config(rootfs_obj: object) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs_obj}).encode()


def test_diff_ids_are_read_in_order() -> None:
    assert rootfs.diff_ids(config({"type": "layers", "diff_ids": [A, B]})) == (A, B)


@pytest.mark.parametrize("bad", [
    None, [], {"type": "layers", "diff_ids": ["sha256:short"]}, {"type": "other", "diff_ids": [A]},
    {"type": "layers", "diff_ids": A}, {"type": "layers", "diff_ids": [A], "Diff_IDs": [B]},
])
def test_diff_ids_refuse_malformed_or_ambiguous_configs(bad: object) -> None:
    with pytest.raises(IntegrityError):
        rootfs.diff_ids(config(bad))


def test_diff_ids_refuse_a_duplicate_rootfs_key() -> None:
    raw = b'{"rootfs": {"type": "layers", "diff_ids": []}, "rootfs": {"type": "layers", "diff_ids": []}}'
    with pytest.raises(IntegrityError):
        rootfs.diff_ids(raw)


def test_chain_ids_follow_the_oci_definition() -> None:
    ab = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {C}".encode()).hexdigest()
    assert rootfs.chain_ids([A, B, C]) == (A, ab, abc)
    assert rootfs.chain_ids([]) == ()


def walk(*names: str, top_kind: int = rootfs.ACTIVE, bottom_parent: str = "") -> list[rootfs.Snapshot]:
    """The container's snapshot ``c1`` on the committed ``names`` (top first)."""
    out = [rootfs.Snapshot("c1", names[0] if names else "", top_kind)]
    for i, n in enumerate(names):
        parent = names[i + 1] if i + 1 < len(names) else bottom_parent
        out.append(rootfs.Snapshot(n, parent, rootfs.COMMITTED))
    return out


def test_a_container_on_exactly_the_images_chain_descends_from_it() -> None:
    chain = rootfs.chain_ids([A, B])
    rootfs.check_descends("c1", "img", walk(chain[1], chain[0]), chain)
    rootfs.check_descends("c1", "img", walk(chain[1], chain[0], top_kind=rootfs.VIEW), chain)


@pytest.mark.parametrize("case", ["other top", "missing layer", "extra layer", "longer chain", "not active",
                                  "no snapshot", "uncommitted layer"])
def test_any_other_walk_is_refused(case: str) -> None:
    chain = rootfs.chain_ids([A, B])
    other = rootfs.chain_ids([A, C])
    w = {
        "other top": walk(other[1], other[0]),
        "missing layer": walk(chain[1]),
        "extra layer": walk("sha256:" + "e" * 64, chain[1], chain[0]),
        "longer chain": walk(chain[1], chain[0], bottom_parent="sha256:" + "f" * 64),
        "not active": walk(chain[1], chain[0], top_kind=rootfs.COMMITTED),
        "no snapshot": [],
        "uncommitted layer": [rootfs.Snapshot("c1", chain[1], rootfs.ACTIVE),
                              rootfs.Snapshot(chain[1], chain[0], rootfs.ACTIVE),
                              rootfs.Snapshot(chain[0], "", rootfs.COMMITTED)],
    }[case]
    with pytest.raises(Denied) as e:
        rootfs.check_descends("c1", "img", w, chain)
    assert e.value.check == "rootfs"
    assert "does not descend from the layers of img" in e.value.message


def test_the_layer_chain_of_a_config_is_its_chain_ids() -> None:
    assert rootfs.layer_chain(config({"type": "layers", "diff_ids": [A, B]})) == rootfs.chain_ids([A, B])
    assert rootfs.layer_chain(config({"type": "layers", "diff_ids": []})) == ()
    with pytest.raises(IntegrityError):
        rootfs.layer_chain(config({"type": "other", "diff_ids": [A]}))
