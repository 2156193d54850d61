"""runc's command line as runc 1.1 parses it (urfave/cli v1 over Go's ``flag`` package), and the
launcher that sends every verb but the ones that make a container straight to the real runc. Pure.

Go's ``flag`` package takes ``-name`` and ``--name`` alike, a value as ``-name value`` or ``-name=value``
(a boolean only as ``-name`` or ``-name=true|false``), and stops at the first argument that is not a flag,
at ``-`` or after ``--``. runc's global flags (``main.go``): ``--debug``, ``--systemd-cgroup`` (booleans),
``--log``, ``--log-format``, ``--root``, ``--criu``, ``--rootless`` (values), ``--help``/``-h``,
``--version``/``-v``. containerd's runc shim calls, for a task (seen with Debian's containerd 1.6):

    runc --root /run/containerd/runc/<namespace> --log <bundle>/log.json --log-format json \\
         create --bundle <bundle> --pid-file <bundle>/init.pid [--console-socket S] <container id>

with ``<bundle>`` = ``<containerd state>/io.containerd.runtime.v2.task/<namespace>/<container id>``, and for a
process started in a running task (``ctr task exec``), in the bundle directory:

    runc --root /run/containerd/runc/<namespace> --log <bundle>/log.json --log-format json \\
         exec --process /tmp/runc-process<random> --detach --pid-file <bundle>/<exec id>.pid <container id>

(the process file is the OCI ``process`` containerd was sent, written by the shim). An error
``create`` or ``exec`` writes to the ``--log`` file (JSON lines: ``level``, ``msg``) is what containerd returns to its
client. Anything this module does not recognise is handed to the gate, which refuses what it cannot
read (never to the real runc unchecked).
"""

from __future__ import annotations

TYPE_CHECKING = False  # on the path of every create: no typing, collections or dataclasses at run time
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

GLOBAL_VALUE = ("log", "log-format", "root", "criu", "rootless")
GLOBAL_BOOL = ("debug", "systemd-cgroup")
GLOBAL_INFO = ("help", "h", "version", "v")  # runc prints and exits: no container is made
# Verbs that make and start a container from a bundle: decided by the gate.
GATED = ("create", "run", "restore")
# Verbs the gate decides: those, ``exec`` (a new process in a running container: its process spec goes
# through the container's profile) and ``checkpoint`` (CRIU writes its images as root where it is told).
DECIDED = (*GATED, "exec", "checkpoint")
# Verbs that act on a container runc already made and start no process of their own: passed straight to the
# real runc.
PASS_THROUGH = ("state", "start", "kill", "delete", "ps", "events", "pause", "resume", "update", "list",
                "spec", "features")
CREATE_VALUE = ("bundle", "b", "console-socket", "pid-file", "preserve-fds")
CREATE_BOOL = ("no-pivot", "no-new-keyring")
RUN_BOOL = ("detach", "d", "keep", "no-subreaper")
# runc 1.1's exec (``runc exec --help``; urfave/cli with its arguments not reordered): single values, values
# that may be given again (each one added), booleans. An alias is folded into the long name.
EXEC_VALUE = ("console-socket", "cwd", "user", "u", "process", "p", "pid-file", "process-label", "apparmor",
              "preserve-fds")
EXEC_LIST = ("env", "e", "cap", "c", "additional-gids", "g", "cgroup")
EXEC_BOOL = ("tty", "t", "detach", "d", "no-new-privs", "ignore-paused", "help", "h")
# runc 1.1's checkpoint (``runc checkpoint --help``)
CHECKPOINT_VALUE = ("image-path", "work-path", "parent-path", "status-fd", "page-server", "manage-cgroups-mode")
CHECKPOINT_LIST = ("empty-ns",)
CHECKPOINT_BOOL = ("leave-running", "tcp-established", "ext-unix-sk", "shell-job", "lazy-pages", "file-locks",
                   "pre-dump", "auto-dedup", "help", "h")
EXEC_ALIASES = {"u": "user", "p": "process", "e": "env", "c": "cap", "g": "additional-gids", "t": "tty",
                "d": "detach", "h": "help"}


