"""A container's rootfs against the layers of the image it names, read from the real containerd's
snapshots (``shim.images.rootfs``), and ``unrecorded_start = "check-image"`` deciding on that rootfs rather than
on the image's name (a name retagged after the container was made must not admit it)."""

from __future__ import annotations

import json

import pytest

from shim.common.errors import Denied
from shim.images import rootfs
from shim.images.containerd import Client
from shim.wrapper.nerdctl_env import Target
from tests.conftest import Host, Signed, trusted_config
from tests.harness.images import Image
from tests.integration.otherfs_fixture import otherfs  # noqa: F401 - the fixture
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def check_image_config(host: Host, signed: Signed) -> None:
    trusted_config(host, signed.trusted)
    host.write_config('unrecorded_start = "check-image"\n' + host.config.read_text())


def _client(host: Host) -> Client:
    return Client(Target(address=str(host.containerd.socket), namespace="default"))


def test_chain_ids_are_the_snapshot_names_containerd_unpacked(gate_host: Host, otherfs: Image) -> None:  # noqa: F811
    with _client(gate_host) as c:
        resolved = c.resolve_image(otherfs.ref)
        chain = rootfs.chain_ids(rootfs.diff_ids(c.read_blob(resolved.config_digest, 1 << 20)))
    assert len(chain) == 2
    listed = gate_host.containerd.ctr("snapshots", "ls").stdout
    for chain_id in chain:
        assert chain_id in listed, (chain_id, listed)


def test_a_container_made_from_the_image_descends_from_it(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    gate_host.containerd.ctr("containers", "create", img.ref, "chain-ok-1")
    try:
        with _client(gate_host) as c:
            rootfs.verify(c, c.get_container("chain-ok-1"), c.resolve_image(img.ref))
    finally:
        gate_host.containerd.ctr("containers", "rm", "chain-ok-1", check=False)


def _retagged_container(host: Host, content: Image, signed_image: Image, cid: str, name: str) -> str:
    """A container made by ctr from ``content`` under a name (in the signed image's repository, where its
    signatures are found) that then moves to ``signed_image``."""
    alias = f"{signed_image.repo}:retagged-{cid}"
    host.containerd.ctr("images", "tag", "--force", content.ref, alias)
    host.containerd.ctr("containers", "create", "--label", f"nerdctl/name={name}", alias, cid)
    host.containerd.ctr("images", "tag", "--force", signed_image.ref, alias)
    return alias


def test_check_image_refuses_a_container_whose_name_was_retagged_onto_a_signed_image(
        gate_host: Host, signed: Signed, otherfs: Image) -> None:  # noqa: F811
    check_image_config(gate_host, signed)
    alias = _retagged_container(gate_host, otherfs, signed["low"], "retag-1", "retagged")
    try:
        with _client(gate_host) as c:
            container, resolved = c.get_container("retag-1"), c.resolve_image(alias)
            with pytest.raises(Denied) as e:
                rootfs.verify(c, container, resolved)
        assert "does not descend" in e.value.message
        r = nerdctl(gate_host, "start", "retagged")
        assert_denied(r, alias, "rootfs")
        last = audit_lines(gate_host)[-1]
        assert last["verdict"] == "denied", json.dumps(last)
        assert last["failed_check"] == "rootfs", json.dumps(last)
    finally:
        gate_host.containerd.ctr("containers", "rm", "retag-1", check=False)
        gate_host.containerd.ctr("images", "rm", alias, check=False)


def test_check_image_admits_a_container_made_from_the_signed_image(gate_host: Host, signed: Signed) -> None:
    check_image_config(gate_host, signed)
    img = signed["low"]
    gate_host.containerd.ctr("containers", "create", "--label", "nerdctl/name=made-by-ctr", img.ref, "made-by-ctr-1")
    try:
        r = nerdctl(gate_host, "start", "made-by-ctr")
        assert r.rc == 0, r.stderr
        assert r.forwarded[0][-1] == "made-by-ctr-1", r.forwarded  # the checked ID, not the name
    finally:
        gate_host.containerd.ctr("tasks", "rm", "-f", "made-by-ctr-1", check=False)
        gate_host.containerd.ctr("containers", "rm", "made-by-ctr-1", check=False)
