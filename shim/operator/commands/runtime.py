"""``bacon enable --runtime`` and ``bacon disable --runtime`` (the work is in ``shim.operator.enable_runtime``).
Root only; each change is audited before it is made."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shim.common import config as bconfig
from shim.common.errors import UsageError
from shim.operator import enable_runtime as er
from shim.operator.commands.enable import _audit


def _target(args: argparse.Namespace) -> Path:
    target = Path(args.path or er.DEFAULT_TARGET)
    if not target.is_absolute():
        raise UsageError(f"--path must be absolute, got {args.path}")
    return target


def _print(args: argparse.Namespace, doc: dict[str, object]) -> None:
    print(json.dumps(doc, indent=2) if args.json else doc["message"])


def cmd_enable(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    target = _target(args)
    done = er.enable(target, cfg.path, cfg.state_dir, before_change=lambda real: _audit(
        cfg, "enable-runtime", target=str(target), real_runc=real, layer="runtime"))
    doc: dict[str, object] = {"target": str(target), "action": done.action, "real_runc": done.real_runc,
                              "record": str(done.record) if done.record else None}
    if done.action == "already":
        doc["message"] = f"already enabled: {target} is BACON's runtime gate (the real runc: {done.real_runc})"
    else:
        doc["message"] = (f"installed the runtime gate: {target} (containerd's runc shim finds it before "
                          f"{done.real_runc}, recorded as [runtime] runc in {cfg.path})\n"
                          f"recorded what was there in {done.record}; `sudo bacon disable --runtime"
                          f"{'' if target == er.DEFAULT_TARGET else ' --path ' + str(target)}` restores it")
    _print(args, doc)
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    target = _target(args)
    rec = er.load_record(cfg.state_dir, target)
    if rec is None:
        doc: dict[str, object] = {"target": str(target), "action": "nothing",
                                  "message": f"nothing recorded for {target}: `bacon enable --runtime` did not "
                                             "install it"}
    else:
        _audit(cfg, "disable-runtime", target=str(target), layer="runtime")
        er.disable(target, cfg.state_dir)
        doc = {"target": str(target), "action": "restored",
               "message": f"removed the runtime gate {target}; the configuration {rec.config_path} is as it was"}
    _print(args, doc)
    return 0
