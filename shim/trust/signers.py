"""Scoped trust applied to verified signatures: which configured signer made a signature, and whether its
scope and the repository's requirements let it vouch for an image (docs/scopes.md).

The rules are in :mod:`shim.trust.scopes` (pure); this module ties them to the configuration: a key-signed
signature belongs to the ``[trust] keys`` entry whose file it was loaded from, a keyless one to the
``[trust] identities`` entry that admitted its certificate. Standard library only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shim.common.config import Config, TrustedIdentity
from shim.trust import scopes

if TYPE_CHECKING:
    from shim.trust.keyless import Signer
    from shim.trust.keys import PublicKey
    from shim.trust.signatures import Judge, Verified


def key_signer(cfg: Config, key: PublicKey) -> scopes.SignerInfo:
    """The ``[trust] keys`` entry ``key`` was loaded from (by path); unscoped when none is (a key handed
    in another way, e.g. ``bacon verify --key``)."""
    for entry in cfg.key_entries:
        if str(entry.path) == key.name:
            shown = f"key {entry.path}" if entry.name == str(entry.path) else f"{entry.name} (key {entry.path})"
            return scopes.SignerInfo(name=entry.name, shown=shown, scope=entry.scope)
    return scopes.SignerInfo(name=key.name, shown=f"key {key.name}", scope=scopes.UNSCOPED)


def identity_signer(rule: TrustedIdentity, signer: Signer) -> scopes.SignerInfo:
    shown = signer.name if rule.alias is None else f"{rule.alias} ({signer.name})"
    return scopes.SignerInfo(name=rule.signer_name, shown=shown, scope=rule.scope)


def signer_of(cfg: Config, verified: Verified) -> scopes.SignerInfo:
    from shim.trust.keys import PublicKey

    s = verified.signer
    if isinstance(s, PublicKey):
        return key_signer(cfg, s)
    return identity_signer(s.rule, s)


def judge_for(cfg: Config, repository: str | None) -> Judge:
    """The :data:`shim.trust.signatures.Judge` for an image of ``repository`` under ``cfg``."""

    def judge(verified: Verified) -> tuple[str | None, scopes.SignerInfo]:
        info = signer_of(cfg, verified)
        return scopes.judge(info, repository, cfg.requirements), info

    return judge


def unscoped_signers(cfg: Config) -> list[str]:
    """Names of the trusted keys and identities with no scope (they vouch for any repository at any level)."""
    return ([k.name for k in cfg.key_entries if k.scope.unscoped]
            + [i.signer_name for i in cfg.identities if i.scope.unscoped])
