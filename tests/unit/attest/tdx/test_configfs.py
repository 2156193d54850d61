"""The configfs-tsm protocol rules, against an in-memory file system that keeps the kernel's counters.

The real file system is exercised by tests/unit/attest/tdx/test_provider_fuse.py (a FUSE provider)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shim.attest.tdx.configfs import ConfigfsQuoteProvider
from shim.common.errors import Unavailable

ROOT = Path("/tsm/report")


class MemTsm:
    """configfs-tsm in memory: a write commits and bumps the generation; outblob echoes the inblob."""

    def __init__(self, *, provider: str = "tdx_guest", ebusy: int = 0, extra_bump: int = 0,
                 bump_on_read: bool = False, outblob_error: int | None = None, exists: bool = True) -> None:
        self.provider, self.ebusy, self.extra_bump = provider, ebusy, extra_bump
        self.bump_on_read, self.outblob_error, self.exists = bump_on_read, outblob_error, exists
        self.entries: dict[Path, dict[str, object]] = {}
        self.log: list[str] = []
        self.locked = False

    def mkdir(self, path: Path) -> None:
        if not self.exists:
            raise FileNotFoundError(errno.ENOENT, "no such dir")
        self.entries[path] = {"gen": 7, "in": b""}
        self.log.append("mkdir")

    def rmdir(self, path: Path) -> None:
        del self.entries[path]
        self.log.append("rmdir")

    def read(self, path: Path, limit: int) -> bytes:
        e = self.entries[path.parent]
        self.log.append(f"read {path.name}")
        if path.name == "provider":
            return self.provider.encode() + b"\n"
        if path.name == "generation":
            return f"{e['gen']}\n".encode()
        assert path.name == "outblob"
        assert self.locked
        if self.outblob_error:
            raise OSError(self.outblob_error, "outblob failed")
        if self.bump_on_read:
            e["gen"] = int(str(e["gen"])) + 1
        data = e["in"]
        assert isinstance(data, bytes)
        return b"QUOTE:" + data

    @contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        self.locked = True
        self.log.append("lock")
        try:
            yield
        finally:
            self.locked = False
            self.log.append("unlock")

    def write_closed(self, path: Path, data: bytes) -> None:
        assert self.locked
        assert path.name == "inblob"
        self.log.append("write")
        if self.ebusy:
            self.ebusy -= 1
            raise OSError(errno.EBUSY, "busy")
        e = self.entries[path.parent]
        e["in"] = data
        e["gen"] = int(str(e["gen"])) + 1 + self.extra_bump


def provider(fs: MemTsm, retries: int = 3) -> ConfigfsQuoteProvider:
    return ConfigfsQuoteProvider(ROOT, fs=fs, busy_retries=retries, busy_wait=0, sleep=lambda _s: None)


RD = bytes(range(64))


def test_the_protocol_in_order() -> None:
    fs = MemTsm()
    assert provider(fs).get_quote(RD) == b"QUOTE:" + RD
    assert fs.log == ["mkdir", "read provider", "lock", "read generation", "write", "read generation",
                      "read outblob", "read generation", "unlock", "rmdir"]
    assert fs.entries == {}


def test_each_call_uses_its_own_entry() -> None:
    fs = MemTsm()
    names: set[Path] = set()
    orig = fs.mkdir

    def spy(path: Path) -> None:
        names.add(path)
        orig(path)

    fs.mkdir = spy  # type: ignore[method-assign]
    p = provider(fs)
    p.get_quote(RD)
    p.get_quote(RD)
    assert len(names) == 2
    assert all(n.parent == ROOT for n in names)


def test_ebusy_is_retried_a_bounded_number_of_times() -> None:
    fs = MemTsm(ebusy=2)
    assert provider(fs).get_quote(RD) == b"QUOTE:" + RD
    fs = MemTsm(ebusy=10)
    with pytest.raises(Unavailable, match="busy after 3 retries"):
        provider(fs).get_quote(RD)
    assert fs.log.count("write") == 4
    assert fs.entries == {}


def test_an_interleaved_writer_is_detected() -> None:
    with pytest.raises(Unavailable, match="generation went 7 → 9"):
        provider(MemTsm(extra_bump=1)).get_quote(RD)


def test_a_change_while_reading_outblob_is_detected() -> None:
    fs = MemTsm(bump_on_read=True)
    with pytest.raises(Unavailable, match="changed while reading outblob"):
        provider(fs).get_quote(RD)
    assert fs.entries == {}


def test_outblob_failure_is_unavailable_with_the_qgs_hint() -> None:
    fs = MemTsm(outblob_error=errno.EIO)
    with pytest.raises(Unavailable, match="outblob failed") as e:
        provider(fs).get_quote(RD)
    assert e.value.hint
    assert "Quote Generation Service" in e.value.hint
    assert fs.entries == {}


def test_no_configfs_means_not_a_guest() -> None:
    with pytest.raises(Unavailable, match="not a TDX guest") as e:
        provider(MemTsm(exists=False)).get_quote(RD)
    assert e.value.hint
    assert "configfs" in e.value.hint


def test_another_tee_is_refused() -> None:
    fs = MemTsm(provider="sev_guest")
    with pytest.raises(Unavailable, match="'sev_guest'"):
        provider(fs).get_quote(RD)
    assert "write" not in fs.log
    assert fs.entries == {}


def test_report_data_must_be_64_bytes() -> None:
    with pytest.raises(ValueError, match="64"):
        provider(MemTsm()).get_quote(b"short")
