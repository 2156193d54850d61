"""The benchmark's host: the test harness's real parts (tests/harness, tests/conftest.py), started once.

A private containerd, Debian's registry on 127.0.0.1, a swtpm, two signed images (``low``: policy Low,
``mid``: policy Mid) pushed to the registry and pulled into containerd with ``ctr``, a third one (``pull``,
policy Low) only pushed, and four BACON
hosts (configurations) in front of them:

- ``forward``: the stand-in for nerdctl as the real nerdctl (nerdctl cannot be installed here);
- ``low``: a Low host trusting the team key, whose "real nerdctl" is a copy of ``/bin/true``, so that an
  admission's timing ends when the admitted command is handed over (exec) and not when a container has
  run through the stand-in and ``ctr``;
- ``mid``: the same on a Mid host with ``[tpm]`` at the swtpm and a recorded PCR baseline;
- ``pull``: a Low host with the stand-in, for ``nerdctl pull`` (which the stand-in carries out with ``ctr``).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import Host, KeyPair, make_host, make_keypair, sign_image, trusted_config
from tests.harness import containerd as containerd_h
from tests.harness import images as images_h
from tests.harness import registry as registry_h
from tests.harness import sigimages
from tests.harness import swtpm as swtpm_h


@dataclass
class BenchHost:
    work: Path
    registry: registry_h.Registry
    containerd: containerd_h.Containerd
    tpm: swtpm_h.Swtpm
    key: KeyPair
    cosign: str
    images: dict[str, images_h.Image]
    hosts: dict[str, Host]
    wrapper: list[str]  # the nerdctl wrapper measured (the environment's, or --bin DIR/nerdctl)
    bacon: list[str]
    python: str  # the interpreter the measured launchers run
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


def missing() -> list[str]:
    """What this machine lacks to run the benchmark (empty: nothing)."""
    out = []
    if registry_h.binary() is None:
        out.append("docker-registry")
    if not containerd_h.available():
        out.append("containerd, ctr, runc")
    if swtpm_h.binary() is None:
        out.append("swtpm")
    if not images_h.tools_available():
        out.append("umoci, skopeo, busybox-static")
    if sigimages.cosign_binary() is None:
        out.append("cosign (scripts/fetch-cosign.sh)")
    return out


def _noop_nerdctl(host: Host) -> Host:
    """The same host with a copy of /bin/true as its real nerdctl."""
    noop = host.standin.with_name("nerdctl-noop")
    shutil.copy2("/bin/true", noop)
    return dataclasses.replace(host, standin=noop)


DEBIAN_PYTHON = Path("/usr/bin/python3")


def launcher_python() -> str:
    """The interpreter the .deb's launchers run: Debian's python3, when it is this environment's version
    (its extension modules and bytecode are then the same), else this environment's own."""
    if DEBIAN_PYTHON.exists():
        r = subprocess.run([str(DEBIAN_PYTHON), "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=30, check=False)
        if r.returncode == 0 and r.stdout.strip() == str(sys.version_info[:2]):
            return str(DEBIAN_PYTHON)
    return sys.executable


def deb_shaped_launcher(path: Path, module: str, python: str) -> None:
    """A launcher as packaging/deb/bundle writes it (``#!PYTHON -IS``, the libraries appended to sys.path),
    for this environment's site-packages. pip's bin/nerdctl reaches the same code through a shell prologue
    (it cannot know its Python's path when it is written) and this environment's Python: measured
    separately, for information."""
    purelib = sysconfig.get_paths()["purelib"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{python} -IS\nimport sys\n\nsys.path.append({purelib!r})\n"
                    f"from {module} import main  # noqa: E402\n\nsys.exit(main())\n")
    path.chmod(0o755)


MEASURED_EXTRA = '[tpm]\ntcti = "{tcti}"\n[measure]\ninto = ["tpm"]\n'


def start(progress: Callable[[str], None], keep: bool = False, bin_dir: Path | None = None) -> BenchHost:
    """Start everything; ``bin_dir``: measure the ``nerdctl``/``bacon`` installed there (another version of
    BACON, for a before/after) instead of this environment's."""
    work = Path(tempfile.mkdtemp(prefix="bacon-bench-", dir="/tmp"))
    work.chmod(0o755)
    stops: list[Callable[[], None]] = []
    try:
        progress(f"harness in {work}: registry, containerd, swtpm")
        reg = registry_h.start(work)
        stops.append(reg.stop)
        ctd = containerd_h.start(work)
        stops.append(ctd.stop)
        tpm = swtpm_h.start(work, "swtpm")
        stops.append(tpm.stop)
        if not keep:
            stops.insert(0, lambda: shutil.rmtree(work, ignore_errors=True))
        progress("building, pushing, signing and pulling the images")
        layout = images_h.build_layout(work / "images")
        imgs = {name: images_h.push(layout, reg, name) for name in ("low", "mid")}
        imgs["pull"] = images_h.push(layout, reg, "low2")  # for ``pull``: not in containerd until pulled
        key = make_keypair(work / "keys", "team")
        for name, img in imgs.items():
            sign_image(img, key)
            if name != "pull":
                images_h.pull(ctd, img)
        hosts: dict[str, Host] = {}
        hosts["forward"] = make_host(work / "forward", ctd, reg)
        hosts["low"] = _noop_nerdctl(make_host(work / "low", ctd, reg))
        trusted_config(hosts["low"], key)
        hosts["mid"] = _noop_nerdctl(make_host(work / "mid", ctd, reg))
        trusted_config(hosts["mid"], key, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\n')
        hosts["measured"] = _noop_nerdctl(make_host(work / "measured", ctd, reg))  # Low, launches measured
        trusted_config(hosts["measured"], key, extra=MEASURED_EXTRA.format(tcti=tpm.tcti))
        hosts["pull"] = make_host(work / "pull", ctd, reg)
        trusted_config(hosts["pull"], key)
        if bin_dir is None:  # this environment's BACON, started the way the .deb starts it
            bin_dir = work / "bin"
            python = launcher_python()
            deb_shaped_launcher(bin_dir / "nerdctl", "shim.wrapper.main", python)
            deb_shaped_launcher(bin_dir / "bacon", "shim.operator.cli", python)
        else:
            python = str(bin_dir / "python")
        wrapper = [str(bin_dir / "nerdctl")]
        bacon = [str(bin_dir / "bacon")]
        progress("recording the PCR baseline (bacon baseline record)")
        r = subprocess.run([*bacon, "baseline", "record"], env=hosts["mid"].env(), capture_output=True,
                           text=True, timeout=120, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"bacon baseline record failed ({r.returncode}): {r.stderr}")
        cosign = sigimages.cosign_binary()
        assert cosign is not None
        return BenchHost(work=work, registry=reg, containerd=ctd, tpm=tpm, key=key, cosign=cosign, images=imgs,
                         hosts=hosts, wrapper=wrapper, bacon=bacon, python=python, _stops=stops)
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise


if __name__ == "__main__":  # a host to try things by hand: prints where it is, stops on Enter
    bh = start(lambda m: print(m, file=sys.stderr), keep=True)
    for name, h in bh.hosts.items():
        print(name, h.config, h.env()["CONTAINERD_ADDRESS"])
    print({k: (v.ref, v.digest) for k, v in bh.images.items()}, bh.key.public, bh.cosign)
    try:
        input("running; Enter stops it\n")
    finally:
        bh.stop()
