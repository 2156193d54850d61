"""The system level file (``bacon policy set``) is replaced whole or not at all (shim.common.atomicfile)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = r"""
import resource, signal, sys, types
from shim.admission import levels
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is short, then EFBIG (as on a full disk)
resource.setrlimit(resource.RLIMIT_FSIZE, (2, 2))
try:
    levels.write_system_level(types.SimpleNamespace(state_dir=sys.argv[1]), "High")
except OSError as e:
    sys.exit(3)
"""


def test_a_short_write_never_becomes_the_level(tmp_path: Path) -> None:
    """Before, one unchecked os.write renamed a short "Hi" into place as the level, and reported success."""
    (tmp_path / "level").write_text("Low\n")
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert (tmp_path / "level").read_text() == "Low\n"
    assert [p.name for p in tmp_path.iterdir()] == ["level"]
