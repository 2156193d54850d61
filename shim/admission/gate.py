"""The admission gate: for a command that brings in or starts a container, find exactly the image
nerdctl will use, decide (``shim.admission.decision``), audit, and hand nerdctl an argv pinned to what was checked.

The entry of the gate: :func:`admit_and_exec`, :func:`plan` (for the decision service), :func:`abandon`,
and what wraps every plan (the state directory checked, the umask, the audit line of a denial, the launch
measured). Its parts, in the order of the flow: ``shim.admission.context`` (what a decision works in),
``finding`` (the image nerdctl will use, and its pin), ``image_checks`` (signatures, host checks, the
verdict), ``plans`` (the argv each command gets). The rule lives in ``shim.admission.decision``. Per command:

- ``run``/``create``: the local record nerdctl would pick (``shim.images.imagewalk``) unless ``--pull=always`` or
  nothing local matches, then the registry. Forwarded as ``--pull=never … -- sha256:<digest>`` for a
  local image (after checking that no forged name can divert that lookup) or ``--pull=missing …
  -- repo@sha256:<digest>`` otherwise, plus ``--label=bacon/admission=<token>`` for ``start``.
  ``--mount type=image,source=…`` images are decided the same way and pinned too.
- ``start``/``restart``: the container's admission record (``shim.admission.records``) names the digest.
- ``pull``: resolved at the registry; nerdctl pulls ``repo@digest`` and the wrapper then tags it with
  the name asked for, so the tag points at what was checked. Signatures are kept for offline ``run``.
- ``push``: forwarded, then the pushed digest is signed in cosign's classic format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from shim.admission import audit, levels, records
from shim.admission import decision as admission
from shim.admission.context import Context, audit_decision
from shim.admission.plans import BUILDS, do_push, gate_build, gate_pull, gate_run, gate_start
from shim.common.config import Config
from shim.common.errors import BaconError, ConfigError, Denied, NotFound, Unavailable, UsageError
from shim.images import platforms
from shim.images.hostplatform import this_host
from shim.wrapper import argv as nargv
from shim.wrapper.exec import carry_out, check_real_nerdctl, run_real
from shim.wrapper.nerdctl_env import resolve


def check_state_dir(path: Path) -> None:
    """The state directory holds admission records, the level set by ``bacon policy set`` and kept
    signatures: like the configuration, it must belong to root (or the effective user) and be writable by
    nobody else, or whoever can write it decides. A missing one is created on first write."""
    from shim.common import trustedfile

    trustedfile.check_directory(path, "the state directory")


T = TypeVar("T")


def admit_and_exec(cfg: Config, inv: nargv.Invocation, raw_args: list[str]) -> int:
    """Decide the gated invocation ``inv``; exec the real nerdctl when admitted. Raises on denial."""
    if inv.command == "push":
        return _with_context(cfg, inv, raw_args, lambda ctx: do_push(ctx, inv))
    if inv.command in BUILDS:
        import shutil
        import tempfile

        # The pinned copy lives under the state directory (root's, checked), never in a TMPDIR the caller
        # names: whoever can rename a directory above it could swap the copy before BuildKit reads it.
        check_state_dir(Path(cfg.state_dir))
        builds = Path(cfg.state_dir) / "builds"
        builds.mkdir(mode=0o700, parents=True, exist_ok=True)
        workdir = tempfile.mkdtemp(prefix="bacon-build-", dir=builds)  # 0700
        try:
            forward, _ = _with_context(cfg, inv, raw_args, lambda ctx: _plan(ctx, inv, workdir=workdir))
            return run_real(cfg.nerdctl, forward)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    forward, then = plan(cfg, inv, raw_args)
    return carry_out(cfg.nerdctl, forward, then)


def plan(cfg: Config, inv: nargv.Invocation, raw_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """Decide ``inv`` (one of :data:`shim.wrapper.argv.grammar.PLANNED`) and audit the decision: the argv the real
    nerdctl is to run, pinned, and the commands to run after it (``pull``: tag the pinned digest). Raises on
    denial. Nothing is executed here: :func:`carry_out` does that (in this process, or in the wrapper a
    warm :mod:`shim.service.server` answered)."""
    return _with_context(cfg, inv, raw_args, lambda ctx: _plan(ctx, inv))


def _with_context(cfg: Config, inv: nargv.Invocation, raw_args: list[str], body: Callable[[Context], T]) -> T:
    check_state_dir(Path(cfg.state_dir))
    check_real_nerdctl(cfg.nerdctl)  # before deciding: an admission that cannot be carried out is not audited
    # What BACON creates (state and audit directories, records, kept signatures) is never writable by
    # others, whatever the caller's umask; nerdctl gets the caller's umask back.
    callers_umask = os.umask(0o022)
    target = resolve(inv.address, inv.namespace)
    host = this_host()
    platform = platforms.requested(inv.platform, host)
    ctx = Context(cfg=cfg, target=target, system_level=levels.system_level(cfg), argv=["nerdctl", *raw_args],
                  platform=platform, host=host)
    try:
        return body(ctx)
    finally:
        os.umask(callers_umask)
        ctx.close()


def _plan(ctx: Context, inv: nargv.Invocation, *, workdir: str | None = None) -> tuple[list[str], list[list[str]]]:
    try:
        then: list[list[str]] = []
        if inv.command in ("run", "create"):
            forward = gate_run(ctx, inv)
        elif inv.command in BUILDS and workdir is not None:
            forward = gate_build(ctx, inv, workdir)
        elif inv.command in ("start", "restart"):
            forward = gate_start(ctx, inv)
        elif inv.command == "pull":
            forward, then = gate_pull(ctx, inv)
        else:
            raise Denied(f"the gate does not handle {inv.command!r}", check="argv")
    except BaconError as e:
        denial = e if isinstance(e, Denied) else Denied(e.message, check=_failed_check(ctx, e), hint=e.hint)
        if isinstance(denial, Denied):
            denial.image = denial.image or inv.image or (ctx.verdicts[-1].image if ctx.verdicts else None)
            denial.digest = denial.digest or (ctx.verdicts[-1].digest if ctx.verdicts else None)
        # Not decided (an image not found, a service down before any check ran, a file it trusts that cannot
        # be trusted: the configuration's fault, 78): the audit says "error" with the exit status the command
        # gets, never "denied" beside a 64, a 69 or a 78.
        undecided = isinstance(e, ConfigError) or (isinstance(e, UsageError | NotFound | Unavailable)
                                                   and not ctx.verdicts)
        audit_decision(ctx, "error" if undecided else "denied", image=denial.image, digest=denial.digest,
                       reason=denial.message, failed_check=denial.check, error=type(e).__name__,
                       exit_code=e.exit_code if undecided else denial.exit_code)
        if undecided:
            raise
        raise denial from (e if denial is not e else None)
    try:
        measured = measure_launches(ctx, inv.command, forward)
    except Denied as e:
        for token in ctx.new_records:
            records.remove(ctx.cfg.state_dir, token)
        audit_decision(ctx, "denied", image=e.image, digest=e.digest, reason=e.message, failed_check=e.check,
                       error="Denied")
        raise
    try:
        audit_decision(ctx, "admitted", forwarded=forward,
                       **({"measured": measured.to_json()} if measured is not None else {}))
    except BaseException:
        for token in ctx.new_records:  # not carried out: leave no record a container could claim
            records.remove(ctx.cfg.state_dir, token)
        raise
    return forward, then


def abandon(cfg: Config, raw_args: list[str], forward: list[str]) -> None:
    """A decided plan that was not carried out: remove the admission records its argv carries (so that no
    later ``start`` can claim them) and audit what happened (the decision's own line stands before it)."""
    marker = f"{records.LABEL}="
    tokens = [arg.split(marker, 1)[1] for arg in forward if marker in arg]
    for token in tokens:
        records.remove(cfg.state_dir, token)
    audit.record(cfg.audit_log, argv=["nerdctl", *raw_args], verdict="abandoned", image=None, digest=None,
                 level=None, system_level=None, checks=[], forwarded=forward, removed_records=tokens,
                 reason="the caller left before carrying out the decision; nothing was run")


def launch_signer(verdict: admission.Verdict) -> str:
    """Who signed the admitted image, as the launch log names it: ``key:<id>`` or ``identity:<SAN> (<issuer>)``."""
    for o in verdict.outcomes:
        if o.check == "signature" and o.passed:
            if "key_id" in o.details:
                return f"key:{o.details['key_id']}"
            if "identity" in o.details:
                return f"identity:{o.details['identity']} ({o.details.get('issuer', '')})"
    return "unknown"


def measure_launches(ctx: Context, command: str, forward: Sequence[str]) -> Any:
    """Log and extend each admitted launch (``[measure]``) before nerdctl runs: :func:`shim.attest.measure.launches`.
    ``None`` when nothing is measured. Raises :class:`Denied` (check ``measure``)."""
    if not ctx.launches or not ctx.cfg.measure.enabled:
        return None
    from shim.attest import measure

    at = measure.now()
    events = [measure.LaunchEvent(source="wrapper", command=command, image=ln.verdict.image,
                                  digest=ln.verdict.digest, signer=launch_signer(ln.verdict),
                                  level=ln.verdict.level or "", argv=("nerdctl", *forward), time=at,
                                  container_id=ln.container_id, token=ln.token, namespace=ctx.target.namespace,
                                  profile=ctx.cfg.profiles.profile(ln.verdict.level) if ln.verdict.level else None)
              for ln in ctx.launches]
    return measure.launches(ctx.cfg, events)


def _failed_check(ctx: Context, e: BaconError) -> str:
    if ctx.verdicts and ctx.verdicts[-1].outcomes:
        return ctx.verdicts[-1].outcomes[-1].check
    return "image"
