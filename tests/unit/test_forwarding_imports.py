"""The forwarding path stays on the standard library: a deterministic check, not a timing.

`nerdctl images` (forwarded) is run in a fresh interpreter up to the exec, and the modules it loaded are
compared with the standard library's; the exec itself is replaced by a recorder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Standard modules that cost milliseconds each to import (with what they pull in), measured with
# `python -X importtime`: the forwarding path does without them.
SLOW_STDLIB = ("dataclasses", "inspect", "pathlib", "asyncio", "logging", "email", "http", "urllib.request",
               "ssl", "subprocess")

PROBE = r"""
import json, os, sys
SLOW_STDLIB = set(json.loads(sys.argv[2]))
sys.argv = ["nerdctl", *json.loads(sys.argv[1])]
before = set(sys.modules)
def fake_execve(path, argv, env):
    new = [m for m in sys.modules if m not in before]
    third = sorted(m for m in new if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "shim")
    slow = sorted(m for m in new if m in SLOW_STDLIB)
    ours = sorted(m for m in sys.modules if m.startswith("shim"))
    print(json.dumps({"argv": argv, "third_party": third, "shim": ours, "slow_stdlib": slow}))
    sys.stdout.flush()
    os._exit(0)
os.execve = fake_execve
from shim.wrapper import main
sys.exit(main())
"""


def run_probe(args: list[str], config: Path) -> dict[str, list[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(SLOW_STDLIB)],
                       capture_output=True, text=True,
                       env={"BACON_CONFIG": str(config), "PATH": "/usr/bin:/bin"}, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    out: dict[str, list[str]] = json.loads(r.stdout)
    return out


def config_for(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755, parents=True)
    etc.chmod(0o755)
    cfg = etc / "config.toml"
    cfg.write_text('level = "Low"\nnerdctl = "/bin/true"\n')
    cfg.chmod(0o644)
    return cfg


def test_forwarding_imports_only_the_standard_library(tmp_path: Path) -> None:
    for args in (["images"], ["version"], ["--namespace", "k8s.io", "ps", "-a"], ["logs", "-f", "x"]):
        out = run_probe(args, config_for(tmp_path / "-".join(args).replace("/", "_")))
        assert out["argv"][0] == "/bin/true"
        assert out["third_party"] == [], f"{args}: forwarding imported {out['third_party']}"
        heavy_modules = ("shim.gate", "shim.containerd", "shim._proto", "shim.tpm", "shim.tdx", "shim.registry",
                         "shim.signatures", "shim.audit")
        heavy = [m for m in out["shim"] if m.startswith(heavy_modules)]
        assert heavy == [], f"{args}: forwarding imported {heavy}"
        assert out["slow_stdlib"] == [], f"{args}: forwarding imported {out['slow_stdlib']} (import time)"


def test_forwarded_argv_is_reserialized(tmp_path: Path) -> None:
    out = run_probe(["--namespace", "k8s.io", "ps", "-a"], config_for(tmp_path))
    assert out["argv"][1:] == ["--namespace=k8s.io", "ps", "-a"]
