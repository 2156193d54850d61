"""What one admission decision works in: the :class:`Context` (configuration, containerd target, the host's
platform, the registry session, the verdicts so far), the :class:`Subject` an image becomes once found, the
:class:`Launch` to measure once admitted, where registry TLS roots and credentials come from, and the
audit line the decision ends with (:func:`audit_decision`).

Part of the admission gate (``shim.admission.gate``): this module holds its data; ``finding`` finds the
image, ``image_checks`` decides it, ``plans`` turns a command into the argv nerdctl runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shim.admission import audit
from shim.admission import decision as admission
from shim.common.config import Config
from shim.images import oci, platforms
from shim.images.containerd import Client
from shim.wrapper.nerdctl_env import Target


@dataclass(frozen=True)
class Subject:
    """An image to decide: what the operator named, the digest nerdctl will use, where its signatures
    and content live, and how to read its labels."""

    asked: str
    digest: str
    repository: str | None  # host/path at the registry, for signatures
    platform_digest: str | None  # the platform manifest, when ``digest`` is an index
    labels: Callable[[], Mapping[str, str]]
    local: bool
    # Other manifests of a local index that nerdctl's matcher could take on this host: each must pass too,
    # since a local image is forwarded by its index digest and nerdctl chooses again (docs/platforms.md).
    alternatives: tuple[Subject, ...] = ()
    # The chain IDs of the layers of the manifest nerdctl runs (shim.images.rootfs.layer_chain), for the
    # admission record; None when not known. Read from the same digest-checked config as the labels.
    layers: Callable[[], tuple[str, ...] | None] = lambda: None

    @property
    def pin_digest(self) -> str:
        """What nerdctl is handed: the platform manifest chosen from a registry's index (so that nothing
        is chosen again), the local image's own target otherwise."""
        return self.digest if self.local or self.platform_digest is None else self.platform_digest


@dataclass(frozen=True)
class Launch:
    """An admitted launch to measure: the verdict on its image, and what identifies the container."""

    verdict: admission.Verdict
    token: str | None = None
    container_id: str | None = None


@dataclass
class Context:
    cfg: Config
    target: Target
    system_level: str
    argv: Sequence[str]
    platform: oci.Platform
    host: platforms.Host
    _client: Client | None = None
    _registry: Any = None
    verdicts: list[admission.Verdict] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)  # the profile decision, for the audit line
    new_records: list[str] = field(default_factory=list)  # tokens written by this decision
    launches: list[Launch] = field(default_factory=list)  # what to measure once admitted

    @property
    def containerd(self) -> Client:
        if self._client is None:
            self._client = Client(self.target)
        return self._client

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from shim.images import registry
            from shim.images.credentials import DockerCredentials

            self._registry = registry.Client(insecure=self.cfg.insecure_registries,
                                             credentials=DockerCredentials(environ=credential_environ()),
                                             endpoints=self.cfg.registry_endpoints, ssl_context=tls_context())
        return self._registry

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._registry is not None:
            self._registry.close()


def tls_context() -> Any:
    """The CAs registries are verified against. Normally ``None`` (the registry client's default
    context). Under sudo, only the system's compiled-in CA file and directory: the default context would
    also honour the caller's ``SSL_CERT_FILE``/``SSL_CERT_DIR``, letting them vouch for any registry."""
    from shim.common.config import under_sudo

    if not under_sudo():
        return None
    import ssl

    paths = ssl.get_default_verify_paths()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and CERT_REQUIRED
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile, capath=capath)
    return ctx


def credential_environ() -> dict[str, str]:
    """Where registry credentials are read from: the caller's ``DOCKER_CONFIG``/``HOME`` normally; under
    sudo only the effective user's home (the caller's environment must not change anything)."""
    from shim.common.config import under_sudo

    if not under_sudo():
        return dict(os.environ)
    import pwd

    return {"HOME": pwd.getpwuid(os.geteuid()).pw_dir}


def audit_decision(ctx: Context, verdict_word: str, *, image: str | None = None, digest: str | None = None,
                   level: str | None = None, extra_checks: Sequence[Mapping[str, Any]] = (), **extra: Any) -> None:
    """One audit line for the decision in ``ctx``; ``layer`` says who decided: ``wrapper`` (the nerdctl
    wrapper, the default) or ``runtime`` (the runtime gate, ``shim.runtime.gate``)."""
    extra.setdefault("layer", "wrapper")
    checks: list[Mapping[str, Any]] = []
    for v in ctx.verdicts:
        for o in v.outcomes:
            checks.append({"image": v.image, "digest": v.digest, **o.as_dict()})
    checks.extend(extra_checks)
    extra = {**ctx.profile, **extra}
    first = ctx.verdicts[0] if ctx.verdicts else None
    audit.record(ctx.cfg.audit_log, argv=list(ctx.argv), verdict=verdict_word,
                 image=image or (first.image if first else None), digest=digest or (first.digest if first else None),
                 level=level or (first.level if first else None), system_level=ctx.system_level, checks=checks,
                 **extra)
