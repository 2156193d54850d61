"""Nothing slips through by omission: every flag and command nerdctl's grammar knows has a profile class.

A flag added to :mod:`shim.wrapper.argv.grammar` for a future nerdctl makes this fail until it is classified in
:mod:`shim.admission.profiles.classes` (and, if ``checked``, read in :mod:`shim.admission.profiles.from_argv`)."""

from __future__ import annotations

import pytest

from shim.admission.profiles import classes
from shim.wrapper.argv import grammar

CLASSES = {"allowed", "checked", "refused"}


def _canonical(fs: grammar.FlagSet) -> set[str]:
    return {f.name for f in (*fs.longs.values(), *fs.shorts.values()) if not f.is_global}


def test_every_global_flag_is_classified() -> None:
    names = {f.name for f in grammar.GLOBAL_PERSISTENT.longs.values()}
    names |= {f.name for f in grammar.ROOT_LOCAL_ALIASES.longs.values()}
    missing = sorted(n for n in names if classes.GLOBAL_FLAGS.get(n) not in CLASSES)
    assert missing == [], f"global flags without a profile class: {missing}"


@pytest.mark.parametrize("command", sorted(grammar.PARSED))
def test_every_flag_of_every_parsed_command_is_classified(command: str) -> None:
    node = grammar.child_node((*grammar.parents_of(command)[0], command))
    assert node.kind == "gated"
    table = classes.COMMAND_FLAGS[command]
    missing = sorted(n for n in _canonical(node.flags) if table.get(n) not in CLASSES)
    assert missing == [], f"`{command}` flags without a profile class: {missing}"
    known = _canonical(grammar.child_node(("run",)).flags) if command == "create" else _canonical(node.flags)
    stale = sorted(set(table) - known)  # create shares run's table
    assert stale == [], f"`{command}` classifies flags the grammar does not know: {stale}"


def test_every_compose_flag_is_classified() -> None:
    missing = sorted(n for n in _canonical(grammar.COMPOSE_LOCAL) if n not in classes.COMMAND_FLAGS["compose"])
    assert missing == []


@pytest.mark.parametrize("group", sorted(grammar.GROUPS))
def test_every_command_is_classified(group: tuple[str, ...]) -> None:
    for child in grammar.GROUPS[group].children.values():
        path = (*group, child)
        if path[0] == "compose":
            assert classes.command_class(path) == "host-files"
            continue
        key = " ".join(path)
        assert key in classes.COMMANDS, f"`nerdctl {key}` has no profile class"


def test_a_command_not_in_the_table_is_refused() -> None:
    assert classes.command_class(("frobnicate",)) == "refused"
    assert classes.GLOBAL_FLAGS.get("future-flag", "refused") == "refused"


def test_the_flag_tables_of_a_future_grammar_would_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself: a flag added to run's grammar and not classified is found."""
    run = grammar.child_node(("run",))
    extra = grammar.FlagSet({"future-flag": grammar.Flag("future-flag")})
    monkeypatch.setattr(run, "flags", run.flags.merged(extra))
    with pytest.raises(AssertionError, match="future-flag"):
        test_every_flag_of_every_parsed_command_is_classified("run")


FORWARDED_WITHOUT_DECISION = [
    ["ps", "-a"], ["--namespace", "k8s.io", "images"], ["logs", "-f", "c"], ["exec", "-it", "c", "sh"],
    ["exec", "-w", "/", "-e", "A=1", "c", "env"], ["exec", "--env-file=/e", "c", "env"], ["save", "img"],
    ["load"], ["export", "c"], ["apparmor", "ls"],
    ["--debug", "rm", "-f", "c"], ["container", "ls"], ["image", "ls"], ["help", "run"], ["network", "ls"],
]
NEEDS_DECISION = [
    ["exec", "--privileged", "c", "sh"], ["exec", "-u", "0", "c", "sh"],
    ["--cni-path=/x", "ps"], ["--data-root", "/etc", "rm", "c"], ["--address=/s", "images"],
    ["cp", "a", "c:/b"], ["container", "cp", "c:/b", "a"], ["save", "-o", "f", "img"],
    ["image", "save", "-o", "f", "i"],
    ["load", "-i", "f"], ["load", "--input=f"], ["export", "--output", "f", "c"], ["build", "."], ["import", "-", "x"],
    ["internal", "oci-hook"], ["apparmor", "unload", "p"], ["compose", "ps"], ["image", "encrypt", "a", "b"],
    ["builder", "prune"], ["ipfs", "registry", "serve"], ["checkpoint", "create", "c", "cp"],
]


@pytest.mark.parametrize("argv", FORWARDED_WITHOUT_DECISION, ids=[" ".join(a) for a in FORWARDED_WITHOUT_DECISION])
def test_ordinary_forwarded_commands_need_no_profile_decision(argv: list[str]) -> None:
    from shim.wrapper.argv import parse

    assert not classes.needs_decision(parse(argv))


@pytest.mark.parametrize("argv", NEEDS_DECISION, ids=[" ".join(a) for a in NEEDS_DECISION])
def test_forwarded_commands_that_touch_the_host_need_a_decision(argv: list[str]) -> None:
    from shim.wrapper.argv import parse

    assert classes.needs_decision(parse(argv))
