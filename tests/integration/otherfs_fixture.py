"""The ``otherfs`` fixture: an unsigned image with one more layer than the harness images (so a rootfs
made from it is not any signed image's), pushed and pulled into the harness containerd."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Signed
from tests.harness import images as images_h
from tests.harness import otherfs as otherfs_h
from tests.harness.containerd import Containerd
from tests.harness.registry import Registry


@pytest.fixture(scope="session")
def otherfs(workdir: Path, registry: Registry, containerd: Containerd, signed: Signed) -> images_h.Image:
    image = otherfs_h.build_and_push(signed.images.layout, workdir, registry)
    images_h.pull(containerd, image)
    return image
