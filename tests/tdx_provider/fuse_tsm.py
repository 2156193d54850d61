"""TEST stand-in for the kernel's configfs-tsm report directory (/sys/kernel/config/tsm/report) in a TDX
guest, as a FUSE file system, because there is no TDX hardware here. It behaves as the kernel does for
the parts BACON relies on: ``mkdir`` makes a report entry with ``provider``, ``generation``, ``inblob``,
``outblob``; a write to ``inblob`` is committed when the file is closed (configfs binary attributes
commit on close) and advances ``generation``; reading ``outblob`` generates the quote for the current
``inblob`` (cached per generation); ``rmdir`` removes the entry. Quotes are signed with a TEST chain
(tests/tdx_provider/chain.py), never Intel's.

What it adds for tests, driven by a JSON control file re-read on every operation:
``provider`` (what the ``provider`` file says), ``fail_outblob`` (reading ``outblob`` fails with EIO, as
without a Quote Generation Service), ``ebusy`` (the next N commits fail with EBUSY), ``interleave`` (a
commit advances the generation twice, as if another writer came in between), ``report_data`` (hex: put
this REPORTDATA in the quote instead of the one written), ``body`` (hex TD report fields: mrtd,
rtmr0..3, mrconfigid, mrowner, td_attributes, tee_tcb_svn), ``stall_outblob`` (seconds a read of
``outblob`` waits first, as with a Quote Generation Service that does not answer), ``fixed_quote`` (a file
whose bytes are returned as the quote, e.g. a real vector), ``measurements_state`` (the state file of the
measurement-files stand-in, ``fuse_measurements``: the quote carries the MRTD and RTMRs it holds, as a real TD's does).

Run: ``python -m tests.tdx_provider.fuse_tsm MOUNTPOINT PKI_DIR CONTROL_JSON`` (root; needs libfuse3 and
the PyPI package ``mfusepy``). Stops when unmounted.
"""

from __future__ import annotations

import errno
import itertools
import json
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import mfusepy as fuse

from tests.tdx_provider import chain

INBLOB_MAX = 64
FILES = {"provider": 0o444, "generation": 0o444, "inblob": 0o200, "outblob": 0o444}


@dataclass
class Entry:
    inblob: bytes = b""
    write_gen: int = 0
    read_gen: int = -1
    outblob: bytes = b""


@dataclass
class Handle:
    entry: str
    name: str
    buf: bytearray = field(default_factory=bytearray)
    dirty: bool = False


