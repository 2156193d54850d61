"""Fuzzing nerdctl's grammar (extends ``test_argv_property``): command lines generated from the grammar,
then mutated with garbage (tokens inserted, deleted, duplicated, swapped, split, joined; non-ASCII,
undecodable bytes, look-alike flags). The only outcomes: a decision whose re-serialized argv (and the
gate's pinned argv) re-parses to the same invocation, or UsageError (``tests.fuzz.targets.check_argv``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.unit.wrapper.argv.test_property import Expected, gated_lines, other_lines

_GARBAGE = st.sampled_from((
    "--", "-", "", "=", "--=", "-=", "--x=", "-\u00e9", "--n\u00e4me", "\udcff", "\udc80run", "r\u0075n", "ru\u043d",
    "--namespace", "-n", "-nfoo", "--help", "-h", "--version", "-v", "--debug=T", "--debug=yes", "-it", "-dit",
    "-e=", "-eX", "--mount=type=image", "--mount=type=image,source=", "--mount=type=IMAGE,SRC=alpine,dst=/x",
    "--mount=type=image,source=ipfs://x", "--mount=type=image,source=Alpine", "--rootfs", "--rootfs=false",
    "--pull", "--pull=always", "--platform=linux/arm64", "--platform=/", "--platform=", "--hosts-dir=\"a",
    "--label-file=\"x", "--label=bacon/admission=x", "--name", "compose", "container", "image", "run", "create",
    "start", "restart", "pull", "push", "tag", "ns", "list", "alpine", "alpine:latest@sha256:" + "a" * 64,
    "sha256:abc", "abc", "Qm" + "1" * 44, "oci-archive://a", "ipns://x", "-test.run=x", "-a", "-H", "--host",
    "--insecure-registry", "--kube-hide-dupe", "--selinux-enabled=1", "--storage-driver", "\x7f", " run",
))
_TOKENS = st.one_of(_GARBAGE, st.text(max_size=6), st.binary(max_size=6).map(targets.text))


@st.composite
def mutated_lines(draw: st.DrawFn) -> list[str]:
    line: list[str] = list(draw(st.one_of(gated_lines(), other_lines()))[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("insert", "delete", "dup", "swap", "replace", "split", "join")))
        i = draw(st.integers(0, len(line)))
        if op == "insert" or not line:
            line.insert(i, draw(_TOKENS))
            continue
        i = min(i, len(line) - 1)
        j = draw(st.integers(0, len(line) - 1))
        if op == "delete":
            del line[i]
        elif op == "dup":
            line.insert(i, line[i])
        elif op == "swap":
            line[i], line[j] = line[j], line[i]
        elif op == "replace":
            line[i] = draw(_TOKENS)
        elif op == "split" and len(line[i]) > 1:
            k = draw(st.integers(1, len(line[i]) - 1))
            line[i : i + 1] = [line[i][:k], line[i][k:]]
        elif op == "join" and i + 1 < len(line):
            line[i : i + 2] = [line[i] + draw(st.sampled_from(("", "=", ","))) + line[i + 1]]
    return line


@fuzz(600)
@given(mutated_lines())
def test_mutated_grammar_lines_decide_or_raise_usage_error(tokens: list[str]) -> None:
    targets.check_argv(tokens)


@fuzz(400)
@given(st.one_of(gated_lines(), other_lines()))
def test_generated_lines_also_round_trip_through_the_gates_pinned_argv(case: tuple[list[str], Expected]) -> None:
    targets.check_argv(case[0])


@fuzz(600)
@given(st.lists(_TOKENS, max_size=14))
def test_garbage_token_lists(tokens: list[str]) -> None:
    targets.check_argv(tokens)


def test_argv_bytes_target_splits_on_nul() -> None:
    targets.argv(b"run\x00--rm\x00alpine\x00\xff")
    targets.argv(b"")
