"""Debian's ``swtpm`` (a software TPM 2.0) on free loopback ports, with its own state directory.

tpm2-tss's ``swtpm`` TCTI speaks the command channel on ``port`` and the control channel on ``port + 1``,
so a free pair of adjacent ports is chosen. ``--flags not-need-init,startup-clear`` makes the TPM usable at
once (no TPM2_Startup from the client).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness import proc


@dataclass
class Swtpm:
    """A running swtpm: ``tcti`` is the ``[tpm] tcti`` value that reaches it."""

    port: int
    ctrl_port: int
    state: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def stop(self) -> None:
        proc.stop(self.process)

    def alive(self) -> bool:
        return self.process.poll() is None and proc.tcp_open(self.port) and proc.tcp_open(self.ctrl_port)


def binary() -> str | None:
    return shutil.which("swtpm")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair(tries: int = 50) -> int:
    """A port N such that N and N+1 are both free on 127.0.0.1."""
    for _ in range(tries):
        port = proc.free_port()
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free loopback ports found")


def start(workdir: Path, name: str = "swtpm") -> Swtpm:
    """Start a fresh swtpm (new state: new endorsement seed) under ``workdir/name``."""
    exe = binary()
    if exe is None:
        raise RuntimeError("swtpm is not installed (apt-get install swtpm)")
    state = workdir / name
    state.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    last: Exception | None = None
    for _ in range(3):  # another process may grab a port between choosing and binding it
        port = free_port_pair()
        p = proc.start([exe, "socket", "--tpm2",
                        "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                        "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                        "--tpmstate", f"dir={state}",
                        "--flags", "not-need-init,startup-clear"], log)
        tpm = Swtpm(port=port, ctrl_port=port + 1, state=state, process=p, log=log)
        try:
            proc.wait_for(tpm.alive, "swtpm", timeout=10.0, proc=p, log=log)
        except RuntimeError as e:
            proc.stop(p)
            last = e
            continue
        return tpm
    raise RuntimeError(f"swtpm did not start: {last}")
