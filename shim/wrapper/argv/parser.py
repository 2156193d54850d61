"""Parse a nerdctl command line exactly as cobra v1.10.2 and pflag v1.0.10 do (docs/nerdctl.md §1).

Two passes, as in cobra:

1. ``Command.Traverse`` walks from the root looking for the subcommand. At each group it collects the
   tokens that look like flags; a ``--long`` without ``=`` that the group does not know as a boolean
   (unknown flags, ``--help``, even ``--``) swallows the next token, and so does a two-character ``-x``.
   The first other token is looked up as a child; if there is none the group itself executes. The
   collected flags are then parsed by the group (pflag) before descending.
2. The command found parses its own tokens: interspersed or not, ``--`` ends flags, ``-abc`` is a run of
   short flags, a short value flag takes the rest of its token or the next one, booleans take only
   ``=value``.

Anything BACON cannot be sure of raises :class:`~shim.common.errors.UsageError` (nerdctl would reject it, or
versions disagree on it). Unknown subcommands are not errors here: ``classify`` refuses them.
"""

from __future__ import annotations

from shim.common.errors import UsageError
from shim.wrapper.argv.grammar import BOOL_VALUES, GROUPS, Flag, FlagSet, Node, child_node
from shim.wrapper.argv.model import Invocation, MountSpec

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Sequence

_HINT = "see `nerdctl COMMAND --help`; BACON parses the command line exactly as nerdctl does"


class _FlagError(Exception):
    pass


def _blen(s: str) -> int:
    """Go's len(): bytes, not characters."""
    if s.isascii():
        return len(s)
    try:
        return len(s.encode("utf-8", "surrogateescape"))  # raw bytes from the OS come back as one byte each
    except UnicodeEncodeError:
        return len(s.encode("utf-8", "surrogatepass"))


def _is_flag_arg(arg: str) -> bool:
    """cobra's isFlagArg."""
    n = _blen(arg)
    return (n >= 3 and arg.startswith("--")) or (n >= 2 and arg[0] == "-" and arg[1] != "-")


def _bool(flag: Flag, spelled: str, value: str) -> str:
    b = BOOL_VALUES.get(value)
    if b is None:
        raise _FlagError(f'invalid argument "{value}" for "{spelled}" flag: strconv.ParseBool: parsing '
                         f'"{value}": invalid syntax (a boolean takes only --{flag.name}=true|false)')
    return "true" if b else "false"


def _pflag(tokens: Sequence[str], fs: FlagSet, *, interspersed: bool) -> tuple[list[tuple[Flag, str]], list[str]]:
    """pflag ``FlagSet.Parse``: the flags set, in order, and the positional arguments."""
    out: list[tuple[Flag, str]] = []
    pos: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        s = tokens[i]
        i += 1
        if not s or s[0] != "-" or len(s) == 1:
            pos.append(s)
            if not interspersed:
                pos.extend(tokens[i:])
                return out, pos
            continue
        if s[1] == "-":
            if len(s) == 2:  # "--" terminates the flags
                pos.extend(tokens[i:])
                return out, pos
            body = s[2:]
            if body[0] in "-=":
                raise _FlagError(f"bad flag syntax: {s}")
            name, eq, value = body.partition("=")
            flag = fs.longs.get(name)
            if flag is None:
                raise _FlagError(f"unknown flag: --{name}")
            if eq:
                pass
            elif flag.boolean:
                value = "true"
            elif i < n:
                value = tokens[i]
                i += 1
            else:
                raise _FlagError(f"flag needs an argument: --{name}")
            out.append((flag, _bool(flag, "--" + name, value) if flag.boolean else value))
            continue
        shorts = s[1:]
        while shorts:
            if shorts.startswith("test."):
                # pflag silently skips "-test.*" (Go test flags): refuse rather than guess.
                raise _FlagError(f"{s!r}: nerdctl would silently ignore '-test.…'")
            c = shorts[0]
            flag = fs.shorts.get(c)
            if flag is None:
                raise _FlagError(f"unknown shorthand flag: {c!r} in {s}")
            if len(shorts) > 2 and shorts[1] == "=":
                value, shorts = shorts[2:], ""
            elif flag.boolean:
                value, shorts = "true", shorts[1:]
            elif len(shorts) > 1:
                value, shorts = shorts[1:], ""
            elif i < n:
                value, shorts = tokens[i], ""
                i += 1
            else:
                raise _FlagError(f"flag needs an argument: {c!r} in {s}")
            out.append((flag, _bool(flag, "-" + c, value) if flag.boolean else value))
    return out, pos


