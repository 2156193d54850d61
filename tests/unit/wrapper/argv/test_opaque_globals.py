"""Global flags among the tokens of a command BACON only forwards (docs/nerdctl.md §1).

Every nerdctl command inherits the root's persistent flags, so ``nerdctl network create
--cni-netconfpath=/etc n1`` sets the CNI configuration directory as surely as ``nerdctl
--cni-netconfpath=/etc network create n1``. The parse keeps such a command's tokens untouched; before,
the container profile judged only the global flags given before the subcommand, and the same flag after it
went through unjudged.
"""

from __future__ import annotations

import pytest

from shim.admission.profiles import classes, from_argv
from shim.admission.profiles.rules import Allowances, Settings, refusals_of
from shim.wrapper import argv as nargv

CASES: list[tuple[list[str], tuple[tuple[str, str], ...]]] = [
    (["network", "create", "--cni-netconfpath=/etc", "n1"], (("cni-netconfpath", "/etc"),)),
    (["network", "create", "--cni-netconfpath", "/etc", "n1"], (("cni-netconfpath", "/etc"),)),
    (["rm", "-f", "--data-root", "/tmp/x", "c1"], (("data-root", "/tmp/x"),)),
    (["volume", "create", "--host=/run/other.sock", "v"], (("address", "/run/other.sock"),)),
    (["images", "--storage-driver", "native"], (("snapshotter", "native"),)),
    (["system", "prune", "--selinux-enabled"], (("selinux-enabled", "true"),)),
    (["images", "--hosts-dir=/a,/b"], (("hosts-dir", "/a,/b"),)),
    # a value of another flag, or the flag itself: both readings are kept (nerdctl takes one of them)
    (["network", "create", "--label", "--cni-path", "--cni-path=/evil", "n1"],
     (("cni-path", "--cni-path=/evil"), ("cni-path", "/evil"))),
    # the last token: nerdctl would want a value
    (["images", "--cni-path"], (("cni-path", ""),)),
    # not global flags: short forms are the root's own, and other flags are the command's
    (["logs", "-n", "5", "c1"], ()),
    (["images", "--namespacex=1", "-a"], ()),
    (["images", "--", "x"], ()),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_opaque_globals(argv: list[str], expected: tuple[tuple[str, str], ...]) -> None:
    inv = nargv.parse(argv)
    assert inv.opaque
    assert inv.opaque_globals == expected
    assert nargv.serialize(inv) == argv  # still forwarded untouched


def test_parsed_commands_have_them_in_globals() -> None:
    inv = nargv.parse(["run", "--cni-path=/x", "img", "--cni-path=/y"])
    assert inv.opaque_globals == ()
    assert inv.globals == (("cni-path", "/x"),)


HOST_CHOOSING = [
    ["network", "create", "--cni-netconfpath=/etc", "n1"],
    ["rm", "-f", "--data-root", "/tmp/x", "c1"],
    ["volume", "create", "--host=/run/other.sock", "v"],
    ["container", "rm", "--cni-path=/tmp/evil", "c1"],
    ["system", "prune", "--selinux-enabled"],
    ["network", "create", "--label", "--cni-path", "--cni-path=/evil", "n1"],
]


@pytest.mark.parametrize("argv", HOST_CHOOSING, ids=[" ".join(a) for a in HOST_CHOOSING])
def test_a_host_choosing_global_flag_after_a_forwarded_subcommand_is_judged(argv: list[str]) -> None:
    inv = nargv.parse(argv)
    assert classes.needs_decision(inv)
    refused = refusals_of(from_argv.requested(inv), Settings(profile="baseline", level="Low", allow=Allowances(),
                                                              global_flags={}))
    assert refused
    assert {r.rule for r in refused} == {"global-flags"}


def test_the_configured_value_is_allowed_after_the_subcommand_too() -> None:
    inv = nargv.parse(["network", "create", "--cni-netconfpath=/etc/cni/net.d", "n1"])
    settings = Settings(profile="baseline", level="Low", allow=Allowances(),
                        global_flags={"cni-netconfpath": frozenset({"/etc/cni/net.d"})})
    assert refusals_of(from_argv.requested(inv), settings) == ()


@pytest.mark.parametrize("argv", [["images", "--namespace", "k8s.io"], ["ps", "-a", "--debug"],
                                  ["logs", "-n", "5", "c1"], ["network", "ls", "--insecure-registry"]])
def test_allowed_global_flags_after_the_subcommand_cost_nothing(argv: list[str]) -> None:
    assert not classes.needs_decision(nargv.parse(argv))
