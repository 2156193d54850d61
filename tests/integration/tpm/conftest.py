"""A session-scoped swtpm for the TPM integration tests, and a spare one per test that needs to stop it
or to be another TPM (another endorsement seed, hence another AK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import swtpm as swtpm_h


def _require_swtpm() -> None:
    if swtpm_h.binary() is None:
        pytest.skip("swtpm is not installed (apt-get install swtpm)")


@pytest.fixture(scope="session")
def swtpm(workdir: Path) -> Iterator[swtpm_h.Swtpm]:
    _require_swtpm()
    tpm = swtpm_h.start(workdir, "swtpm-session")
    yield tpm
    tpm.stop()


@pytest.fixture
def spare_swtpm(tmp_path: Path) -> Iterator[swtpm_h.Swtpm]:
    _require_swtpm()
    tpm = swtpm_h.start(Path(str(tmp_path)), "swtpm-spare")
    yield tpm
    tpm.stop()
