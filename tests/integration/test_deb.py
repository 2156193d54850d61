"""The Debian package end to end, by ``packaging/deb/check``: built by debhelper's ``dh`` from a clean clone
of this repository's HEAD, lintian-clean, installed with ``dpkg -i`` and ``apt-get -f install`` into a clean
Debian bookworm root made by debootstrap (cached in /var/cache/bacon-test) with Debian's containerd and
runc, used there (``bacon doctor``, ``bacon status --json``, ``nerdctl version`` through the wrapper to a
stand-in that records argv; both layers enabled, a signed image run and an unsigned one refused through the
wrapper and through the runtime gate under ``ctr``, by a real containerd and runc in the root), then purged
with nothing left behind. The script says what each step checks; this test only runs it.

Several minutes: the first run on a machine bootstraps the root and downloads the bundled wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "packaging" / "deb" / "check"
TOOLS = ("debootstrap", "lintian", "dpkg-buildpackage", "dh", "dh_python3", "dh_bash-completion", "unshare", "chroot",
         "git", "docker-registry", "umoci", "skopeo")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_deb_builds_installs_runs_and_purges_cleanly() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, dpkg)")
    missing = [t for t in TOOLS if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install-deps installs them)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the check builds from a clone of HEAD")
    r = subprocess.run([str(CHECK)], capture_output=True, text=True, timeout=3600, check=False)
    print(r.stdout)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-60:])
    assert r.returncode == 0, f"packaging/deb/check exited {r.returncode}:\n{tail}"
    assert "all checks passed" in r.stdout
