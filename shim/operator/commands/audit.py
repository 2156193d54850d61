"""``bacon audit``: the last decisions from the audit log, filtered; ``--follow`` waits for new ones.

The rotated files of the log (``audit.jsonl.1``, ``audit.jsonl.2.gz`` …) are read first, oldest first,
then the live log. Lines that are not decisions (torn, garbage) are reported on stderr (in ``bad`` with
``--json``) with their file and line number and do not stop the listing. Exit 0, or 1 when some lines were
bad; 69 with "permission denied" when this user may not read the log (never "nothing logged").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

from shim.common import config as bconfig
from shim.common.errors import UsageError
from shim.operator import auditlog


def _entry_doc(e: auditlog.Entry) -> dict[str, object]:
    return {"line": e.lineno, **({"file": str(e.source)} if e.source else {}), **e.doc}


def _json_entry(e: auditlog.Entry) -> str:
    return json.dumps(_entry_doc(e), default=str)


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    if args.lines < 0:
        raise UsageError("-n must be 0 (all) or more")
    flt = auditlog.Filter(since=auditlog.parse_since(args.since) if args.since else None, verdict=args.verdict,
                          image=args.image)
    path = Path(cfg.audit_log)
    older, bad = auditlog.scan_rotated(path, flt, args.lines)
    if not auditlog.exists(path):
        if not older:
            print(f"bacon: audit: no audit log at {path} yet (no decision has been logged)", file=sys.stderr)
        if not args.follow and not older and not bad:
            return 0
        while args.follow and not auditlog.exists(path):
            time.sleep(0.5)
    if auditlog.exists(path):
        f = auditlog.open_log(path)
        entries, live_bad, lineno = auditlog.scan(f, flt, args.lines, keep=deque(older))
        bad += live_bad
    else:
        f, entries, lineno = None, older, 0
    if args.json and not args.follow:
        print(json.dumps({"log": str(path), "lines": lineno, "entries": [_entry_doc(e) for e in entries],
                          "bad": [b.to_json() for b in bad]}, indent=2, default=str))
    else:
        for e in entries:
            print(_json_entry(e) if args.json else auditlog.format_entry(e))
        for b in bad:
            print(auditlog.format_bad(b, path), file=sys.stderr)
    if not args.follow:
        if f is not None:
            f.close()
        return 1 if bad else 0
    assert f is not None
    sys.stdout.flush()

    def emit(item: auditlog.Entry | auditlog.BadLine) -> None:
        if isinstance(item, auditlog.BadLine):
            print(json.dumps({"bad": item.to_json()}) if args.json else auditlog.format_bad(item, path),
                  file=sys.stderr, flush=True)
        else:
            print(_json_entry(item) if args.json else auditlog.format_entry(item), flush=True)

    auditlog.follow(path, f, flt, lineno, emit)
    return 0