class RuncUsage(ValueError):
    """An argv the gate does not read the way runc would; refused."""


class Call:
    """A runc argv as read: the global flags (name -> value, "true" for booleans), the verb ("" for none:
    runc's help or version), the arguments after it, and for a gated verb its own flags and the container id."""

    __slots__ = ("args", "command", "container_id", "flags", "globals", "lists", "verb")

    def __init__(self, globals: Mapping[str, str], verb: str, args: Sequence[str],
                 flags: Mapping[str, str] | None = None, container_id: str = "",
                 lists: Mapping[str, Sequence[str]] | None = None, command: Sequence[str] = ()) -> None:
        self.globals, self.verb, self.args = globals, verb, args
        self.flags: Mapping[str, str] = flags or {}
        self.container_id = container_id
        self.lists: Mapping[str, Sequence[str]] = lists or {}  # exec's repeatable flags, in order
        self.command: Sequence[str] = command  # exec: the command after the container id


def _flag(arg: str) -> tuple[str, str | None] | None:
    """``-name``/``--name`` [``=value``] → (name, value or None); None when ``arg`` is not a flag."""
    if arg in ("-", "--") or not arg.startswith("-"):
        return None
    body = arg[2:] if arg.startswith("--") else arg[1:]
    if not body or body.startswith("-"):
        raise RuncUsage(f"bad flag syntax: {arg!r}")
    name, eq, value = body.partition("=")
    return name, (value if eq else None)


