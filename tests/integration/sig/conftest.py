"""Session fixtures for the signature and registry tests: a private registry (tests/harness/registry.py),
the harness's OCI layout to copy images from, the real cosign, and a cosign key pair made by it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.images import registry as registry_client
from tests.harness import registry as registry_h
from tests.harness import sigimages


@pytest.fixture(scope="session")
def sig_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sig")


@pytest.fixture(scope="session")
def sig_registry(sig_workdir: Path) -> Iterator[registry_h.Registry]:
    if registry_h.binary() is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = registry_h.start(sig_workdir)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def sig_layout(sig_workdir: Path) -> Path:
    if not sigimages.tools_available():
        pytest.skip("umoci, skopeo and busybox-static are needed (apt-get install umoci skopeo busybox-static)")
    return sigimages.layout(sig_workdir / "images")


@pytest.fixture
def client(sig_registry: registry_h.Registry) -> Iterator[registry_client.Client]:
    with registry_client.Client(insecure={sig_registry.host}, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def cosign_exe() -> str:
    exe = sigimages.cosign_binary()
    if exe is None:
        pytest.skip("cosign is not installed (run scripts/fetch-cosign.sh)")
    return exe


@dataclass(frozen=True)
class CosignKeys:
    key: Path
    pub: Path
    password: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "COSIGN_PASSWORD": self.password}


@pytest.fixture(scope="session")
def cosign_keys(cosign_exe: str, sig_workdir: Path) -> CosignKeys:
    """A key pair written by ``cosign generate-key-pair`` (encrypted, password from COSIGN_PASSWORD)."""
    d = sig_workdir / "cosign-keys"
    d.mkdir()
    keys = CosignKeys(d / "cosign.key", d / "cosign.pub", "bacon-interop")
    subprocess.run([cosign_exe, "generate-key-pair"], cwd=d, env=keys.env(), check=True, capture_output=True,
                   timeout=60)
    return keys
