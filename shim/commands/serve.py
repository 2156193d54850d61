"""``bacon serve``: the warm decision service (:mod:`shim.service`)."""

from __future__ import annotations

import argparse

from shim import config as bconfig
from shim import service
from shim.errors import ConfigError


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    path = args.socket or cfg.service_socket
    if not path:
        raise ConfigError("no socket to serve on", hint='set [service] socket = "/run/bacon/decide.sock" in '
                                                        "/etc/bacon/config.toml, or pass --socket PATH")
    return 130 if service.serve(path) == "SIGINT" else 0
