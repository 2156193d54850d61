"""``bacon enable`` and ``bacon disable``: the wrapper in front of the real nerdctl (the work is in
``shim.operator.enable``: observe, plan, record, apply). Root only; each change is audited before it is made."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from shim.common import config as bconfig
from shim.common.errors import UsageError
from shim.operator import enable as en


def _audit(cfg: bconfig.Config, verdict: str, **extra: object) -> None:
    from shim.admission import audit

    audit.record(cfg.audit_log, argv=sys.argv, verdict=verdict, image=None, digest=None, level=None,
                 system_level=None, checks=[], **extra)


def _path_note(target: Path) -> str | None:
    """A warning when ``nerdctl`` on this PATH is not ``target`` (another nerdctl comes first)."""
    first = shutil.which("nerdctl")
    if first is None or os.path.normpath(first) == os.path.normpath(target):
        return None
    return f"note: `nerdctl` on this PATH is {first}, which comes before {target}"


def cmd_enable(args: argparse.Namespace) -> int:
    en.require_root("enable")
    if args.runtime:
        from shim.operator.commands import runtime

        return runtime.cmd_enable(args)
    os.umask(0o022)  # directories enable creates (the real nerdctl's new home) are root's and readable
    cfg = bconfig.load()
    target = Path(args.path or en.DEFAULT_TARGET)
    if not target.is_absolute():
        raise UsageError(f"--path must be absolute, got {args.path}")
    libexec = Path(args.libexec)
    found = en.observe(target)
    configured = cfg.nerdctl
    aside = libexec / "nerdctl" if os.path.normpath(configured) == os.path.normpath(target) else configured
    plan = en.plan_enable(found, target, configured, libexec, en.entry_point(), en.observe(aside))
    doc: dict[str, object] = {"target": str(target), "action": plan.action, "found": found.to_json(),
                              "real_nerdctl": str(plan.real)}
    if plan.action == "already":
        doc["message"] = f"already enabled: {target} is the BACON wrapper"
    else:
        _audit(cfg, "enable", target=str(target), found=found.to_json(),
               aside=str(plan.aside) if plan.aside else None, wrapper=str(plan.wrapper))
        record = en.apply_enable(plan, Path(cfg.state_dir), cfg.path)
        doc.update(record=str(record), wrapper=str(plan.wrapper), aside=str(plan.aside) if plan.aside else None,
                   config_nerdctl=plan.config_after)
        lines = []
        if plan.aside is not None:
            lines.append(f"the real nerdctl ({found.describe()}) is now at {plan.aside}")
        lines.extend(plan.notes)
        if plan.config_after is not None:
            lines.append(f"the configuration {cfg.path} now names it: nerdctl = \"{plan.config_after}\"")
        lines.append(f"installed the wrapper: {target} -> {plan.wrapper}")
        lines.append(f"recorded what was there in {record}; `sudo bacon disable --path {target}` restores it")
        doc["message"] = "\n".join(lines)
    note = _path_note(target)
    if note:
        doc["note"] = note
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(doc["message"])
        if note:
            print(note)
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    en.require_root("disable")
    if args.runtime:
        from shim.operator.commands import runtime

        return runtime.cmd_disable(args)
    os.umask(0o022)
    cfg = bconfig.load()
    target = Path(args.path or en.DEFAULT_TARGET)
    if not target.is_absolute():
        raise UsageError(f"--path must be absolute, got {args.path}")
    state_dir = Path(cfg.state_dir)
    rec = en.load_record(state_dir, target)
    current = en.observe(target)
    aside_current = en.observe(Path(rec.aside)) if rec is not None and rec.aside else None
    plan = en.plan_disable(target, rec, current, aside_current, en.record_path(state_dir, target))
    doc: dict[str, object] = {"target": str(target), "action": plan.action, "current": current.to_json()}
    if plan.action == "nothing":
        doc["message"] = (f"nothing recorded for {target} ({current.describe()} is there): "
                          "`bacon enable` did not change it")
    else:
        assert rec is not None
        _audit(cfg, "disable", target=str(target), restore=rec.found.to_json(), aside=rec.aside)
        en.apply_disable(plan, state_dir)
        doc["restored"] = rec.found.to_json()
        doc["message"] = f"restored {target}: {rec.found.describe()}" + (
            f" (and removed {rec.aside})" if rec.aside_created and rec.aside else "")
        if rec.config_before is not None:
            doc["message"] = str(doc["message"]) + f"\nthe configuration names nerdctl = \"{rec.config_before}\" again"
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(doc["message"])
    return 0
