"""Session fixtures: the real parts, started once per test session and torn down after.

Tests that need a service are marked ``integration`` (and the service: ``containerd``, ``registry``,
``swtpm``, ``cosign``). A fixture whose service cannot be started here skips the test with the reason;
with ``BACON_REQUIRE_INTEGRATION=1`` (CI) every such skip is reported as a failure instead.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import containerd as containerd_h
from tests.harness import images as images_h
from tests.harness import registry as registry_h

REQUIRE_INTEGRATION = os.environ.get("BACON_REQUIRE_INTEGRATION") == "1"
STANDIN = Path(__file__).parent / "standin" / "nerdctl"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_INTEGRATION and report.skipped and item.get_closest_marker("integration") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"integration test skipped but BACON_REQUIRE_INTEGRATION=1: {reason}"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Short paths: unix socket paths are limited to 108 bytes.
    d = Path(os.environ.get("BACON_TEST_ROOT", "/tmp")) / f"bacon-{os.getpid()}"
    d.mkdir(mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(workdir: Path) -> Iterator[registry_h.Registry]:
    if registry_h.binary() is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = registry_h.start(workdir)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def containerd(workdir: Path) -> Iterator[containerd_h.Containerd]:
    if not containerd_h.available():
        pytest.skip("containerd/ctr/runc are not installed (apt-get install containerd runc)")
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")
    c = containerd_h.start(workdir)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def images(workdir: Path, registry: registry_h.Registry, containerd: containerd_h.Containerd) -> images_h.ImageSet:
    """Every test image built, pushed to the registry, and pulled into containerd (namespace default)."""
    if not images_h.tools_available():
        pytest.skip("umoci, skopeo and busybox-static are needed (apt-get install umoci skopeo busybox-static)")
    out = images_h.build_and_push(workdir / "images", registry)
    for name in ("low", "mid", "high", "nolabel", "badlabel", "lookalike", "multi"):
        images_h.pull(containerd, out[name])
    return out


@dataclass
class Host:
    """A BACON host for tests: its config file, the stand-in as the real nerdctl, and the wrapper."""

    root: Path
    config: Path
    standin: Path
    calls: Path
    state_dir: Path
    audit_log: Path
    containerd: containerd_h.Containerd
    registry: registry_h.Registry

    @property
    def wrapper(self) -> list[str]:
        exe = Path(sys.executable).parent / "nerdctl"
        return [str(exe)] if exe.exists() else [sys.executable, "-m", "shim.wrapper.main"]

    @property
    def bacon(self) -> list[str]:
        exe = Path(sys.executable).parent / "bacon"
        return [str(exe)] if exe.exists() else [sys.executable, "-m", "shim.operator.cli"]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERD_", "SUDO_", "NERDCTL_"))}
        env.update(BACON_CONFIG=str(self.config), CONTAINERD_ADDRESS=str(self.containerd.socket),
                   NERDCTL_TOML=str(self.root / "nerdctl.toml"))
        env.update(extra)
        return env

    def write_config(self, text: str) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(self.config)


def make_host(root: Path, containerd: containerd_h.Containerd, registry: registry_h.Registry,
              level: str = "Low") -> Host:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    bindir = root / "libexec"
    bindir.mkdir(exist_ok=True)
    standin = bindir / "nerdctl"
    shutil.copy2(STANDIN, standin)
    standin.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    etc.chmod(0o755)
    host = Host(root=root, config=etc / "config.toml", standin=standin,
                calls=standin.with_name("nerdctl.calls.jsonl"), state_dir=root / "state",
                audit_log=root / "log" / "audit.jsonl", containerd=containerd, registry=registry)
    host.write_config(
        f'level = "{level}"\nnerdctl = "{standin}"\nstate_dir = "{host.state_dir}"\n'
        f'audit_log = "{host.audit_log}"\n[registry]\ninsecure = ["{registry.host}"]\n'
    )
    return host


@pytest.fixture
def host(tmp_path: Path, containerd: containerd_h.Containerd, registry: registry_h.Registry) -> Host:
    """A fresh BACON host per test (own config, state, audit log; the shared containerd and registry)."""
    return make_host(Path(str(tmp_path)), containerd, registry)


@dataclass(frozen=True)
class KeyPair:
    private: Path  # PKCS#8 PEM, unencrypted
    public: Path


def make_keypair(directory: Path, name: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    key = ec.generate_private_key(ec.SECP256R1())
    priv = directory / f"{name}.key"
    pub = directory / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    priv.chmod(0o600)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    pub.chmod(0o644)
    return KeyPair(priv, pub)


@dataclass
class Signed:
    """The harness images at the registry, signed: every ``images`` entry by the trusted key, plus
    ``unsigned`` (no signature), ``untrusted`` (signed by another key) and ``moved`` (signed, then its
    tag moved to other content)."""

    trusted: KeyPair
    untrusted: KeyPair
    images: images_h.ImageSet
    extra: dict[str, images_h.Image]

    def __getitem__(self, name: str) -> images_h.Image:
        return self.extra[name] if name in self.extra else self.images[name]


def sign_image(image: images_h.Image, key: KeyPair) -> None:
    from shim.images import registry as registry_client
    from shim.trust import keys, signing

    sk = keys.load_signing_key(key.private.read_bytes(), str(key.private))
    repo = registry_client.Repository.of(image.repo)
    with registry_client.Client(insecure={repo.host}) as client:
        signing.sign(client, repo, image.digest, sk)


@pytest.fixture(scope="session")
def signed(workdir: Path, registry: registry_h.Registry, images: images_h.ImageSet) -> Signed:
    keydir = workdir / "keys"
    out = Signed(trusted=make_keypair(keydir, "trusted"), untrusted=make_keypair(keydir, "untrusted"),
                 images=images, extra={})
    special = {"unsigned", "untrusted", "moved-before", "moved-after"}
    for name in images.images:
        if name not in special:
            sign_image(images[name], out.trusted)
    sign_image(images["untrusted"], out.untrusted)
    layout = images.layout
    first = images_h.push(layout, registry, "moved-before", repo_path="bacon/moved")
    sign_image(first, out.trusted)
    out.extra["moved"] = images_h.push(layout, registry, "moved-after", repo_path="bacon/moved")  # tag moved
    # Every scenario has its own content, so no signature can stand in for another's.
    assert len({img.digest for img in images.images.values()}) == len(images.images)
    return out


def trusted_config(host: Host, key: KeyPair, level: str = "Low", extra: str = "") -> None:
    host.write_config(
        f'level = "{level}"\nnerdctl = "{host.standin}"\nstate_dir = "{host.state_dir}"\n'
        f'audit_log = "{host.audit_log}"\n'
        f'[trust]\nkeys = ["{key.public}"]\n'
        f'[registry]\ninsecure = ["{host.registry.host}"]\n' + extra
    )


@pytest.fixture
def gate_host(host: Host, signed: Signed) -> Host:
    """A Low host trusting the harness's trusted key."""
    trusted_config(host, signed.trusted)
    return host
