"""TEST stand-in for the kernel's TD measurement files (/sys/devices/virtual/misc/tdx_guest/measurements,
Linux 6.16+), as a FUSE file system, because there is no TDX hardware here. It behaves as the kernel does
for what BACON relies on: ``mrtd:sha384`` and ``rtmr0:sha384`` … ``rtmr3:sha384`` read as the 48 raw bytes
of the register; a write of exactly 48 bytes at offset 0 to an RTMR file extends it
(``RTMR = SHA-384(RTMR ‖ data)``); any other write fails with EINVAL, and MRTD cannot be written.

The registers live in a JSON state file (``{"rtmr3": hex, …}``), rewritten after each extend, which the
configfs-tsm stand-in (``fuse_tsm``, control key ``measurements_state``) reads so that its quotes carry the
RTMRs these files hold, as a real TD's quotes do.

Run: ``python -m tests.tdx_provider.fuse_measurements MOUNTPOINT STATE_JSON`` (root; libfuse3, mfusepy).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import threading
import time
from typing import Any

import mfusepy as fuse

SIZE = 48
FILES = {"mrtd:sha384": 0o444, **{f"rtmr{i}:sha384": 0o644 for i in range(4)}}


def load(state: str) -> dict[str, bytes]:
    with open(state, encoding="utf-8") as f:
        doc: dict[str, str] = json.load(f)
    return {name: bytes.fromhex(doc.get(name, "")) or bytes(SIZE) for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2",
                                                                                "rtmr3")}


def save(state: str, regs: dict[str, bytes]) -> None:
    tmp = state + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({k: v.hex() for k, v in regs.items()}, f)
    os.replace(tmp, state)


class MeasurementsFs(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, state: str) -> None:
        self.state = state
        self.mutex = threading.Lock()
        self.t0 = time.time_ns()

    def _name(self, path: str) -> str:
        name = path.lstrip("/")
        if name not in FILES:
            raise fuse.FuseOSError(errno.ENOENT)
        return name

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        base = {"st_uid": 0, "st_gid": 0, "st_atime": self.t0, "st_mtime": self.t0, "st_ctime": self.t0}
        if path == "/":
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        return {**base, "st_mode": stat.S_IFREG | FILES[self._name(path)], "st_nlink": 1, "st_size": SIZE}

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *FILES]

    def open(self, path: str, fi: Any) -> int:
        self._name(path)
        fi.direct_io = 1
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        name = self._name(path).split(":")[0]
        with self.mutex:
            return load(self.state)[name][offset : offset + size]

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        name = self._name(path).split(":")[0]
        if not name.startswith("rtmr"):
            raise fuse.FuseOSError(errno.EACCES)
        if offset != 0 or len(data) != SIZE:
            raise fuse.FuseOSError(errno.EINVAL)
        with self.mutex:
            regs = load(self.state)
            regs[name] = hashlib.sha384(regs[name] + data).digest()
            save(self.state, regs)
        return len(data)

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        return 0


def main(argv: list[str]) -> int:
    mountpoint, state = argv
    fuse.FUSE(MeasurementsFs(state), mountpoint, foreground=True, raw_fi=True, fsname="bacon-test-measurements")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
