"""shim.common.trustedfile: one rule for every file BACON executes or trusts (tests/integration/test_trusted_files.py
runs it through the wrapper, the service and doctor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.common import trustedfile
from shim.common.errors import ConfigError

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to an unprivileged user")


def _file(directory: Path, name: str = "key.pub", mode: int = 0o644) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_bytes(b"content")
    p.chmod(mode)
    return p


def test_a_root_owned_file_in_a_root_owned_tree_is_read(tmp_path: Path) -> None:
    assert trustedfile.read(_file(tmp_path / "etc"), "trusted key") == b"content"


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ConfigError, match="writable by others") as e:
        trustedfile.read(_file(tmp_path, mode=mode), "trusted key")
    assert e.value.hint is not None
    assert "chmod go-w" in e.value.hint


def test_any_directory_on_the_path_counts_not_only_the_parent(tmp_path: Path) -> None:
    p = _file(tmp_path / "a" / "b" / "c")
    (tmp_path / "a").chmod(0o777)
    with pytest.raises(ConfigError, match=f"the directory {tmp_path / 'a'} on its path is writable by others"):
        trustedfile.read(p, "trusted key")


def test_a_sticky_root_directory_is_not_a_weakness(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert trustedfile.read(_file(sticky), "trusted key") == b"content"


@as_root
def test_owned_by_an_unprivileged_user_is_refused(tmp_path: Path) -> None:
    p = _file(tmp_path)
    os.chown(p, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match="owned by uid 65534, not by root"):
        trustedfile.read(p, "trusted key")
    os.chown(p, 0, 0)
    os.chown(tmp_path, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"the directory {tmp_path} on its path is owned by uid 65534"):
        trustedfile.read(p, "trusted key")


@as_root
def test_a_symlink_is_followed_only_into_a_root_owned_tree(tmp_path: Path) -> None:
    theirs = tmp_path / "home"
    real = _file(theirs)
    link = tmp_path / "etc" / "key.pub"
    link.parent.mkdir()
    link.symlink_to(real)
    assert trustedfile.read(link, "trusted key") == b"content"
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"the directory {theirs} on its path is owned by uid 65534"):
        trustedfile.read(link, "trusted key")
    relative = tmp_path / "etc" / "rel.pub"
    relative.symlink_to("../home/key.pub")
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        trustedfile.read(relative, "trusted key")


def test_symlink_refused_where_none_is_wanted_and_loops_end(tmp_path: Path) -> None:
    real = _file(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="is a symlink"):
        trustedfile.read(link, "configuration", symlink=False)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="too many levels of symlinks"):
        trustedfile.read(loop, "trusted key")


def test_private_files_must_not_be_readable_by_others(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="readable by others"):
        trustedfile.read(_file(tmp_path, mode=0o644), "api key", private=True)
    assert trustedfile.read(_file(tmp_path, "k2", mode=0o600), "api key", private=True) == b"content"


def test_missing_not_regular_and_relative_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        trustedfile.read(tmp_path / "nothing", "trusted key")
    with pytest.raises(ConfigError, match="is a directory"):
        trustedfile.read(tmp_path, "trusted key")
    with pytest.raises(ConfigError, match="not an absolute path"):
        trustedfile.read("relative/key.pub", "trusted key")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(ConfigError, match="not a regular file"):
        trustedfile.read(fifo, "trusted key")


def test_problem_is_the_same_verdict_as_text(tmp_path: Path) -> None:
    p = _file(tmp_path, mode=0o666)
    assert trustedfile.problem(p, "trusted key") == f"trusted key {p} is writable by others (mode 666)"
    p.chmod(0o755)
    assert trustedfile.problem(p, "program", executable=True) is None
    p.chmod(0o644)
    assert "not executable" in str(trustedfile.problem(p, "program", executable=True))


def test_a_sticky_directory_can_be_refused_where_entries_are_replaced(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert trustedfile.unsafe_stat(sticky.stat()) is None
    assert trustedfile.unsafe_stat(sticky.stat(), sticky=False) == "is writable by others (mode 1777)"