def _flags(args: Sequence[str], values: Sequence[str], bools: Sequence[str], where: str,
           lists: dict[str, list[str]] | None = None) -> tuple[dict[str, str], int]:
    """Go ``flag`` parsing of ``args``: the flags and the index of the first argument after them. A flag
    named in ``lists`` (its values collected there, in order) may be given again."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out, i + 1
        parsed = _flag(arg)
        if parsed is None:
            break
        name, value = parsed
        if lists is not None and name in lists:
            if value is None:
                if i + 1 >= len(args):
                    raise RuncUsage(f"{where}: flag -{name} needs a value")
                i += 1
                value = args[i]
            lists[name].append(value)
            i += 1
            continue
        if name in bools:
            if value not in (None, "true", "false", "1", "0", "t", "f", "TRUE", "FALSE", "True", "False", "T", "F"):
                raise RuncUsage(f"{where}: bad value for the boolean flag -{name}: {value!r}")
            out[name] = "true" if value in (None, "true", "1", "t", "TRUE", "True", "T") else "false"
        elif name in values:
            if value is None:
                if i + 1 >= len(args):
                    raise RuncUsage(f"{where}: flag -{name} needs a value")
                i += 1
                value = args[i]
            if name in out:
                raise RuncUsage(f"{where}: flag -{name} given twice")
            out[name] = value
        else:
            raise RuncUsage(f"{where}: flag -{name} is not one the runtime gate knows")
        i += 1
    return out, i


def parse(argv: Sequence[str]) -> Call:
    """Read a runc argv (without argv[0]). Raises :class:`RuncUsage` for what runc would read otherwise
    than we do, or that the gate does not know, when the verb is gated or unknown."""
    globals_, i = _flags(argv, GLOBAL_VALUE, GLOBAL_BOOL + GLOBAL_INFO, "runc")
    if any(globals_.get(n) == "true" for n in GLOBAL_INFO):
        return Call(globals=globals_, verb="", args=list(argv[i:]))
    verb = argv[i] if i < len(argv) else ""
    rest = list(argv[i + 1:])
    if verb == "exec":
        return _exec(globals_, rest)
    if verb == "checkpoint":
        return _checkpoint(globals_, rest)
    if verb not in GATED:
        return Call(globals=globals_, verb=verb, args=rest)
    bools = CREATE_BOOL + (RUN_BOOL if verb == "run" else ())
    if verb == "restore":
        raise RuncUsage("runc restore (a container from a checkpoint) is not admitted by the runtime gate")
    flags, j = _flags(rest, CREATE_VALUE, bools, f"runc {verb}")
    if "b" in flags:
        if "bundle" in flags:
            raise RuncUsage(f"runc {verb}: --bundle given twice (-b and --bundle)")
        flags["bundle"] = flags.pop("b")
    positional = rest[j:]
    if len(positional) != 1 or not positional[0]:
        raise RuncUsage(f"runc {verb} takes exactly one container id, got {positional!r}")
    return Call(globals=globals_, verb=verb, args=rest, flags=flags, container_id=positional[0])


def _exec(globals_: dict[str, str], rest: list[str]) -> Call:
    """``runc exec [flags] <container id> [command…]``: the flags with each short alias folded into its long
    name (given both ways: refused), the container id and the command."""
    lists: dict[str, list[str]] = {n: [] for n in EXEC_LIST}
    flags, j = _flags(rest, EXEC_VALUE, EXEC_BOOL, "runc exec", lists)
    for short, long in EXEC_ALIASES.items():
        if short in lists:  # one value list under both names in urfave/cli: every value counts
            lists[long] = lists[long] + lists.pop(short)
        elif short in flags:
            if long in flags:
                raise RuncUsage(f"runc exec: -{short} and --{long} both given")
            flags[long] = flags.pop(short)
    positional = rest[j:]
    if flags.get("help") == "true":  # runc prints exec's help and starts nothing
        return Call(globals=globals_, verb="exec", args=rest, flags=flags, lists=lists)
    if not positional or not positional[0]:
        raise RuncUsage("runc exec needs a container id")
    return Call(globals=globals_, verb="exec", args=rest, flags=flags, container_id=positional[0],
                lists={k: v for k, v in lists.items() if v}, command=positional[1:])


def _checkpoint(globals_: dict[str, str], rest: list[str]) -> Call:
    """``runc checkpoint [flags] <container id>``."""
    lists: dict[str, list[str]] = {n: [] for n in CHECKPOINT_LIST}
    flags, j = _flags(rest, CHECKPOINT_VALUE, CHECKPOINT_BOOL, "runc checkpoint", lists)
    if "h" in flags:
        flags["help"] = flags.pop("h")
    positional = rest[j:]
    if flags.get("help") == "true":
        return Call(globals=globals_, verb="checkpoint", args=rest, flags=flags)
    if len(positional) != 1 or not positional[0]:
        raise RuncUsage(f"runc checkpoint takes exactly one container id, got {positional!r}")
    return Call(globals=globals_, verb="checkpoint", args=rest, flags=flags, container_id=positional[0],
                lists={k: v for k, v in lists.items() if v})


# -- the launcher ---------------------------------------------------------------------------------------

def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def launcher(real_runc: str, gate: str, environment: Mapping[str, str] | None = None) -> str:
    """The ``runc`` put ahead of the real one: a POSIX shell script (about a millisecond, where Python
    would cost tens) that execs the real runc for a verb in :data:`PASS_THROUGH` and ``gate`` (which
    decides ``create``/``run``/``exec``/``checkpoint``, and refuses what it cannot read) for anything
    else. ``environment``: variables set for the gate only (a test's configuration path)."""
    values = "|".join(f"-{n}|--{n}" for n in GLOBAL_VALUE)
    bools = "|".join(f"-{n}|--{n}" for n in GLOBAL_BOOL)
    bool_eq = "|".join(f"-{n}=*|--{n}=*" for n in GLOBAL_BOOL)
    value_eq = "|".join(f"-{n}=*|--{n}=*" for n in GLOBAL_VALUE)
    env = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in (environment or {}).items())
    return f"""#!/bin/sh
# BACON's runtime gate, installed as `runc` ahead of the real one (bacon enable --runtime). Verbs that
# act on a container runc already made go straight to the real runc; create/run/exec/checkpoint (and anything this
# script cannot place) go to the gate, which decides and then runs the real runc itself.
real={_sh_quote(real_runc)}
skip=
for a in "$@"; do
    if [ -n "$skip" ]; then skip=; continue; fi
    case $a in
        {values}) skip=1 ;;
        {bools}|{bool_eq}|{value_eq}) ;;
        -*) break ;;
        {"|".join(PASS_THROUGH)}) exec "$real" "$@" ;;
        *) break ;;
    esac
done
{env}exec {_sh_quote(gate)} "$@"
"""
