"""The images a Dockerfile makes BuildKit fetch (docs/build.md): ARG defaults and --build-arg, stages,
scratch, COPY --from / RUN --mount from=, the syntax directive; what cannot be resolved statically is
refused; the pinned copy replaces exactly the references read."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.common.errors import Denied
from shim.images import dockerfile

R = "registry.example/team"
AMD64 = "linux/amd64"


def uses(text: str, args: dict[str, str] | None = None, target: str = AMD64) -> list[tuple[str, str, str | None]]:
    found = dockerfile.analyze(text, args or {}, build_platform=AMD64, target_platform=target)
    return [(u.kind, u.ref, u.platform) for u in found]


TABLE: list[tuple[str, str, dict[str, str], list[tuple[str, str, str | None]]]] = [
    ("one FROM", f"FROM {R}/base:1\nRUN true\n", {}, [("from", f"{R}/base:1", None)]),
    ("lower-case instruction", f"from {R}/base:1\n", {}, [("from", f"{R}/base:1", None)]),
    ("ARG default", f"ARG BASE={R}/base:1\nFROM $BASE\n", {}, [("from", f"{R}/base:1", None)]),
    ("ARG braces and a tag", f"ARG T=2\nFROM {R}/base:${{T}}\n", {}, [("from", f"{R}/base:2", None)]),
    ("--build-arg overrides", f"ARG BASE={R}/base:1\nFROM ${{BASE}}\n", {"BASE": f"{R}/other:3"},
     [("from", f"{R}/other:3", None)]),
    ("--build-arg for an undeclared ARG is not seen", f"FROM {R}/base:1\n", {"BASE": "x"},
     [("from", f"{R}/base:1", None)]),
    ("quoted ARG default", f'ARG BASE="{R}/base:1"\nFROM $BASE\n', {}, [("from", f"{R}/base:1", None)]),
    ("several ARGs on a line", f"ARG A={R} B=base:4\nFROM $A/$B\n", {}, [("from", f"{R}/base:4", None)]),
    ("ARG inside a stage is not global", f"FROM {R}/a:1\nARG X={R}/b:1\nFROM {R}/c:1\n", {},
     [("from", f"{R}/a:1", None), ("from", f"{R}/c:1", None)]),
    ("stage by name is not an image", f"FROM {R}/a:1 AS build\nFROM build\nFROM BUILD\n", {},
     [("from", f"{R}/a:1", None)]),
    ("AS in lower case", f"FROM {R}/a:1 as b\nFROM b\n", {}, [("from", f"{R}/a:1", None)]),
    ("scratch is not an image", "FROM scratch\nCOPY x /\n", {}, []),
    ("a stage named later is an image", f"FROM later\nFROM {R}/a:1 AS later\n", {},
     [("from", "later", None), ("from", f"{R}/a:1", None)]),
    ("FROM --platform literal", f"FROM --platform=linux/arm64 {R}/a:1\n", {}, [("from", f"{R}/a:1", "linux/arm64")]),
    ("FROM --platform=$BUILDPLATFORM", f"FROM --platform=$BUILDPLATFORM {R}/a:1\n", {},
     [("from", f"{R}/a:1", "linux/amd64")]),
    ("TARGETARCH in the reference", f"FROM {R}/a:$TARGETARCH\n", {}, [("from", f"{R}/a:arm64", None)]),
    ("COPY --from an image",
     f"FROM {R}/a:1 AS a\nCOPY --from={R}/b:1 /x /y\nCOPY --from=a /x /y\nCOPY --from=0 /x /y\n", {},
     [("from", f"{R}/a:1", None), ("copy-from", f"{R}/b:1", None)]),
    ("RUN --mount from an image", f"FROM {R}/a:1\nRUN --mount=type=bind,from={R}/c:1,target=/c true\n", {},
     [("from", f"{R}/a:1", None), ("mount-from", f"{R}/c:1", None)]),
    ("RUN --mount without from", f"FROM {R}/a:1\nRUN --mount=type=cache,target=/c true\n", {},
     [("from", f"{R}/a:1", None)]),
    ("syntax directive", f"# syntax={R}/frontend:1\nFROM {R}/a:1\n", {},
     [("syntax", f"{R}/frontend:1", None), ("from", f"{R}/a:1", None)]),
    ("a syntax comment after an instruction is a comment", f"FROM {R}/a:1\n# syntax={R}/f:1\n", {},
     [("from", f"{R}/a:1", None)]),
    ("line continuation", f"FROM \\\n  {R}/a:1\n", {}, [("from", f"{R}/a:1", None)]),
    ("escape directive", f"# escape=`\nFROM {R}/a:1 `\n  AS b\nFROM b\n", {}, [("from", f"{R}/a:1", None)]),
]


@pytest.mark.parametrize(("what", "text", "args", "want"), TABLE, ids=[t[0] for t in TABLE])
def test_images_of_a_dockerfile(what: str, text: str, args: dict[str, str],
                                want: list[tuple[str, str, str | None]]) -> None:
    target = "linux/arm64" if "TARGETARCH" in text else AMD64
    assert uses(text, args, target) == want


@pytest.mark.parametrize(("text", "args", "match"), [
    ("FROM $NOPE\n", {}, "has no value"),
    ("ARG B\nFROM $B\n", {}, "has no value"),
    (f"ARG B={R}/a:1\nARG B\nFROM $B\n", {}, "has no value"),  # a later ARG without default unsets it
    ("FROM ${B:-x}\n", {}, "cannot be resolved statically"),
    ("FROM $(echo x)\n", {}, "FROM"),
    ("FROM x$(echo)\n", {}, "cannot be resolved statically"),
    ('FROM "x"\n', {}, "cannot be resolved statically"),
    (f"FROM {R}/a:1\nCOPY --from=$X /a /b\n", {}, "variable in --from"),
    (f"FROM {R}/a:1\nRUN <<EOF\nFROM evil\nEOF\n", {}, "heredocs"),
    (f"FROM {R}/a:1\nCOPY <<EOF /x\nhi\nEOF\n", {}, "heredocs"),
    (f"FROM --network=host {R}/a:1\n", {}, "not understood"),
    (f"FROM {R}/a:1 AS\n", {}, "is not FROM"),
    ("FROM --platform=$NOPE x\n", {}, "has no value"),
])
def test_refused(text: str, args: dict[str, str], match: str) -> None:
    with pytest.raises(Denied, match=match) as e:
        uses(text, args)
    assert e.value.check == "build"
    assert e.value.hint


def test_build_args() -> None:
    assert dockerfile.build_args(["A=1", "B", "C", "A=2", "D=x=y"], {"B": "env"}) == {"A": "2", "B": "env", "D": "x=y"}
    with pytest.raises(Denied, match="invalid --build-arg"):
        dockerfile.build_args(["=1"], {})
    with pytest.raises(Denied, match="frontend image"):
        dockerfile.build_args(["BUILDKIT_SYNTAX=x"], {})


def test_pinned_copy_replaces_exactly_what_was_read() -> None:
    text = (f"# syntax={R}/f:1\nARG BASE={R}/a:1\nFROM --platform=$BUILDPLATFORM ${{BASE}} AS one\n"
            f"RUN --mount=type=bind,from={R}/m:1,target=/m true\nFROM {R}/b:2\nCOPY --from={R}/c:3 /x /y\n"
            "COPY --from=one /x /z\n")
    found = dockerfile.analyze(text, {}, build_platform=AMD64, target_platform=AMD64)
    pins = {(u.ref, u.platform): u.ref.split(":")[0] + "@sha256:" + "0" * 64 for u in found}
    out = dockerfile.pinned(text, found, pins)
    z = "@sha256:" + "0" * 64
    assert out.splitlines() == [
        f"# syntax={R}/f{z}", f"ARG BASE={R}/a:1", f"FROM --platform=$BUILDPLATFORM {R}/a{z} AS one",
        f"RUN --mount=type=bind,from={R}/m{z},target=/m true", f"FROM {R}/b{z}", f"COPY --from={R}/c{z} /x /y",
        "COPY --from=one /x /z"]
    again = dockerfile.analyze(out, {}, build_platform=AMD64, target_platform=AMD64)
    assert [u.ref for u in again] == list(pins.values())


def test_a_reference_split_across_lines_is_refused_not_half_pinned() -> None:
    text = f"FROM {R}/a:1 \\\n AS x\nFROM \\\n {R}/b:1\n"
    found = dockerfile.analyze(text, {}, build_platform=AMD64, target_platform=AMD64)
    with pytest.raises(Denied, match="cannot pin"):
        dockerfile.pinned(text, found, {(u.ref, u.platform): "x@sha256:" + "0" * 64 for u in found})


@given(st.text(max_size=200))
def test_analyze_raises_only_denials(text: str) -> None:
    with contextlib.suppress(Denied):
        dockerfile.analyze(text, {}, build_platform=AMD64, target_platform=AMD64)
