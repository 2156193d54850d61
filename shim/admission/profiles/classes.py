"""Every flag and command nerdctl's grammar (:mod:`shim.wrapper.argv.grammar`) knows, classified for the profile.

Flags: ``allowed`` (nothing a profile limits), ``checked`` (its value is read into the request and
judged: :mod:`shim.admission.profiles.from_argv`), ``refused`` (asking at all is refused but under
``privileged``). Commands: ``gated`` (the admission decides; its flags are judged under the level the
admission found), ``exec`` (judged under the container's level), ``forward`` (nothing a profile limits),
``host-files`` (reads or writes host files as root for the operator; ``save``/``load``/``export`` only
with a file named), ``refused`` (runs host code as root).

``tests/unit/admission/profiles/test_classes.py`` fails when the grammar knows a flag or command that is not
classified here, so a flag added for a future nerdctl cannot pass unexamined.

Standard library only, and no imports at all: :func:`needs_decision` is on the forwarding path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shim.wrapper.argv.model import Invocation

_A, _C, _R = "allowed", "checked", "refused"

GLOBAL_FLAGS: dict[str, str] = {
    "namespace": _A, "debug": _A, "debug-full": _A, "experimental": _A, "kube-hide-dupe": _A,
    "insecure-registry": _A,  # the signature is checked whatever the transport
    "help": _A, "version": _A,
    # what nerdctl executes or where it keeps state: only the values [global_flags] names
    "address": _C, "snapshotter": _C, "cni-path": _C, "cni-netconfpath": _C, "data-root": _C,
    "cgroup-manager": _C, "hosts-dir": _C, "host-gateway-ip": _C, "bridge-ip": _C, "cdi-spec-dirs": _C,
    "userns-remap": _C, "global-dns": _C, "global-dns-opts": _C, "global-dns-search": _C,
    "selinux-enabled": _C,
}

RUN_FLAGS: dict[str, str] = {
    **{f: _A for f in (
        "publish", "hostname", "memory", "workdir", "env", "label", "restart", "pull", "stop-signal",
        "stop-timeout", "detach-keys", "platform", "dns", "dns-search", "dns-opt", "dns-option", "expose",
        "ip", "ip6", "domainname", "mac-address", "cpus", "memory-reservation", "memory-swap",
        "memory-swappiness", "kernel-memory", "oom-score-adj", "pids-limit", "cpuset-cpus", "cpuset-mems",
        "cpu-shares", "cpu-quota", "cpu-period", "cpu-rt-period", "cpu-rt-runtime", "ulimit", "rdt-class",
        "blkio-weight", "blkio-weight-device", "device-read-bps", "device-read-iops", "device-write-bps",
        "device-write-iops", "umask", "group-add", "tmpfs", "health-cmd", "health-interval", "health-timeout",
        "health-retries", "health-start-period", "entrypoint", "add-host", "name", "shm-size", "isolation",
        "userns", "tty", "interactive", "quiet", "publish-all", "help", "sig-proxy", "rm", "init",
        "oom-kill-disable", "read-only", "no-healthcheck", "attach", "detach",
        "rootfs",  # refused by classification (no image to check)
        "env-file", "label-file",  # read as the caller by the wrapper (shim.wrapper.inputs), handed over sealed
    )},
    **{f: _C for f in (
        "user", "volume", "mount", "network", "net", "ipc", "pid", "uts", "cgroupns", "device", "gpus",
        "security-opt", "cap-add", "cap-drop", "runtime", "sysctl", "cidfile",
        "pidfile", "log-driver", "log-opt", "annotation", "cgroup-parent", "cgroup-conf", "systemd",
        "privileged", "verify",
    )},
    **{f: _R for f in (
        "init-binary", "volumes-from", "ipfs-address", "cosign-key", "cosign-certificate-identity",
        "cosign-certificate-identity-regexp", "cosign-certificate-oidc-issuer",
        "cosign-certificate-oidc-issuer-regexp",
    )},
}

COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "run": RUN_FLAGS,
    "create": RUN_FLAGS,
    "start": {"detach-keys": _A, "attach": _A, "interactive": _A, "help": _A, "checkpoint": _A,
              "checkpoint-dir": _C},
    "restart": {"time": _A, "signal": _A, "help": _A},
    "pull": {"unpack": _A, "platform": _A, "all-platforms": _A, "quiet": _A, "help": _A,
             "soci-index-digest": _A, "verify": _C, "ipfs-address": _R, "cosign-key": _R,
             "cosign-certificate-identity": _R, "cosign-certificate-identity-regexp": _R,
             "cosign-certificate-oidc-issuer": _R, "cosign-certificate-oidc-issuer-regexp": _R},
    "push": {"platform": _A, "all-tags": _A, "all-platforms": _A, "estargz": _A, "quiet": _A, "help": _A,
             "allow-nondistributable-artifacts": _A, "soci-span-size": _A, "soci-min-layer-size": _A,
             "ipfs-ensure-image": _A, "sign": _C, "cosign-key": _R, "notation-key-name": _R, "ipfs-address": _R},
    "exec": {"tty": _A, "interactive": _A, "detach": _A, "workdir": _A, "env": _A, "help": _A,
             "env-file": _A,  # read as the caller by the wrapper (shim.wrapper.inputs), handed over sealed
             "privileged": _C, "user": _C},
    # build and builder debug: the command itself is host-files (context, Dockerfile, secrets, outputs); the
    # gate refuses what could swap a checked image (docs/build.md)
    "build": {**{f: _A for f in (
        "buildkit-host", "add-host", "tag", "file", "target", "build-arg", "output", "progress", "provenance",
        "secret", "allow", "attest", "ssh", "sbom", "cache-from", "cache-to", "network", "platform", "iidfile",
        "label", "no-cache", "pull", "quiet", "rm", "help")},
        "build-context": _R, "source-policy-file": _R},
    "debug": {f: _A for f in ("file", "target", "build-arg", "image", "ssh", "secret", "buildg-startup-timeout",
                              "help")},
    # compose's own flags: the command itself is host-files (it reads the project's files as root)
    "compose": {"file": _A, "project-directory": _A, "project-name": _A, "env-file": _A, "ipfs-address": _A,
                "profile": _A},
}

# exec flags that make a decision necessary (anything else in exec is allowed under every profile)
EXEC_JUDGED = frozenset(f for f, c in COMMAND_FLAGS["exec"].items() if c != _A)

_FORWARD = (
    "update", "ps", "logs", "port", "stop", "diff", "kill", "rm", "pause", "unpause", "commit", "wait",
    "rename", "attach", "healthcheck", "images", "tag", "rmi", "history", "search", "events", "info",
    "version", "inspect", "top", "stats", "network", "volume", "system", "namespace", "login", "logout",
    "manifest", "help", "completion", "__complete", "__completeNoDesc", "container", "image",
)
COMMANDS: dict[str, str] = {
    **{c: "forward" for c in _FORWARD},
    **{c: "gated" for c in ("create", "run", "start", "restart", "pull", "push")},
    "exec": "exec",
    "cp": "host-files", "build": "host-files", "builder": "host-files", "import": "host-files",
    "compose": "host-files", "checkpoint": "host-files", "save": "host-files", "load": "host-files",
    "export": "host-files",
    "internal": "refused", "ipfs": "refused", "apparmor": "refused",
    # container CMD / image CMD
    "container ls": "forward", "container prune": "forward",
    "image ls": "forward", "image history": "forward", "image tag": "forward", "image rm": "forward",
    "image inspect": "forward", "image prune": "forward",
    "image convert": "host-files", "image encrypt": "host-files", "image decrypt": "host-files",
    "builder build": "host-files", "builder debug": "host-files", "builder prune": "host-files",
}
for _c in ("create", "run", "update", "exec", "inspect", "logs", "port", "rm", "stop", "start", "restart", "kill",
           "pause", "diff", "wait", "unpause", "commit", "rename", "stats", "attach", "healthcheck", "export",
           "cp"):
    COMMANDS.setdefault(f"container {_c}", COMMANDS[_c])
for _c in ("build", "pull", "push", "load", "save", "import"):
    COMMANDS.setdefault(f"image {_c}", COMMANDS[_c])
# Only with a file named: (short letter, long name) of the flag that names it; without it the data goes
# through the caller's own stdin/stdout.
FILE_FLAG: dict[str, tuple[str, str]] = {"save": ("o", "output"), "load": ("i", "input"),
                                         "export": ("o", "output")}
# apparmor subcommands that only read
APPARMOR_READ = frozenset({"ls", "list", "inspect"})


def command_class(path: tuple[str, ...]) -> str:
    """The class of the command at ``path``; a command not in the table is ``refused`` (fail closed)."""
    if not path:
        return "forward"
    if path[0] == "compose":
        return "host-files"
    return COMMANDS.get(" ".join(path[:2]), COMMANDS.get(path[0], "refused"))


def names_file(command: str, tokens: tuple[str, ...]) -> bool:
    """Whether an opaque ``save``/``load``/``export`` command line names a file for nerdctl (conservative:
    any token that could be the flag counts, so a doubt is a refusal)."""
    letter, long = FILE_FLAG[command]
    for t in tokens:
        if t == "--":
            break
        if t.startswith("--"):
            if t[2:].split("=", 1)[0] == long:
                return True
        elif t.startswith("-") and letter in t[1:].split("=", 1)[0]:
            return True
    return False


def needs_decision(inv: Invocation) -> bool:
    """Whether a command the wrapper would forward needs a profile decision first: a host-choosing global
    flag, ``exec`` with a judged flag, or a command that touches host files or runs host code. False for
    ordinary forwarded commands, which then cost nothing more."""
    for name, _ in (*inv.globals, *inv.opaque_globals):  # opaque_globals: after an opaque subcommand
        if GLOBAL_FLAGS.get(name, _R) != _A:
            return True
    cls = command_class(inv.path)
    if cls == "exec":
        return any(k in EXEC_JUDGED for k, _ in inv.flags)
    if cls == "host-files":
        base = inv.path[-1] if inv.path else ""
        if base in FILE_FLAG:
            return names_file(base, inv.args)
        return True
    if cls == "refused":
        if inv.path[:1] == ("apparmor",):
            return not (inv.args[:1] and inv.args[0] in APPARMOR_READ)
        return True
    return False
