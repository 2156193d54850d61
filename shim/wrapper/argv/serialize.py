"""Rebuild the argv to forward from a parse, never from the original tokens (docs/nerdctl.md §8.6).

Every flag is written ``--long=value`` (no token can be mistaken for a flag's value or a subcommand),
global flags first in their original order (the last one still wins), then the command path, compose's
own flags, the command's flags, and an explicit ``--`` before the positionals of a parsed command: for
run/create the image (or the gate's pinned form) and then the container's arguments, untouched.
"""

from __future__ import annotations

from shim.wrapper.argv.model import Invocation, MountSpec, Pairs

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Mapping


def _flags(pairs: Pairs) -> list[str]:
    return [f"--{k}={v}" for k, v in pairs]


def serialize(inv: Invocation, image_override: str | None = None,
              mount_overrides: Mapping[str, str] | None = None) -> list[str]:
    """The argv (without the program name) to hand the real nerdctl for ``inv``.

    ``image_override`` replaces the image of run/create/pull/push (the gate passes ``name@sha256:…``);
    ``mount_overrides`` maps each ``--mount type=image`` source to its pinned form.

    Raises:
        ValueError: ``inv`` is an unknown subcommand (never forwarded), an override is given for a command
            without an image, or ``mount_overrides`` misses an image mount's source.
    """
    if not inv.leaf and inv.args and not inv.help:
        raise ValueError(f"refusing to serialize an unknown subcommand {inv.args[0]!r}")
    if image_override is not None and inv.image is None:
        raise ValueError(f"{inv.command!r} has no image to override")
    if mount_overrides is not None and inv.command not in ("run", "create"):
        raise ValueError(f"{inv.command!r} has no --mount to override")
    out = _flags(inv.globals)
    out += inv.path[:1]
    if inv.path[:1] == ("compose",):
        out += _flags(inv.group_flags)
    out += inv.path[1:]
    if inv.opaque:
        return out + list(inv.args)
    if not inv.leaf:
        return out + _flags(inv.flags)
    for k, v in inv.flags:
        if k == "mount" and mount_overrides is not None:
            m = MountSpec.parse(v)
            if m.is_image and m.source is not None:
                if m.source not in mount_overrides:
                    raise ValueError(f"--mount image {m.source!r} was not pinned")
                v = m.with_source(mount_overrides[m.source])
        out.append(f"--{k}={v}")
    if inv.args:
        out.append("--")
        args = list(inv.args)
        if image_override is not None:
            args[0] = image_override
        out += args
    return out
