"""``bacon policy show`` and ``bacon policy set LEVEL``: the host's system level.

``set`` is for root only; it writes ``<state_dir>/level`` atomically and audits the change. What happens
to running containers above the new level is the configuration's ``running_above_level``: ``keep``
(default; they are listed), ``list`` (listed, exit 0) or ``stop`` (stopped through the real nerdctl).
Containers are placed by the admission record the gate wrote when it created them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from shim import audit, levels, records
from shim import config as bconfig
from shim.errors import UsageError


def containers_above(cfg: bconfig.Config, level: str) -> list[records.AdmissionRecord]:
    """Admission records (bound to a container) whose level is above ``level``."""
    out: list[records.AdmissionRecord] = []
    directory = Path(cfg.state_dir) / "admissions"
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        rec = records.load(cfg.state_dir, path.stem)
        if rec and rec.container_id and not levels.admits(level, rec.level):
            out.append(rec)
    return out


def cmd_show(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    current = levels.system_level(cfg)
    source = "bacon policy set" if (Path(cfg.state_dir) / levels.LEVEL_FILE).exists() else str(cfg.path)
    doc = {"level": current, "source": source, "default_level": cfg.default_level,
           "require": {k: list(v) for k, v in cfg.require.items()}}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"system level  {current}   (from {source})")
    print(f"images without a policy label count as {cfg.default_level}")
    for lvl in reversed(bconfig.LEVELS):
        mark = "admitted" if levels.admits(current, lvl) else "refused"
        print(f"  {lvl:<4}  {mark:<8}  requires {', '.join(bconfig.require_for(cfg, lvl))}")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("changing the system level needs root", hint="sudo bacon policy set " + args.level)
    cfg = bconfig.load()
    new = args.level
    if new not in levels.RANK:
        raise UsageError(f"{new!r} is not a level", hint="use High, Mid or Low (exact spelling)")
    old = levels.system_level(cfg)
    above = containers_above(cfg, new)
    audit.record(cfg.audit_log, argv=sys.argv, verdict="policy-set", image=None, digest=None, level=new,
                 system_level=old, checks=[], old_level=old, new_level=new,
                 above=[r.container_id for r in above])
    levels.write_system_level(cfg, new)
    action = args.running or cfg.sections.get("policy", {}).get("running_above_level", "keep")
    stopped = []
    if action == "stop":
        for r in above:
            rc = subprocess.run([str(cfg.nerdctl), f"--address={r.address}", f"--namespace={r.namespace}",
                                 "stop", r.container_id or ""], capture_output=True, text=True, timeout=120,
                                check=False).returncode
            if rc == 0:
                stopped.append(r.container_id)
    if args.json:
        print(json.dumps({"old": old, "new": new, "action": action, "stopped": stopped,
                          "above": [{"container": r.container_id, "image": r.image, "level": r.level}
                                    for r in above]}))
        return 0
    print(f"system level {old} -> {new}")
    for r in above:
        state = "stopped" if r.container_id in stopped else "still running"
        print(f"  container {(r.container_id or '')[:12]} ({r.image}, level {r.level}) is above {new}: {state}")
    return 0