class TsmReportFs(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, pki_dir: str, control: str) -> None:
        self.pki = chain.load_pki(pki_dir)
        self.control_path = control
        self.entries: dict[str, Entry] = {}
        self.handles: dict[int, Handle] = {}
        self.fh = itertools.count(1)
        self.mutex = threading.RLock()
        self.ebusy_used = 0
        self.t0 = time.time_ns()

    # -- helpers
    def control(self) -> dict[str, Any]:
        with open(self.control_path, encoding="utf-8") as f:
            doc: dict[str, Any] = json.load(f)
        return doc

    def split(self, path: str) -> tuple[str, str]:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 1 and parts[0] in self.entries:
            return parts[0], ""
        if len(parts) == 2 and parts[0] in self.entries and parts[1] in FILES:
            return parts[0], parts[1]
        raise fuse.FuseOSError(errno.ENOENT)

    def body(self, ctl: dict[str, Any]) -> chain.TdBody:
        b = chain.TdBody()
        spec: dict[str, str] = ctl.get("body", {})
        for key, value in spec.items():
            raw = bytes.fromhex(value)
            if key.startswith("rtmr"):
                rt = list(b.rtmr)
                rt[int(key[4:])] = raw
                b.rtmr = (rt[0], rt[1], rt[2], rt[3])
            else:
                setattr(b, key, raw)
        if ctl.get("measurements_state"):
            with open(ctl["measurements_state"], encoding="utf-8") as f:
                regs = {k: bytes.fromhex(v) for k, v in json.load(f).items()}
            b.mrtd = regs["mrtd"]
            b.rtmr = (regs["rtmr0"], regs["rtmr1"], regs["rtmr2"], regs["rtmr3"])
        return b

    def generate(self, e: Entry) -> bytes:
        ctl = self.control()
        if ctl.get("fail_outblob"):
            raise fuse.FuseOSError(errno.EIO)
        if e.read_gen == e.write_gen and e.outblob:
            return e.outblob
        if len(e.inblob) != INBLOB_MAX:
            raise fuse.FuseOSError(errno.EINVAL)
        if ctl.get("fixed_quote"):
            with open(ctl["fixed_quote"], "rb") as f:
                quote = f.read()
        else:
            rd = bytes.fromhex(ctl["report_data"]) if ctl.get("report_data") else e.inblob
            quote = chain.make_quote(self.pki, rd, self.body(ctl))
        e.outblob, e.read_gen = quote, e.write_gen
        return quote

    def commit(self, h: Handle) -> None:
        if not h.dirty:
            return
        ctl = self.control()
        if self.ebusy_used < int(ctl.get("ebusy", 0)):
            self.ebusy_used += 1
            raise fuse.FuseOSError(errno.EBUSY)
        e = self.entries[h.entry]
        e.inblob = bytes(h.buf)
        e.write_gen += 2 if ctl.get("interleave") else 1
        h.dirty = False

    # -- file system operations
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        base = {"st_uid": 0, "st_gid": 0, "st_atime": self.t0, "st_mtime": self.t0, "st_ctime": self.t0}
        if path == "/":
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        with self.mutex:
            _entry, name = self.split(path)
        if not name:
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        return {**base, "st_mode": stat.S_IFREG | FILES[name], "st_nlink": 1, "st_size": 0}

    def readdir(self, path: str, fh: Any) -> list[str]:
        if path == "/":
            with self.mutex:
                return [".", "..", *self.entries]
        self.split(path)
        return [".", "..", *FILES]

    def mkdir(self, path: str, mode: int) -> int:
        parts = [p for p in path.split("/") if p]
        if len(parts) != 1:
            raise fuse.FuseOSError(errno.EPERM)
        with self.mutex:
            if parts[0] in self.entries:
                raise fuse.FuseOSError(errno.EEXIST)
            self.entries[parts[0]] = Entry()
        return 0

    def rmdir(self, path: str) -> int:
        with self.mutex:
            entry, name = self.split(path)
            if name:
                raise fuse.FuseOSError(errno.ENOTDIR)
            del self.entries[entry]
        return 0

    def open(self, path: str, fi: Any) -> int:
        with self.mutex:
            entry, name = self.split(path)
            if not name:
                raise fuse.FuseOSError(errno.EISDIR)
            fh = next(self.fh)
            self.handles[fh] = Handle(entry, name)
        fi.fh = fh
        fi.direct_io = 1  # contents are generated: no page cache, no size
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        if path.endswith("/outblob") and self.control().get("stall_outblob"):
            time.sleep(float(self.control()["stall_outblob"]))  # outside the mutex: the rest still answers
        with self.mutex:
            h = self.handles[fi.fh]
            e = self.entries.get(h.entry)
            if e is None:
                raise fuse.FuseOSError(errno.ENOENT)
            if h.name == "provider":
                data = (str(self.control().get("provider", "tdx_guest")) + "\n").encode()
            elif h.name == "generation":
                data = f"{e.write_gen}\n".encode()
            elif h.name == "outblob":
                data = self.generate(e)
            else:
                raise fuse.FuseOSError(errno.EACCES)
        return data[offset : offset + size]

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        with self.mutex:
            h = self.handles[fi.fh]
            if h.name != "inblob":
                raise fuse.FuseOSError(errno.EACCES)
            if offset + len(data) > INBLOB_MAX:
                raise fuse.FuseOSError(errno.EFBIG)
            h.buf[offset : offset + len(data)] = data
            h.dirty = True
        return len(data)

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        return 0

    def flush(self, path: str, fi: Any) -> int:
        with self.mutex:
            h = self.handles.get(fi.fh)
            if h is not None and h.entry in self.entries:
                self.commit(h)
        return 0

    def release(self, path: str, fi: Any) -> int:
        with self.mutex:
            self.handles.pop(fi.fh, None)
        return 0


def main(argv: list[str]) -> int:
    mountpoint, pki_dir, control = argv
    fuse.FUSE(TsmReportFs(pki_dir, control), mountpoint, foreground=True, raw_fi=True, fsname="bacon-test-tsm")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
