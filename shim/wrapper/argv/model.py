"""What the parse of a nerdctl command line yields, and what the wrapper decides about it."""

from __future__ import annotations

from shim.common.errors import UsageError
from shim.wrapper.argv.grammar import GLOBAL_PERSISTENT, PARSED

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Literal

    DecisionKind = Literal["forward", "gate", "refuse"]

Pairs = tuple[tuple[str, str], ...]

# Plain classes with __slots__, not dataclasses, in this module: it is on the forwarding path, and
# importing dataclasses (with inspect) costs about 10 ms of every forwarded command.


def _csv(flag: str, value: str) -> list[str]:
    """pflag's StringSlice ``Set``: one CSV record (``""`` is no element)."""
    if value == "":
        return []
    import csv  # only the gate reads slice values

    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as e:
        raise UsageError(f'invalid argument {value!r} for "--{flag}" flag: {e}') from e
    return rows[0] if rows else []


# nerdctl's --mount keys (pkg/mountutil/mountutil_linux.go ProcessFlagMount, docs/nerdctl.md §4), each
# spelling mapped to the setting it changes. Spellings of one setting are one key: giving two of them
# (``src=a,source=b``, ``ro,readonly=false``) has two readings, and is refused.
MOUNT_KEYS: dict[str, str] = {
    "type": "type", "source": "source", "src": "source", "target": "target", "dst": "target",
    "destination": "target", "readonly": "readonly", "ro": "readonly", "rro": "readonly",
    "rw": "readonly",  # nerdctl v1.7 to v2.0 only; later releases reject it themselves
    "bind-propagation": "bind-propagation", "bind-nonrecursive": "bind-nonrecursive",
    "bind-recursive": "bind-recursive", "tmpfs-size": "tmpfs-size", "tmpfs-mode": "tmpfs-mode",
}
MOUNT_BARE: frozenset[str] = frozenset({"readonly", "ro", "rro", "rw", "bind-nonrecursive"})  # valid without =VALUE
MOUNT_TYPES: frozenset[str] = frozenset({"volume", "bind", "tmpfs", "image"})  # matched with case


class MountSpec:
    """One ``--mount`` value read as nerdctl reads it (ProcessFlagMount, containerd/nerdctl main at
    8da50408, after v2.3.5; unchanged in how keys and types are read since v1.7.7 but for ``type=image``
    and ``rw``): split on every ``,`` (no quoting), each field split at its first ``=``, the key lower-cased,
    a bare field only for the ``readonly`` family and ``bind-nonrecursive``, an unknown key an error.
    nerdctl's loop lets a later field override an earlier one, except that ``type=volume`` (the default)
    leaves an earlier ``type=`` alone: ``type=image,…,type=volume`` is an image mount. So that no spelling
    has two readings, BACON refuses any setting given twice (in any case, under any of its spellings) and
    every value nerdctl itself would reject (:meth:`parse`).
    """

    __slots__ = ("fields",)

    def __init__(self, fields: tuple[tuple[str, str | None], ...]) -> None:
        self.fields = fields  # (key as written, value or None for a bare option)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MountSpec) and other.fields == self.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"MountSpec({self.fields!r})"

    @classmethod
    def parse(cls, value: str) -> MountSpec:
        """Split and check ``value``.

        Raises:
            UsageError: nerdctl would reject it, or one of its settings is given twice.
        """
        out: list[tuple[str, str | None]] = []
        seen: dict[str, str] = {}
        for f in value.split(","):
            k, eq, v = f.partition("=")
            key = k.lower()
            where = f"--mount {value!r}"
            if not eq and key not in MOUNT_BARE:
                raise UsageError(f"{where}: invalid field {f!r}: it must be a key=value pair",
                                 hint="see `nerdctl run --help`: --mount type=…,source=…,target=…")
            setting = MOUNT_KEYS.get(key)
            if setting is None:
                hint = ("nerdctl does not support image-subpath" if key == "image-subpath"
                        else "keys: " + ", ".join(sorted(MOUNT_KEYS)))
                raise UsageError(f"{where}: unexpected key {k!r}", hint=hint)
            if setting in seen:
                raise UsageError(f"{where}: the mount's {setting} is given twice ({seen[setting]!r} and {k!r}): "
                                 "readers of it disagree on which one counts (nerdctl keeps an earlier type "
                                 "over a later type=volume)", hint=f"give the mount's {setting} once")
            seen[setting] = k
            if setting == "type" and v not in MOUNT_TYPES:
                raise UsageError(f"{where}: invalid mount type {v!r}: it must be one of volume, bind, tmpfs, "
                                 "image (lower case)")
            out.append((k, v if eq else None))
        return cls(tuple(out))

    def get(self, *keys: str) -> str | None:
        """The value of the setting any of ``keys`` (lower case) spells (a parsed spec sets each once)."""
        found = None
        for k, v in self.fields:
            if k.lower() in keys and v is not None:
                found = v
        return found

    @property
    def type(self) -> str:
        """``volume`` (nerdctl's default), ``bind``, ``tmpfs`` or ``image``."""
        return self.get("type") or "volume"

    @property
    def is_image(self) -> bool:
        return self.type == "image"

    @property
    def source(self) -> str | None:
        return self.get("source", "src")

    @property
    def target(self) -> str | None:
        return self.get("target", "dst", "destination")

    def with_source(self, source: str) -> str:
        """The value with its ``source=``/``src=`` replaced by ``source``."""
        parts = []
        for k, v in self.fields:
            if v is not None and k.lower() in ("source", "src"):
                v = source
            parts.append(k if v is None else f"{k}={v}")
        return ",".join(parts)


