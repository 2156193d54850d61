"""Forward, gate or refuse: a pure function of the parse (docs/design.md §2, docs/nerdctl.md §3 and §8)."""

from __future__ import annotations

from shim.wrapper.argv.grammar import BOOL_VALUES, COMPOSE_REFUSED
from shim.wrapper.argv.model import Decision, Invocation

_FROM_REGISTRY = "push the image to a registry, sign it, and run it by name"
_SPECIAL = {
    "oci-archive": ("{what} {ref!r} is loaded from a local OCI archive: there is no registry signature for "
                    "BACON to check"),
    "ipfs": "{what} {ref!r} is fetched from IPFS: BACON can only check images from a registry",
    "ipns": "{what} {ref!r} is fetched from IPFS (IPNS): BACON can only check images from a registry",
    "cid": "{what} {ref!r} is an IPFS content identifier, fetched from IPFS: BACON can only check images "
           "from a registry",
}


def _refuse(reason: str, hint: str) -> Decision:
    return Decision("refuse", f"{reason}; {hint}", hint)


def _check_refs(inv: Invocation) -> Decision | None:
    """Refuse special image forms; raise UsageError for references nerdctl would reject."""
    from shim.images import reference  # stdlib only; loaded for gated commands alone

    refs = [("image", inv.image)] if inv.image is not None else []
    refs += [("--mount type=image source", m) for m in inv.mount_images]
    for what, ref in refs:
        assert ref is not None
        kind = reference.special_kind(ref)
        if kind is not None:
            return _refuse(_SPECIAL[kind].format(what=what, ref=ref), _FROM_REGISTRY)
        reference.parse(ref)
    return None


def classify(inv: Invocation) -> Decision:
    """Decide what the wrapper does with ``inv``.

    Raises:
        UsageError: the image (or a ``--mount type=image`` source) is not a valid reference.
    """
    if not inv.leaf:
        where = " ".join(("nerdctl", *inv.path))
        if inv.help or not inv.args:
            return Decision("forward", f"{where} only prints help or its version")
        word = inv.args[0]
        hint = "see `nerdctl --help` for the commands"
        if word in BOOL_VALUES:
            hint = "a boolean flag takes a value only as --flag=VALUE; " + hint
        return _refuse(f"unknown subcommand {word!r} for {where!r}: nerdctl would not run what you expect", hint)

    cmd = inv.command
    if inv.path[:1] == ("compose",) and len(inv.path) > 1 and inv.path[1] in COMPOSE_REFUSED:
        return _refuse(
            f"`nerdctl compose {inv.path[1]}` starts containers or moves images through child nerdctl "
            "processes that run the real binary, past BACON's checks",
            "run each service with `nerdctl run`/`create`/`start`, and `nerdctl pull`/`push` its image",
        )
    if cmd in ("build", "builder debug"):
        if inv.help:
            return Decision("forward", f"`nerdctl {cmd} --help` only prints help")
        what = "and --image " if cmd == "builder debug" else ""
        return Decision("gate", f"{cmd} runs the Dockerfile's images {what}in BuildKit: they are checked and pinned")
    if cmd not in ("run", "create", "start", "restart", "pull", "push"):
        return Decision("forward", f"`nerdctl {cmd}` neither brings in an image nor starts a container")
    if inv.help:
        return Decision("forward", f"`nerdctl {cmd} --help` only prints help")
    if cmd in ("start", "restart"):
        return Decision("gate", f"{cmd} starts container(s) {', '.join(inv.containers)}: their image is checked")
    if cmd in ("run", "create") and inv.flag("rootfs") == "true":
        return _refuse(f"`{cmd} --rootfs` runs a directory as the root filesystem: there is no image to check",
                       "build an image from it, push and sign it, and run that")
    refused = _check_refs(inv)
    if refused is not None:
        return refused
    images = [inv.image, *inv.mount_images]
    return Decision("gate", f"{cmd} brings in image(s) {', '.join(str(i) for i in images)}: they are checked")
