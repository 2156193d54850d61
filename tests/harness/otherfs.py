"""An image whose rootfs differs from every other harness image's (one more layer on the shared busybox
layer), for the tests that need a container whose layers are not those of the image it names.

Built with umoci from a copy of the harness layout (the shared one is left alone), pushed unsigned.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.harness import images
from tests.harness.registry import Registry


def build_and_push(layout: Path, workdir: Path, registry: Registry, name: str = "otherfs") -> images.Image:
    work = workdir / f"{name}-build"
    if work.exists():
        shutil.rmtree(work)
    own = work / "layout"
    shutil.copytree(layout, own)
    bundle = work / "bundle"
    images._run("umoci", "unpack", "--image", f"{own}:low", str(bundle))
    (bundle / "rootfs" / "other-content").write_text(f"{name}: not the layers of any signed image\n")
    images._run("umoci", "repack", "--image", f"{own}:{name}", str(bundle))
    image = images.push(own, registry, name)
    shutil.rmtree(work)
    return image
