"""``bacon audit``: the last decisions from the audit log, filtered; ``--follow`` waits for new ones.

Lines that are not decisions (torn, garbage) are reported on stderr (in ``bad`` with ``--json``) with
their line number and do not stop the listing. Exit 0, or 1 when some lines were bad.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from shim import auditlog
from shim import config as bconfig
from shim.errors import UsageError


def _json_entry(e: auditlog.Entry) -> str:
    return json.dumps({"line": e.lineno, **e.doc}, default=str)


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    if args.lines < 0:
        raise UsageError("-n must be 0 (all) or more")
    flt = auditlog.Filter(since=auditlog.parse_since(args.since) if args.since else None, verdict=args.verdict,
                          image=args.image)
    path = Path(cfg.audit_log)
    if not os.path.lexists(path):
        print(f"bacon: audit: no audit log at {path} yet (no decision has been logged)", file=sys.stderr)
        if not args.follow:
            return 0
        while not os.path.lexists(path):
            time.sleep(0.5)
    f = auditlog.open_log(path)
    entries, bad, lineno = auditlog.scan(f, flt, args.lines)
    if args.json and not args.follow:
        print(json.dumps({"log": str(path), "lines": lineno, "entries": [{"line": e.lineno, **e.doc} for e in entries],
                          "bad": [b.to_json() for b in bad]}, indent=2, default=str))
    else:
        for e in entries:
            print(_json_entry(e) if args.json else auditlog.format_entry(e))
        for b in bad:
            print(auditlog.format_bad(b, path), file=sys.stderr)
    if not args.follow:
        f.close()
        return 1 if bad else 0
    sys.stdout.flush()

    def emit(item: auditlog.Entry | auditlog.BadLine) -> None:
        if isinstance(item, auditlog.BadLine):
            print(json.dumps({"bad": item.to_json()}) if args.json else auditlog.format_bad(item, path),
                  file=sys.stderr, flush=True)
        else:
            print(_json_entry(item) if args.json else auditlog.format_entry(item), flush=True)

    auditlog.follow(path, f, flt, lineno, emit)
    return 0
