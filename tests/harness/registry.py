"""Debian's ``docker-registry`` (the CNCF distribution registry) on a free loopback port, plain http."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.harness import proc

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT`` (use it in references and as insecure)."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        proc.stop(self.process)

    def alive(self) -> bool:
        with urllib.request.urlopen(self.url + "/v2/", timeout=1) as r:
            return bool(r.status == 200)


def binary() -> str | None:
    return shutil.which("docker-registry") or shutil.which("registry")


def start(workdir: Path, port: int | None = None) -> Registry:
    exe = binary()
    if exe is None:
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    port = port or proc.free_port()
    root = workdir / "registry"
    root.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "registry.yml"
    cfg.write_text(CONFIG.format(root=root / "data", port=port))
    log = workdir / "registry.log"
    p = proc.start([exe, "serve", str(cfg)], log)
    reg = Registry(port=port, root=root, process=p, log=log)
    proc.wait_for(reg.alive, "docker-registry", proc=p, log=log)
    return reg
