"""What an OCI runtime spec (a bundle's ``config.json``) asks for, as container profiles read it
(:class:`shim.admission.profiles.request.Requested`), so that the runtime gate applies the same rules to a
container whatever client wrote its spec. Pure: the questions about the host (is this namespace path the
host's own? which device is this host path?) are asked through callables.

How each part of the spec is read (docs/runtime.md, "What the spec may ask for"):

- capabilities: the union of ``process.capabilities``' sets; ``SYS_ADMIN`` with nothing masked
  (``linux.maskedPaths`` empty) is what ``--privileged`` makes (every capability the host has), and is
  named so;
- namespaces: a ``pid``, ``ipc``, ``network``, ``uts`` or ``mount`` namespace missing from
  ``linux.namespaces`` is the host's (without a mount namespace runc mounts into the host's and only
  chroots); one given by ``path`` is the host's when it is the host's init's (another container's, as a
  Kubernetes pod's containers join their sandbox's, is not); a mount namespace is never joined by path
  (a pod's containers share none). ``cgroup`` and ``user`` are not judged:
  containerd's own default spec has neither, so their absence says nothing about what was asked;
- mounts: a bind mount is a host path (read-only with ``ro``), judged where its symbolic links lead;
  ``proc`` only on ``/proc`` and ``sysfs`` only read-only on ``/sys`` (elsewhere neither is masked: a
  ``proc`` on ``/hostproc`` gives the container the host's ``/proc/sys/kernel/core_pattern`` to write);
  ``cgroup``/``cgroup2`` only read-only; ``tmpfs``, ``devpts``, ``mqueue`` anywhere; any other filesystem
  is refused as unknown;
- masked and read-only paths: every path containerd masks by default must be masked, every one it makes
  read-only must be masked or read-only (``/proc/sys`` writable is the host's kernel settings);
- devices: ``linux.devices`` (host device nodes: the host path only when the node asked for is that
  path's own device, else its type and numbers), and every device cgroup rule that lets the container
  read or write a device beyond containerd's defaults and the nodes it was given (with ``MKNOD``, in the
  default set, a container makes any node its rules allow);
- ``hooks``: host programs the runtime runs as root, refused unless ``privileged``;
- cgroups: ``linux.cgroupsPath`` other than the one containerd gives (``/<namespace>/<id>``, kubelet's
  ``kubepods`` ones in ``k8s.io``) could join an existing cgroup (runc 1.1 only warns); raw cgroup files
  (``linux.resources.unified``), an Intel RDT class; ``org.systemd.property.*`` annotations (unit
  properties set as root under the systemd cgroup driver);
- ``linux.rootfsPropagation`` shared (the container's mounts reach the host), ``runc create --no-pivot``;
- ``process.apparmorProfile`` ``unconfined``, ``process.selinuxLabel``, ``linux.sysctl``, ``process.user``,
  ``process.noNewPrivileges``. A spec without a seccomp profile is refused only under ``restricted``
  (Kubernetes' baseline allows an unset one, its restricted does not); one with ``SCMP_ACT_ALLOW`` as its
  default action runs unfiltered and is refused under both.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shim.admission.profiles.request import ALL_CAPABILITIES, Ask, Requested

JUDGED_NAMESPACES = ("pid", "ipc", "network", "uts", "mount")
FREE_FILESYSTEMS = frozenset({"tmpfs", "devpts", "mqueue"})  # mounted anywhere, nothing of the host's in them
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# containerd's default spec (oci.WithDefaultSpec, CRI's too): what it masks, and what it makes read-only
# (CRI has /proc/asound read-only where ctr masks it: either will do).
MASKED_PATHS = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Device cgroup rules containerd's default spec allows (null, zero, full, tty, random, urandom, console, ptmx,
# the pseudo-terminals) and runc 1.1 adds (tun): (type, major, minor), None for every minor.
DEFAULT_DEVICE_RULES = frozenset({("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
                                  ("c", 5, 1), ("c", 5, 2), ("c", 136, None), ("c", 10, 200)})
DEVICE_TYPES = ("a", "b", "c", "u", "p")
# seccomp default actions that filter nothing: allow, log, or hand every call to a listener on the host to allow
UNFILTERED_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
SHARED_PROPAGATION = frozenset({"shared", "rshared"})
K8S_NAMESPACE = "k8s.io"
MOBY_NAMESPACE = "moby"

HostDevice = Callable[[str], "tuple[str, int, int] | None"]


@dataclass(frozen=True)
class Launch:
    """What the gate knows about the container beside its spec: the namespace and ID containerd gave it
    (its bundle's path) and whether ``runc create`` was given ``--no-pivot``."""

    namespace: str = ""
    container_id: str = ""
    no_pivot: bool = False


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _no_device(path: str) -> tuple[str, int, int] | None:
    return None


def _as_written(path: str) -> str:
    return path


def requested(spec: Mapping[str, Any], is_host_namespace: Callable[[str, str], bool],
              host_device: HostDevice = _no_device, launch: Launch | None = None,
              resolve: Callable[[str], str] = _as_written) -> Requested:
    """The privileges ``spec`` asks for. ``is_host_namespace(type, path)``: whether the namespace at
    ``path`` is the host's own; ``host_device(path)``: the host's device node at ``path`` as (``b``/``c``,
    major, minor), None when there is none; ``launch``: the container's namespace and ID (None: not
    known, its cgroup path is not judged); ``resolve(path)``: the host path a bind mount's source is, its
    symbolic links followed (``os.path.realpath``: a link under an allowed path may lead anywhere). What
    cannot be read is put in ``unknown`` (refused but under ``privileged``)."""
    process, linux = _dict(spec.get("process")), _dict(spec.get("linux"))
    unknown: list[Ask] = []
    refused: list[Ask] = []

    proc = process_request(process, starts_container=True)
    caps = proc.capabilities
    unknown.extend(proc.unknown)
    masked = _list(linux.get("maskedPaths"))
    privileged = None
    if "SYS_ADMIN" in caps and not masked:
        privileged = Ask("privileged", "the spec (SYS_ADMIN, nothing masked: --privileged)")

    host_ns = _host_namespaces(linux, is_host_namespace, unknown)
    host_paths, unmasked, cgroups = _mounts(spec, unknown, resolve)
    unmasked.extend(_unmasked_paths(linux, unknown))
    devices = _devices(linux, host_device, unknown)

    for kind in HOOK_KINDS:
        for h in _list(_dict(spec.get("hooks")).get(kind)):
            refused.append(Ask(f"the hook {_dict(h).get('path')!r} runs on the host as root", f"hooks.{kind}"))

    seccomp = seccomp_unset = None
    sc = linux.get("seccomp")
    if isinstance(sc, dict) and sc.get("defaultAction") in UNFILTERED_ACTIONS:
        seccomp = Ask("unconfined", f"linux.seccomp (default action {sc.get('defaultAction')}: every system "
                                    "call allowed, or left to a listener)")
    elif sc is None:
        seccomp_unset = Ask("unset", "linux.seccomp (none: ctr run --seccomp sets containerd's default)")
    elif not isinstance(sc, dict):
        unknown.append(Ask(f"seccomp {sc!r} cannot be read", "linux.seccomp"))
    sysctls = [Ask(k, "linux.sysctl") for k in _dict(linux.get("sysctl"))]

    cgroups.extend(_cgroups(linux, launch, unknown))
    annotations = [Ask(k, "annotations (a systemd unit property runc sets as root)")
                   for k in _dict(spec.get("annotations")) if isinstance(k, str) and
                   k.lower().startswith("org.systemd.property.")]
    propagation = linux.get("rootfsPropagation")
    if propagation is not None and (not isinstance(propagation, str) or propagation in SHARED_PROPAGATION):
        unknown.append(Ask(f"rootfsPropagation {propagation!r}: the container's mounts would reach the host",
                           "linux.rootfsPropagation"))
    if launch is not None and launch.no_pivot:
        unknown.append(Ask("a root entered by chroot, not pivot_root (the host's root stays reachable)",
                           "runc create --no-pivot"))

    unmasked_paths = Ask("unmasked", "; ".join(unmasked)) if unmasked else None
    return Requested(
        privileged=privileged, host_namespaces=tuple(host_ns), capabilities=frozenset(caps),
        capability_sources=("process.capabilities",), host_paths=tuple(host_paths), devices=tuple(devices),
        seccomp=seccomp, seccomp_unset=seccomp_unset, apparmor=proc.apparmor, selinux=proc.selinux,
        unmasked_paths=unmasked_paths,
        sysctls=tuple(sysctls), user=proc.user, no_new_privileges=proc.no_new_privileges,
        annotations=tuple(annotations), cgroups=tuple(cgroups), refused=tuple(refused), unknown=tuple(unknown),
        starts_container=True,
    )


def _host_namespaces(linux: Mapping[str, Any], is_host_namespace: Callable[[str, str], bool],
                     unknown: list[Ask]) -> list[Ask]:
    present: dict[str, str] = {}
    for ns in _list(linux.get("namespaces")):
        entry = _dict(ns)
        ns_type, ns_path = entry.get("type"), entry.get("path", "")
        if not isinstance(ns_type, str) or not isinstance(ns_path, str):
            unknown.append(Ask(f"namespace entry {ns!r} cannot be read", "linux.namespaces"))
            continue
        present[ns_type] = ns_path
    host_ns: list[Ask] = []
    for kind in JUDGED_NAMESPACES:
        if kind not in present:
            host_ns.append(Ask(kind, f"linux.namespaces (no {kind} namespace)"))
        elif present[kind] and kind == "mount":  # a pod's containers share no mount namespace
            unknown.append(Ask(f"joins the mount namespace {present[kind]} (another's filesystems)",
                               "linux.namespaces"))
        elif present[kind] and is_host_namespace(kind, present[kind]):
            host_ns.append(Ask(kind, f"linux.namespaces ({kind} namespace {present[kind]})"))
    return host_ns


def _path(value: object) -> str | None:
    """An absolute path as written, normalized (``/proc/`` is ``/proc``); None when it is not one."""
    if not isinstance(value, str) or not value.startswith("/"):
        return None
    return posixpath.normpath(value).replace("//", "/")


def _mounts(spec: Mapping[str, Any], unknown: list[Ask],
            resolve: Callable[[str], str]) -> tuple[list[Ask], list[str], list[Ask]]:
    """The host paths bound, the kernel filesystems mounted unmasked (as words for the refusal), and the
    writable cgroup mounts."""
    host_paths: list[Ask] = []
    unmasked: list[str] = []
    cgroups: list[Ask] = []
    for m in _list(spec.get("mounts")):
        mount = _dict(m)
        fstype, source, dest = mount.get("type", ""), mount.get("source", ""), mount.get("destination", "")
        options = [o for o in _list(mount.get("options")) if isinstance(o, str)]
        where = f"mounts ({dest})"
        read_only = "ro" in options
        if fstype == "bind" or "bind" in options or "rbind" in options:
            path = resolve(source) if isinstance(source, str) and source.startswith("/") else str(source)
            if path != source:
                where = f"{where}: {source}, which is {path}"
            host_paths.append(Ask(path, where, read_only=read_only))
        elif fstype == "proc":
            if _path(dest) != "/proc":
                unmasked.append(f"{where}: proc outside /proc, nothing masked in it")
        elif fstype == "sysfs":
            if _path(dest) != "/sys" or not read_only:
                unmasked.append(f"{where}: sysfs " + ("outside /sys" if _path(dest) != "/sys" else "read-write"))
        elif fstype in ("cgroup", "cgroup2"):
            if not read_only:
                cgroups.append(Ask(f"writable cgroups ({fstype} on {dest} read-write)", where))
        elif fstype not in FREE_FILESYSTEMS:
            unknown.append(Ask(f"a {fstype or 'typeless'} mount of {source!r} on {dest!r}", where))
    return host_paths, unmasked, cgroups


def _covered(path: str, by: set[str]) -> bool:
    while True:
        if path in by:
            return True
        if path in ("/", ""):
            return False
        path = posixpath.dirname(path)


def _unmasked_paths(linux: Mapping[str, Any], unknown: list[Ask]) -> list[str]:
    """The paths containerd keeps masked or read-only by default that this spec leaves open."""
    paths: dict[str, set[str]] = {}
    for key in ("maskedPaths", "readonlyPaths"):
        value = linux.get(key)
        if value is not None and not isinstance(value, list):
            unknown.append(Ask(f"{key} {value!r} cannot be read", f"linux.{key}"))
        paths[key] = {p for p in (_path(v) for v in _list(value)) if p is not None}
    masked, read_only = paths["maskedPaths"], paths["maskedPaths"] | paths["readonlyPaths"]
    out = []
    for key, required, by in (("maskedPaths", MASKED_PATHS, masked), ("readonlyPaths", READONLY_PATHS, read_only)):
        missing = [p for p in required if not _covered(p, by)]
        if missing:
            out.append(f"linux.{key} (no {', '.join(missing)})")
    return out


class _Unreadable(ValueError):
    pass


def _number(value: object) -> int | None:
    """A device number as runc reads it: None (or -1) for every one. Raises :class:`_Unreadable`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable
    return None if value == -1 else value


def _devices(linux: Mapping[str, Any], host_device: HostDevice, unknown: list[Ask]) -> list[Ask]:
    devices: list[Ask] = []
    given: set[tuple[str, int | None, int | None]] = set()
    for d in _list(linux.get("devices")):
        dev = _dict(d)
        path, kind = dev.get("path"), dev.get("type")
        try:
            major, minor = _number(dev.get("major")), _number(dev.get("minor"))
            if not isinstance(path, str) or kind not in ("b", "c", "u", "p"):
                raise _Unreadable
        except _Unreadable:
            unknown.append(Ask(f"device {d!r} cannot be read", "linux.devices"))
            continue
        kind = "c" if kind == "u" else kind
        given.add((kind, major, minor))
        if kind == "p" or host_device(path) == (kind, major, minor):
            devices.append(Ask(path, "linux.devices"))
        else:  # another node than the host's at that path: named by what it is
            devices.append(Ask(f"{kind} {major}:{minor}", f"linux.devices ({path}, not the host's {path})"))
    for rule in _list(_dict(linux.get("resources")).get("devices")):
        r = _dict(rule)
        allow, kind, access = r.get("allow"), r.get("type") or "a", r.get("access") or "rwm"
        try:
            major, minor = _number(r.get("major")), _number(r.get("minor"))
            if (not isinstance(allow, bool) or kind not in DEVICE_TYPES or not isinstance(access, str)
                    or not set(access) <= set("rwm")):
                raise _Unreadable
        except _Unreadable:
            unknown.append(Ask(f"device cgroup rule {rule!r} cannot be read", "linux.resources.devices"))
            continue
        if not allow or not set(access) & set("rw"):  # a denial, or mknod only: nothing opened
            continue
        kind = "c" if kind == "u" else kind
        key = (kind, major, minor)
        if key in DEFAULT_DEVICE_RULES or key in given:
            continue
        if kind == "a" and major is None and minor is None:
            devices.append(Ask("every host device", "linux.resources.devices (allow all)"))
            continue
        name = f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} {access}"
        devices.append(Ask(name, "linux.resources.devices (a device cgroup rule)"))
    return devices


def _cgroups(linux: Mapping[str, Any], launch: Launch | None, unknown: list[Ask]) -> list[Ask]:
    out: list[Ask] = []
    path = linux.get("cgroupsPath")
    if path is not None and not isinstance(path, str):
        unknown.append(Ask(f"cgroupsPath {path!r} cannot be read", "linux.cgroupsPath"))
    elif path and launch is not None and not containerds_cgroup(path, launch.namespace, launch.container_id):
        out.append(Ask(f"the cgroup {path!r} (containerd's is /{launch.namespace}/{launch.container_id})",
                       "linux.cgroupsPath"))
    resources = _dict(linux.get("resources"))
    if resources.get("unified"):
        out.append(Ask("raw cgroup files (" + ", ".join(sorted(map(str, _dict(resources.get('unified'))))) + ")",
                       "linux.resources.unified"))
    if linux.get("intelRdt"):
        out.append(Ask("an Intel RDT (resctrl) class", "linux.intelRdt"))
    return out


def containerds_cgroup(path: str, namespace: str, container_id: str) -> bool:
    """Whether ``path`` is a cgroup containerd's clients give a new container: ``/<namespace>/<id>``
    (containerd's default spec), ``<id>`` (under the shim's own), nerdctl's under systemd
    (``system.slice:nerdctl:<id>``), in ``moby`` dockerd's (``/docker/<id>``, ``system.slice:docker:<id>``),
    and in ``k8s.io`` kubelet's, under ``kubepods`` (cgroupfs) or a ``kubepods`` slice (systemd). Any other
    could be an existing cgroup the container would join (runc 1.1 only warns), its limits and its
    processes (``runc kill --all``) with it."""
    if not container_id:
        return False
    if path in (f"/{namespace}/{container_id}", container_id, f"system.slice:nerdctl:{container_id}"):
        return True
    if namespace == MOBY_NAMESPACE:  # dockerd's, cgroupfs and systemd
        return path in (f"/docker/{container_id}", f"system.slice:docker:{container_id}")
    if namespace != K8S_NAMESPACE:
        return False
    if ":" in path:  # systemd: slice:prefix:name
        slice_, prefix, name = [*path.split(":"), "", ""][:3]
        return (path.count(":") == 2 and name == container_id and slice_.startswith("kubepods")
                and slice_.endswith(".slice") and "/" not in slice_ and prefix == "cri-containerd")
    parts = path.split("/")
    return (path.startswith("/kubepods") and posixpath.normpath(path) == path and len(parts) >= 3
            and parts[1].startswith("kubepods") and parts[-1] == container_id)


# -- a process started in a running container (runc exec) ---------------------------------------------

def exec_request(process: Mapping[str, Any], container: Mapping[str, Any]) -> Requested:
    """What a process ``runc exec`` starts asks for beyond the container's own process (``container``, its
    spec's ``process``): capabilities it does not have (judged as a new container's: under ``restricted``
    only ``NET_BIND_SERVICE`` may be added), AppArmor other than the container's (none is unconfined),
    ``noNewPrivileges`` dropped where the container had it, and as :func:`process_request` the user, SELinux
    and what cannot be read. A process copied from the container's own with another user and command (``ctr
    task exec``, a CRI exec, ``nerdctl exec``) asks for nothing more."""
    base = process_request(process)
    own = process_request(container)
    unknown = list(base.unknown)
    apparmor = base.apparmor
    own_profile = container.get("apparmorProfile")
    if isinstance(own_profile, str) and own_profile and process.get("apparmorProfile") != own_profile:
        apparmor = Ask("unconfined", f"process.apparmorProfile ({process.get('apparmorProfile')!r}, "
                                     f"not the container's {own_profile!r})")
    added = base.capabilities - own.capabilities
    return Requested(
        capabilities=frozenset(added), capability_sources=("process.capabilities (beyond the container's)",),
        apparmor=apparmor, selinux=base.selinux, user=base.user,
        no_new_privileges=base.no_new_privileges or not own.no_new_privileges, unknown=tuple(unknown),
        starts_container=True,
    )


# -- what nerdctl adds to every container it makes -----------------------------------------------------

NERDCTL_HOOK_PHASES = ("createRuntime", "postStop")
# The files nerdctl binds into a container from its data store, by directory, and where it binds each:
# containers/<ns>/<id>/{hostname,resolv.conf} and etchosts/<ns>/<id>/hosts (the container's network files,
# another container's under --net container:<id>) and containers/<ns>/<id>/shm (--ipc shareable, another
# container's under --ipc container:<id>).
_NERDCTL_FILES = {("containers", "hostname"): ("/etc/hostname", "network"),
                  ("containers", "resolv.conf"): ("/etc/resolv.conf", "network"),
                  ("etchosts", "hosts"): ("/etc/hosts", "network"),
                  ("containers", "shm"): ("/dev/shm", "ipc")}
# --init: nerdctl binds the tini its PATH finds read-only at /sbin/tini and runs the command under it.
INIT_DESTINATION = "/sbin/tini"
INIT_SOURCES = frozenset(f"{d}/tini" for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                                 "/sbin", "/bin"))


DEFAULT_NERDCTL_DATA_ROOT = "/var/lib/nerdctl"


def nerdctls_own(spec: Mapping[str, Any], nerdctl: str, namespace: str, container_id: str,
                 data_roots: Iterable[str] = (DEFAULT_NERDCTL_DATA_ROOT,)) -> dict[str, Any]:
    """``spec`` without what nerdctl itself adds to a container made from a command line the wrapper
    admitted: its OCI hooks (the real nerdctl, ``… internal oci-hook createRuntime|postStop``: the container's
    network), its bind mounts of the container's own ``/etc/hostname``, ``/etc/resolv.conf`` and
    ``/etc/hosts`` (``<data root>/<address hash>/{containers,etchosts}/<namespace>/<id>/…``; another
    container's of the namespace when the spec joins a network namespace by path, ``--net container:…``),
    of its ``/dev/shm`` (``containers/<namespace>/<id>/shm``, ``--ipc shareable``; another container's when
    it joins an IPC namespace by path) and of volumes (``<data root>/<address hash>/volumes/<namespace>/<name>/_data``,
    which nerdctl binds as type ``none``), ``data_roots`` being nerdctl's (its default, and the
    ``--data-root`` values ``[global_flags]`` accepts: a directory of the client's own, bound into a
    container whose root is the host's root, would take setuid-root programs); and ``--init``'s read-only
    ``tini`` from a system directory at ``/sbin/tini``, when the process runs under it. What is left is what
    the command line asked for, judged by the profile the wrapper judged it by. Pure."""
    out = dict(spec)
    hooks = _dict(spec.get("hooks"))
    if hooks:
        out["hooks"] = {kind: [h for h in _list(entries) if not _nerdctl_hook(h, nerdctl)]
                        for kind, entries in hooks.items()}
    roots = tuple(r.rstrip("/") for r in data_roots if r.startswith("/") and _path(r) == r.rstrip("/"))
    joined = frozenset(_dict(ns).get("type") for ns in _list(_dict(spec.get("linux")).get("namespaces"))
                       if _dict(ns).get("path"))
    init = _list(_dict(spec.get("process")).get("args"))[:2] == [INIT_DESTINATION, "--"]
    out["mounts"] = [m for m in _list(spec.get("mounts"))
                     if not _nerdctl_mount(m, namespace, container_id, roots, joined)
                     and not (init and _init_mount(m))]
    return out


def _nerdctl_hook(hook: object, nerdctl: str) -> bool:
    h = _dict(hook)
    args = _list(h.get("args"))
    return (h.get("path") == nerdctl and len(args) >= 4 and args[-3:-1] == ["internal", "oci-hook"]
            and args[-1] in NERDCTL_HOOK_PHASES)


def _bind(m: Mapping[str, Any]) -> bool:
    """A bind mount as nerdctl writes one: type ``bind`` (its own files), or ``none`` with ``rbind``/``bind``
    (volumes: nerdctl's mount type on Linux is ``none``)."""
    options = _list(m.get("options"))
    return m.get("type") in ("bind", "none") and ("bind" in options or "rbind" in options)


def _init_mount(mount: object) -> bool:
    m = _dict(mount)
    return (_bind(m) and m.get("destination") == INIT_DESTINATION and m.get("source") in INIT_SOURCES
            and "ro" in _list(m.get("options")))


def _nerdctl_mount(mount: object, namespace: str, container_id: str, roots: tuple[str, ...],
                   joined: frozenset[object] = frozenset()) -> bool:
    """``<root>/<hash>/{containers,etchosts}/<namespace>/<id>/<file>`` on its destination (another
    container's only when the spec joins the namespace the file goes with), or
    ``<root>/<hash>/volumes/<namespace>/<name>/_data``, bound, spelled normalized, ``<root>`` one of ``roots``."""
    m = _dict(mount)
    source = m.get("source")
    if not _bind(m) or not isinstance(source, str) or _path(source) != source:
        return False
    rest = next((source[len(r) + 1:] for r in roots if source.startswith(r + "/")), None)
    parts = rest.split("/") if rest is not None else []
    if len(parts) != 5:
        return False
    digest, kind, ns, name, leaf = parts
    if len(digest) != 8 or not all(c in "0123456789abcdef" for c in digest) or ns != namespace or not name:
        return False
    if kind == "volumes":
        return leaf == "_data"
    destination, shared = _NERDCTL_FILES.get((kind, leaf), ("", ""))
    return bool(destination) and _path(m.get("destination")) == destination and (
        name == container_id or shared in joined)


def process_request(process: Mapping[str, Any], *, starts_container: bool = False) -> Requested:
    """What one process asks for: ``process`` of a spec, or the process ``runc exec`` starts in a running
    container (its process file, or the container's own process with ``exec``'s flags applied). The
    capabilities are the union of its sets; the user as ``uid:gid``; AppArmor, SELinux and
    ``noNewPrivileges`` as in :func:`requested`. ``starts_container`` False (``exec``): restricted's
    requirements for a new container (no-new-privileges, capabilities dropped) do not apply, the user does."""
    unknown: list[Ask] = []
    caps: set[str] = set()
    capabilities = process.get("capabilities")
    if capabilities is not None and not isinstance(capabilities, dict):
        unknown.append(Ask(f"capabilities {capabilities!r} cannot be read", "process.capabilities"))
    for kind in CAPABILITY_SETS:
        entries = _dict(capabilities).get(kind)
        if entries is not None and not isinstance(entries, list):
            unknown.append(Ask(f"capability set {entries!r} cannot be read", f"process.capabilities.{kind}"))
        for c in _list(entries):
            name = c.upper().removeprefix("CAP_") if isinstance(c, str) else ""
            if name in ALL_CAPABILITIES:
                caps.add(name)
            else:
                unknown.append(Ask(f"capability {c!r} is not one BACON knows", f"process.capabilities.{kind}"))
    apparmor_profile = process.get("apparmorProfile")
    apparmor = Ask(apparmor_profile, "process.apparmorProfile") if isinstance(apparmor_profile, str) and \
        apparmor_profile else None
    selinux: list[Ask] = []
    label = process.get("selinuxLabel")
    if isinstance(label, str) and label:
        parts = label.split(":", 3)
        if len(parts) >= 3:
            selinux.append(Ask(f"type:{parts[2]}", "process.selinuxLabel"))
        else:
            unknown.append(Ask(f"SELinux label {label!r} cannot be read", "process.selinuxLabel"))
    user_obj = process.get("user")
    if user_obj is not None and not isinstance(user_obj, dict):
        unknown.append(Ask(f"user {user_obj!r} cannot be read", "process.user"))
    uid, gid = _dict(user_obj).get("uid", 0), _dict(user_obj).get("gid", 0)
    for what, value in (("uid", uid), ("gid", gid)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32):
            unknown.append(Ask(f"{what} {value!r} cannot be read", f"process.user.{what}"))
    user = Ask(f"{uid or 0}:{gid or 0}", "process.user")
    return Requested(
        capabilities=frozenset(caps), capability_sources=("process.capabilities",), apparmor=apparmor,
        selinux=tuple(selinux), user=user, no_new_privileges=process.get("noNewPrivileges") is True,
        unknown=tuple(unknown), starts_container=starts_container,
    )
