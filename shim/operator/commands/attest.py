"""``bacon baseline``, ``bacon quote``, ``bacon tdx``: adapters from the command line to ``shim.attest.tpm.operations``
and ``shim.attest.tdx.operations`` (which hold the work), with the configuration loaded once here."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from shim.common import config as bconfig
from shim.common.errors import UsageError


def _root_only(what: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{what} needs root", hint=f"sudo bacon {what}")


def cmd_baseline_record(args: argparse.Namespace) -> int:
    from shim.attest.tpm import operations

    _root_only("baseline record")
    cfg = bconfig.load()
    launches = cfg.measure  # the launch PCR is extended after boot: not boot
    return operations.cmd_baseline_record(cfg.tpm, Path(cfg.state_dir), exclude=[launches.pcr] if launches.tpm else [])


def cmd_baseline_show(args: argparse.Namespace) -> int:
    from shim.attest.tpm import operations

    cfg = bconfig.load()
    return operations.cmd_baseline_show(cfg.tpm, Path(cfg.state_dir), args.json, args.diff)


def cmd_quote_tpm(args: argparse.Namespace) -> int:
    from shim.attest.tpm import operations

    cfg = bconfig.load()
    return operations.cmd_quote(cfg.tpm, args.nonce, args.pcrs, Path(args.out) if args.out else None)


def cmd_quote_tdx(args: argparse.Namespace) -> int:
    from shim.attest.tdx import operations

    cfg = bconfig.load()
    return operations.cmd_quote(args.nonce, args.out, cfg.tdx)


def cmd_tdx_verify(args: argparse.Namespace) -> int:
    from shim.attest.tdx import operations
    from shim.attest.tdx.settings import TdxSettings

    cfg = bconfig.load_readable()  # verifying a quote file against Intel's root needs no host configuration
    return operations.cmd_verify(args.quote, args.collateral, args.at, args.json, cfg.tdx if cfg else TdxSettings())


def cmd_tdx_collateral_refresh(args: argparse.Namespace) -> int:
    from shim.attest.tdx import operations

    _root_only("tdx collateral refresh")
    return operations.cmd_collateral_refresh(bconfig.load().tdx)
