"""The runtime gate: BACON's decision at ``runc create``, for every containerd client (the second layer).

The launcher installed as ``runc`` (``shim.runtime.argv.launcher``) sends the verbs that make a container
here; everything else goes straight to the real runc. At ``create`` the gate knows the bundle (its
``config.json``), the container ID and the namespace (the bundle is ``…/<namespace>/<id>``), and asks
containerd, at the address the shim was started for, for the container's record:

- a container the wrapper admitted carries ``bacon/admission=<token>`` and the token's root-only record
  (``shim.admission.records``): if its rootfs descends from the recorded image's layers, the record is bound to
  this container's ID on first use, as the wrapper's ``start`` does, and the container passes without a
  second admission (a label copied onto another container gets it nothing);
- any other container gets the full admission of the image it names (``shim.admission.gate``: signature, level,
  the host attestation the level requires), and only if its rootfs snapshot descends from that image's
  layers (``shim.images.rootfs``);
- the OCI spec's root must be the bundle's ``rootfs`` (what the shim mounted from the snapshot).

Then the real runc (``[runtime] runc`` in the configuration) runs with the same argv. A refusal, or any
failure to decide, is audited with ``"layer": "runtime"``; :mod:`shim.runtime.main` (the process the
launcher starts, which asks ``bacon serve`` for :func:`plan` or runs it itself) writes one
``bacon: denied: …`` line where containerd reads runc's errors (the ``--log`` file) and exits 77: the
shim removes the bundle, nothing is left behind. The facts about containerd's shim: docs/runtime.md.

For a container decided here (not the wrapper's), the profile of its image's level (``shim.admission.profiles``)
is applied to what its OCI spec asks for (``shim.runtime.spec``): privileged, capabilities, host
namespaces, mounts, devices, hooks. A wrapper-admitted container's spec, without what nerdctl adds to every
container, goes through the profile of its record's level too (at most ``baseline``: :func:`record_profile_check`),
since the label that leads to the record can be copied onto a container of the same image with another spec.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.common.errors import BaconError, Denied
from shim.runtime import argv as runtime_argv
from shim.runtime.settings import Settings as Settings  # re-exported: the [runtime] settings
from shim.runtime.settings import settings as settings  # re-exported: the [runtime] parser

DEFAULT_CONTAINERD = "/run/containerd/containerd.sock"
MAX_SPEC = 4 << 20  # bytes of config.json read
LAYER = "runtime"
TASK_DIR = "io.containerd.runtime.v2.task"  # where containerd's runtime v2 keeps bundles, per namespace


def containerd_address(s: Settings, environ: Mapping[str, str]) -> str:
    """The containerd the shim belongs to: configured, else the one whose ttrpc address containerd gave
    its shim (``TTRPC_ADDRESS``, its gRPC socket with ``.ttrpc`` appended), else the default socket."""
    if s.containerd:
        return s.containerd
    ttrpc = environ.get("TTRPC_ADDRESS", "")
    if ttrpc.startswith("/") and ttrpc.endswith(".ttrpc"):
        return ttrpc.removesuffix(".ttrpc")
    return DEFAULT_CONTAINERD


@dataclass(frozen=True)
class Where:
    """Which containerd container a ``create`` is for."""

    bundle: Path
    namespace: str
    container_id: str
    no_pivot: bool = False  # runc create --no-pivot: a chroot, judged by the profile


def where(call: runtime_argv.Call, cwd: str) -> Where:
    """The bundle (``--bundle``, else the working directory, as in runc), and the namespace it lies in:
    containerd's runc shim makes bundles at ``<state>/io.containerd.runtime.v2.task/<namespace>/<id>`` and
    gives runc ``--root <runc root>/<namespace>``. Anything else is not a containerd task: refused."""
    bundle = Path(os.path.normpath(os.path.join(cwd, call.flags.get("bundle") or ".")))
    namespace = bundle.parent.name
    if bundle.name != call.container_id or not namespace or bundle.parent.parent.name != TASK_DIR:
        raise Denied(f"bundle {bundle} is not containerd's bundle for container {call.container_id!r}",
                     check=LAYER, hint="the runtime gate decides containers made through containerd only")
    root = call.globals.get("root")
    if root is not None and Path(root).name != namespace:
        raise Denied(f"runc --root {root} is not for namespace {namespace!r} (the bundle's)", check=LAYER)
    from shim.runtime.decided import check_runc_root

    check_runc_root(root or "/run/runc")
    return Where(bundle=bundle, namespace=namespace, container_id=call.container_id,
                 no_pivot=call.flags.get("no-pivot") == "true")


def read_spec(bundle: Path) -> dict[str, Any]:
    """The bundle's OCI spec, read as runc reads it (:mod:`shim.runtime.specfile`: bounded, no symbolic link,
    no key runc would read otherwise than the gate)."""
    from shim.runtime import specfile as runtime_specfile

    path = bundle / "config.json"
    try:
        return runtime_specfile.read(str(path), MAX_SPEC)
    except runtime_specfile.SpecFileError as e:
        raise Denied(f"cannot read the OCI spec {path}: {e}", check="spec") from e


def check_spec(spec: Mapping[str, Any], bundle: Path) -> None:
    """What the OCI spec may say whoever admitted the container. Its root must be the bundle's ``rootfs``,
    where the shim mounted the container's snapshot: a root elsewhere would run a filesystem the rootfs
    check never saw. (The profile, for containers decided here: :func:`profile_check`.)"""
    root = spec.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if not isinstance(path, str) or os.path.normpath(os.path.join(bundle, path)) != str(bundle / "rootfs"):
        raise Denied(f"the OCI spec's root is {path!r}, not the bundle's rootfs", check="spec",
                     hint="a container's root is its image's snapshot, mounted by containerd at <bundle>/rootfs")


# -- the decision -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """An admission at ``create``: on the wrapper's record, or a full one (its checks are in the context)."""

    how: str  # "record" | "admission"
    image: str | None = None
    digest: str | None = None
    checks: tuple[Mapping[str, Any], ...] = ()
    verdict: Any = None  # the full admission's shim.admission.decision.Verdict
    level: str = ""  # the level the container is admitted at: its profile judges exec into it
    spec: Mapping[str, Any] | None = None  # the bundle's OCI spec as it was read for this decision