def _traverse(node: Node, tokens: Sequence[str], at_root: bool) -> tuple[int, str] | None:
    """cobra ``Traverse`` at one group: (index, child's primary name) of the subcommand, or ``None``."""
    in_flag = False
    for i, tok in enumerate(tokens):
        if tok.startswith("--") and "=" not in tok:
            flag = node.traverse.longs.get(tok[2:])
            in_flag = not (flag is not None and flag.boolean)
            continue
        if tok.startswith("-") and "=" not in tok and _blen(tok) == 2:
            flag = node.traverse.shorts.get(tok[1])
            if not (flag is not None and flag.boolean):
                in_flag = True
                continue
        if in_flag:
            in_flag = False
            continue
        if _is_flag_arg(tok):
            continue
        child = node.children.get(tok)
        return None if child is None else (i, child)
    return None


def _usage(e: _FlagError, where: str) -> UsageError:
    return UsageError(f"{where}: {e}", hint=_HINT)


def parse(argv: Sequence[str]) -> Invocation:
    """Parse nerdctl's arguments (without the program name) into an :class:`Invocation`.

    Raises:
        UsageError: nerdctl would reject the command line, or BACON cannot be certain how it reads it.
    """
    tokens = tuple(argv)
    globals_: list[tuple[str, str]] = []
    group_flags: list[tuple[str, str]] = []
    path: tuple[str, ...] = ()
    rest: tuple[str, ...] = tokens
    node = GROUPS[()]

    while node.kind == "group":
        found = _traverse(node, rest, at_root=not path)
        where = "nerdctl " + " ".join(path) if path else "nerdctl"
        if found is None:
            # The group itself executes: help, version, or "unknown subcommand".
            try:
                parsed, pos = _pflag(rest, node.execute, interspersed=True)
            except _FlagError as e:
                raise _usage(e, where) from None
            flags: list[tuple[str, str]] = []
            for f, v in parsed:
                if f.is_global:
                    globals_.append((f.name, v))
                elif f.name in ("help", "version"):
                    flags.append((f.name, v))
                else:  # compose's own flags
                    group_flags.append((f.name, v))
            inv = Invocation(tuple(globals_), path, tuple(flags), tuple(pos), tuple(group_flags), leaf=False,
                             argv=tokens)
            if inv.help:  # help and version ignore positionals
                inv = Invocation(inv.globals, path, inv.flags, (), inv.group_flags, leaf=False, argv=tokens)
            return inv
        i, child = found
        try:
            parsed, pos = _pflag(rest[:i], node.parse, interspersed=True)
        except _FlagError as e:
            raise _usage(e, where) from None
        if pos:
            raise UsageError(f"{where}: {pos[0]!r} before the subcommand {child!r} would be ignored by nerdctl",
                             hint="remove it, or give flags their values with --flag=value")
        for f, v in parsed:
            (globals_ if f.is_global else group_flags).append((f.name, v))
        path = (*path, child)
        rest = rest[i + 1:]
        node = child_node(path)

    if node.kind == "opaque":
        return Invocation(tuple(globals_), path, (), rest, tuple(group_flags), opaque=True, argv=tokens)

    where = "nerdctl " + " ".join(path)
    try:
        parsed, pos = _pflag(rest, node.flags, interspersed=node.interspersed)
    except _FlagError as e:
        raise _usage(e, where) from None
    flags = []
    for f, v in parsed:
        (globals_ if f.is_global else flags).append((f.name, v))
    inv = Invocation(tuple(globals_), path, tuple(flags), tuple(pos), tuple(group_flags), argv=tokens)
    if not inv.help:
        _check_args(inv, node, where)
    return inv


def _check_args(inv: Invocation, node: Node, where: str) -> None:
    n = len(inv.args)
    if n < node.min_args:
        what = {"run": "an image", "create": "an image", "pull": "an image", "push": "an image",
                "exec": "a container and a command", "build": "a build context (a directory)",
                "debug": "a build context (a directory)"}.get(node.name, "a container")
        raise UsageError(f"{where} requires {what}", hint=f"{where} --help")
    if node.max_args is not None and n > node.max_args:
        raise UsageError(f"{where} takes exactly {node.max_args} argument(s), got {n}: {list(inv.args)!r}",
                         hint=f"nerdctl {node.name} --help")
    for value in (v for k, v in inv.flags if k == "mount"):
        m = MountSpec.parse(value)  # raises for what nerdctl rejects and for settings given twice
        if m.is_image and not m.source:
            raise UsageError(f"{where}: --mount {value!r}: type=image requires a source (the image reference)")
        if m.is_image and not m.target:
            raise UsageError(f"{where}: --mount {value!r}: type=image requires a destination")
