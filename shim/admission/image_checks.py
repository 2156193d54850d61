"""The checks of one image, and its verdict: the signatures (kept material first, then the image's
registry; every time verified again), the host checks its level may require (TPM, TDX), and
:func:`check_image` running the pure decision (``shim.admission.decision``) over them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from shim.admission import decision as admission
from shim.admission import levels
from shim.admission.checks import CheckResult
from shim.admission.context import Context, Subject
from shim.common.config import require_for
from shim.common.errors import Denied, IntegrityError, Unavailable
from shim.trust import cache as signature_cache
from shim.trust.signatures import Material


def _digests(subject: Subject) -> list[str]:
    return [subject.digest] + ([subject.platform_digest] if subject.platform_digest else [])


def _cached(ctx: Context, subject: Subject) -> list[Material]:
    """Signature material kept for the subject's digest(s) (at an earlier pull or decision)."""
    out = []
    for d in _digests(subject):
        try:
            m = signature_cache.load(ctx.cfg.state_dir, d)
        except IntegrityError as e:
            if subject.repository is None:
                raise IntegrityError(e.message, hint="remove the damaged entry and pull the image again through "
                                                     "the nerdctl wrapper, so its signatures are fetched anew") from e
            continue  # a damaged entry only costs a fetch: the registry's material is verified and kept instead
        if m is not None and not m.empty:
            out.append(m)
    return out


def _fetched(ctx: Context, subject: Subject) -> list[Material]:
    """Signature material from the image's registry (referrers, fallback tag, classic ``.sig``)."""
    if subject.repository is None:
        raise Unavailable(f"no signatures are kept for {subject.digest} and the image names no registry "
                          "to fetch them from", hint="pull the image through the nerdctl wrapper")
    from shim.images import registry
    from shim.trust.registry_signatures import fetch_signatures

    repo = registry.Repository.of(subject.repository)
    return [fetch_signatures(ctx.registry, repo, d) for d in _digests(subject)]


def _keep(ctx: Context, materials: Sequence[Material]) -> None:
    for m in materials:
        if not m.empty:
            try:
                signature_cache.store(ctx.cfg.state_dir, m)
            except OSError as e:
                raise Unavailable(f"cannot keep signatures under {ctx.cfg.state_dir}: {e.strerror}") from e


def signature_check(ctx: Context, subject: Subject) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from shim.trust import keys, signatures, signers

        trusted = keys.load_trusted_keys(list(ctx.cfg.trusted_keys), allowed=ctx.cfg.key_types)
        keyless = (signatures.KeylessTrust(ctx.cfg.identities, ctx.cfg.trusted_root)
                   if ctx.cfg.identities and ctx.cfg.trusted_root else None)
        judge = signers.judge_for(ctx.cfg, subject.repository)  # scoped signers (docs/scopes.md)
        # The cache only saves fetching: whatever it holds is verified again, every time.
        materials = _cached(ctx, subject)
        try:
            verified = signatures.verify(materials, trusted, keyless=keyless, judge=judge) if materials else None
        except Denied:
            if subject.repository is None:
                raise
            verified = None  # kept material no longer passes (a key rotated?): ask the registry
        if verified is None:
            materials = _fetched(ctx, subject)
            verified = signatures.verify(materials, trusted, keyless=keyless, judge=judge)
            # What verified, not all that was fetched (up to the limits' totals of a hostile repository's
            # bytes, read back at every later decision); what came from the cache is kept already.
            kept = signatures.evidence_of(materials, verified)
            _keep(ctx, [kept] if kept is not None else [])
        return verified.check_result()

    return run


# -- host checks --------------------------------------------------------------------------------------

def host_checks(ctx: Context, digest: str) -> dict[str, Callable[[], CheckResult]]:
    def tpm() -> CheckResult:
        from shim.attest.tpm.check import run_tpm_check

        launches = ctx.cfg.measure
        return run_tpm_check(ctx.cfg.tpm, Path(ctx.cfg.state_dir), launch_pcr=launches.pcr if launches.tpm else None)

    def tdx() -> CheckResult:
        from shim.attest.tdx.check import report_data_for, run_tdx_check

        nonce = secrets.token_bytes(32)
        return run_tdx_check(ctx.cfg.tdx, report_data_for(nonce, digest))

    return {"tpm": tpm, "tdx": tdx}


def check_image(ctx: Context, subject: Subject) -> admission.Verdict:
    verdict = admission.decide_admission(
        image=subject.asked, digest=subject.digest, system_level=ctx.system_level,
        default_level=ctx.cfg.default_level,
        require={lvl: require_for(ctx.cfg, lvl) for lvl in levels.RANK},
        signature=signature_check(ctx, subject), labels=subject.labels,
        host_checks=host_checks(ctx, subject.digest),
    )
    ctx.verdicts.append(verdict)
    return verdict
