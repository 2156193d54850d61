"""The profile rules: :func:`refusals_of` applies a profile and its allowances to what was asked for.

Pure: no IO, standard library only. Whoever built the :class:`~shim.admission.profiles.request.Requested` (from a
nerdctl command line or from an OCI spec) gets the same refusals. Each :class:`Refusal` names the option
as it was spelled, the profile and level, the rule (with the Kubernetes Pod Security Standards control it
maps, or BACON's own), and the configuration line that would allow it.

``privileged`` enforces nothing. ``baseline`` enforces every rule but the three that only ``restricted``
adds (running as non-root, no privilege escalation, capabilities dropped to ``NET_BIND_SERVICE``, a seccomp
profile set).
The rule table, :data:`RULES`, is what docs/profiles.md shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shim.admission.profiles.request import Ask, Requested

PROFILES: tuple[str, ...] = ("privileged", "baseline", "restricted")  # ascending strictness
DEFAULT_PROFILE = "baseline"

# Kubernetes' baseline allows adding only these to the runtime's default; NET_RAW is in containerd's
# default set (which Kubernetes does not check, it checks only what a pod adds), so it is kept.
BASELINE_CAPABILITIES: frozenset[str] = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "NET_RAW",
})
RESTRICTED_CAPABILITIES: frozenset[str] = frozenset({"NET_BIND_SERVICE"})
# Kubernetes' safe sysctls (namespaced, and unable to affect other containers or the host).
SAFE_SYSCTLS: frozenset[str] = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
SELINUX_TYPES: frozenset[str] = frozenset({"container_t", "container_init_t", "container_kvm_t"})
DEFAULT_RUNTIMES: frozenset[str] = frozenset({"io.containerd.runc.v2"})
DEFAULT_LOG_DRIVERS: frozenset[str] = frozenset({"json-file", "journald", "none"})
# Log options that neither name a host file nor reach beyond the container's own log.
SAFE_LOG_OPTIONS: frozenset[str] = frozenset({"max-size", "max-file", "tag"})


@dataclass(frozen=True)
class Rule:
    """One rule: its id, what it controls, the Kubernetes control it maps (``None``: BACON's own), the
    least strict profile that enforces it, and the allowance key that can admit an exception."""

    id: str
    what: str
    kubernetes: str | None
    enforced_from: str  # "baseline" or "restricted"
    allowance: str | None


RULES: Mapping[str, Rule] = {r.id: r for r in (
    Rule("privileged", "privileged containers (all capabilities, all devices, no confinement)",
         "Privileged Containers", "baseline", None),
    Rule("host-namespaces", "sharing the host's PID, IPC, network, UTS or cgroup namespace",
         "Host Namespaces", "baseline", None),
    Rule("capabilities", "capabilities beyond the runtime's default set", "Capabilities", "baseline",
         "capabilities"),
    Rule("host-paths", "bind mounts of host paths", "HostPath Volumes", "baseline", "host_paths"),
    Rule("devices", "host devices (and GPUs)", "Privileged Containers (devices)", "baseline", "devices"),
    Rule("seccomp", "seccomp unconfined, or a seccomp profile file read as root", "Seccomp", "baseline",
         "seccomp_profiles"),
    Rule("apparmor", "AppArmor unconfined", "AppArmor", "baseline", None),
    Rule("selinux", "SELinux disabled, or a custom user, role or type", "SELinux", "baseline", None),
    Rule("proc-mount", "unmasked /proc and /sys paths (systempaths=unconfined)", "/proc Mount Type",
         "baseline", None),
    Rule("sysctls", "sysctls outside Kubernetes' safe set", "Sysctls", "baseline", "sysctls"),
    Rule("runtime", "an OCI runtime other than the default (a path or name run as root)", None, "baseline",
         "runtimes"),
    Rule("log-driver", "a log driver other than json-file, journald, none (binary:// runs a program as "
         "root)", None, "baseline", "log_drivers"),
    Rule("log-options", "log options beyond max-size, max-file, tag (log-path writes anywhere as root)", None,
         "baseline", "log_options"),
    Rule("host-files", "files on the host read or written as root for the operator (--env-file, "
         "--label-file, --cidfile, --pidfile, cp, save -o, load -i, build …)", None, "baseline",
         "host_files"),
    Rule("annotations", "OCI annotations (runtimes and hooks act on some)", None, "baseline", "annotations"),
    Rule("cgroups", "a cgroup parent, raw cgroup settings or writable cgroups", None, "baseline", None),
    Rule("global-flags", "nerdctl global flags that choose what it executes or where it keeps state "
         "(--cni-path, --data-root, --address …)", None, "baseline", "global_flags"),
    Rule("host-code", "options and commands that run host programs as root or hide what a container gets "
         "(internal, --init-binary, --volumes-from, --verify …)", None, "baseline", None),
    Rule("unknown", "a value BACON cannot read (it fails closed)", None, "baseline", None),
    Rule("run-as-non-root", "running as root (a numeric non-zero --user is required)",
         "Running as Non-root user", "restricted", None),
    Rule("privilege-escalation", "privilege escalation (--security-opt no-new-privileges is required)",
         "Privilege Escalation", "restricted", None),
    Rule("restricted-capabilities", "capabilities other than NET_BIND_SERVICE (--cap-drop=ALL is required)",
         "Capabilities (restricted)", "restricted", "capabilities"),
    Rule("seccomp-required", "no seccomp profile at all (restricted requires one; nerdctl always sets its default)",
         "Seccomp (restricted)", "restricted", None),
)}


@dataclass(frozen=True)
class Allowances:
    """A level's exceptions (``[levels.LEVEL.allow]``), each narrow: exact values, paths read-only unless
    marked writable."""

    host_paths: tuple[tuple[str, bool], ...] = ()  # (absolute path, writable)
    capabilities: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    seccomp_profiles: frozenset[str] = frozenset()
    sysctls: frozenset[str] = frozenset()
    runtimes: frozenset[str] = frozenset()
    log_drivers: frozenset[str] = frozenset()
    log_options: frozenset[str] = frozenset()
    host_files: frozenset[str] = frozenset()
    annotations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Settings:
    """The profile that applies, the level it is configured for (for messages), the level's allowances,
    and the values the configuration accepts for nerdctl's host-choosing global flags
    (``[global_flags]``, the same for every level)."""

    profile: str = DEFAULT_PROFILE
    level: str = "Low"
    allow: Allowances = field(default_factory=Allowances)
    global_flags: Mapping[str, frozenset[str]] = field(default_factory=dict)
    host: bool = False  # decided as the host's profile (commands that start no container)


@dataclass(frozen=True)
class Refusal:
    """One refused option: as spelled, the rule, and the configuration line that would allow it."""

    option: str
    rule: str
    profile: str
    level: str
    reason: str
    allow: str  # the configuration line that would admit it

    def as_dict(self) -> dict[str, str]:
        return {"option": self.option, "rule": self.rule, "profile": self.profile, "level": self.level,
                "reason": self.reason, "allow": self.allow}

    def render(self) -> str:
        return f"{self.option} ({self.rule}: {self.reason})"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


class _Judge:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.out: list[Refusal] = []
        self.strict = PROFILES.index(settings.profile)

    def enforced(self, rule: str) -> bool:
        return self.strict >= PROFILES.index(RULES[rule].enforced_from)

    def refuse(self, rule: str, option: str, reason: str, *allow_values: str) -> None:
        r = RULES[rule]
        lvl = self.s.level
        if r.id == "global-flags" and allow_values:
            name, _, value = allow_values[0].partition("=")
            line = f"[global_flags] {name.replace('-', '_')} = {_toml_list([value])}"
        elif r.allowance is not None and allow_values:
            line = f"[levels.{lvl}.allow] {r.allowance} = {_toml_list(list(allow_values))}"
        elif r.enforced_from == "restricted":
            line = f'[levels.{lvl}] profile = "baseline"'
        else:
            line = f'[levels.{lvl}] profile = "privileged"'
        self.out.append(Refusal(option, rule, self.s.profile, lvl, reason, line))


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def _normalized(path: str) -> bool:
    """No ``.``/``..`` component, no empty one: the path names what it says (``/srv/a/../../etc`` is /etc)."""
    parts = path.split("/")[1:]
    return path == "/" or all(p not in ("", ".", "..") for p in parts)


def _host_path_allowed(ask: Ask, allowed: tuple[tuple[str, bool], ...]) -> bool:
    return _normalized(ask.value) and any(_under(ask.value, root) and (ask.read_only or writable)
                                          for root, writable in allowed)


def _numeric_non_root(user: str) -> bool:
    uid = user.split(":", 1)[0]
    return uid.isascii() and uid.isdigit() and int(uid) != 0


def refusals_of(req: Requested, settings: Settings) -> tuple[Refusal, ...]:
    """Every refusal of ``req`` under ``settings`` (empty: admitted). Never raises for any input: what it
    cannot read was put in ``req.unknown`` by the builder, and is refused."""
    if settings.profile not in PROFILES:
        j = _Judge(Settings(profile="restricted", level=settings.level))
        j.refuse("unknown", f"profile {settings.profile!r}", "the configured profile is not one BACON knows")
        return tuple(j.out)
    j = _Judge(settings)
    if settings.profile == "privileged":
        return ()
    a = settings.allow
    if req.privileged is not None:
        j.refuse("privileged", req.privileged.source, "a privileged container is root on the host")
    for ns in req.host_namespaces:
        j.refuse("host-namespaces", ns.source, f"shares the host's {ns.value} namespace")
    extra = sorted(req.capabilities - BASELINE_CAPABILITIES - a.capabilities)
    source = ", ".join(req.capability_sources) or "the capabilities asked for"
    if extra:
        j.refuse("capabilities", source, f"adds {', '.join(extra)}, beyond the default set", *extra)
    if j.enforced("restricted-capabilities") and req.starts_container:
        beyond = sorted((req.capabilities & BASELINE_CAPABILITIES) - RESTRICTED_CAPABILITIES - a.capabilities)
        if beyond:
            j.refuse("restricted-capabilities", source if req.capability_sources else "(no --cap-drop=ALL)",
                     f"keeps {', '.join(beyond)}: restricted drops every capability but NET_BIND_SERVICE")
    for p in req.host_paths:
        if not p.value.startswith("/"):
            j.refuse("host-paths", p.source, f"host path {p.value!r} is not absolute")
        elif not _host_path_allowed(p, a.host_paths):
            rw = "read-only" if p.read_only else "read-write"
            j.refuse("host-paths", p.source, f"mounts the host's {p.value} {rw}",
                     p.value if p.read_only else f"{p.value}:rw")
    for d in req.devices:
        if d.value not in a.devices:
            j.refuse("devices", d.source, f"gives the container the host device {d.value}", d.value)
    if req.seccomp is not None:
        kind, _, path = req.seccomp.value.partition(":")
        if kind == "profile":
            if path not in a.seccomp_profiles:
                j.refuse("seccomp", req.seccomp.source, f"nerdctl reads the profile {path} as root", path)
        else:
            j.refuse("seccomp", req.seccomp.source, "runs without seccomp filtering")
    if req.apparmor is not None and req.apparmor.value == "unconfined":
        j.refuse("apparmor", req.apparmor.source, "runs without AppArmor confinement")
    for opt in req.selinux:
        key, _, value = opt.value.partition(":")
        if key == "level" or (key == "type" and value in SELINUX_TYPES):
            continue
        j.refuse("selinux", opt.source, "disables SELinux separation" if key == "disable"
                 else f"sets the SELinux {key} {value!r}")
    if req.unmasked_paths is not None:
        j.refuse("proc-mount", req.unmasked_paths.source, "unmasks kernel paths under /proc and /sys")
    for s in req.sysctls:
        if s.value not in SAFE_SYSCTLS and s.value not in a.sysctls:
            j.refuse("sysctls", s.source, f"sets {s.value}, outside the safe set", s.value)
    if req.runtime is not None and req.runtime.value not in DEFAULT_RUNTIMES | a.runtimes:
        j.refuse("runtime", req.runtime.source, f"runs the runtime {req.runtime.value!r} as root",
                 req.runtime.value)
    if req.log_driver is not None and req.log_driver.value not in DEFAULT_LOG_DRIVERS | a.log_drivers:
        j.refuse("log-driver", req.log_driver.source, f"nerdctl runs the log driver {req.log_driver.value!r} as "
                 "root", req.log_driver.value)
    for o in req.log_options:
        if o.value not in SAFE_LOG_OPTIONS | a.log_options:
            j.refuse("log-options", o.source, f"log option {o.value!r}", o.value)
    for f in req.host_files:
        if f.value not in a.host_files:
            what = "reads a host file" if f.read_only else "reads or writes host files"
            j.refuse("host-files", f.source, f"{what} as root for the operator", f.value)
    for an in req.annotations:
        if an.value not in a.annotations:
            j.refuse("annotations", an.source, f"sets the annotation {an.value!r}", an.value)
    for c in req.cgroups:
        j.refuse("cgroups", c.source, f"sets {c.value}")
    for g in req.globals:
        name, _, value = g.value.partition("=")
        if value not in settings.global_flags.get(name, frozenset()):
            j.refuse("global-flags", g.source, f"--{name} with a value the configuration does not name",
                     g.value)
    for r in req.refused:
        j.refuse("host-code", r.source, r.value)
    for u in req.unknown:
        j.refuse("unknown", u.source, u.value)
    if j.enforced("run-as-non-root"):
        if req.user is None and req.starts_container:
            j.refuse("run-as-non-root", "(no --user)", "the image's own user may be root")
        elif req.user is not None and not _numeric_non_root(req.user.value):
            j.refuse("run-as-non-root", req.user.source, f"user {req.user.value!r} is not a numeric non-zero uid")
    if j.enforced("seccomp-required") and req.starts_container and req.seccomp_unset:
        j.refuse("seccomp-required", req.seccomp_unset.source, "runs without any seccomp filtering")
    if j.enforced("privilege-escalation") and req.starts_container and not req.no_new_privileges:
        j.refuse("privilege-escalation", "(no --security-opt no-new-privileges)",
                 "setuid programs could gain privileges")
    return tuple(j.out)
