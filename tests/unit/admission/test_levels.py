"""The system level file (``bacon policy set``) is replaced whole or not at all (shim.common.atomicfile); the
image's level is read from exactly one label key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shim.admission import levels
from shim.common.errors import Denied

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


# -- the label's key ----------------------------------------------------------------------------------

LOOKALIKE_KEYS = ["Policy", "POLICY", "\uff50olicy", "policy ", " policy", "poli\u200bcy", "\U0001d429olicy",
                  "policy\u00a0", "po\u00adlicy"]


@pytest.mark.parametrize("key", LOOKALIKE_KEYS)
def test_a_key_that_looks_like_policy_is_a_denial_beside_the_real_one(key: str) -> None:
    """Before, only the exact key counted: ``policy=Low`` beside ``POLICY=High`` was a Low image."""
    with pytest.raises(Denied, match="looks like 'policy' but is not") as e:
        levels.image_level({"policy": "Low", key: "High"}, "High")
    assert e.value.check == "level"
    assert repr(key) in e.value.message


@pytest.mark.parametrize("key", LOOKALIKE_KEYS)
def test_a_key_that_looks_like_policy_alone_is_not_the_default(key: str) -> None:
    with pytest.raises(Denied, match="looks like 'policy'"):
        levels.image_level({key: "High"}, "Low")


@pytest.mark.parametrize("key", ["policy.example", "org.example.policy", "policies", "policy-version", "apolicy"])
def test_other_keys_are_other_labels(key: str) -> None:
    assert levels.image_level({"policy": "Mid", key: "High"}, "High") == levels.ImageLevel("Mid", True)
    assert levels.image_level({key: "Low"}, "High") == levels.ImageLevel("High", False)
