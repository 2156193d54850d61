"""What the runtime gate keeps at create for exec (shim.runtime.decided): bound to the bundle's config.json,
root-only, and refused rather than ignored when it cannot be trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shim.common.errors import Denied
from shim.runtime import decided as runtime_decided
from shim.runtime.decided import Kept, bundle_of, find, forget, keep, spec_identity

TASKS = "io.containerd.runtime.v2.task"


def _bundle(tmp_path: Path, cid: str, ns: str = "default") -> Path:
    b = tmp_path / "state" / TASKS / ns / cid
    b.mkdir(parents=True)
    (b / "config.json").write_text("{}")
    return b


def _kept(b: Path, cid: str, level: str = "Low") -> Kept:
    return Kept(namespace="default", container_id=cid, level=level, how="admission", image="registry.example/a:1",
                digest="sha256:" + "a" * 64, bundle=str(b), spec=spec_identity(b))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    s = tmp_path / "bacon"
    s.mkdir(mode=0o700)
    return s


def test_kept_is_found_for_the_same_bundle_only(tmp_path: Path, state: Path) -> None:
    b = _bundle(tmp_path, "c1")
    keep(state, _kept(b, "c1"))
    path = state / "runtime" / "default" / "c1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert find(state, "default", "c1", str(b)) == _kept(b, "c1")
    assert find(state, "default", "c1", str(b) + "x") is None
    assert find(state, "default", "c2", str(b)) is None
    # another container under the same ID: the shim wrote a new config.json
    (b / "config.json").unlink()
    (b / "config.json").write_text("{}")
    os.utime(b / "config.json", ns=(1, 1))
    assert find(state, "default", "c1", str(b)) is None
    forget(state, "default", "c1")
    assert not path.exists()
    forget(state, "default", "c1")  # nothing kept: nothing to do


def test_what_cannot_be_trusted_is_refused(tmp_path: Path, state: Path) -> None:
    b = _bundle(tmp_path, "c1")
    keep(state, _kept(b, "c1"))
    path = state / "runtime" / "default" / "c1.json"
    path.chmod(0o644)
    with pytest.raises(Denied):
        find(state, "default", "c1", str(b))
    path.chmod(0o600)
    path.write_text(json.dumps({"level": "Low"}))
    with pytest.raises(Denied, match="malformed"):
        find(state, "default", "c1", str(b))
    path.write_text("{")
    with pytest.raises(Denied, match="malformed"):
        find(state, "default", "c1", str(b))
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Denied):
        find(state, "default", "c1", str(b))


@pytest.mark.parametrize("name", ["../x", "a/b", ".", "", "-a", "a" * 77, "ä"])
def test_only_containerd_identifiers_name_a_file(state: Path, name: str) -> None:
    with pytest.raises(Denied):
        forget(state, "default", name)
    with pytest.raises(Denied):
        find(state, name, "c1", "/b")


def test_what_was_kept_for_gone_bundles_is_pruned(tmp_path: Path, state: Path) -> None:
    live, gone = _bundle(tmp_path, "live"), _bundle(tmp_path, "gone")
    keep(state, _kept(live, "live"))
    keep(state, _kept(gone, "gone"))
    (gone / "config.json").unlink()
    gone.rmdir()
    new = _bundle(tmp_path, "new")
    keep(state, _kept(new, "new"))
    assert sorted(p.name for p in (state / "runtime" / "default").iterdir()) == ["live.json", "new.json"]


def test_the_bundle_comes_from_runcs_state(tmp_path: Path) -> None:
    root = tmp_path / "runc"
    (root / "c1").mkdir(parents=True)
    state = root / "c1" / "state.json"
    state.write_text(json.dumps({"config": {"labels": ["bundle=/b/default/c1", "other=x"]}}))
    assert bundle_of(str(root), "c1") == "/b/default/c1"
    with pytest.raises(Denied, match="cannot read runc's state"):
        bundle_of(str(root), "c2")
    for labels in ([], ["bundle=/a", "bundle=/b"], ["bundle=relative"]):
        state.write_text(json.dumps({"config": {"labels": labels}}))
        with pytest.raises(Denied, match="no single bundle"):
            bundle_of(str(root), "c1")
    state.write_text("[]")
    with pytest.raises(Denied, match="cannot read runc's state"):
        bundle_of(str(root), "c1")
    for bad in ("..", "a/b", ""):
        with pytest.raises(Denied):
            bundle_of(str(root), bad)
    assert runtime_decided.MAX_STATE >= 1 << 20


def test_a_runc_root_anyone_else_can_change_is_refused(tmp_path: Path) -> None:
    """runc's state under --root names the namespaces exec joins: a root its non-root owner could rename
    entries in (or one not yet made, in such a directory) cannot be trusted."""
    owned = tmp_path / "owned"
    (owned / "default" / "c1").mkdir(parents=True)
    os.chown(owned, 65534, 65534)
    for root in (str(owned / "default"), str(owned / "not-yet" / "default"), "relative/default"):
        with pytest.raises(Denied, match="--root"):
            runtime_decided.check_runc_root(root)
        with pytest.raises(Denied, match="--root"):
            runtime_decided.bundle_of(root, "c1")
    os.chown(owned, 0, 0)
    runtime_decided.check_runc_root(str(owned / "default"))
    runtime_decided.check_runc_root(str(owned / "not-yet" / "default"))  # runc makes it, root's
