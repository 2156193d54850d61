"""What ``runc checkpoint`` asks of the host (shim.runtime.checkpoint): CRIU's image and work files go only
where containerd itself puts them, the container's bundle or a fresh directory containerd made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.admission.profiles import rules
from shim.admission.profiles.rules import Allowances, Settings
from shim.runtime import checkpoint as runtime_checkpoint
from shim.runtime.argv import parse

BUNDLE = "/var/run/containerd/io.containerd.runtime.v2.task/default/c1"


def refused(*flags: str, allow: Allowances | None = None, profile: str = "baseline") -> list[str]:
    call = parse(["checkpoint", *flags, "c1"])
    settings = Settings(profile=profile, level="Mid", allow=allow or Allowances(), host=True)
    return [r.option for r in rules.refusals_of(runtime_checkpoint.requested(call, BUNDLE), settings)]


def test_the_bundle_is_where_containerd_keeps_criu_work_files() -> None:
    assert refused("--work-path", f"{BUNDLE}/criu-work") == []
    assert refused("--work-path", BUNDLE) == []
    assert refused() == []


@pytest.mark.parametrize("path", ["/etc", "/etc/sudoers.d", f"{BUNDLE}/../../../../../../etc", f"{BUNDLE}x",
                                  "/tmp/ctd-checkpoint1/../../etc", "relative"])
def test_criu_writing_anywhere_else_as_root_is_refused(path: str) -> None:
    for flag in ("--image-path", "--work-path", "--parent-path"):
        assert refused(flag, path) == [f"runc checkpoint {flag} {path}"]
    assert refused("--image-path", path, allow=Allowances(host_files=frozenset({"checkpoint"}))) == []
    assert refused("--image-path", path, profile="privileged") == []


def test_a_directory_containerd_made_for_the_checkpoint_passes(tmp_path: Path) -> None:
    made = tmp_path / "ctd-checkpoint123456"
    made.mkdir(mode=0o700)
    assert refused("--image-path", str(made)) == []
    (made / "inventory.img").write_bytes(b"")  # not fresh: another checkpoint's, or planted
    assert refused("--image-path", str(made)) != []
    (made / "inventory.img").unlink()
    os.chmod(made, 0o710)  # noqa: S103 - not containerd's mode (0700)
    assert refused("--image-path", str(made)) != []
    os.chmod(made, 0o700)
    link = tmp_path / "ctd-checkpoint7"
    link.symlink_to(made)
    assert refused("--image-path", str(link)) != []
    other = tmp_path / "not-containerds"
    other.mkdir(mode=0o700)
    assert refused("--image-path", str(other)) != []
    assert refused("--work-path", str(made)) != []  # only the image path is ever containerd's temporary one


def test_a_criu_binary_is_run_only_when_trusted(tmp_path: Path) -> None:
    from shim.common.errors import Denied

    criu = tmp_path / "criu"
    criu.write_text("#!/bin/sh\n")
    criu.chmod(0o755)
    runtime_checkpoint.criu_binary(None)  # runc's own lookup on its PATH
    runtime_checkpoint.criu_binary(str(criu))
    os.chown(criu, 65534, 65534)  # another user's program, run as root
    with pytest.raises(Denied, match="runc would run it as root"):
        runtime_checkpoint.criu_binary(str(criu))
    with pytest.raises(Denied):
        runtime_checkpoint.criu_binary(str(tmp_path / "missing"))
