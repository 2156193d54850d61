"""Hand the command to the real nerdctl: exec last, by absolute path, with a cleaned environment.

The real binary is exec'd with its absolute path also as argv[0]: rootless nerdctl re-execs
``os.Args[0]`` looked up on PATH, which would otherwise run this wrapper again (docs/nerdctl.md §2).

Standard library only: this is the forwarding path.
"""

from __future__ import annotations

import os

from shim.common import trustedfile
from shim.common.errors import ConfigError

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn

# Variables that change how an interpreter or the loader behaves, or point BACON elsewhere: never
# handed on. (nerdctl is a Go binary; these only matter to things it may start, like cosign hooks.)
DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONINSPECT", "LD_PRELOAD",
           "LD_LIBRARY_PATH", "LD_AUDIT", "BACON_CONFIG")


def clean_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in DROPPED}


def check_real_nerdctl(path: str | os.PathLike[str]) -> None:
    """The configured binary must be an absolute path to an executable file that only root can change
    (:mod:`shim.common.trustedfile`: it runs as root; whoever could write it would have a root shell)."""
    if not os.path.isabs(path):
        raise ConfigError(f"the real nerdctl must be an absolute path, got {path}")
    trustedfile.check_executable(path, "the real nerdctl", missing_hint=(
        "set `nerdctl = \"/path/to/real/nerdctl\"` in /etc/bacon/config.toml, or run `bacon enable`"))


def exec_real(nerdctl: str | os.PathLike[str], args: Sequence[str],
              environ: Mapping[str, str] | None = None) -> NoReturn:
    """Replace this process by the real nerdctl with ``args`` (argv without argv[0])."""
    check_real_nerdctl(nerdctl)
    env = clean_environment(os.environ if environ is None else environ)
    os.execve(nerdctl, [os.fspath(nerdctl), *args], env)  # noqa: S606 - exec by absolute path, no shell


def run_real(nerdctl: str | os.PathLike[str], args: Sequence[str]) -> int:
    """Run the real nerdctl with ``args`` as a child (cleaned environment), and return its exit status."""
    import subprocess

    from shim.wrapper.inputs import inherited_copies

    check_real_nerdctl(nerdctl)
    env = clean_environment(os.environ)
    return subprocess.run([os.fspath(nerdctl), *args], env=env, pass_fds=inherited_copies(env),
                          check=False).returncode


def carry_out(nerdctl: str | os.PathLike[str], forward: Sequence[str], then: Sequence[Sequence[str]] = ()) -> int:
    """What an admission decided: exec ``forward``; or, when commands must follow it (``pull`` then
    ``tag``), run each in turn while they succeed and return the last exit status."""
    if not then:
        exec_real(nerdctl, forward)
    rc = run_real(nerdctl, forward)
    for args in then:
        if rc != 0:
            break
        rc = run_real(nerdctl, args)
    return rc
