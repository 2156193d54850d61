"""``bacon verify IMAGE`` (the full decision, explained, nothing forwarded) and ``bacon sign IMAGE``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shim.admission import levels
from shim.admission.context import Context, audit_decision
from shim.admission.finding import find_image, remote_subject
from shim.admission.image_checks import check_image
from shim.common import config as bconfig
from shim.common.errors import BaconError, Denied, UsageError
from shim.images import platforms
from shim.images import reference as nref
from shim.wrapper.nerdctl_env import resolve


def _context(args: argparse.Namespace, cfg: bconfig.Config) -> Context:
    from shim.images.hostplatform import this_host

    host = this_host()
    platform = platforms.requested(getattr(args, "platform", None), host)
    return Context(cfg=cfg, target=resolve(args.address, args.namespace), system_level=levels.system_level(cfg),
                   argv=["bacon", *sys.argv[1:]], platform=platform, host=host)


def cmd_verify(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    ctx = _context(args, cfg)
    doc: dict[str, object] = {"image": args.image, "system_level": ctx.system_level}
    try:
        try:
            subject = find_image(ctx, args.image, args.pull)
        except BaconError as e:
            doc.update(admitted=False, error=e.message, hint=e.hint, checks=[])
            _print(args, doc)
            raise
        verdict = check_image(ctx, subject)
        for other in subject.alternatives:  # a stored index: every manifest nerdctl could take must pass
            if verdict.admitted:
                alternative = check_image(ctx, other)
                verdict = verdict if alternative.admitted else alternative
        doc.update(admitted=verdict.admitted, digest=verdict.digest, level=verdict.level,
                   source="local (containerd)" if subject.local else "registry",
                   checks=[o.as_dict() for o in verdict.outcomes])
        if verdict.denial is not None:
            doc.update(error=verdict.denial.message, hint=verdict.denial.hint)
        refusal = _profile(args, cfg, ctx, verdict.level, doc)
        _print(args, doc)
        audit_decision(ctx, "verify-admitted" if doc["admitted"] else "verify-denied")
        verdict.raise_if_denied()
        if refusal is not None:
            refusal.image, refusal.digest = args.image, verdict.digest
            raise refusal
        return 0
    finally:
        ctx.close()


def _profile(args: argparse.Namespace, cfg: bconfig.Config, ctx: Context, level: str | None,
             doc: dict[str, object]) -> Denied | None:
    """The container profile's verdict on ``nerdctl run RUN_OPTIONS IMAGE`` (the image's level; the system
    level's when the image's is unknown); the denial it would raise, if any."""
    from shim.admission.profiles import enforce
    from shim.wrapper import argv as nargv

    inv = nargv.parse(["run", *args.run_options, "--", args.image])
    if inv.command != "run" or inv.image != args.image:
        raise UsageError(f"RUN_OPTIONS {args.run_options!r} are not options of nerdctl run",
                         hint="bacon verify IMAGE -- --read-only -p 8080:80")
    settings, refused = enforce.judge(cfg, inv, level or ctx.system_level)
    ctx.profile = enforce.audit_fields(settings, refused)
    doc["profile"] = {"profile": settings.profile, "level": settings.level,
                      "refused_options": [r.as_dict() for r in refused]}
    if not refused:
        return None
    err = enforce.denial(cfg, settings, refused)
    doc["admitted"] = False
    doc.setdefault("error", err.message)
    doc.setdefault("hint", err.hint)
    return err


def _print(args: argparse.Namespace, doc: dict[str, object]) -> None:
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return
    w = sys.stdout.write
    w(f"image         {doc['image']}\n")
    if "digest" in doc:
        w(f"digest        {doc['digest']}  ({doc.get('source')})\n")
    w(f"system level  {doc['system_level']}\n")
    checks = doc.get("checks") or []
    assert isinstance(checks, list)
    for c in checks:
        mark = "pass" if c["passed"] else "FAIL"
        w(f"  [{mark}] {c['check']:<9} {c['summary']}\n")
        if c.get("scope"):
            w(f"              signer {c.get('signer')}, scope {c['scope']}\n")
        for k, v in sorted((c.get("annotations") or {}).items()):
            w(f"              {k} = {v}\n")
    prof = doc.get("profile")
    if isinstance(prof, dict):
        refused = prof["refused_options"]
        head = f"{prof['profile']} (level {prof['level']})"
        if not refused:
            w(f"  [pass] profile   {head}: nothing refused\n")
        for r in refused:
            w(f"  [FAIL] profile   {head} refuses {r['option']} ({r['rule']}: {r['reason']}); allow with: "
              f"{r['allow']}\n")
    verdict = "ADMITTED" if doc.get("admitted") else "DENIED"
    w(f"verdict       {verdict}\n")
    if doc.get("hint") and not doc.get("admitted"):
        w(f"fix           {doc['hint']}\n")


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign an image's digest, as push does: the key's password supplied now, the signer's scope covering
    the repository and the image's level, provenance annotations (:mod:`shim.trust.possession`)."""
    from shim.images import imagewalk, registry
    from shim.trust import keys, possession, signing

    cfg = bconfig.load()
    key_path = Path(args.key) if args.key else cfg.signing_key
    if key_path is None:
        raise UsageError("no signing key: pass --key or set [signing] key in the configuration")
    key = possession.open_signing_key(key_path, unattended=cfg.signing_unattended)
    ctx = _context(args, cfg)
    try:
        ref = nref.parse(args.image)
        if ref.kind != "name":
            raise UsageError(f"{args.image}: give a repository name, the signature is stored next to the image")
        repo = registry.Repository.of(ref)
        if args.local:
            found = imagewalk.pick(ctx.containerd, args.image, str(ref), ctx.platform, ctx.host)
            if found is None:
                raise UsageError(f"image {args.image} is not present locally")
            if ref.digest and found.digest != ref.digest:
                raise UsageError(f"the local {args.image} is {found.digest}")
            digest, labels = found.digest, dict(found.labels)
        else:
            subject = remote_subject(ctx, args.image)  # digest-checked manifest and config
            digest, labels = subject.digest, dict(subject.labels())
        level = levels.image_level(labels, cfg.default_level).level
        trusted = keys.load_trusted_keys(list(cfg.trusted_keys), allowed=cfg.key_types)
        possession.check_can_vouch(possession.signer_scope(cfg, key.public_key(), trusted), ref.name, level,
                                   cfg.requirements, args.image)
        annotations = possession.provenance(level)
        signed = signing.sign(ctx.registry, repo, digest, key, annotations=annotations)
        audit_decision(ctx, "signed", image=args.image, digest=digest, level=level,
                       extra_checks=[{"check": "sign", "passed": True, "key_id": signed.key_id,
                                      "signature_tag": signed.tag, "annotations": annotations}])
    finally:
        ctx.close()
    doc = {"image": args.image, "digest": digest, "signature_tag": signed.tag, "layers": signed.layers,
           "key_id": signed.key_id, "annotations": annotations}
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"signed {repo}@{digest}\n  signature {repo}:{signed.tag} ({signed.layers} signature(s)), "
              f"key {signed.key_id}\n  vouches for level {level}")
    return 0
