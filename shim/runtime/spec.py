"""What an OCI runtime spec (a bundle's ``config.json``) asks for, as container profiles read it
(:class:`shim.admission.profiles.request.Requested`), so that the runtime gate applies the same rules to a
container whatever client wrote its spec. Pure: the one question about the host (is this namespace
path the host's own?) is asked through a callable.

How each part of the spec is read (docs/runtime.md):

- capabilities: the union of ``process.capabilities``' sets; ``SYS_ADMIN`` with nothing masked
  (``linux.maskedPaths`` empty) is what ``--privileged`` makes (every capability the host has), and is
  named so;
- namespaces: a ``pid``, ``ipc``, ``network`` or ``uts`` namespace missing from ``linux.namespaces`` is the
  host's; one given by ``path`` is the host's when it is the host's init's (another container's, as a
  Kubernetes pod's containers join their sandbox's, is not). ``cgroup`` and ``user`` are not judged:
  containerd's own default spec has neither, so their absence says nothing about what was asked;
- mounts: a bind mount is a host path (read-only with ``ro``); the kernel filesystems a runtime mounts
  (``proc``, ``sysfs``, ``tmpfs``, ``devpts``, ``mqueue``, ``cgroup``/``cgroup2``) are not; any other
  filesystem is refused as unknown;
- devices: ``linux.devices`` (host device nodes), and a device cgroup rule allowing every device;
- ``hooks``: host programs the runtime runs as root, refused unless ``privileged``;
- ``process.apparmorProfile`` ``unconfined``, ``process.selinuxLabel``, ``linux.sysctl``, ``process.user``,
  ``process.noNewPrivileges``. A spec without a seccomp profile is not refused (Kubernetes' baseline
  allows an unset one); one with ``SCMP_ACT_ALLOW`` as its default action runs unfiltered and is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shim.admission.profiles.request import ALL_CAPABILITIES, Ask, Requested

JUDGED_NAMESPACES = ("pid", "ipc", "network", "uts")
KERNEL_FILESYSTEMS = frozenset({"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"})
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def requested(spec: Mapping[str, Any], is_host_namespace: Callable[[str, str], bool]) -> Requested:
    """The privileges ``spec`` asks for. ``is_host_namespace(type, path)``: whether the namespace at
    ``path`` is the host's own. What cannot be read is put in ``unknown`` (refused but under
    ``privileged``)."""
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

    host_ns: list[Ask] = []
    present: dict[str, str] = {}
    for ns in _list(linux.get("namespaces")):
        entry = _dict(ns)
        ns_type, ns_path = entry.get("type"), entry.get("path", "")
        if not isinstance(ns_type, str) or not isinstance(ns_path, str):
            unknown.append(Ask(f"namespace entry {ns!r} cannot be read", "linux.namespaces"))
            continue
        present[ns_type] = ns_path
    for kind in JUDGED_NAMESPACES:
        if kind not in present:
            host_ns.append(Ask(kind, f"linux.namespaces (no {kind} namespace)"))
        elif present[kind] and is_host_namespace(kind, present[kind]):
            host_ns.append(Ask(kind, f"linux.namespaces ({kind} namespace {present[kind]})"))

    host_paths: list[Ask] = []
    for m in _list(spec.get("mounts")):
        mount = _dict(m)
        fstype, source, dest = mount.get("type", ""), mount.get("source", ""), mount.get("destination", "")
        options = [o for o in _list(mount.get("options")) if isinstance(o, str)]
        where = f"mounts ({dest})"
        if fstype == "bind" or "bind" in options or "rbind" in options:
            host_paths.append(Ask(str(source), where, read_only="ro" in options))
        elif fstype not in KERNEL_FILESYSTEMS:
            unknown.append(Ask(f"a {fstype or 'typeless'} mount of {source!r} on {dest!r}", where))

    devices = [Ask(str(_dict(d).get("path", "")), "linux.devices") for d in _list(linux.get("devices"))]
    for rule in _list(_dict(linux.get("resources")).get("devices")):
        allow = _dict(rule)
        if (allow.get("allow") is True and allow.get("type", "a") in ("a", "", None)
                and allow.get("major") is None and allow.get("minor") is None):
            devices.append(Ask("every host device", "linux.resources.devices (allow all)"))

    for kind in HOOK_KINDS:
        for h in _list(_dict(spec.get("hooks")).get(kind)):
            refused.append(Ask(f"the hook {_dict(h).get('path')!r} runs on the host as root", f"hooks.{kind}"))

    seccomp = None
    sc = linux.get("seccomp")
    if isinstance(sc, dict) and sc.get("defaultAction") in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        seccomp = Ask("unconfined", "linux.seccomp (allows every system call)")
    sysctls = [Ask(k, "linux.sysctl") for k in _dict(linux.get("sysctl"))]

    return Requested(
        privileged=privileged, host_namespaces=tuple(host_ns), capabilities=frozenset(caps),
        capability_sources=("process.capabilities",), host_paths=tuple(host_paths), devices=tuple(devices),
        seccomp=seccomp, apparmor=proc.apparmor, selinux=proc.selinux,
        unmasked_paths=Ask("unmasked", "linux.maskedPaths (empty)") if not masked else None,
        sysctls=tuple(sysctls), user=proc.user, no_new_privileges=proc.no_new_privileges,
        refused=tuple(refused), unknown=tuple(unknown), starts_container=True,
    )


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
