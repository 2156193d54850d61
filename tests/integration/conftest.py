"""Fixtures shared by the integration tests (the harness's own are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tdx_provider import FuseProvider, TdxEnv, fuse_unavailable_reason, make_env


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
