"""packaging/deb/gen_docs.py: every verb of ``bacon`` gets a man page and completion, from today's parser.

The .deb build runs the generator; this catches a verb or option it cannot render before a slow build
does (the end-to-end package check is tests/integration/test_deb.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shim.cli import build_parser

GEN = Path(__file__).resolve().parents[2] / "packaging" / "deb" / "gen_docs.py"


def load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", GEN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def verbs() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(GEN), "--python-path", str(root), "--man-dir", str(out / "man"),
                    "--completion", str(out / "bacon"), "--date", "2026-01-01"], check=True, timeout=60)
    return out


def test_a_page_per_verb_with_a_whatis_line(generated: Path) -> None:
    names = sorted(p.name for p in (generated / "man").iterdir())
    assert names == sorted(["bacon.1"] + [f"bacon-{v}.1" for v in verbs()])
    for page in (generated / "man").iterdir():
        text = page.read_text()
        name_line = text.split(".SH NAME\n", 1)[1].split("\n", 1)[0]
        assert " \\- " in name_line, f"{page.name}: {name_line!r}"
        assert name_line.split(" \\- ", 1)[1].strip(), f"{page.name}: {name_line!r}"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_render_without_groff_warnings(generated: Path) -> None:
    for page in (generated / "man").iterdir():
        r = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0
        assert r.stderr == "", f"{page.name}: {r.stderr}"


def test_completion_knows_every_verb_and_is_valid_bash(generated: Path) -> None:
    script = generated / "bacon"
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    probe = f'source {script}; COMP_WORDS=(bacon ""); COMP_CWORD=1; _bacon; echo "${{COMPREPLY[*]}}"'
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert sorted(out.split()) == sorted(verbs())


def test_troff_escaping() -> None:
    gen = load_gen()
    assert gen.esc(".starts with a dot\n'and a quote\\") == "\\&.starts with a dot\n\\&'and a quote\\e"
    assert gen.esc_opt("--json") == "\\-\\-json"
    assert gen.esc("probes \u2026") == "probes \\[u2026]"
