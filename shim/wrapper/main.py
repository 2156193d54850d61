"""``nerdctl``: the wrapper operators type instead of the real nerdctl.

Parse argv with nerdctl's grammar; forward what only reads or manages containers; refuse what cannot
be checked; send what brings in or starts a container through the admission gate; then exec the real
nerdctl with an argv re-serialized from the parse.

The forwarding path imports only the standard library and ``shim``'s stdlib-only modules (a unit test
checks this). The gate, with grpc, cryptography and structlog, is imported only when a command needs it.
"""

from __future__ import annotations

import os
import sys

from shim.common import configfile
from shim.common.errors import ConfigError, Denied, UsageError, exit_status
from shim.wrapper import argv as nargv
from shim.wrapper.argv.grammar import PLANNED
from shim.wrapper.exec import carry_out, exec_real

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from shim.common.config import Config


def _is_self(path: str) -> bool:
    try:
        return os.path.samefile(path, sys.argv[0])
    except OSError:
        return False


def _configured() -> tuple[str, dict[str, Any], str]:
    path = configfile.config_path()
    table = configfile.read_table(path)  # checked: owned by root, writable by nobody else, no symlink
    nerdctl = configfile.real_nerdctl(table, path)
    if _is_self(nerdctl):
        raise ConfigError(
            f"the configured real nerdctl {nerdctl} is this wrapper itself",
            hint="point `nerdctl` in the configuration at the real binary (bacon enable records it)",
        )
    return path, table, nerdctl


def _gate_config(table: dict[str, Any], path: str) -> Config:
    """The whole table, validated (a forwarded command needs only the real nerdctl's path from it)."""
    from pathlib import Path

    from shim.common import config as bconfig

    return bconfig.parse(table, Path(path))


def run(args: Sequence[str]) -> int:
    path, table, nerdctl = _configured()
    inv = nargv.parse(args)
    served_args: Sequence[str] = args
    copies: list[int] = []
    if os.environ.get("NERDCTL_TOML") and configfile.under_sudo():
        from shim.wrapper import inputs

        copies += inputs.seal_nerdctl_toml(os.environ)  # the caller's nerdctl.toml, as nerdctl will read it
    if inv.command in ("run", "create", "exec"):  # inputs.COMMANDS, without importing it for every command
        from shim.wrapper import inputs  # files nerdctl would read as root: read as the caller, handed over sealed

        inv, files = inputs.materialize(inv)
        copies += files
        if files:
            served_args = nargv.serialize(inv)
    if inv.command in PLANNED:
        socket_path = configfile.service_socket(table, path)
        if socket_path:
            answer = _ask_service(socket_path, served_args, nerdctl, copies)
            if answer is not None:
                return answer
    decision = _classify(inv)
    if decision.kind == "forward":
        from shim.admission.profiles import classes  # no imports of its own: the forwarding path

        if classes.needs_decision(inv) or _caller_sets_globals(inv):  # exec, host files, host-choosing globals
            from shim.admission.profiles import enforce

            enforce.check_forwarded(_gate_config(table, path), inv, args)
        exec_real(nerdctl, nargv.serialize(inv))
    from shim.admission import gate  # heavy: only for commands that bring in or start a container

    return gate.admit_and_exec(_gate_config(table, path), inv, list(args))


def _caller_sets_globals(inv: nargv.Invocation) -> bool:
    """Under sudo, whether the caller's environment sets a host-choosing global setting for nerdctl (a
    variable of ``ENV_FLAGS``, or a key of the nerdctl.toml ``NERDCTL_TOML`` names) that the command line
    does not: the profile then judges it (``nerdctl_env.caller_settings``)."""
    if not configfile.under_sudo():
        return False
    from shim.admission.profiles.classes import GLOBAL_FLAGS
    from shim.wrapper.argv.grammar import ENV_FLAGS, PINNED_GLOBALS

    if not os.environ.get("NERDCTL_TOML") and not any(
            var in os.environ for var, flag in ENV_FLAGS.items()
            if flag not in PINNED_GLOBALS and GLOBAL_FLAGS.get(flag) != "allowed"):
        return False  # the usual case: nothing more to read
    from shim.wrapper.nerdctl_env import caller_settings

    given = {name for name, _ in (*inv.globals, *inv.opaque_globals)}
    return any(GLOBAL_FLAGS.get(name, "refused") != "allowed" for name, _, _ in caller_settings(given))


def _ask_service(socket_path: str, args: Sequence[str], nerdctl: str, copies: Sequence[int] = ()) -> int | None:
    """Have the warm service (``bacon serve``) decide, and carry out its plan here; ``None`` if none listens.
    It decides exactly as :func:`plan` (classification included), so a refusal comes back as one."""
    from shim.service import wire  # standard library only (and no socket, json)

    answer = wire.request(socket_path, args, os.environ, os.getcwd(), inputs=copies)
    if answer is None:
        return None
    if len(answer) == 2:
        exit_code, message = answer
        print(message, file=sys.stderr)
        return int(exit_code)
    planned_for, forward, then = answer
    if planned_for != nerdctl:
        raise ConfigError(f"the decision service planned for {planned_for!r}, this configuration names {nerdctl}",
                          hint="restart the service (bacon serve) after a change")
    return carry_out(nerdctl, forward, then)


def _classify(inv: nargv.Invocation) -> nargv.Decision:
    decision = nargv.classify(inv)
    if decision.kind == "refuse":
        raise Denied(decision.reason, check="argv", image=inv.image)
    return decision


def plan(args: Sequence[str]) -> tuple[str, list[str], list[list[str]]]:
    """What :func:`run` decides for a command in ``PLANNED``, without carrying it out: the real nerdctl,
    the argv for it (pinned, for an admission) and the commands after it (the warm service's half of a
    decision). Raises on denial."""
    path, table, nerdctl = _configured()
    inv = nargv.parse(args)
    if inv.command not in PLANNED:
        raise UsageError(f"the decision service decides {', '.join(PLANNED)}, not `nerdctl {inv.command}`")
    decision = _classify(inv)
    if decision.kind == "forward":  # `run --help` and the like
        return nerdctl, nargv.serialize(inv), []
    from shim.admission import gate

    forward, then = gate.plan(_gate_config(table, path), inv, list(args))
    return nerdctl, forward, then


def abandon(args: Sequence[str], forward: Sequence[str]) -> None:
    """A plan from :func:`plan` that will not be carried out (the warm service's caller left before taking
    it up): audit it as abandoned and remove the admission record it would have carried."""
    path, table, _nerdctl = _configured()
    from shim.admission import gate

    gate.abandon(_gate_config(table, path), list(args), list(forward))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return exit_status(lambda: run(args),
                       internal_hint="nothing was forwarded; please report this with the command line")


if __name__ == "__main__":
    sys.exit(main())
