"""`build` and `builder debug` through the wrapper (docs/build.md): the Dockerfile's images are decided at
the real registry like run's image, and nerdctl is handed a copy of the Dockerfile with each pinned to the
platform manifest that was checked. The stand-in nerdctl records the Dockerfile it is handed, read as
nerdctl reads it (tests/standin/nerdctl: there is no BuildKit here). The host's profile allows builds; the
profile's own refusal of them is tested in test_profiles.py."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness.images import _ref_descriptor

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


@dataclass
class Built:
    rc: int
    stderr: str
    forwarded: list[list[str]]
    dockerfile: str | None  # what nerdctl was handed
    image: str | None  # builder debug's --image as handed


def build(host: Host, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Built:
    before = host.calls.read_text().splitlines() if host.calls.exists() else []
    r = subprocess.run([*host.wrapper, *args], env={**host.env(), **(env or {})}, cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    after = host.calls.read_text().splitlines() if host.calls.exists() else []
    calls = [json.loads(line)["argv"] for line in after[len(before):]]
    recorded = [c for c in calls if c[0] == "build-recorded"]
    forwarded = [c[1:] for c in calls if c[0] != "build-recorded"]
    text = recorded[0][2] if recorded else None
    image = (recorded[0][3] or None) if recorded else None
    return Built(r.returncode, r.stderr, forwarded, text, image)


def manifest_digest(signed: Signed, name: str) -> str:
    return str(_ref_descriptor(signed.images.layout, name)["digest"])


@pytest.fixture
def build_host(host: Host, signed: Signed) -> Host:
    """A Low host trusting the harness's key whose profile lets the operator build (docs/profiles.md)."""
    trusted_config(host, signed.trusted, extra='[levels.Low.allow]\nhost_files = ["build", "builder"]\n')
    return host


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "hello.txt").write_text("hi\n")
    return d


def denied(b: Built, check: str, *words: str) -> None:
    assert b.rc == 77, (b.rc, b.stderr)
    first = b.stderr.splitlines()[0]
    assert first.startswith("bacon: denied:"), b.stderr
    assert f"check {check} failed" in first, first
    for w in words:
        assert w in b.stderr, b.stderr
    assert b.forwarded == [], "a refused build must not reach nerdctl"


def test_signed_from_is_pinned_in_the_dockerfile_nerdctl_gets(build_host: Host, signed: Signed, ctx: Path) -> None:
    low = signed["low"]
    (ctx / "Dockerfile").write_text(f"FROM {low.ref} AS base\nRUN true\nFROM base\nFROM scratch\nCOPY hello.txt /\n")
    b = build(build_host, ctx, "build", "-t", "out:1", ".")
    assert b.rc == 0, b.stderr
    assert b.dockerfile is not None
    assert b.dockerfile.splitlines()[0] == f"FROM {low.repo}@{low.digest} AS base"
    assert b.dockerfile.splitlines()[2:] == ["FROM base", "FROM scratch", "COPY hello.txt /"]
    [fwd] = b.forwarded
    assert fwd[fwd.index("--") + 1] == "."  # the context is unchanged
    copy = Path(next(a for a in fwd if a.startswith("--file="))[len("--file="):])
    assert copy.parent.parent == build_host.state_dir / "builds"  # not in a TMPDIR the caller names
    assert not copy.parent.exists(), "the pinned copy is removed when nerdctl returns"


def test_multi_platform_from_is_pinned_to_the_host_manifest(build_host: Host, signed: Signed, ctx: Path) -> None:
    multi = signed["multi"]
    (ctx / "Dockerfile").write_text(f"FROM {multi.ref}\n")
    b = build(build_host, ctx, "build", ".")
    assert b.rc == 0, b.stderr
    assert b.dockerfile == f"FROM {multi.repo}@{manifest_digest(signed, 'low')}\n"
    b = build(build_host, ctx, "build", "--platform=linux/arm64", ".")
    denied(b, "level", "High")  # the arm64 manifest is the High one


