"""Every `bacon` command's --help has an `examples:` epilog whose lines parse with the real parser, and
`bacon --help` loads none of the heavy modules. (The examples are run against a harness host in
tests/integration/test_help_examples.py.)"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from shim.operator.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                         argparse.ArgumentParser]]:
    """Every parser under ``parser`` (itself first), with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The command lines under ``examples:`` in the epilog (up to the first blank line; a description may
    follow a command after two or more spaces)."""
    lines = (parser.epilog or "").splitlines()
    if "examples:" not in lines:
        return []
    out = []
    for line in lines[lines.index("examples:") + 1:]:
        if not line.strip():
            break
        out.append(re.split(r"\s{2,}", line.strip())[0])
    return out


def split_example(example: str) -> tuple[dict[str, str], list[str]]:
    """(environment assignments, argv after `bacon`) of an example like ``sudo bacon policy set Mid``."""
    words = shlex.split(example)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    if words and words[0] == "sudo":
        words.pop(0)
    assert words, example
    assert words[0] == "bacon", example
    return env, words[1:]


def all_examples() -> list[str]:
    seen: dict[str, None] = {}
    for _path, p in walk(build_parser()):
        for ex in examples(p):
            seen.setdefault(ex)
    return list(seen)


def test_every_command_has_examples_that_parse() -> None:
    for path, p in walk(build_parser()):
        exs = examples(p)
        assert exs, f"`bacon {' '.join(path)} --help` has no examples: epilog"
        for ex in exs:
            _env, argv = split_example(ex)
            assert argv[: len(path)] == list(path), f"{ex!r} is listed under `bacon {' '.join(path)}`"
            args = build_parser().parse_args(argv)  # a usage error would exit 64 here
            if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
                assert getattr(args, "handler", None), ex


def test_help_loads_no_heavy_module() -> None:
    probe = ("import contextlib, io, json, sys\n"
             "from shim.operator.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    for args in (["--help"], ["status", "--help"], ["enable", "--help"], ["audit", "--help"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT,
                           timeout=60, check=True)
        loaded = json.loads(r.stdout.splitlines()[-1])
        heavy = [m for m in loaded if m.split(".")[0] in ("grpc", "cryptography", "structlog", "tpm2_pytss",
                                                          "dcap_qvl", "google")]
        assert heavy == [], f"bacon {' '.join(args)} imported {heavy[:5]}"
