"""``bacon status`` (where the host stands, one screen) and ``bacon doctor`` (one line per requirement).

Both print what ``shim.operator.status`` found and exit 0 when everything the host's levels need is in place, 1
when something needed is missing (each such line says how to fix it), 78 when the configuration cannot
be used. Neither raises for what it finds, and neither waits longer than ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys

from shim.common import config as bconfig
from shim.operator import status


def _report(args: argparse.Namespace) -> status.Report:
    return status.collect(bconfig.config_path(), address=args.address, namespace=args.namespace,
                          timeout=args.timeout)


def cmd_status(args: argparse.Namespace) -> int:
    report = _report(args)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        sys.stdout.write("\n".join(status.format_status(report)) + "\n")
    return report.exit_status


def cmd_doctor(args: argparse.Namespace) -> int:
    report = _report(args)
    if args.json:
        doc = report.to_json()
        doc["requirements"] = [{"key": i.key, "label": i.label, "ok": i.state == status.OK, "needed": i.needed,
                                "summary": i.summary, "fix": i.fix}
                               for i in report.items if i.state != status.INFO]
        print(json.dumps(doc, indent=2, default=str))
    else:
        sys.stdout.write("\n".join(status.format_doctor(report)) + "\n")
    return report.exit_status
