"""nerdctl's command tree and flag tables, as data (docs/nerdctl.md §1-4).

Read from cmd/nerdctl/main.go, cmd/nerdctl/helpers/cobra.go and the command files of containerd/nerdctl
(main after v2.3.5, checked again at commit 8da50408), with spf13/cobra v1.10.2 and spf13/pflag v1.0.10. The
parser (``parser.py``) walks these tables exactly as cobra's ``Traverse`` and pflag's ``Parse`` do.
``--mount`` values are read as pkg/mountutil's ``ProcessFlagMount`` reads them at that commit
(``model.MountSpec``, docs/nerdctl.md §4).
What the gate does with ``--platform`` follows containerd/platforms v1.0.0-rc.4/rc.5 and containerd v2's
image walk (``shim/images/platforms.py``, docs/platforms.md); for ``build`` and ``builder debug``, nerdctl's
pkg/cmd/builder at that commit (docs/build.md).

Three flag sets matter per command, because cobra consults different ones at different moments:

- *traverse*: what ``Command.Traverse`` looks up to decide whether ``--flag`` takes the next token while
  it is still looking for the subcommand. Unknown flags (and ``--help``, which cobra adds later) are
  assumed to take a value.
- *parse*: what ``ParseFlags`` accepts for the flags seen before the subcommand (no ``--help`` yet).
- *execute*: what the command that finally runs accepts: the above plus ``-h/--help`` (and
  ``-v/--version`` on the root).

Only the commands that can lead to a gated command (the root, ``container``, ``image``, ``compose``) are
traversed. Every other command's tokens are passed through untouched (``opaque``): once nerdctl is
committed to, say, ``logs`` or ``network``, nothing in its arguments can make it run another command.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Final

# strconv.ParseBool
BOOL_VALUES: Final[Mapping[str, bool]] = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}


class Flag:
    """One flag variable. ``name`` is its canonical long name, the one BACON serializes.

    (Plain classes, not dataclasses, in this module: building dataclasses costs import time on the
    forwarding path.)
    """

    __slots__ = ("boolean", "is_global", "name")

    def __init__(self, name: str, *, boolean: bool = False, is_global: bool = False) -> None:
        self.name = name
        self.boolean = boolean
        self.is_global = is_global

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, boolean={self.boolean}, is_global={self.is_global})"


class FlagSet:
    """Spellings → flag: ``longs`` without the leading ``--``, ``shorts`` single characters."""

    __slots__ = ("longs", "shorts")

    def __init__(self, longs: Mapping[str, Flag] | None = None, shorts: Mapping[str, Flag] | None = None) -> None:
        self.longs: Mapping[str, Flag] = longs or {}
        self.shorts: Mapping[str, Flag] = shorts or {}

    def merged(self, *others: FlagSet) -> FlagSet:
        longs = dict(self.longs)
        shorts = dict(self.shorts)
        for o in others:
            longs.update(o.longs)
            shorts.update(o.shorts)
        return FlagSet(longs, shorts)


def _flagset(values: Iterable[str] = (), bools: Iterable[str] = (), *, is_global: bool = False,
             shorts: Mapping[str, str] | None = None, aliases: Mapping[str, str] | None = None) -> FlagSet:
    """Build a flag set: ``shorts`` maps a letter and ``aliases`` a long alias to a canonical name."""
    longs: dict[str, Flag] = {}
    for n in values:
        longs[n] = Flag(n, boolean=False, is_global=is_global)
    for n in bools:
        longs[n] = Flag(n, boolean=True, is_global=is_global)
    short_map = {c: longs[n] for c, n in (shorts or {}).items()}
    for a, n in (aliases or {}).items():
        longs[a] = longs[n]
    return FlagSet(longs, short_map)


# --- global flags (cmd/nerdctl/main.go initRootCmdFlags) ----------------------------------------------

GLOBAL_VALUE_FLAGS: Final = (
    "address", "namespace", "snapshotter", "cni-path", "cni-netconfpath", "data-root", "cgroup-manager",
    "hosts-dir", "host-gateway-ip", "bridge-ip", "cdi-spec-dirs", "userns-remap",
    "global-dns", "global-dns-opts", "global-dns-search",
)
GLOBAL_BOOL_FLAGS: Final = (
    "debug", "debug-full", "insecure-registry", "experimental", "kube-hide-dupe", "selinux-enabled",
)

# The global flags nerdctl takes from an environment variable when the command line does not give them
# (cmd/nerdctl/main.go initRootCmdFlags: the env argument of AddPersistentStringFlag/AddPersistentBoolFlag).
ENV_FLAGS: Final[Mapping[str, str]] = {
    "CONTAINERD_ADDRESS": "address", "CONTAINERD_NAMESPACE": "namespace", "CONTAINERD_SNAPSHOTTER": "snapshotter",
    "CNI_PATH": "cni-path", "NETCONFPATH": "cni-netconfpath", "NERDCTL_EXPERIMENTAL": "experimental",
    "NERDCTL_HOST_GATEWAY_IP": "host-gateway-ip", "NERDCTL_BRIDGE_IP": "bridge-ip",
}
# nerdctl.toml's keys that give a global flag its default (pkg/config/config.go; disable_hc_systemd is no flag).
TOML_FLAGS: Final[Mapping[str, str]] = {
    "debug": "debug", "debug_full": "debug-full", "address": "address", "namespace": "namespace",
    "snapshotter": "snapshotter", "cni_path": "cni-path", "cni_netconfpath": "cni-netconfpath",
    "data_root": "data-root", "cgroup_manager": "cgroup-manager", "insecure_registry": "insecure-registry",
    "hosts_dir": "hosts-dir", "experimental": "experimental", "host_gateway_ip": "host-gateway-ip",
    "bridge_ip": "bridge-ip", "kube_hide_dupe": "kube-hide-dupe", "cdi_spec_dirs": "cdi-spec-dirs",
    "userns_remap": "userns-remap", "dns": "global-dns", "dns_opts": "global-dns-opts",
    "dns_search": "global-dns-search", "selinux_enabled": "selinux-enabled",
}
# What the wrapper hands nerdctl explicitly for every admission, as the checks used it (shim.admission.plans).
PINNED_GLOBALS: Final = frozenset({"address", "namespace"})

# Persistent: valid at every level, long forms only.
GLOBAL_PERSISTENT: Final = _flagset(
    GLOBAL_VALUE_FLAGS, GLOBAL_BOOL_FLAGS, is_global=True,
    aliases={"host": "address", "storage-driver": "snapshotter"},
)
# Root-only aliases: pflag has no short-only flags, so nerdctl registers "a", "H" and "n" as long names
# too (``--n=ns`` works at the root). They are not persistent: after the subcommand ``-n`` is unknown.
ROOT_LOCAL_ALIASES: Final = FlagSet(
    longs={"a": GLOBAL_PERSISTENT.longs["address"], "H": GLOBAL_PERSISTENT.longs["address"],
           "n": GLOBAL_PERSISTENT.longs["namespace"]},
    shorts={"a": GLOBAL_PERSISTENT.longs["address"], "H": GLOBAL_PERSISTENT.longs["address"],
            "n": GLOBAL_PERSISTENT.longs["namespace"]},
)

# Every root persistent flag, booleans included, is known to cobra's Traverse: before it traverses,
# ExecuteC's initCompleteCmd calls Find, whose stripFlags merges the root's persistent flags into its flag
# set (spf13/cobra command.go and completions.go, so since v1.0.0). So ``--kube-hide-dupe images`` is the
# boolean and then ``images``, as nerdctl's own tests write it.

HELP = Flag("help", boolean=True)
VERSION = Flag("version", boolean=True)
COBRA_HELP: Final = FlagSet({"help": HELP}, {"h": HELP})

# --- run / create (cmd/nerdctl/container/container_run.go setCreateFlags) ----------------------------

RUN_SHORT_VALUES: Final = {
    "p": "publish", "h": "hostname", "m": "memory", "u": "user", "v": "volume", "w": "workdir",
    "e": "env", "l": "label",
}
RUN_LONG_VALUES: Final = (
    "restart", "pull", "stop-signal", "stop-timeout", "detach-keys", "init-binary", "platform",
    "network", "net", "dns", "dns-search", "dns-opt", "dns-option", "expose", "ip", "ip6", "domainname",
    "mac-address", "ipc", "cpus", "memory-reservation", "memory-swap", "memory-swappiness",
    "kernel-memory", "oom-score-adj", "pid", "uts", "pids-limit", "cgroup-conf", "cgroupns",
    "cgroup-parent", "cpuset-cpus", "cpuset-mems", "cpu-shares", "cpu-quota", "cpu-period",
    "cpu-rt-period", "cpu-rt-runtime", "device", "ulimit", "rdt-class", "blkio-weight",
    "blkio-weight-device", "device-read-bps", "device-read-iops", "device-write-bps",
    "device-write-iops", "umask", "group-add", "security-opt", "cap-add", "cap-drop", "systemd",
    "runtime", "sysctl", "gpus", "tmpfs", "mount", "volumes-from", "health-cmd", "health-interval",
    "health-timeout", "health-retries", "health-start-period", "entrypoint", "add-host", "env-file",
    "name", "annotation", "label-file", "cidfile", "log-driver", "log-opt", "shm-size", "pidfile",
    "verify", "cosign-key", "cosign-certificate-identity", "cosign-certificate-identity-regexp",
    "cosign-certificate-oidc-issuer", "cosign-certificate-oidc-issuer-regexp", "ipfs-address",
    "isolation", "userns",
)
RUN_SHORT_BOOLS: Final = {"t": "tty", "i": "interactive", "q": "quiet", "P": "publish-all"}
# "help" is run's own flag: no -h, which is --hostname.
RUN_LONG_BOOLS: Final = (
    "help", "sig-proxy", "rm", "init", "oom-kill-disable", "privileged", "read-only", "rootfs",
    "no-healthcheck",
)

CREATE_FLAGS: Final = _flagset(
    (*RUN_SHORT_VALUES.values(), *RUN_LONG_VALUES),
    (*RUN_SHORT_BOOLS.values(), *RUN_LONG_BOOLS),
    shorts={**RUN_SHORT_VALUES, **RUN_SHORT_BOOLS},
).merged(GLOBAL_PERSISTENT)
RUN_FLAGS: Final = CREATE_FLAGS.merged(
    _flagset(("attach",), ("detach",), shorts={"a": "attach", "d": "detach"}),
)

# --- start, restart, pull, push ----------------------------------------------------------------------

START_FLAGS: Final = _flagset(
    ("detach-keys", "checkpoint", "checkpoint-dir"), ("attach", "interactive"),
    shorts={"a": "attach", "i": "interactive"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)
RESTART_FLAGS: Final = _flagset(
    ("time", "signal"), (), shorts={"t": "time", "s": "signal"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)
PULL_FLAGS: Final = _flagset(
    ("unpack", "platform", "verify", "cosign-key", "cosign-certificate-identity",
     "cosign-certificate-identity-regexp", "cosign-certificate-oidc-issuer",
     "cosign-certificate-oidc-issuer-regexp", "soci-index-digest", "ipfs-address"),
    ("all-platforms", "quiet"),
    shorts={"q": "quiet"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)
PUSH_FLAGS: Final = _flagset(
    ("platform", "sign", "cosign-key", "notation-key-name", "ipfs-address", "soci-span-size",
     "soci-min-layer-size"),
    ("all-tags", "all-platforms", "estargz", "ipfs-ensure-image", "quiet", "allow-nondistributable-artifacts"),
    shorts={"a": "all-tags", "q": "quiet"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)

# exec (cmd/nerdctl/container/container_exec.go): parsed so that the profile can judge it; forwarded.
EXEC_FLAGS: Final = _flagset(
    ("workdir", "env", "env-file", "user"), ("tty", "interactive", "detach", "privileged"),
    shorts={"t": "tty", "i": "interactive", "d": "detach", "w": "workdir", "e": "env", "u": "user"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)

# --- build, builder debug (cmd/nerdctl/builder/builder_build.go, builder.go) ---------------------------

BUILD_FLAGS: Final = _flagset(
    ("buildkit-host", "add-host", "tag", "file", "target", "build-arg", "output", "progress", "provenance",
     "secret", "allow", "attest", "ssh", "sbom", "cache-from", "cache-to", "network", "platform",
     "build-context", "iidfile", "label", "source-policy-file"),
    ("no-cache", "pull", "quiet", "rm"),
    shorts={"t": "tag", "f": "file", "o": "output", "q": "quiet"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)
BUILDER_DEBUG_FLAGS: Final = _flagset(
    ("file", "target", "build-arg", "image", "ssh", "secret", "buildg-startup-timeout"), (),
    shorts={"f": "file"},
).merged(GLOBAL_PERSISTENT, COBRA_HELP)

# Flags whose values pflag splits as CSV (StringSlice): they accumulate element-wise.
SLICE_FLAGS: Final = frozenset({
    "hosts-dir", "cdi-spec-dirs", "global-dns", "global-dns-opts", "global-dns-search",
    "network", "net", "dns", "dns-search", "dns-opt", "dns-option", "publish", "expose", "cgroup-conf",
    "device", "ulimit", "group-add", "cap-add", "cap-drop", "add-host", "env-file", "label-file", "attach",
})

# --- compose (cmd/nerdctl/compose/compose.go) ---------------------------------------------------------

COMPOSE_LOCAL: Final = _flagset(
    ("file", "project-directory", "project-name", "env-file", "ipfs-address", "profile"),
    shorts={"f": "file", "p": "project-name"},
    aliases={"f": "file"},  # the non-persistent alias -f is also registered as the long name "f"
)

# --- the command tree -----------------------------------------------------------------------------


class Node:
    """A command. ``kind``: ``group`` (traversed), ``gated`` (parsed fully), ``opaque`` (passed through).

    ``children`` maps every spelling (name or alias) to the child's primary name; ``traverse``, ``parse``
    and ``execute`` are a group's three flag sets (module docstring); ``flags`` a gated command's;
    ``interspersed`` is pflag's SetInterspersed (false: flags end at the first positional).
    """

    __slots__ = ("children", "execute", "flags", "interspersed", "kind", "max_args", "min_args", "name",
                 "parse", "traverse")

    def __init__(self, name: str, kind: str, children: Mapping[str, str] | None = None, *,
                 traverse: FlagSet | None = None, parse: FlagSet | None = None, execute: FlagSet | None = None,
                 flags: FlagSet | None = None, interspersed: bool = True, min_args: int = 0,
                 max_args: int | None = None) -> None:
        self.name = name
        self.kind = kind
        self.children: Mapping[str, str] = children or {}
        self.traverse = traverse or FlagSet()
        self.parse = parse or FlagSet()
        self.execute = execute or FlagSet()
        self.flags = flags or FlagSet()
        self.interspersed = interspersed
        self.min_args = min_args
        self.max_args = max_args

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.kind!r})"


GATED: Final = frozenset({"run", "create", "start", "restart", "pull", "push", "build", "debug"})
# Commands parsed in full: the gated ones, and exec (decided by the container profile, then forwarded).
PARSED: Final = GATED | {"exec"}
# Gated commands whose decision ends in a plan nerdctl alone carries out (push also signs afterwards).
PLANNED: Final = ("run", "create", "start", "restart", "pull")

_GATED_NODES: Final[Mapping[str, Node]] = {
    "run": Node("run", "gated", flags=RUN_FLAGS, interspersed=False, min_args=1),
    "create": Node("create", "gated", flags=CREATE_FLAGS, interspersed=False, min_args=1),
    "start": Node("start", "gated", flags=START_FLAGS, interspersed=False, min_args=1),
    "restart": Node("restart", "gated", flags=RESTART_FLAGS, min_args=1),
    "pull": Node("pull", "gated", flags=PULL_FLAGS, min_args=1, max_args=1),
    "push": Node("push", "gated", flags=PUSH_FLAGS, min_args=1, max_args=1),
    "exec": Node("exec", "gated", flags=EXEC_FLAGS, interspersed=False, min_args=2),
    "build": Node("build", "gated", flags=BUILD_FLAGS, min_args=1),
    "debug": Node("debug", "gated", flags=BUILDER_DEBUG_FLAGS, min_args=1),
}
# Where each parsed command sits in the tree, when not as run's or pull's (``parents_of``).
_GATED_PARENTS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "build": ((), ("image",), ("builder",)),
    "debug": (("builder",),),
    "exec": ((), ("container",)),
}

ROOT_CHILDREN: Final = (
    "create", "run", "update", "exec", "ps", "logs", "port", "stop", "start", "diff", "restart", "kill",
    "rm", "pause", "unpause", "commit", "export", "wait", "rename", "attach", "healthcheck", "build",
    "images", "pull", "push", "load", "save", "import", "tag", "rmi", "history", "search", "events",
    "info", "version", "inspect", "top", "stats", "container", "image", "network", "volume", "system",
    "namespace", "builder", "internal", "login", "logout", "compose", "ipfs", "manifest", "checkpoint",
    "apparmor", "cp",
    # added by cobra itself
    "help", "completion", "__complete", "__completeNoDesc",
)
CONTAINER_CHILDREN: Final = (
    "create", "run", "update", "exec", "ls", "inspect", "logs", "port", "rm", "stop", "start", "restart",
    "kill", "pause", "diff", "wait", "unpause", "commit", "rename", "prune", "stats", "attach",
    "healthcheck", "export", "cp",
)
IMAGE_CHILDREN: Final = (
    "build", "ls", "history", "pull", "push", "load", "save", "import", "tag", "rm", "convert", "inspect",
    "encrypt", "decrypt", "prune",
)
COMPOSE_CHILDREN: Final = (
    "up", "logs", "config", "cp", "build", "exec", "images", "port", "push", "pull", "down", "ps", "kill",
    "restart", "rm", "run", "version", "start", "stop", "pause", "unpause", "top", "create",
)
BUILDER_CHILDREN: Final = ("build", "prune", "debug")
# compose starts its children through the real binary (os.Executable()), past the wrapper.
COMPOSE_REFUSED: Final = frozenset({"up", "run", "create", "start", "restart", "pull", "push", "build"})

ALIASES: Final[Mapping[tuple[str, ...], Mapping[str, str]]] = {
    # every alias in cmd/nerdctl of the traversed groups (``rm`` is container.RemoveCommand at both levels)
    (): {"ns": "namespace", "remove": "rm"},
    ("container",): {"list": "ls", "remove": "rm"},
    ("image",): {"list": "ls", "remove": "rm"},
    ("compose",): {},
    ("builder",): {},
}
_GROUP_CHILDREN: Final[Mapping[tuple[str, ...], tuple[str, ...]]] = {
    (): ROOT_CHILDREN,
    ("container",): CONTAINER_CHILDREN,
    ("image",): IMAGE_CHILDREN,
    ("compose",): COMPOSE_CHILDREN,
    ("builder",): BUILDER_CHILDREN,
}


def _children(path: tuple[str, ...]) -> dict[str, str]:
    names = {n: n for n in _GROUP_CHILDREN[path]}
    names.update(ALIASES[path])
    return names


_ROOT_TRAVERSE = GLOBAL_PERSISTENT.merged(ROOT_LOCAL_ALIASES)
_GROUP_PARSE = GLOBAL_PERSISTENT
_COMPOSE_PARSE = GLOBAL_PERSISTENT.merged(COMPOSE_LOCAL)

GROUPS: Final[Mapping[tuple[str, ...], Node]] = {
    (): Node("nerdctl", "group", _children(()), traverse=_ROOT_TRAVERSE, parse=_ROOT_TRAVERSE,
             execute=_ROOT_TRAVERSE.merged(COBRA_HELP, FlagSet({"version": VERSION}, {"v": VERSION}))),
    ("container",): Node("container", "group", _children(("container",)), traverse=_GROUP_PARSE,
                         parse=_GROUP_PARSE, execute=_GROUP_PARSE.merged(COBRA_HELP)),
    ("image",): Node("image", "group", _children(("image",)), traverse=_GROUP_PARSE, parse=_GROUP_PARSE,
                     execute=_GROUP_PARSE.merged(COBRA_HELP)),
    ("compose",): Node("compose", "group", _children(("compose",)), traverse=_COMPOSE_PARSE,
                       parse=_COMPOSE_PARSE, execute=_COMPOSE_PARSE.merged(COBRA_HELP)),
    ("builder",): Node("builder", "group", _children(("builder",)), traverse=_GROUP_PARSE, parse=_GROUP_PARSE,
                       execute=_GROUP_PARSE.merged(COBRA_HELP)),
}


def parents_of(command: str) -> tuple[tuple[str, ...], ...]:
    """The groups a parsed command sits in (``run``: the root and ``container``; ``pull``: the root and
    ``image``; ``debug``: ``builder`` only)."""
    if command in _GATED_PARENTS:
        return _GATED_PARENTS[command]
    if command in ("run", "create", "start", "restart"):
        return ((), ("container",))
    return ((), ("image",))


def child_node(path: tuple[str, ...]) -> Node:
    """The node at ``path`` (primary names): a group, a gated command, or an opaque command."""
    if path in GROUPS:
        return GROUPS[path]
    leaf = path[-1]
    if leaf in _GATED_NODES and path[:-1] in parents_of(leaf):
        return _GATED_NODES[leaf]
    return Node(leaf, "opaque")
