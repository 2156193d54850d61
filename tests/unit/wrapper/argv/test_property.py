"""Properties of the argv grammar (hypothesis).

1. Command lines generated from nerdctl's grammar, in any of the surface forms nerdctl accepts (``--f=v``,
   ``--f v``, ``-fv``, ``-f v``, ``-f=v``, short runs, global flags before and after the subcommand,
   aliases, ``container``/``image`` forms) parse to the invocation they were generated from, and
   serialize → parse gives the same invocation back.
2. Any list of tokens either parses or raises UsageError; whatever parses classifies without any other
   error, and whatever is forwarded or gated re-serializes to an argv that parses to the same invocation
   with the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from shim.common.errors import UsageError
from shim.wrapper import argv as nargv
from shim.wrapper.argv import grammar

_SAFE = "abcdefghijklmnopqrstuvwxyz0123456789/:.,_="
_IMAGES = ("alpine", "busybox:1.36", "127.0.0.1:5000/app:1", "registry.example/team/app@sha256:" + "0" * 64,
           "localhost/x", "sha256:" + "1" * 64, "abc123")
_BOOL_SPELLINGS = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")

values = st.text(alphabet=_SAFE, max_size=8)
plain_values = st.text(alphabet=_SAFE, min_size=1, max_size=8).filter(lambda s: s not in grammar.ROOT_CHILDREN)
anything = st.text(max_size=6)


@dataclass
class Expected:
    globals: list[tuple[str, str]] = field(default_factory=list)
    path: tuple[str, ...] = ()
    flags: list[tuple[str, str]] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    group_flags: list[tuple[str, str]] = field(default_factory=list)
    opaque: bool = False
    leaf: bool = True


def _spellings(fs: grammar.FlagSet, flag: grammar.Flag) -> tuple[list[str], list[str]]:
    longs = [k for k, f in fs.longs.items() if f is flag]
    shorts = [k for k, f in fs.shorts.items() if f is flag]
    return longs, shorts


@st.composite
def flag_tokens(draw: st.DrawFn, fs: grammar.FlagSet, flag: grammar.Flag, *, traverse: bool) -> tuple[list[str], str]:
    """Tokens setting ``flag`` in one of its accepted forms, and the value nerdctl records."""
    longs, shorts = _spellings(fs, flag)
    use_short = bool(shorts) and draw(st.booleans())
    if flag.boolean:
        explicit = draw(st.booleans())
        spelled = draw(st.sampled_from(_BOOL_SPELLINGS)) if explicit else "true"
        value = "true" if grammar.BOOL_VALUES[spelled] else "false"
        if use_short:
            c = draw(st.sampled_from(shorts))
            return ([f"-{c}={spelled}"] if explicit else [f"-{c}"]), value
        name = draw(st.sampled_from(longs))
        return ([f"--{name}={spelled}"] if explicit else [f"--{name}"]), value
    form = draw(st.sampled_from(("eq", "sep", "attached")))
    value = draw(plain_values if (form == "sep" and traverse) or form == "attached" else values)
    if use_short:
        c = draw(st.sampled_from(shorts))
        if form == "eq":
            return [f"-{c}={value}"], value or "="  # pflag: "-n=" is "-n" with the value "="
        if form == "attached":
            if value.startswith("="):
                return [f"-{c}={value}"], value
            return [f"-{c}{value}"], value
        return [f"-{c}", value], value
    name = draw(st.sampled_from(longs))
    if form == "sep":
        return [f"--{name}", value], value
    return [f"--{name}={value}"], value


def _distinct(fs: grammar.FlagSet, only_global: bool | None = None) -> list[grammar.Flag]:
    seen: dict[str, grammar.Flag] = {}
    for f in fs.longs.values():
        if only_global is None or f.is_global == only_global:
            seen.setdefault(f.name, f)
    return sorted(seen.values(), key=lambda f: f.name)


_ROOT_GLOBALS = _distinct(grammar.GROUPS[()].parse)
_ALL_GLOBALS = _distinct(grammar.GLOBAL_PERSISTENT)


@st.composite
def globals_before(draw: st.DrawFn, exp: Expected, fs: grammar.FlagSet, candidates: list[grammar.Flag]) -> list[str]:
    out: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        flag = draw(st.sampled_from(candidates))
        toks, value = draw(flag_tokens(fs, flag, traverse=True))
        out += toks
        exp.globals.append((flag.name, value))
    return out


@st.composite
def leaf_flags(draw: st.DrawFn, exp: Expected, fs: grammar.FlagSet) -> list[str]:
    own = [f for f in _distinct(fs, only_global=False) if f.name not in ("help", "rootfs")]
    out: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 4)) == 0:
            flag = draw(st.sampled_from(_ALL_GLOBALS))
            toks, value = draw(flag_tokens(fs, flag, traverse=False))
            exp.globals.append((flag.name, value))
        else:
            flag = draw(st.sampled_from(own))
            if flag.name == "mount":
                src = draw(st.sampled_from(_IMAGES))
                value = draw(st.sampled_from((f"type=image,source={src},target=/m", "type=bind,src=/a,dst=/b")))
                toks = [f"--mount={value}"] if draw(st.booleans()) else ["--mount", value]
            else:
                toks, value = draw(flag_tokens(fs, flag, traverse=False))
            exp.flags.append((flag.name, value))
        out += toks
    return out


@st.composite
def gated_lines(draw: st.DrawFn) -> tuple[list[str], Expected]:
    exp = Expected()
    argv = draw(globals_before(exp, grammar.GROUPS[()].parse, _ROOT_GLOBALS))
    cmd = draw(st.sampled_from(sorted(grammar.GATED)))
    group = draw(st.sampled_from(grammar.parents_of(cmd)))
    if group:
        argv.append(group[0])
        argv += draw(globals_before(exp, grammar.GROUPS[group].parse, _ALL_GLOBALS))
    argv.append(cmd)
    exp.path = (*group, cmd)
    node = grammar.child_node(exp.path)
    flags = draw(leaf_flags(exp, node.flags))
    if cmd in ("run", "create", "pull", "push"):
        positionals = [draw(st.sampled_from(_IMAGES))]
        if cmd in ("run", "create"):
            positionals += draw(st.lists(anything, max_size=3))
    else:
        positionals = draw(st.lists(plain_values, min_size=1, max_size=3))
    exp.args = positionals
    if draw(st.booleans()) or (positionals[0].startswith("-") or positionals[0] == ""):
        return argv + flags + ["--", *positionals], exp
    if node.interspersed and len(positionals) == 1:
        # flags after the positional are still flags for pull/push/restart
        return [*argv, positionals[0], *flags], exp
    return argv + flags + positionals, exp


@st.composite
def other_lines(draw: st.DrawFn) -> tuple[list[str], Expected]:
    exp = Expected()
    argv = draw(globals_before(exp, grammar.GROUPS[()].parse, _ROOT_GLOBALS))
    kind = draw(st.sampled_from(("opaque", "group-help", "compose")))
    if kind == "opaque":
        cmd = draw(st.sampled_from(("images", "ps", "logs", "network", "load", "tag", "rmi", "help")))
        tail = draw(st.lists(anything, max_size=4))
        exp.path, exp.args, exp.opaque = (cmd,), tail, True
        return [*argv, cmd, *tail], exp
    if kind == "group-help":
        group = draw(st.sampled_from(((), ("container",), ("image",), ("compose",))))
        exp.path, exp.leaf = group, False
        argv += list(group)
        if draw(st.booleans()):
            exp.flags.append(("help", "true"))
            return [*argv, draw(st.sampled_from(("--help", "-h", "--help=true")))], exp
        return argv, exp
    exp.path = ("compose", draw(st.sampled_from(("ps", "logs", "down", "config", "exec"))))
    argv.append("compose")
    compose = grammar.GROUPS[("compose",)].parse
    for _ in range(draw(st.integers(0, 3))):
        flag = draw(st.sampled_from(_distinct(compose)))
        toks, value = draw(flag_tokens(compose, flag, traverse=True))
        argv += toks
        (exp.globals if flag.is_global else exp.group_flags).append((flag.name, value))
    tail = draw(st.lists(anything, max_size=3))
    exp.args, exp.opaque = tail, True
    return [*argv, exp.path[1], *tail], exp


def _check(inv: nargv.Invocation, exp: Expected) -> None:
    assert inv.path == exp.path
    assert inv.globals == tuple(exp.globals)
    assert inv.flags == tuple(exp.flags)
    assert inv.args == tuple(exp.args)
    assert inv.group_flags == tuple(exp.group_flags)
    assert inv.opaque == exp.opaque
    assert inv.leaf == exp.leaf


def _round_trip(inv: nargv.Invocation) -> None:
    decision = nargv.classify(inv)
    if decision.kind == "refuse":
        return
    out = nargv.serialize(inv)
    again = nargv.parse(out)
    assert again == inv, (inv.argv, out)
    assert nargv.classify(again).kind == decision.kind
    assert nargv.serialize(again) == out


@settings(max_examples=400, deadline=None)
@given(gated_lines())
def test_gated_lines_parse_to_what_was_generated(case: tuple[list[str], Expected]) -> None:
    argv, exp = case
    inv = nargv.parse(argv)
    _check(inv, exp)
    assert nargv.classify(inv).kind == "gate"
    _round_trip(inv)


@settings(max_examples=300, deadline=None)
@given(other_lines())
def test_other_lines_parse_to_what_was_generated(case: tuple[list[str], Expected]) -> None:
    argv, exp = case
    inv = nargv.parse(argv)
    _check(inv, exp)
    assert nargv.classify(inv).kind == "forward"
    _round_trip(inv)


_WORDS = st.sampled_from((
    "run", "create", "start", "restart", "pull", "push", "container", "image", "compose", "images", "up", "ls",
    "--", "-", "", "-n", "-a", "-H", "-h", "-v", "-it", "-d", "-e", "--help", "--debug", "--debug=false", "false",
    "--namespace", "--namespace=x", "--bridge-ip", "--kube-hide-dupe", "--rootfs", "--mount",
    "type=image,source=busybox,target=/m", "--name", "--pull=never", "alpine", "ipfs://x", "oci-archive:///a",
    "-test.v", "--=", "---x", "-e=X", "--rm=maybe", "Alpine", "sha256:" + "a" * 64,
))


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(_WORDS, st.text(max_size=5)), max_size=8))
def test_any_tokens_parse_or_raise_usage_error(tokens: list[str]) -> None:
    try:
        inv = nargv.parse(tokens)
        nargv.classify(inv)
    except UsageError:
        return
    _round_trip(inv)