def test_unsigned_from_is_refused(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(f"FROM {signed['unsigned'].ref}\nRUN true\n")
    denied(build(build_host, ctx, "build", "."), "signature", signed["unsigned"].ref)


def test_from_above_the_hosts_level_is_refused(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref} AS a\nFROM {signed['high'].ref}\n")
    denied(build(build_host, ctx, "image", "build", "."), "level")


def test_arg_defaults_and_build_args_are_applied(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(f"ARG BASE={signed['low'].ref}\nFROM ${{BASE}}\n")
    b = build(build_host, ctx, "build", ".")
    assert b.rc == 0, b.stderr
    assert b.dockerfile == f"ARG BASE={signed['low'].ref}\nFROM {signed['low'].pinned}\n"
    denied(build(build_host, ctx, "build", "--build-arg", f"BASE={signed['unsigned'].ref}", "."), "signature")
    denied(build(build_host, ctx, "build", "--build-arg", "BASE", ".", env={"BASE": signed["unsigned"].ref}),
           "signature")


def test_copy_from_and_mount_from_images_are_decided(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref}\nCOPY --from={signed['unsigned'].ref} /bin/sh /x\n")
    denied(build(build_host, ctx, "build", "."), "signature", signed["unsigned"].ref)
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref}\n"
                                    f"RUN --mount=type=bind,from={signed['low2'].ref},target=/m true\n")
    b = build(build_host, ctx, "build", ".")
    assert b.rc == 0, b.stderr
    assert b.dockerfile is not None
    assert f"from={signed['low2'].pinned}," in b.dockerfile


def test_what_cannot_be_resolved_statically_is_refused(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM $BASE\n")
    denied(build(build_host, ctx, "build", "."), "build", "ARG BASE=")
    (ctx / "Dockerfile").write_text("FROM ${BASE:-x}\n")
    denied(build(build_host, ctx, "build", "."), "build", "statically")


def test_file_flag_and_containerfile(build_host: Host, signed: Signed, ctx: Path, tmp_path: Path) -> None:
    (tmp_path / "other.Dockerfile").write_text(f"FROM {signed['unsigned'].ref}\n")
    denied(build(build_host, tmp_path, "build", "-f", "other.Dockerfile", "ctx"), "signature")  # -f: from the cwd
    (ctx / "Containerfile").write_text(f"FROM {signed['unsigned'].ref}\n")
    denied(build(build_host, ctx, "build", "."), "signature")
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref}\n")  # Dockerfile wins over Containerfile
    assert build(build_host, ctx, "build", ".").rc == 0


@pytest.mark.parametrize(("args", "words"), [
    (["build", "-"], "not a directory"),
    (["build", "https://example.invalid/repo.git"], "not a directory"),
    (["build", "-f", "-", "."], "standard input"),
    (["build", "--build-context", "alpine=/", "."], "--build-context"),
    (["build", "--source-policy-file", "p.json", "."], "policy"),
    (["build", "--platform", "linux/amd64,linux/arm64", "."], "several platforms"),
    (["build", "--build-arg", "BUILDKIT_SYNTAX=x", "."], "frontend"),
])
def test_build_inputs_that_cannot_be_checked_are_refused(build_host: Host, signed: Signed, ctx: Path,
                                                          args: list[str], words: str) -> None:
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref}\n")
    b = build(build_host, ctx, *args)
    assert b.rc == 77, (b.rc, b.stderr)
    assert words in b.stderr, b.stderr
    assert "bacon: hint:" in b.stderr
    assert b.forwarded == []


def test_dockerfile_must_be_a_regular_file(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").symlink_to("/dev/zero")
    b = build(build_host, ctx, "build", ".")
    assert b.rc == 77, b.stderr
    assert b.forwarded == []


def test_builder_debug_image_is_decided_and_pinned(build_host: Host, signed: Signed, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(f"FROM {signed['low'].ref}\n")
    b = build(build_host, ctx, "--experimental", "builder", "debug", "--image", signed["low2"].ref, ".")
    assert b.rc == 0, b.stderr
    assert b.image == signed["low2"].pinned
    assert b.dockerfile == f"FROM {signed['low'].pinned}\n"
    denied(build(build_host, ctx, "--experimental", "builder", "debug", "--image", signed["unsigned"].ref, "."),
           "signature")


def test_compose_build_is_refused(build_host: Host, ctx: Path) -> None:
    b = build(build_host, ctx, "compose", "build")
    assert b.rc == 77, b.stderr
    assert b.forwarded == []
