"""A private containerd (Debian's, with runc) on a socket in a temporary directory.

Nothing is shared with a containerd the machine may run: its own root, state, socket and no CRI plugin.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness import proc

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""


@dataclass
class Containerd:
    """A running containerd. ``ctr(...)`` runs Debian's ``ctr`` against it."""

    socket: Path
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    config: Path

    def ctr(self, *args: str, namespace: str = "default", check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.socket), "--namespace", namespace, *args],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def stop(self) -> None:
        proc.stop(self.process)

    def restart(self) -> None:
        """Start it again after :meth:`stop` (same root, same socket)."""
        self.process = proc.start(["containerd", "--config", str(self.config)], self.log)
        proc.wait_for(lambda: proc.unix_open(self.socket), "containerd", proc=self.process, log=self.log)


def available() -> bool:
    return all(shutil.which(b) for b in ("containerd", "ctr", "runc"))


def start(workdir: Path) -> Containerd:
    if not available():
        raise RuntimeError("containerd, ctr and runc are needed (apt-get install containerd runc)")
    base = workdir / "containerd"
    root, state = base / "root", base / "state"
    for d in (root, state):
        d.mkdir(parents=True, exist_ok=True)
    sock = base / "containerd.sock"
    cfg = base / "config.toml"
    cfg.write_text(CONFIG.format(root=root, state=state, sock=sock))
    log = base / "containerd.log"
    p = proc.start(["containerd", "--config", str(cfg)], log)
    c = Containerd(socket=sock, root=root, process=p, log=log, config=cfg)
    proc.wait_for(lambda: proc.unix_open(sock), "containerd", proc=p, log=log)
    return c
