"""``bacon policy show``, ``bacon policy set LEVEL`` and ``bacon policy reset``: the host's system level.

``set`` is for root only; it writes ``<state_dir>/level`` atomically and audits the change. That file
overrides the configuration's ``level =`` (``show`` and ``bacon status`` say which one decides); setting
the level the configuration already names removes it instead, and ``reset`` removes it, so that one
place holds the level again. Before changing it, ``set`` warns (stderr) about each check the levels the
host will admit require that this host cannot pass now (no TPM, no baseline, not a TD), with the probe of
``bacon status``. What happens to running containers above the new level is the configuration's
``running_above_level``: ``keep`` (default; they are listed), ``list`` (listed, exit 0) or ``stop``
(stopped through the real nerdctl). Containers are placed by the admission record the gate wrote when it
created them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from shim.admission import audit, levels, records
from shim.common import config as bconfig
from shim.common.errors import UsageError


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
    origin = levels.level_origin(cfg)
    current = origin.level
    doc = {"level": current, "source": str(origin.override or cfg.path), "origin": origin.to_json(),
           "default_level": cfg.default_level, "require": {k: list(v) for k, v in cfg.require.items()}}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"system level  {current}   ({origin.describe()})")
    print(f"images without a policy label count as {cfg.default_level}")
    for lvl in reversed(bconfig.LEVELS):
        mark = "admitted" if levels.admits(current, lvl) else "refused"
        print(f"  {lvl:<4}  {mark:<8}  requires {', '.join(bconfig.require_for(cfg, lvl))}")
    return 0


def unmet_requirements(cfg: bconfig.Config, level: str, timeout: float = 10.0) -> list[str]:
    """What the levels up to ``level`` require that this host cannot pass now: one line per check, with
    what the probe found and its fix (the probes of ``bacon status``, bounded by ``timeout``)."""
    from shim.operator import status

    needed = [c for c in status.needed_checks(cfg, level) if c in ("tpm", "tdx")]
    specs = {"tpm": status.ProbeSpec("tpm", "TPM", "tpm", lambda: status.probe_tpm(cfg)),
             "tdx": status.ProbeSpec("tdx", "TDX", "tdx", lambda: status.probe_tdx(cfg))}
    out = []
    for item in status.run_probes([specs[c] for c in needed], timeout):
        if item.state != status.OK:
            out.append(f"level {level} requires the {item.key} check, which this host cannot pass now: "
                       f"{item.summary}" + (f" (fix: {item.fix})" if item.fix else ""))
    return out


def _root_only(what: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{what} needs root", hint=f"sudo bacon {what}")


def cmd_set(args: argparse.Namespace) -> int:
    _root_only("policy set " + args.level)
    cfg = bconfig.load()
    new = args.level
    if new not in levels.RANK:
        raise UsageError(f"{new!r} is not a level", hint="use High, Mid or Low (exact spelling)")
    old = levels.system_level(cfg)
    warnings = unmet_requirements(cfg, new)
    for w in warnings:
        print(f"bacon: warning: {w}", file=sys.stderr)
    above = containers_above(cfg, new)
    follows_config = new == cfg.level
    audit.record(cfg.audit_log, argv=sys.argv, verdict="policy-set", image=None, digest=None, level=new,
                 system_level=old, checks=[], old_level=old, new_level=new,
                 above=[r.container_id for r in above], follows_config=follows_config, warnings=warnings)
    if follows_config:
        levels.remove_system_level(cfg)  # one place holds the level again: the configuration
    else:
        levels.write_system_level(cfg, new)
    where = (f"level = \"{new}\" in {cfg.path} (the override in {cfg.state_dir}/{levels.LEVEL_FILE} is gone)"
             if follows_config else
             f"{cfg.state_dir}/{levels.LEVEL_FILE}, which overrides level = \"{cfg.level}\" in {cfg.path} "
             "until `sudo bacon policy reset`")
    action = args.running or cfg.policy.running_above_level
    stopped = []
    if action == "stop":
        for r in above:
            rc = subprocess.run([str(cfg.nerdctl), f"--address={r.address}", f"--namespace={r.namespace}",
                                 "stop", r.container_id or ""], capture_output=True, text=True, timeout=120,
                                check=False).returncode
            if rc == 0:
                stopped.append(r.container_id)
    if args.json:
        print(json.dumps({"old": old, "new": new, "action": action, "stopped": stopped, "from": where,
                          "follows_config": follows_config, "warnings": warnings,
                          "above": [{"container": r.container_id, "image": r.image, "level": r.level}
                                    for r in above]}))
        return 0
    print(f"system level {old} -> {new} (from {where})")
    for r in above:
        state = "stopped" if r.container_id in stopped else "still running"
        print(f"  container {(r.container_id or '')[:12]} ({r.image}, level {r.level}) is above {new}: {state}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    """Remove the level ``policy set`` wrote: the configuration's ``level =`` applies again."""
    _root_only("policy reset")
    cfg = bconfig.load()
    old = levels.system_level(cfg)
    new = cfg.level
    warnings = unmet_requirements(cfg, new) if new != old else []
    for w in warnings:
        print(f"bacon: warning: {w}", file=sys.stderr)
    override = Path(cfg.state_dir) / levels.LEVEL_FILE
    if os.path.lexists(override):
        audit.record(cfg.audit_log, argv=sys.argv, verdict="policy-set", image=None, digest=None, level=new,
                     system_level=old, checks=[], old_level=old, new_level=new, follows_config=True,
                     warnings=warnings)
    removed = levels.remove_system_level(cfg)
    if args.json:
        print(json.dumps({"old": old, "new": new, "removed": str(override) if removed else None,
                          "warnings": warnings}))
        return 0
    if removed:
        print(f"system level {old} -> {new} (from level = \"{new}\" in {cfg.path}; removed {override})")
    else:
        print(f"system level {new} (from level = \"{new}\" in {cfg.path}; no override to remove)")
    return 0
