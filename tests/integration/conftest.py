"""Fixtures shared by the integration tests (the harness's own are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import swtpm as swtpm_h
from tests.tdx_provider import FuseProvider, TdxEnv, fuse_unavailable_reason, make_env


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[swtpm_h.Swtpm]:
    """A software TPM of the test's own (swtpm), stopped after it."""
    if swtpm_h.binary() is None:
        pytest.skip("swtpm is not installed (apt-get install swtpm)")
    t = swtpm_h.start(tmp_path, "swtpm")
    yield t
    t.stop()


@pytest.fixture
def tdx(tmp_path: Path) -> Iterator[tuple[TdxEnv, FuseProvider]]:
    """A test TDX chain and the kernel-shaped FUSE configfs-tsm provider serving quotes signed by it."""
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = make_env(Path(str(tmp_path)) / "tdx")
    provider = FuseProvider(env)
    yield env, provider
    provider.stop()
