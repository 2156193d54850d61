"""``bacon verify IMAGE`` (the full decision, explained, nothing forwarded) and ``bacon sign IMAGE``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shim import config as bconfig
from shim import gate, levels, platforms
from shim import reference as nref
from shim.errors import BaconError, Denied, UsageError
from shim.nerdctl_env import resolve


def _context(args: argparse.Namespace, cfg: bconfig.Config) -> gate.Context:
    from shim.hostplatform import this_host

    host = this_host()
    platform = platforms.requested(getattr(args, "platform", None), host)
    return gate.Context(cfg=cfg, target=resolve(args.address, args.namespace), system_level=levels.system_level(cfg),
                        argv=["bacon", *sys.argv[1:]], platform=platform, host=host)


def cmd_verify(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    ctx = _context(args, cfg)
    doc: dict[str, object] = {"image": args.image, "system_level": ctx.system_level}
    try:
        try:
            subject = gate.find_image(ctx, args.image, args.pull)
        except BaconError as e:
            doc.update(admitted=False, error=e.message, hint=e.hint, checks=[])
            _print(args, doc)
            raise
        verdict = gate.decide(ctx, subject)
        doc.update(admitted=verdict.admitted, digest=verdict.digest, level=verdict.level,
                   source="local (containerd)" if subject.local else "registry",
                   checks=[o.as_dict() for o in verdict.outcomes])
        if verdict.denial is not None:
            doc.update(error=verdict.denial.message, hint=verdict.denial.hint)
        _print(args, doc)
        gate.audit_decision(ctx, "verify-admitted" if verdict.admitted else "verify-denied")
        verdict.raise_if_denied()
        return 0
    finally:
        ctx.close()


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
    verdict = "ADMITTED" if doc.get("admitted") else "DENIED"
    w(f"verdict       {verdict}\n")
    if doc.get("hint") and not doc.get("admitted"):
        w(f"fix           {doc['hint']}\n")


def cmd_sign(args: argparse.Namespace) -> int:
    from shim import imagewalk, keys, registry, signing

    cfg = bconfig.load()
    key_path = Path(args.key) if args.key else cfg.signing_key
    if key_path is None:
        raise UsageError("no signing key: pass --key or set [signing] key in the configuration")
    key = keys.load_signing_key_file(key_path)
    ctx = _context(args, cfg)
    try:
        ref = nref.parse(args.image)
        if ref.kind != "name":
            raise UsageError(f"{args.image}: give a repository name, the signature is stored next to the image")
        repo = registry.Repository(ref.domain, ref.path)
        if ref.digest:
            digest = ref.digest
        elif args.local:
            found = imagewalk.pick(ctx.containerd, args.image, str(ref), ctx.platform, ctx.host)
            if found is None:
                raise UsageError(f"image {args.image} is not present locally")
            digest = found.digest
        else:
            digest = ctx.registry.resolve(repo, ref.tag or "latest")
        signed = signing.sign(ctx.registry, repo, digest, key)
        gate.audit_decision(ctx, "signed", image=args.image, digest=digest,
                            extra_checks=[{"check": "sign", "passed": True, "key_id": signed.key_id,
                                           "signature_tag": signed.tag}])
    except Denied:
        raise
    finally:
        ctx.close()
    doc = {"image": args.image, "digest": digest, "signature_tag": signed.tag, "layers": signed.layers,
           "key_id": signed.key_id}
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"signed {repo}@{digest}\n  signature {repo}:{signed.tag} ({signed.layers} signature(s)), "
              f"key {signed.key_id}")
    return 0