def decide_container(ctx: Any, at: Where) -> Decision:
    """Decide the container ``at`` with a :class:`shim.admission.context.Context` for its containerd and namespace."""
    from shim.admission import records
    from shim.admission.finding import record_subject, unrecorded_subject
    from shim.admission.image_checks import check_image
    from shim.images import rootfs

    spec = read_spec(at.bundle)
    check_spec(spec, at.bundle)
    try:
        container = ctx.containerd.get_container(at.container_id)
    except BaconError as e:
        raise Denied(f"containerd has no container {at.container_id!r} in namespace {at.namespace}: {e.message}",
                     check=LAYER, hint="check [runtime] containerd in /etc/bacon/config.toml") from e
    token = container.labels.get(records.LABEL)
    rec = records.load(ctx.cfg.state_dir, token) if token else None
    if rec is not None:
        if rec.namespace != at.namespace:
            raise Denied(f"the admission record of container {at.container_id[:12]} is for namespace "
                         f"{rec.namespace}, not {at.namespace}", check="record", image=rec.image, digest=rec.digest)
        # The label that leads to the record can be copied by any containerd client: the container must hold
        # the image the record names (its rootfs descends from those layers) before it claims the record.
        # (This one check also covers a name moved between the wrapper's check and nerdctl's lookup, which
        # would put other content under the record: shim.admission.finding.pinned.)
        if rec.layers is not None:  # the checked layers' chain IDs, kept by the wrapper: no image to resolve
            rootfs.verify_chain(ctx.containerd, container, rec.layers, rec.image)
        else:  # a record from before the chain ID was kept: resolve the recorded image again
            record_subject(ctx, rec, container)
        records.bind(ctx.cfg.state_dir, rec, container.id, container.created_at)
        check = {"check": "record", "passed": True, "summary": "admitted by the nerdctl wrapper", "token": rec.token}
        return Decision("record", rec.image, rec.digest, (check,), level=rec.level or ctx.cfg.default_level,
                        spec=spec)
    if not container.image:
        raise Denied(f"container {at.container_id[:12]} names no image", check="image",
                     hint="run containers from signed images")
    subject = unrecorded_subject(ctx, container)
    verdict = check_image(ctx, subject)
    verdict.raise_if_denied()
    level = verdict.level or ctx.cfg.default_level
    profile_check(ctx.cfg, level, spec, subject.asked, subject.digest, at)
    return Decision("admission", verdict=verdict, level=level)


def measure_launch(ctx: Any, decision: Decision, at: Where, args: Sequence[str]) -> Any:
    """Log and extend a launch admitted here (``[measure]``, :func:`shim.attest.measure.launches`) before the real
    runc runs; the wrapper measured the launches it admitted itself. Raises :class:`Denied` (``measure``)."""
    if decision.verdict is None or not ctx.cfg.measure.enabled:
        return None
    from shim.admission.gate import launch_signer
    from shim.attest import measure

    v = decision.verdict
    event = measure.LaunchEvent(source=LAYER, command="create", image=v.image, digest=v.digest,
                                signer=launch_signer(v), level=v.level or "", argv=("runc", *args),
                                time=measure.now(), container_id=at.container_id, namespace=at.namespace,
                                profile=ctx.cfg.profiles.profile(v.level) if v.level else None)
    return measure.launches(ctx.cfg, [event])


