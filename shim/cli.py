"""``bacon``: the operator's commands.

Each verb's implementation lives in its own module and is imported only when that verb runs (a table
from verb to ``module:function``, as pip does), so ``bacon --help`` stays fast. Every error is turned
into text and an exit status here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from collections.abc import Callable, Sequence
from typing import cast

from shim import __version__
from shim.errors import EXIT_INTERNAL, EXIT_USAGE, BaconError

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
examples:
  bacon status                 where this host stands, with a fix for each unmet requirement
  bacon version --json         BACON's and containerd's versions, for scripts

exit status: 0 ok, 64 usage, 69 a needed service unavailable, 70 internal error, 77 denied,
78 configuration error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (the contract), not 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        print(f"bacon: usage: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", "-a", metavar="SOCKET",
                   help="containerd socket (default as nerdctl: CONTAINERD_ADDRESS, nerdctl.toml, "
                        "/run/containerd/containerd.sock)")
    p.add_argument("--namespace", "-n", metavar="NS",
                   help="containerd namespace (default as nerdctl: CONTAINERD_NAMESPACE, nerdctl.toml, default)")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document for scripts")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="bacon", description="BACON: the admission layer in front of nerdctl.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"bacon {__version__}")
    sub = ap.add_subparsers(dest="verb", metavar="COMMAND")

    p = sub.add_parser("version", help="BACON's and containerd's versions",
                       description="Print BACON's version and the version of the containerd nerdctl would use.",
                       epilog="example:\n  bacon version --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_target(p)
    _add_json(p)
    p.set_defaults(handler="shim.commands.info:cmd_version")

    p = sub.add_parser("image", help="how containerd resolves an image: record, platform manifest, labels",
                       description="Follow IMAGE through containerd's gRPC API the way nerdctl would: the "
                                   "record's target, the platform manifest, the config and its labels.",
                       epilog="example:\n  bacon image --json alpine:3.20",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="image name as stored in containerd")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform (default: this host's)")
    _add_target(p)
    _add_json(p)
    p.set_defaults(handler="shim.commands.info:cmd_image")
    return ap


def resolve_handler(spec: str) -> Handler:
    module, func = spec.split(":")
    return cast(Handler, getattr(importlib.import_module(module), func))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return resolve_handler(args.handler)(args)
    except BaconError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bacon: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one place turns every failure into a message and a status
        print(f"bacon: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
