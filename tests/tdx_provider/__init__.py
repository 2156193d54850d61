"""TEST stand-ins for Intel TDX (no TDX hardware here): a test PKI and quote generator (``chain``), a
configfs-tsm-shaped FUSE provider (``fuse_tsm``), and helpers that lay out a ``[tdx]`` configuration
pointing at them (``TdxEnv``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tdx_provider import chain

DAY = 86400


@dataclass
class TdxEnv:
    """A test root, its collateral on disk, and the ``[tdx]`` table that uses them."""

    root: Path
    now: int
    pki: chain.TestPki
    body: chain.TdBody = field(default_factory=chain.TdBody)

    @property
    def root_ca(self) -> Path:
        return self.root / "test-root.der"

    @property
    def collateral(self) -> Path:
        return self.root / "collateral.json"

    @property
    def configfs(self) -> Path:
        return self.root / "tsm"

    def section(self, **extra: Any) -> dict[str, Any]:
        ref = {"mrtd": self.body.mrtd.hex(), **{f"rtmr{i}": self.body.rtmr[i].hex() for i in range(4)}}
        sec: dict[str, Any] = {
            "configfs_root": str(self.configfs),
            "root_ca": str(self.root_ca),
            "collateral": str(self.collateral),
            "ccel": str(self.root / "no-ccel"),
            "busy_wait": 0.0,
            "reference": ref,
        }
        sec.update(extra)
        return sec

    def write_collateral(self, issue: int, next_update: int) -> str:
        text = chain.make_collateral(self.pki, issue, next_update)
        self.collateral.write_text(text)
        return text


def make_env(root: Path, now: int | None = None) -> TdxEnv:
    """A fresh test PKI under ``root`` with collateral valid from a day before ``now`` for 30 days."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - root-owned, not group/other-writable: what read_trusted_file requires
    t = int(time.time()) if now is None else now
    env = TdxEnv(root=root, now=t, pki=chain.make_pki(t))
    env.root_ca.write_bytes(env.pki.root_der)
    env.write_collateral(t - DAY, t + 30 * DAY)
    env.configfs.mkdir(exist_ok=True)
    return env


class FuseProvider:
    """The FUSE configfs-tsm stand-in, mounted at ``env.configfs`` in a child process we own."""

    def __init__(self, env: TdxEnv) -> None:
        self.env = env
        self.control = env.root / "control.json"
        self.set()
        chain.save_pki(env.pki, str(env.root / "pki"))
        self.log = (env.root / "fuse.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "tests.tdx_provider.fuse_tsm", str(env.configfs),
             str(env.root / "pki"), str(self.control)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.mounted():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"FUSE provider did not mount: {(env.root / 'fuse.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def set(self, **control: Any) -> None:
        """Replace the provider's behaviour (see tests/tdx_provider/fuse_tsm.py)."""
        doc = {"provider": "tdx_guest", "body": {
            "mrtd": self.env.body.mrtd.hex(), **{f"rtmr{i}": self.env.body.rtmr[i].hex() for i in range(4)}}}
        doc.update(control)
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.control)

    def mounted(self) -> bool:
        target = str(self.env.configfs)
        with open("/proc/mounts", encoding="utf-8") as f:
            return any(line.split()[1] == target for line in f)

    def stop(self) -> None:
        if self.mounted():
            subprocess.run(["umount", str(self.env.configfs)], check=False, capture_output=True)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()


class FuseMeasurements:
    """The FUSE stand-in for the kernel's TD measurement files (``fuse_measurements``), mounted at
    ``env.root/measurements`` in a child process we own, starting from the env's MRTD and RTMRs; ``provider``
    (when given) is pointed at its registers so that its quotes carry them."""

    def __init__(self, env: TdxEnv, provider: FuseProvider | None = None) -> None:
        self.dir = env.root / "measurements"
        self.dir.mkdir(exist_ok=True)
        self.state = env.root / "measurements.json"
        self.state.write_text(json.dumps({"mrtd": env.body.mrtd.hex(),
                                          **{f"rtmr{i}": env.body.rtmr[i].hex() for i in range(4)}}))
        self.log = (env.root / "fuse-measurements.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "tests.tdx_provider.fuse_measurements", str(self.dir),
             str(self.state)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not _mounted(self.dir):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"FUSE measurements did not mount: {self.log.name}")
            time.sleep(0.05)
        if provider is not None:
            provider.set(measurements_state=str(self.state))

    def rtmr(self, index: int) -> bytes:
        return bytes.fromhex(json.loads(self.state.read_text())[f"rtmr{index}"])

    def stop(self) -> None:
        if _mounted(self.dir):
            subprocess.run(["umount", str(self.dir)], check=False, capture_output=True)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def _mounted(target: Path) -> bool:
    with open("/proc/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == str(target) for line in f)


def fuse_unavailable_reason() -> str | None:
    """Why a FUSE provider cannot run here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "mounting the FUSE configfs-tsm stand-in needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:  # libfuse missing raises EnvironmentError
        return f"mfusepy/libfuse3 unavailable ({e}): pip install mfusepy; apt-get install libfuse3-3 fuse3"
    return None


def toml_table(name: str, table: dict[str, Any]) -> str:
    """``table`` (e.g. :meth:`TdxEnv.section`) as TOML under ``[name]``, sub-tables as ``[name.key]``."""
    lines, subs = [f"[{name}]"], []
    for k, v in table.items():
        if isinstance(v, dict):
            subs.append(toml_table(f"{name}.{k}", v))
        elif isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        elif isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        else:
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n" + "".join(subs)