def profile_check(cfg: Any, level: str, spec: Mapping[str, Any], image: str, digest: str,
                  at: Where | None = None, settings_: Any = None) -> None:
    """Apply the profile of the image's level (or ``settings_``) to what the OCI spec asks for
    (``shim.runtime.spec``), and to what ``runc create`` was told beside it (``at``: the container's
    namespace and ID, ``--no-pivot``)."""
    from shim.admission.profiles import rules
    from shim.runtime import spec as runtime_spec

    settings_ = settings_ or cfg.profiles.settings(level)
    launch = None if at is None else runtime_spec.Launch(namespace=at.namespace, container_id=at.container_id,
                                                         no_pivot=at.no_pivot)
    requested = runtime_spec.requested(spec, is_host_namespace, host_device, launch, os.path.realpath)
    refusals = rules.refusals_of(requested, settings_)
    if refusals:
        first = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        raise Denied(f"profile {first.profile} (level {first.level}) refuses {first.render()}{more}",
                     check="profile", image=image, digest=digest, hint=f"to allow it: {first.allow}")


def record_profile_check(cfg: Any, decision: Decision, at: Where) -> None:
    """A container admitted on the wrapper's record: its spec, without what nerdctl adds to every container
    (``shim.runtime.spec.nerdctls_own``), judged by the profile of the record's level, at most ``baseline``
    (``restricted``'s own requirements, a non-root user and dropped capabilities, are the wrapper's to
    check on the command line). The label that leads to the record can be copied by any containerd client
    onto a container of the same image (``ctr run --privileged --label bacon/admission=…``): what the
    wrapper admitted was a command line, not whatever spec carries the label."""
    from dataclasses import replace

    from shim.runtime import spec as runtime_spec

    settings_ = cfg.profiles.settings(decision.level)
    if settings_.profile == "restricted":
        settings_ = replace(settings_, profile="baseline")
    if settings_.profile == "privileged":
        return
    data_roots = (runtime_spec.DEFAULT_NERDCTL_DATA_ROOT, *sorted(cfg.profiles.global_flags.get("data-root", ())))
    read = decision.spec if decision.spec is not None else read_spec(at.bundle)  # judge the spec read once
    spec = runtime_spec.nerdctls_own(read, os.path.realpath(cfg.nerdctl), at.namespace,
                                     at.container_id, data_roots)
    try:
        profile_check(cfg, decision.level, spec, decision.image or "-", decision.digest or "-", at, settings_)
    except Denied:
        _release_record(cfg, decision, at.container_id)
        raise


def _release_record(cfg: Any, decision: Decision, container_id: str) -> None:
    """Unbind the record a refused container has just claimed, so that the container the wrapper admitted
    still starts on it (whoever claims it next passes the same checks)."""
    from shim.admission import records

    token = next((c.get("token") for c in decision.checks if c.get("check") == "record"), None)
    rec = records.load(cfg.state_dir, token) if isinstance(token, str) else None
    if rec is not None and rec.container_id == container_id:
        rec.container_id = None
        records.save(cfg.state_dir, rec)


_PROC_NS = {"pid": "pid", "ipc": "ipc", "network": "net", "uts": "uts", "cgroup": "cgroup", "user": "user",
            "mount": "mnt"}


