"""Build the :class:`~shim.admission.profiles.request.Requested` record from a parsed nerdctl command line.

Pure (the parse is data). Every flag is read by its class in :mod:`shim.admission.profiles.classes`: ``checked``
flags are interpreted here, value by value, as nerdctl interprets them (cmd/nerdctl/container/
container_run.go and pkg/cmd/container of nerdctl v2); a value this module cannot read is put in
``unknown`` (refused but under ``privileged``), never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.admission.profiles import classes
from shim.admission.profiles.request import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, Ask, Requested
from shim.wrapper.argv.grammar import SLICE_FLAGS
from shim.wrapper.argv.model import Invocation, MountSpec, _csv

_TRUE = ("true",)


def _values(inv: Invocation, name: str) -> list[str]:
    out = []
    for k, v in inv.flags:
        if k == name:
            out.extend(_csv(name, v) if name in SLICE_FLAGS else [v])
    return out


def _cap(name: str) -> str:
    n = name.strip().upper()
    return n[4:] if n.startswith("CAP_") else n


class _Builder:
    def __init__(self) -> None:
        self.f: dict[str, object] = {}
        self.lists: dict[str, list[Ask]] = {}

    def add(self, field: str, ask: Ask) -> None:
        self.lists.setdefault(field, []).append(ask)

    def set(self, field: str, value: object) -> None:
        self.f[field] = value

    def build(self, **fixed: object) -> Requested:
        kwargs: dict[str, object] = {**self.f, **{k: tuple(v) for k, v in self.lists.items()}, **fixed}
        return Requested(**kwargs)  # type: ignore[arg-type]


def _globals(inv: Invocation, b: _Builder, environment: Sequence[tuple[str, str, str]] = ()) -> None:
    # a forwarded (opaque) command's own tokens may set global flags too: every reading of them is judged
    for name, value in (*inv.globals, *inv.opaque_globals):
        cls = classes.GLOBAL_FLAGS.get(name, "refused")
        if cls == "allowed":
            continue
        if cls == "refused":
            b.add("unknown", Ask(f"global flag --{name} is not classified", f"--{name}={value}"))
            continue
        for v in (_csv(name, value) if name in SLICE_FLAGS else [value]):
            b.add("globals", Ask(f"{name}={v}", f"--{name}={value}"))
    # the same settings from the caller's environment under sudo (shim.wrapper.nerdctl_env.caller_settings)
    for name, value, where in environment:
        cls = classes.GLOBAL_FLAGS.get(name, "refused")
        if cls == "allowed":
            continue
        source = f"{where}={value} (--{name})"
        if cls == "refused":
            b.add("unknown", Ask(f"global flag --{name} is not classified", source))
            continue
        b.add("globals", Ask(f"{name}={value}", source))  # a TOML list comes one value at a time


def _namespace(b: _Builder, flag: str, ns: str, value: str, ok: tuple[str, ...]) -> None:
    src = f"--{flag}={value}"
    if value == "host":
        b.add("host_namespaces", Ask(ns, src))
    elif value in ok or (value.startswith("container:") and len(value) > len("container:")):
        return
    elif ns == "network" and value.startswith("ns:"):
        b.add("host_namespaces", Ask(ns, src))  # a namespace by path: the host's or another process's
    else:
        b.add("unknown", Ask(f"--{flag} value {value!r} is not one BACON can judge", src))


def _volume(b: _Builder, value: str) -> None:
    parts = value.split(":")
    src = f"--volume={value}"
    if len(parts) == 1:
        return  # an anonymous volume
    source, opts = parts[0], (parts[2] if len(parts) > 2 else "")
    if len(parts) > 3 or not source:
        b.add("unknown", Ask(f"volume {value!r} is not one BACON can read", src))
        return
    if "/" in source or source.startswith((".", "~")):
        b.add("host_paths", Ask(source, src, read_only="ro" in opts.split(",")))


def _mount(b: _Builder, value: str) -> None:
    m = MountSpec.parse(value)
    src = f"--mount={value}"
    kind = m.type  # nerdctl's reading; MountSpec.parse refused a type given twice
    source = m.source
    if kind in ("tmpfs", "image"):
        return
    ro = any(k.lower() in ("readonly", "ro") and (v is None or v.lower() in ("true", "1"))
             for k, v in m.fields)
    if kind == "bind":
        b.add("host_paths", Ask(source or "", src, read_only=ro))
    elif kind == "volume":
        if source and ("/" in source or source.startswith((".", "~"))):
            b.add("host_paths", Ask(source, src, read_only=ro))
    else:
        b.add("unknown", Ask(f"mount type {kind!r} is not one BACON can judge", src))


# Security options read as one setting each. nerdctl keeps one value per key (strutil.ConvertKVStringsToMap
# over strutil.DedupeStrSlice: the last of the distinct values, so `seccomp=a seccomp=unconfined seccomp=a`
# is unconfined); a key given with two different values has two readings, and is not judged but refused.
_SINGLE_SECURITY_OPTS = ("seccomp", "apparmor", "no-new-privileges", "systempaths")


def _security_opt_key(value: str) -> str:
    key, eq, _ = value.partition("=")
    if not eq and ":" in value and key not in ("no-new-privileges",):
        key = value.partition(":")[0]
    return key


def _single_security_opts(b: _Builder, values: list[str]) -> None:
    seen: dict[str, str] = {}
    for v in values:
        key = _security_opt_key(v)
        if key in _SINGLE_SECURITY_OPTS and seen.setdefault(key, v) != v:
            b.add("unknown", Ask(f"--security-opt {key} is given twice ({seen[key]!r} and {v!r}); give it once",
                                 f"--security-opt={v}"))


def _security_opt(b: _Builder, value: str) -> None:
    src = f"--security-opt={value}"
    key, eq, v = value.partition("=")
    if not eq and ":" in value and key not in ("no-new-privileges",):
        key, _, v = value.partition(":")
    if key == "seccomp":
        if v == "unconfined":
            b.set("seccomp", Ask("unconfined", src))
        elif v:
            b.set("seccomp", Ask(f"profile:{v}", src))
        else:
            b.add("unknown", Ask("an empty seccomp profile", src))
    elif key == "apparmor":
        if v:
            b.set("apparmor", Ask(v, src))
        else:
            b.add("unknown", Ask("an empty apparmor profile", src))
    elif key == "label":
        sub = v.partition(":")[0]
        if v == "disable" or sub in ("type", "user", "role", "level"):
            b.add("selinux", Ask(v, src))
        else:
            b.add("unknown", Ask(f"SELinux option {v!r}", src))
    elif key == "no-new-privileges":
        if not eq or v.lower() in ("true", "1"):
            b.set("no_new_privileges", True)
        elif v.lower() not in ("false", "0"):
            b.add("unknown", Ask(f"no-new-privileges value {v!r}", src))
    elif key == "systempaths":
        if v == "unconfined":
            b.set("unmasked_paths", Ask("unconfined", src))
        else:
            b.add("unknown", Ask(f"systempaths value {v!r}", src))
    elif key == "privileged-without-host-devices":
        return  # only narrows --privileged
    elif key == "writable-cgroups":
        if v.lower() not in ("false", "0"):
            b.add("cgroups", Ask("writable cgroups", src))
    else:
        b.add("unknown", Ask(f"security option {key!r} is not one BACON can judge", src))


def _capabilities(inv: Invocation, b: _Builder) -> None:
    adds = [(_cap(v), v) for v in _values(inv, "cap-add")]
    drops = [_cap(v) for v in _values(inv, "cap-drop")]
    names = {n for n, _ in adds}
    start = ALL_CAPABILITIES if "ALL" in names else (frozenset() if "ALL" in drops else DEFAULT_CAPABILITIES)
    added = set()
    for n, v in adds:
        if n == "ALL":
            continue
        if n not in ALL_CAPABILITIES:
            b.add("unknown", Ask(f"capability {v!r} is not one Linux defines", f"--cap-add={v}"))
        added.add(n)
    caps = (set(start) - set(drops)) | added  # an added capability wins over its drop (fail closed)
    b.set("capabilities", frozenset(caps & ALL_CAPABILITIES))
    b.set("capability_sources", tuple(f"--cap-add={v}" for _, v in adds))


def _container_flags(inv: Invocation, b: _Builder) -> None:
    table = classes.COMMAND_FLAGS["run"]
    for name, value in inv.flags:
        cls = table.get(name, "refused")
        if cls == "refused":
            b.add("refused", Ask(f"--{name} is not available under this profile", f"--{name}={value}"))
    if inv.flag("privileged") == "true":
        b.set("privileged", Ask("privileged", "--privileged"))
    for flag, ns, ok in (("pid", "pid", ("",)), ("ipc", "ipc", ("", "private", "shareable", "none")),
                         ("uts", "uts", ("",)), ("cgroupns", "cgroup", ("", "private"))):
        v = inv.flag(flag)
        if v is not None:
            _namespace(b, flag, ns, v, ok)
    for flag in ("network", "net"):
        for v in _values(inv, flag):
            if v == "host" or v.startswith("ns:") or "/" in v:
                _namespace(b, flag, "network", v, ())
    _capabilities(inv, b)
    for v in _values(inv, "volume"):
        _volume(b, v)
    for v in _values(inv, "mount"):
        _mount(b, v)
    for v in _values(inv, "device"):
        b.add("devices", Ask(v.split(":", 1)[0] if v.startswith("/") else v, f"--device={v}"))
    for v in _values(inv, "gpus"):
        b.add("devices", Ask("gpus", f"--gpus={v}"))
    _single_security_opts(b, _values(inv, "security-opt"))
    for v in _values(inv, "security-opt"):
        _security_opt(b, v)
    for v in _values(inv, "sysctl"):
        b.add("sysctls", Ask(v.split("=", 1)[0].replace("/", "."), f"--sysctl={v}"))
    user = inv.flag("user")
    if user is not None:
        b.set("user", Ask(user, f"--user={user}"))
    runtime = inv.flag("runtime")
    if runtime is not None and runtime != "":
        b.set("runtime", Ask(runtime, f"--runtime={runtime}"))
    driver = inv.flag("log-driver")
    if driver is not None and driver != "":
        b.set("log_driver", Ask(driver, f"--log-driver={driver}"))
    for v in _values(inv, "log-opt"):
        b.add("log_options", Ask(v.split("=", 1)[0], f"--log-opt={v}"))
    for v in _values(inv, "annotation"):
        b.add("annotations", Ask(v.split("=", 1)[0], f"--annotation={v}"))
    # --env-file and --label-file of run/create are read by the wrapper as the caller and handed to nerdctl
    # as sealed copies (shim.wrapper.inputs): no host file is read as root for them.
    for flag in ("cidfile", "pidfile"):
        v = inv.flag(flag)
        if v:
            b.add("host_files", Ask(flag, f"--{flag}={v}"))
    for v in _values(inv, "cgroup-parent"):
        if v:
            b.add("cgroups", Ask("a cgroup parent", f"--cgroup-parent={v}"))
    for v in _values(inv, "cgroup-conf"):
        b.add("cgroups", Ask(f"the cgroup setting {v.split('=', 1)[0]}", f"--cgroup-conf={v}"))
    systemd = inv.flag("systemd")
    if systemd is not None and systemd.lower() not in ("false", ""):
        b.add("cgroups", Ask("systemd mode (a writable cgroup filesystem)", f"--systemd={systemd}"))
    _verify(inv, b, "verify")


def _verify(inv: Invocation, b: _Builder, flag: str) -> None:
    v = inv.flag(flag)
    if v is not None and v not in ("", "none"):
        b.add("refused", Ask(f"nerdctl's own --{flag} runs cosign or notation as root (BACON checks "
                             "signatures itself)", f"--{flag}={v}"))


def _other_flags(inv: Invocation, command: str, b: _Builder) -> None:
    table = classes.COMMAND_FLAGS[command]
    for name, value in inv.flags:
        cls = table.get(name, "refused")
        if cls == "refused":
            b.add("refused", Ask(f"--{name} is not available under this profile", f"--{name}={value}"))
    if command == "start":
        v = inv.flag("checkpoint-dir")
        if v:
            b.add("host_files", Ask("checkpoint-dir", f"--checkpoint-dir={v}", read_only=True))
    elif command == "pull":
        _verify(inv, b, "verify")
    elif command == "push":
        _verify(inv, b, "sign")
    elif command == "exec":
        if inv.flag("privileged") == "true":
            b.set("privileged", Ask("privileged", "--privileged"))
        user = inv.flag("user")
        if user is not None:
            b.set("user", Ask(user, f"--user={user}"))
        # exec --env-file is read as the caller and handed over sealed (shim.wrapper.inputs), as for run


def _host_command(inv: Invocation, b: _Builder) -> None:
    cls = classes.command_class(inv.path)
    where = "nerdctl " + " ".join(inv.path)
    name = inv.path[-1] if inv.path else ""
    if cls == "host-files":
        if name in classes.FILE_FLAG and not classes.names_file(name, inv.args):
            return
        key = "compose" if inv.path[:1] == ("compose",) else name
        if inv.path[:1] == ("builder",) and name != "build":  # builder debug/prune: allowed as "builder"
            key = "builder"
        b.add("host_files", Ask(key, where, read_only=name not in ("save", "export", "cp", "build")))
    elif cls == "refused":
        if inv.path[:1] == ("apparmor",) and inv.args[:1] and inv.args[0] in classes.APPARMOR_READ:
            return
        b.add("refused", Ask(f"`{where}` runs host code as root", where))


def requested(inv: Invocation, environment: Sequence[tuple[str, str, str]] = ()) -> Requested:
    """What ``inv`` asks for. For run/create a new container; for exec a process in a running one; for
    every other command what it does on the host for the operator (its global flags, host files, host
    code). ``environment``: what the caller's environment sets for nerdctl's global flags under sudo
    (:func:`shim.wrapper.nerdctl_env.caller_settings`), judged as those flags are.

    Raises:
        UsageError: a slice flag's value is not valid CSV (nerdctl would reject it too).
    """
    b = _Builder()
    _globals(inv, b, environment)
    command = inv.command
    if command in ("run", "create"):
        _container_flags(inv, b)
        return b.build(starts_container=True)
    if command in classes.COMMAND_FLAGS and command != "compose" and inv.leaf and not inv.opaque:
        _other_flags(inv, command, b)
        if classes.command_class(inv.path) == "host-files":  # build: parsed, and it reads host files
            _host_command(inv, b)
    else:
        _host_command(inv, b)
    return b.build(starts_container=False)
