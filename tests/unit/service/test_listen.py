"""The service's socket directory: the trusted-file rule, and no shared sticky directory (the stale socket in
it is replaced on start)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shim.common.errors import ConfigError
from shim.service import server


@pytest.mark.parametrize("mode", [0o1777, 0o770, 0o757])
def test_a_directory_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ConfigError, match="writable by nobody else") as e:
        server.listen(str(directory / "decide.sock"))
    assert e.value.hint is not None
    assert "chmod 0700" in e.value.hint
    assert list(directory.iterdir()) == []


def test_a_private_directory_is_made_and_used(tmp_path: Path) -> None:
    path = tmp_path / "run" / "decide.sock"
    sock = server.listen(str(path))
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        sock.close()