def is_host_namespace(kind: str, path: str) -> bool:
    """Whether the namespace at ``path`` is the host's (init's); one that cannot be looked at counts as
    the host's (fail closed: runc could not join it either)."""
    try:
        a = os.stat(path)
        b = os.stat(f"/proc/1/ns/{_PROC_NS.get(kind, kind)}")
    except OSError:
        return True
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def host_device(path: str) -> tuple[str, int, int] | None:
    """The host's device node at ``path`` as (``b``/``c``, major, minor); None when there is none (a symbolic
    link is followed, as runc's ``--device`` handling in containerd's clients does)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    kind = {0o060000: "b", 0o020000: "c"}.get(st.st_mode & 0o170000)
    return None if kind is None else (kind, os.major(st.st_rdev), os.minor(st.st_rdev))


def forget_decided(cfg: Any, at: Where) -> None:
    """Forget what was kept for an earlier container under this ID (before anything is decided)."""
    from shim.runtime import decided as runtime_decided

    try:
        runtime_decided.forget(cfg.state_dir, at.namespace, at.container_id)
    except OSError as e:
        raise Denied(f"cannot remove what the gate kept for an earlier container {at.container_id!r}: {e.strerror}",
                     check=LAYER, hint=f"check {cfg.state_dir}/{runtime_decided.DIR}") from e


def keep_decided(cfg: Any, at: Where, decision: Decision) -> None:
    """Keep the level the container is admitted at, for ``exec`` into it (:mod:`shim.runtime.decided`).
    Raises :class:`Denied`: a container whose level cannot be kept is not started."""
    from shim.runtime import decided as runtime_decided

    image = decision.image if decision.verdict is None else decision.verdict.image
    digest = decision.digest if decision.verdict is None else decision.verdict.digest
    try:
        kept = runtime_decided.Kept(namespace=at.namespace, container_id=at.container_id, level=decision.level,
                                    how=decision.how, image=image, digest=digest, bundle=str(at.bundle),
                                    spec=runtime_decided.spec_identity(at.bundle))
        runtime_decided.keep(cfg.state_dir, kept)
    except OSError as e:
        raise Denied(f"cannot keep the decision for exec into container {at.container_id!r}: {e.strerror}",
                     check=LAYER, image=image, digest=digest,
                     hint=f"check {cfg.state_dir}/{runtime_decided.DIR} (root's, mode 0700)") from e


# -- the decision, carried out ----------------------------------------------------------------------

def _audit_early(cfg: Any, args: Sequence[str], container_id: str, e: BaconError) -> None:
    from shim.admission import audit

    check = e.check if isinstance(e, Denied) else LAYER
    try:
        audit.record(cfg.audit_log, argv=["runc", *args], verdict="denied", image=None, digest=None, level=None,
                     system_level=None, checks=[], reason=e.message, failed_check=check, error=type(e).__name__,
                     layer=LAYER, container=container_id)
    except BaconError as audit_error:
        print(f"bacon: the refusal could not be audited: {audit_error.message}", file=sys.stderr)


def plan(args: Sequence[str]) -> tuple[str, list[str]]:
    """Decide the ``create``/``run`` in runc argv ``args`` (in this process, or in a ``bacon serve`` worker
    that took the caller's environment and working directory) and audit it: the real runc and the argv to
    exec it with. Raises :class:`BaconError` (a :class:`Denied` for a refusal), after auditing it."""
    from shim.admission import levels
    from shim.admission.context import Context, audit_decision
    from shim.admission.gate import check_state_dir
    from shim.common import config
    from shim.images import platforms
    from shim.images.hostplatform import this_host
    from shim.wrapper.nerdctl_env import Target

    call = runtime_argv.parse(args)
    if call.verb == "exec":
        from shim.runtime import exec as runtime_exec

        return runtime_exec.plan(args)
    if call.verb == "checkpoint":
        from shim.runtime import checkpoint as runtime_checkpoint

        return runtime_checkpoint.plan(args)
    if call.verb not in runtime_argv.GATED:
        raise Denied(f"runc {call.verb or '(no verb)'} is not decided by the runtime gate", check=LAYER)
    cfg = config.load()
    s = cfg.runtime
    try:
        at = where(call, os.getcwd())
        check_state_dir(Path(cfg.state_dir))
        forget_decided(cfg, at)
    except BaconError as e:  # not a containerd task (or no safe state): refused, and audited all the same
        _audit_early(cfg, args, call.container_id, e)
        raise
    umask = os.umask(0o022)
    target = Target(address=containerd_address(s, os.environ), namespace=at.namespace)
    host = this_host()
    ctx = Context(cfg=cfg, target=target, system_level=levels.system_level(cfg), argv=["runc", *args],
                  platform=platforms.default_spec(host), host=host)
    try:
        try:
            decision = decide_container(ctx, at)
            if decision.how == "record":
                record_profile_check(cfg, decision, at)
            measured = measure_launch(ctx, decision, at, args)
            keep_decided(cfg, at, decision)
        except BaconError as e:
            denial = e if isinstance(e, Denied) else Denied(e.message, check=LAYER, hint=e.hint)
            try:
                audit_decision(ctx, "denied", image=denial.image, digest=denial.digest, reason=denial.message,
                               failed_check=denial.check, error=type(e).__name__, layer=LAYER,
                               container=at.container_id, namespace=at.namespace)
            except BaconError as audit_error:
                print(f"bacon: the refusal could not be audited: {audit_error.message}", file=sys.stderr)
            raise denial from (e if denial is not e else None)
        extra = {"measured": measured.to_json()} if measured is not None else {}
        audit_decision(ctx, "admitted", image=decision.image, digest=decision.digest,
                       extra_checks=decision.checks, layer=LAYER, how=decision.how, container=at.container_id,
                       namespace=at.namespace, **extra)
    finally:
        os.umask(umask)
        ctx.close()
    return s.runc, list(args)
