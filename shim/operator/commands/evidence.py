"""``bacon evidence`` and ``bacon evidence verify``: adapters to :mod:`shim.attest.evidence`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shim.common import config as bconfig
from shim.common.errors import UsageError


def cmd_evidence(args: argparse.Namespace) -> int:
    from shim.attest import evidence

    if args.evidence_verb == "verify":
        return cmd_verify(args)
    if not args.nonce or not args.out:
        raise UsageError("bacon evidence needs --nonce HEX and --out DIR",
                         hint="bacon evidence --nonce $(openssl rand -hex 32) --out /tmp/evidence")
    if os.geteuid() != 0:
        raise UsageError("bacon evidence needs root (the TPM, the launch log)", hint="sudo bacon evidence …")
    nonce = evidence.parse_nonce(args.nonce)
    manifest = evidence.collect(bconfig.load(), nonce, Path(args.out))
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        print(f"evidence for nonce {nonce.hex()} written to {args.out}: {', '.join(sorted(manifest['files']))}")
        print(f"verify anywhere with: bacon evidence verify {args.out} --nonce {nonce.hex()}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from shim.attest import evidence

    nonce = evidence.parse_nonce(args.verify_nonce)
    cfg = bconfig.load_readable()  # a challenger needs no host configuration: Intel's root is built in
    ak = _read_opt(args.ak, "--ak")
    collateral = _read_opt(args.collateral, "--collateral")
    try:
        report = evidence.verify(Path(args.dir), nonce, ak_pem=ak, collateral=collateral, at=args.at,
                                 tdx=cfg.tdx if cfg else None, allow_missing_boot_log=args.allow_missing_boot_log)
    except evidence.Failed as e:
        partial = e.report
        if partial is not None:
            if args.json:
                print(json.dumps(partial.to_json(), indent=2))
            else:
                evidence.print_report(partial, sys.stdout)
        raise
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        evidence.print_report(report, sys.stdout)
    return 0


def _read_opt(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from e
