"""Real OCI images for the tests, built with umoci from Debian's busybox-static, pushed with skopeo to
the harness registry and pulled into the harness containerd with ctr.

Every image shares one busybox layer; they differ in their config (the ``policy`` label, the platform).
``multi`` is an image index with a linux/amd64 manifest labelled ``Low`` and a linux/arm64 one labelled
``High``, so a test can tell which platform manifest was read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.containerd import Containerd
from tests.harness.registry import Registry

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "sleep", "true", "false", "ls")

# name -> (labels, architecture). ``None`` labels: no label at all.
SINGLE: dict[str, tuple[dict[str, str], str]] = {
    "low": ({"policy": "Low"}, "amd64"),
    "mid": ({"policy": "Mid"}, "amd64"),
    "high": ({"policy": "High"}, "amd64"),
    "nolabel": ({}, "amd64"),
    "badlabel": ({"policy": "high"}, "amd64"),
    "lookalike": ({"policy": "Hіgh"}, "amd64"),  # Cyrillic і
    "low2": ({"policy": "Low", "variant": "second"}, "amd64"),
    # Distinct content for the signature scenarios (a signature binds a digest, whatever the repository).
    "unsigned": ({"policy": "Low", "variant": "unsigned"}, "amd64"),
    "untrusted": ({"policy": "Low", "variant": "untrusted"}, "amd64"),
    "moved-before": ({"policy": "Low", "variant": "moved-before"}, "amd64"),
    "moved-after": ({"policy": "Low", "variant": "moved-after"}, "amd64"),
    "arm64-high": ({"policy": "High"}, "arm64"),
}


@dataclass(frozen=True)
class Image:
    name: str
    ref: str  # 127.0.0.1:PORT/bacon/<name>:v1
    digest: str  # the top-level digest at the registry (index digest for "multi")

    @property
    def repo(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def pinned(self) -> str:
        return f"{self.repo}@{self.digest}"


@dataclass
class ImageSet:
    layout: Path
    registry: Registry
    images: dict[str, Image] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Image:
        return self.images[name]


def tools_available() -> bool:
    return BUSYBOX.exists() and all(shutil.which(t) for t in ("umoci", "skopeo"))


def _run(*argv: str, cwd: Path | None = None) -> str:
    r = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _ref_descriptor(layout: Path, tag: str) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return dict(m)
    raise KeyError(tag)


def _add_index(layout: Path, tag: str, entries: list[tuple[str, str]]) -> None:
    """Write an OCI image index over the manifests tagged ``entries`` ((tag, arch) pairs)."""
    manifests = []
    for entry_tag, arch in entries:
        d = _ref_descriptor(layout, entry_tag)
        manifests.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                          "platform": {"architecture": arch, "os": "linux"}})
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": manifests}, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(body)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": "sha256:" + digest, "size": len(body),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(index))


def build_layout(workdir: Path) -> Path:
    """An OCI layout holding every test image, tagged by name."""
    layout = workdir / "layout"
    if (layout / "index.json").exists():
        return layout
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:base")
    bundle = workdir / "bundle"
    _run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
    bindir = bundle / "rootfs" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    for applet in APPLETS:
        (bindir / applet).symlink_to("busybox")
    _run("umoci", "repack", "--image", f"{layout}:base", str(bundle))
    shutil.rmtree(bundle)
    for name, (labels, arch) in SINGLE.items():
        argv = ["umoci", "config", "--image", f"{layout}:base", "--tag", name, "--os", "linux",
                "--architecture", arch, "--config.cmd", "/bin/echo", "--config.cmd", f"hello-from-{name}"]
        for k, v in labels.items():
            argv += ["--config.label", f"{k}={v}"]
        _run(*argv)
    _add_index(layout, "multi", [("low", "amd64"), ("arm64-high", "arm64")])
    return layout


def registry_digest(registry: Registry, repo_path: str, tag: str) -> str:
    req = urllib.request.Request(
        f"{registry.url}/v2/{repo_path}/manifests/{tag}", method="HEAD",
        headers={"Accept": ", ".join([
            "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json"])})
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(r.headers["Docker-Content-Digest"])


def push(layout: Path, registry: Registry, name: str, repo_path: str | None = None, tag: str = "v1") -> Image:
    """Copy the layout's ``name`` to ``<registry>/bacon/<name>:<tag>`` unchanged (digests preserved)."""
    repo_path = repo_path or f"bacon/{name}"
    ref = f"{registry.host}/{repo_path}:{tag}"
    _run("skopeo", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{layout}:{name}", f"docker://{ref}")
    return Image(name=name, ref=ref, digest=registry_digest(registry, repo_path, tag))


def build_and_push(workdir: Path, registry: Registry) -> ImageSet:
    layout = build_layout(workdir)
    out = ImageSet(layout=layout, registry=registry)
    for name in (*SINGLE, "multi"):
        out.images[name] = push(layout, registry, name)
    return out


def pull(containerd: Containerd, image: Image | str, namespace: str = "default") -> None:
    """``ctr images pull`` over plain http: the image enters containerd as another client would."""
    ref = image.ref if isinstance(image, Image) else image
    containerd.ctr("images", "pull", "--plain-http", ref, namespace=namespace)
