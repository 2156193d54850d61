"""nerdctl's argv grammar: parse a command line as nerdctl does, decide, and re-serialize it.

``parse(argv) -> Invocation``, ``classify(inv) -> Decision`` (forward / gate / refuse) and
``serialize(inv, image_override=None, mount_overrides=None) -> list[str]``. The grammar tables are in
``grammar``; the walk that mirrors cobra and pflag in ``parser``.

Standard library only: this package is on the forwarding path.
"""

from __future__ import annotations

from shim.wrapper.argv.classify import classify
from shim.wrapper.argv.model import Decision, Invocation, MountSpec
from shim.wrapper.argv.parser import parse
from shim.wrapper.argv.serialize import serialize

__all__ = ["Decision", "Invocation", "MountSpec", "classify", "parse", "serialize"]
