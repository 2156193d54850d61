"""packaging/deb/debian, the debhelper source package the .deb is built from: what a slow build would find
late (the end-to-end package check is tests/integration/test_deb.py).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import shim

DEB = Path(__file__).resolve().parents[2] / "packaging" / "deb"
DEBIAN = DEB / "debian"
SCRIPTS = ("bacon.postinst", "bacon.prerm", "bacon.postrm")
# What dh_installsystemd puts in a postinst, to stand for any snippet in the syntax check.
SNIPPET = """if [ "$1" = "configure" ] ; then
\tdeb-systemd-helper unmask 'bacon.service' >/dev/null || true
fi"""


def test_dh_compat_13() -> None:
    control = (DEBIAN / "control").read_text()
    assert re.search(r"^Build-Depends:[^:]*debhelper-compat \(= 13\)", control, re.M | re.S)
    assert re.search(r"^Rules-Requires-Root: no$", control, re.M)
    assert re.search(r"^\tdh \$@$", (DEBIAN / "rules").read_text(), re.M)
    assert not (DEBIAN / "compat").exists()  # one place for the level


@pytest.mark.parametrize("name", SCRIPTS)
def test_maintainer_script_has_the_debhelper_token_once_on_its_own_line(name: str) -> None:
    """dh substitutes the token wherever it is, a comment too: there it cuts the script in two."""
    text = (DEBIAN / name).read_text()
    assert text.count("#DEBHELPER#") == 1, f"{name}: the token must appear once, on its own line"
    assert re.search(r"^#DEBHELPER#$", text, re.M), f"{name}: the token is not on a line of its own"


@pytest.mark.parametrize("name", [*SCRIPTS, "bacon.config"])
def test_maintainer_script_parses_once_the_snippets_are_in(name: str) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    text = (DEBIAN / name).read_text().replace("#DEBHELPER#", SNIPPET)
    r = subprocess.run([sh, "-n"], input=text, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{name}: {r.stderr}"


def test_a_comment_with_the_token_is_caught() -> None:
    """The check above, on the mistake it is for."""
    text = "#!/bin/sh\n# snippets (#DEBHELPER#) go here\nset -e\n#DEBHELPER#\n"
    assert text.count("#DEBHELPER#") != 1


def test_changelog_is_at_the_code_version() -> None:
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    m = re.match(r"^bacon \(([^)]+)\) ", first)
    assert m, first
    assert m.group(1).split("-")[0] == shim.__version__


def test_every_launcher_module_exists() -> None:
    """packaging/deb/bundle writes the launchers; a module moved or renamed must be followed there."""
    modules = re.findall(r'^launcher "[^"]+" (\S+) ', (DEB / "bundle").read_text(), re.M)
    assert len(modules) == 3, modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"packaging/deb/bundle launches {module}, which is gone"


def test_every_file_dh_installs_from_the_tree_exists() -> None:
    """bacon.install's and bacon.docs' sources that are in the checkout (the generated ones are checked by
    the bundle script's run)."""
    top = DEB.parent.parent
    for listing in ("bacon.install", "bacon.docs"):
        for line in (DEBIAN / listing).read_text().splitlines():
            source = line.split()[0]
            if not source.startswith("debian/"):
                assert (top / source).exists(), f"{listing}: {source} is missing"
