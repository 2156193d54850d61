"""What a container (or a command run for the operator) asks for, normalized so that one set of rules
applies whatever it was read from: a nerdctl command line (:mod:`shim.admission.profiles.from_argv`) or an OCI
runtime spec (a runtime gate reading ``config.json``). Pure data, standard library only.

Each asked-for thing is an :class:`Ask`: its normalized ``value`` and ``source``, the spelling the
operator (or the spec) used, which a refusal quotes back (``--cap-add=SYS_ADMIN``,
``process.capabilities.bounding``).

Conventions an OCI-spec builder follows to get the same decisions:

- ``capabilities`` is the effective set the container's processes may hold (upper case, no ``CAP_``
  prefix): from argv the runtime's default set with ``--cap-add``/``--cap-drop`` applied; from a spec
  the union of the process's capability sets.
- ``host_namespaces`` names the namespaces shared with the host: ``pid``, ``ipc``, ``network``, ``uts``,
  ``cgroup``, ``user`` (a spec that omits a namespace type shares the host's).
- ``host_paths`` are absolute host paths bind-mounted into the container (``read_only`` when mounted
  read-only); a source that is not an absolute path is kept as written and refused.
- ``user`` is the user the process runs as as written (``1000``, ``1000:1000``, ``root``); ``None`` when
  the image's own user applies.
"""

from __future__ import annotations

from dataclasses import dataclass

# containerd's default capability set for a container (nerdctl and a CRI runtime start from it).
DEFAULT_CAPABILITIES: frozenset[str] = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})
# Every capability Linux defines (capability.h, 6.x): what ``ALL`` and ``--privileged`` mean.
ALL_CAPABILITIES: frozenset[str] = DEFAULT_CAPABILITIES | frozenset({
    "DAC_READ_SEARCH", "LINUX_IMMUTABLE", "NET_BROADCAST", "NET_ADMIN", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "LEASE", "AUDIT_CONTROL", "MAC_OVERRIDE", "MAC_ADMIN",
    "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})
NAMESPACES: tuple[str, ...] = ("pid", "ipc", "network", "uts", "cgroup", "user")


@dataclass(frozen=True)
class Ask:
    """One thing asked for: its normalized ``value`` and the ``source`` spelling it came from."""

    value: str
    source: str
    read_only: bool = False  # host paths: mounted read-only; host files: only read


@dataclass(frozen=True)
class Requested:
    """The privileges asked for. Empty fields ask for nothing beyond an ordinary container."""

    privileged: Ask | None = None
    host_namespaces: tuple[Ask, ...] = ()  # value: one of NAMESPACES
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    capability_sources: tuple[str, ...] = ()  # the options that changed the default set
    host_paths: tuple[Ask, ...] = ()  # value: an absolute host path (else refused as written)
    devices: tuple[Ask, ...] = ()  # value: a host device path (or "gpus")
    seccomp: Ask | None = None  # value: "unconfined", or "profile:<path>" (a file read as root)
    seccomp_unset: Ask | None = None  # no seccomp profile at all (an OCI spec without one); restricted refuses it
    apparmor: Ask | None = None  # value: "unconfined" or a profile name
    selinux: tuple[Ask, ...] = ()  # value: "disable", "type:…", "user:…", "role:…", "level:…"
    unmasked_paths: Ask | None = None  # systempaths=unconfined / procMount Unmasked
    sysctls: tuple[Ask, ...] = ()  # value: the sysctl's name
    user: Ask | None = None  # None: the image's own user
    no_new_privileges: bool = False
    runtime: Ask | None = None  # value: a runtime name or a path (run as root)
    log_driver: Ask | None = None  # value: a driver name or "binary://…" (run as root)
    log_options: tuple[Ask, ...] = ()  # value: the option's key
    host_files: tuple[Ask, ...] = ()  # value: the option or command (env-file, cidfile, cp, save …)
    annotations: tuple[Ask, ...] = ()  # value: the annotation's key
    cgroups: tuple[Ask, ...] = ()  # value: cgroup-parent / cgroup-conf key / writable-cgroups
    globals: tuple[Ask, ...] = ()  # value: "name=value" of a nerdctl global flag that picks host code or state
    refused: tuple[Ask, ...] = ()  # value: the option; nothing but ``privileged`` admits it
    unknown: tuple[Ask, ...] = ()  # value: what could not be read; refused but under ``privileged``
    # A new container (run/create, an OCI spec at create): restricted's requirements (a non-root user,
    # no-new-privileges, capabilities dropped) apply. False for a process in a running container (exec)
    # and for commands run for the operator, which are judged only on what they ask.
    starts_container: bool = True

