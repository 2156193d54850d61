"""packaging/deb/gen_docs.py: every verb of ``bacon`` gets a man page and completion, from today's parser.

The .deb build runs the generator; this catches a verb or option it cannot render before a slow build
does (the end-to-end package check is tests/integration/test_deb.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shim.operator.cli import build_parser

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
                    "--completion", str(out / "bacon"), "--zsh-completion", str(out / "_bacon"),
                    "--fish-completion", str(out / "bacon.fish"), "--date", "2026-01-01"], check=True, timeout=60)
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


def test_bash_completion_offers_the_levels_for_policy_set(generated: Path) -> None:
    probe = (f'source {generated / "bacon"}; COMP_WORDS=(bacon policy set ""); COMP_CWORD=3; _bacon; '
             'echo "${COMPREPLY[*]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert sorted(out.split()) == ["High", "Low", "Mid"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (scripts/install-deps installs it)")
def test_fish_completion_is_valid_and_completes_verbs_actions_and_values(generated: Path) -> None:
    script = generated / "bacon.fish"
    r = subprocess.run(["fish", "--no-execute", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr

    def complete(line: str) -> list[str]:
        out = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"],
                             capture_output=True, text=True, timeout=60)
        assert out.stderr == "", out.stderr
        return sorted(x.split("\t")[0] for x in out.stdout.splitlines())

    assert complete("bacon ") == sorted(verbs())
    assert complete("bacon policy ") == ["reset", "set", "show"]
    assert complete("bacon policy set ") == ["High", "Low", "Mid"]
    assert complete("bacon --json policy set High --r") == ["--running"]
    assert complete("bacon audit -n 5 --verdict ") == ["admitted", "denied", "error", "verify-admitted",
                                                        "verify-denied"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/install-deps installs it)")
def test_zsh_completion_is_valid_and_knows_the_same_table(generated: Path) -> None:
    script = generated / "_bacon"
    assert script.read_text().startswith("#compdef bacon\n")
    r = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    probe = (f'compdef() {{ :; }}; source {script}; _bacon_table ""; print -r -- "${{subs[*]}}"; '
             '_bacon_table "policy set"; print -r -- "${vals[*]}"; _bacon_table "audit"; print -r -- "${valued[*]}"')
    out = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    verbs_line, levels_line, valued_line = out.stdout.splitlines()
    assert sorted(verbs_line.split()) == sorted(verbs())
    assert levels_line.split() == ["High", "Mid", "Low"]
    assert "--verdict" in valued_line.split()


def config_keys() -> set[str]:
    """The top-level keys and tables the configuration accepts: shim.common.config.parse's own list."""
    from shim.common import config

    return set(config.TOP_KEYS)


def test_the_configuration_page_describes_every_key_and_renders() -> None:
    page = GEN.parent / "bacon.toml.5.in"
    text = page.read_text()
    described = set(re.findall(r"^\.B \[?([a-z_]+)", text, re.M))
    keys = config_keys()
    assert "level" in keys
    assert keys <= described, f"bacon.toml(5) does not describe {sorted(keys - described)}"
    assert "bacon policy reset" in text.replace("\\fR", "").replace("\\fB", "")
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60)
        assert r.stderr == "", r.stderr