class Invocation:
    """A nerdctl command line as nerdctl itself reads it.

    ``path`` is the command path in primary names (``("container", "ls")`` for ``container list``);
    ``globals`` every global flag in order of appearance, at any level, as (canonical long name, value),
    booleans as ``"true"``/``"false"``; ``group_flags`` compose's own flags; ``flags`` the command's own.
    ``args`` are the positionals for a parsed command, or, when ``opaque``, the command's raw tokens
    (commands BACON only forwards are not parsed beyond their name). ``leaf`` is false when nerdctl
    would execute a group (the root, ``container``, ``image``, ``compose``) itself: help, version, or an
    unknown subcommand in ``args``. ``argv`` is the original command line (not compared).
    """

    __slots__ = ("args", "argv", "flags", "globals", "group_flags", "leaf", "opaque", "path")
    _COMPARED = ("globals", "path", "flags", "args", "group_flags", "opaque", "leaf")

    globals: Pairs
    path: tuple[str, ...]
    flags: Pairs
    args: tuple[str, ...]
    group_flags: Pairs
    opaque: bool
    leaf: bool
    argv: tuple[str, ...]

    def __init__(self, globals: Pairs, path: tuple[str, ...], flags: Pairs = (),
                 args: tuple[str, ...] = (), group_flags: Pairs = (), opaque: bool = False, leaf: bool = True,
                 argv: tuple[str, ...] = ()) -> None:
        for name, value in (("globals", globals), ("path", path), ("flags", flags), ("args", args),
                            ("group_flags", group_flags), ("opaque", opaque), ("leaf", leaf), ("argv", argv)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Invocation is immutable (cannot set {name}); use replace()")

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invocation) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Invocation(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._COMPARED) + ")"

    def replace(self, **changes: Any) -> Invocation:
        """A copy with ``changes`` (field names as in the constructor)."""
        fields = {n: getattr(self, n) for n in (*self._COMPARED, "argv")}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Invocation has no field(s) {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Invocation(**fields)

    # --- what the command is ---------------------------------------------------------------------

    @property
    def command(self) -> str:
        """``run``, ``pull``, ``exec`` … for parsed commands (any spelling); else the path joined by spaces."""
        if self.leaf and self.path and self.path[-1] in PARSED and self.path[:-1] in ((), ("container",), ("image",)):
            return self.path[-1]
        if self.leaf and self.path == ("builder", "build"):
            return "build"
        return " ".join(self.path)

    def _last(self, pairs: Pairs, name: str) -> str | None:
        value = None
        for k, v in pairs:
            if k == name:
                value = v
        return value

    def _all(self, pairs: Pairs, name: str) -> Iterator[str]:
        return (v for k, v in pairs if k == name)

    def flag(self, name: str) -> str | None:
        """The command flag's last value (``None`` if not given)."""
        return self._last(self.flags, name)

    def all_flags(self, name: str) -> tuple[str, ...]:
        """Every value of a repeatable command flag (a StringArray), in order."""
        return tuple(self._all(self.flags, name))

    def global_flag(self, name: str) -> str | None:
        """The global flag's last value (``None`` if not given: environment, TOML or default apply)."""
        return self._last(self.globals, name)

    @property
    def opaque_globals(self) -> Pairs:
        """Every reading nerdctl could give a global flag among an opaque command's own tokens.

        Every nerdctl command accepts the root's persistent flags (long forms only: ``-n``, ``-a`` and ``-H``
        are the root's own), so ``nerdctl network create --cni-netconfpath=/etc n1`` sets a global flag
        that ``globals`` (parsed before the subcommand) does not hold. BACON does not parse an opaque
        command's own flags, so it cannot tell a flag from another flag's value: this over-approximates,
        as (canonical name, value) in order, each token spelling a global flag: ``--name=value``, a
        boolean alone (``"true"``), a value flag with the next token as its value (or ``""`` when it is
        the last token: nerdctl would reject it). Judging all of them covers nerdctl's one reading.
        Empty for a parsed command (its global flags are in ``globals``).
        """
        if not self.opaque:
            return ()
        out: list[tuple[str, str]] = []
        args = self.args
        for i, tok in enumerate(args):
            if not tok.startswith("--") or len(tok) == 2:
                continue
            name, eq, value = tok[2:].partition("=")
            flag = GLOBAL_PERSISTENT.longs.get(name)
            if flag is None:
                continue
            if not eq:
                value = "true" if flag.boolean else (args[i + 1] if i + 1 < len(args) else "")
            out.append((flag.name, value))
        return tuple(out)

    @property
    def help(self) -> bool:
        """nerdctl would only print help or its version."""
        return self.flag("help") == "true" or self.flag("version") == "true"

    @property
    def image(self) -> str | None:
        """The image argument of run/create/pull/push, as written."""
        if self.command in ("run", "create", "pull", "push") and self.args:
            return self.args[0]
        return None

    @property
    def container_args(self) -> tuple[str, ...]:
        """run/create: the container's command and arguments after the image."""
        return self.args[1:] if self.command in ("run", "create") else ()

    @property
    def containers(self) -> tuple[str, ...]:
        """start/restart: the container names or ID prefixes."""
        return self.args if self.command in ("start", "restart") else ()

    @property
    def mounts(self) -> tuple[MountSpec, ...]:
        if self.command not in ("run", "create"):
            return ()
        return tuple(MountSpec.parse(v) for v in self._all(self.flags, "mount"))

    @property
    def mount_images(self) -> tuple[str, ...]:
        """The ``--mount type=image,source=REF`` images of run/create, in order."""
        return tuple(m.source for m in self.mounts if m.is_image and m.source is not None)

    # --- the values the gate needs -----------------------------------------------------------------

    @property
    def address(self) -> str | None:
        return self.global_flag("address")

    @property
    def namespace(self) -> str | None:
        return self.global_flag("namespace")

    @property
    def snapshotter(self) -> str | None:
        return self.global_flag("snapshotter")

    @property
    def insecure_registry(self) -> bool | None:
        v = self.global_flag("insecure-registry")
        return None if v is None else v == "true"

    @property
    def hosts_dir(self) -> tuple[str, ...] | None:
        """``--hosts-dir`` (a CSV slice, accumulated); ``None`` if not given.

        Raises:
            UsageError: a value is not valid CSV (nerdctl would reject it too).
        """
        values = list(self._all(self.globals, "hosts-dir"))
        if not values:
            return None
        return tuple(x for v in values for x in _csv("hosts-dir", v))

    @property
    def platforms(self) -> tuple[str, ...]:
        """``--platform`` values (run/create: the last one; pull/push: the CSV slice). Empty: the host's."""
        if self.command in ("run", "create"):
            p = self.flag("platform")
            return (p,) if p else ()
        if self.command in ("pull", "push", "build"):
            return tuple(x for v in self._all(self.flags, "platform") for x in _csv("platform", v))
        return ()

    @property
    def platform(self) -> str | None:
        """The one platform asked for, or ``None`` (the host's; or several, see ``platforms``)."""
        p = self.platforms
        return p[0] if len(p) == 1 else None

    @property
    def all_platforms(self) -> bool:
        return self.flag("all-platforms") == "true"

    @property
    def pull_policy(self) -> str | None:
        """``--pull`` for run/create (default ``missing``); ``always`` for pull; ``None`` otherwise."""
        if self.command in ("run", "create"):
            return self.flag("pull") or "missing"
        if self.command == "pull":
            return "always"
        return None

    @property
    def name(self) -> str | None:
        """run/create ``--name``."""
        return self.flag("name") if self.command in ("run", "create") else None

    @property
    def labels(self) -> tuple[str, ...]:
        """run/create ``-l/--label`` values (``KEY=VALUE`` or ``KEY``), in order."""
        return tuple(self._all(self.flags, "label")) if self.command in ("run", "create") else ()

    @property
    def label_files(self) -> tuple[str, ...]:
        """run/create ``--label-file`` paths (a CSV slice).

        Raises:
            UsageError: a value is not valid CSV.
        """
        if self.command not in ("run", "create"):
            return ()
        return tuple(x for v in self._all(self.flags, "label-file") for x in _csv("label-file", v))


class Decision:
    """``forward`` (exec the real nerdctl), ``gate`` (admit first) or ``refuse``, with the reason.

    For ``refuse`` the reason says why and what to do instead; ``hint`` repeats the remedy on its own.
    """

    __slots__ = ("hint", "kind", "reason")

    def __init__(self, kind: DecisionKind, reason: str, hint: str | None = None) -> None:
        self.kind = kind
        self.reason = reason
        self.hint = hint

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and (other.kind, other.reason, other.hint) == (
            self.kind, self.reason, self.hint)

    def __hash__(self) -> int:
        return hash((self.kind, self.reason, self.hint))

    def __repr__(self) -> str:
        return f"Decision(kind={self.kind!r}, reason={self.reason!r}, hint={self.hint!r})"
