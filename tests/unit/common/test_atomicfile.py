"""shim.common.atomicfile: the old file or the new one, never a part; exact mode and owner; no leftovers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shim.common import atomicfile

LIMIT = 64 * 1024


def test_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "level"
    target.write_bytes(b"old\n")
    atomicfile.write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level"]


def test_creates_a_missing_file(tmp_path: Path) -> None:
    atomicfile.write(str(tmp_path / "new.json"), b"{}")
    assert (tmp_path / "new.json").read_bytes() == b"{}"


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755])
def test_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)
    try:
        atomicfile.write(tmp_path / "f", b"x", mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == mode


def test_mode_is_exact_when_the_umask_is_lax(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomicfile.write(tmp_path / "private", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owner_is_set(tmp_path: Path) -> None:
    atomicfile.write(tmp_path / "f", b"x", owner=(1234, 5678))
    st = (tmp_path / "f").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_a_symlink_at_the_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "f").symlink_to(victim)
    atomicfile.write(tmp_path / "f", b"new")
    assert victim.read_bytes() == b"keep"
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == b"new"


def test_large_data_is_written_whole(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    atomicfile.write(tmp_path / "blob", data)
    assert (tmp_path / "blob").read_bytes() == data


def test_missing_directory_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomicfile.write(tmp_path / "no" / "f", b"x")
    assert list(tmp_path.iterdir()) == []


def test_failed_owner_change_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(OverflowError):
        atomicfile.write(target, b"new", owner=(2**40, 0))  # fchown refuses it before any byte is written
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


CHILD = r"""
import resource, signal, sys
from shim.common import atomicfile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    atomicfile.write(sys.argv[1], b"n" * (4 * int(sys.argv[2])))
except OSError as e:
    print(e.errno)
    sys.exit(3)
"""


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    """A real short write: the file size limit stops it after LIMIT bytes (as a full disk would)."""
    target = tmp_path / "record.json"
    target.write_bytes(b"old content")
    r = subprocess.run([sys.executable, "-c", CHILD, str(target), str(LIMIT)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3, r.stderr
    assert int(r.stdout) == 27  # EFBIG
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_fsync_directory(tmp_path: Path) -> None:
    atomicfile.fsync_directory(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        atomicfile.fsync_directory(tmp_path / "f")



def test_without_fsync_the_replacement_is_still_atomic(tmp_path: Path) -> None:
    target = tmp_path / "kept.json"
    target.write_bytes(b"old")
    atomicfile.write(target, b"new", mode=0o600, fsync=False)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]
