"""``bacon-runtime``: what BACON's ``runc`` launcher runs for the verbs that make a container or start a
process in one (``create``, ``run``, ``exec``), and for any argv it cannot place. On the path of every
``create`` and ``exec``, so light: the standard library's ``os``, ``sys`` and ``_socket`` and BACON's
stdlib-only modules; the gate itself (grpc, the admission, the profiles) is imported only when no decision
service answers.

1. read the argv as runc does (:mod:`shim.runtime.argv`); refuse what cannot be read;
2. a verb that does not make a container: exec the real runc (``[runtime] runc``);
3. ``create``/``run``/``exec``: ask ``bacon serve`` (``[service] socket``) for the decision
   (:func:`shim.runtime.gate.plan` in a warm worker); when nothing listens, decide in this process;
4. admitted: exec the real runc with the same argv. Refused (or undecidable): one line where
   containerd reads runc's errors (the ``--log`` file) and on stderr, exit 77.
"""

from __future__ import annotations

import os
import sys

from shim.common import configfile
from shim.common.errors import EXIT_DENIED, BaconError
from shim.runtime import argv as runtime_argv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MARKER = "--bacon-runtime-create"  # first argument of a runtime request (create, run or exec) to bacon serve
LAYER = "runtime"
DEFAULT_RUNC = "/usr/sbin/runc"


def _log_line(message: str, fmt: str) -> str:
    import json
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        return json.dumps({"level": "error", "msg": message, "time": now}) + "\n"
    return f'time="{now}" level=error msg={json.dumps(message)}\n'


def report(call_globals: Mapping[str, str], message: str) -> None:
    """Say ``message`` (one line) where containerd reads runc's errors (the ``--log`` file) and on stderr."""
    message = " ".join(message.split("\n"))
    log = call_globals.get("log")
    if log:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, _log_line(message, call_globals.get("log-format", "text")).encode())
            finally:
                os.close(fd)
        except OSError as e:
            print(f"bacon: cannot write runc's log {log}: {e.strerror}", file=sys.stderr)
    print(message, file=sys.stderr)


def denial_line(e: BaconError) -> str:
    from shim.common.errors import Denied

    text = e.render() if isinstance(e, Denied) else f"bacon: denied: check {LAYER} failed: {e.render()}"
    return " ".join(text.split("\n"))  # containerd shows one line: the hint follows on it


def real_runc(table: Mapping[str, object]) -> str:
    section = table.get("runtime")
    runc = section.get("runc", DEFAULT_RUNC) if isinstance(section, dict) else DEFAULT_RUNC
    if not isinstance(runc, str) or not runc.startswith("/"):
        from shim.common.errors import ConfigError

        raise ConfigError(f"[runtime] runc must be an absolute path, got {runc!r}")
    return runc


def _exec(runc: str, args: Sequence[str]) -> int:
    os.execv(runc, [runc, *args])  # noqa: S606 - exec by absolute path, no shell
    return 70  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        call = runtime_argv.parse(args)
    except runtime_argv.RuncUsage as e:
        report({}, f"bacon: denied: check {LAYER} failed: {e} (the runtime gate refuses what it cannot read)")
        return EXIT_DENIED
    try:
        path = configfile.config_path()
        table = configfile.read_table(path)
        if call.verb not in runtime_argv.DECIDED:
            return _exec(real_runc(table), args)
        socket = configfile.service_socket(table, path)
        if socket:
            from shim.service import wire

            answer = wire.request(socket, [MARKER, *args], os.environ, os.getcwd())
            if answer is not None:
                if len(answer) == 3:
                    return _exec(answer[0], answer[1])
                code, message = answer
                report(call.globals, message)
                return EXIT_DENIED if code in (0, 64) else int(code)
        from shim.runtime import gate as runtime_gate

        runc, forward = runtime_gate.plan(args)
        return _exec(runc, forward)
    except BaconError as e:
        report(call.globals, denial_line(e))
        return EXIT_DENIED
    except Exception as e:  # noqa: BLE001 - a gate that cannot decide refuses
        report(call.globals, f"bacon: denied: check {LAYER} failed: the runtime gate failed: {type(e).__name__}: {e}")
        return EXIT_DENIED


if __name__ == "__main__":
    sys.exit(main())
