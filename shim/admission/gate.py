"""The admission gate: for a command that brings in or starts a container, find exactly the image
nerdctl will use, decide (``shim.admission.decision``), audit, and hand nerdctl an argv pinned to what was checked.

IO lives here and in the modules it calls (containerd, registry, signature cache, TPM, TDX); the rule
lives in ``shim.admission.decision``. Per command:

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
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from shim.admission import audit, levels, records
from shim.admission import decision as admission
from shim.admission.checks import CheckResult
from shim.common.config import Config, require_for
from shim.common.errors import BaconError, ConfigError, Denied, IntegrityError, NotFound, Unavailable, UsageError
from shim.images import imagewalk, oci, platforms, rootfs
from shim.images import reference as nref
from shim.images.containerd import Client, ContainerRecord, ResolvedImage
from shim.images.hostplatform import this_host
from shim.trust import cache as signature_cache
from shim.trust.signatures import Material
from shim.wrapper import argv as nargv
from shim.wrapper.exec import carry_out, check_real_nerdctl, run_real
from shim.wrapper.nerdctl_env import Target, resolve


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

            self._registry = registry.Client(insecure=self.cfg.insecure_registries,
                                             credentials=registry.DockerCredentials(environ=credential_environ()),
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


# -- signatures ---------------------------------------------------------------------------------------

def _repository(name: str) -> Any:
    from shim.images import registry

    ref = nref.parse(name)
    return registry.Repository(ref.domain, ref.path)


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

    repo = _repository(subject.repository)
    return [registry.fetch_signatures(ctx.registry, repo, d) for d in _digests(subject)]


def _keep(ctx: Context, materials: Sequence[Material]) -> None:
    for m in materials:
        if not m.empty:
            try:
                signature_cache.store(ctx.cfg.state_dir, m)
            except OSError as e:
                raise Unavailable(f"cannot keep signatures under {ctx.cfg.state_dir}: {e.strerror}") from e


def signature_check(ctx: Context, subject: Subject) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from shim.trust import keys, signatures
        from shim.trust import signers as trustpolicy

        trusted = keys.load_trusted_keys(list(ctx.cfg.trusted_keys), allowed=ctx.cfg.key_types)
        keyless = (signatures.KeylessTrust(ctx.cfg.identities, ctx.cfg.trusted_root)
                   if ctx.cfg.identities and ctx.cfg.trusted_root else None)
        judge = trustpolicy.judge_for(ctx.cfg, subject.repository)  # scoped signers (docs/scopes.md)
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
            _keep(ctx, materials)  # what came from the cache is already kept: no rewrite (and fsync) per run
        return verified.check_result()

    return run


# -- host checks --------------------------------------------------------------------------------------

def host_checks(ctx: Context, digest: str) -> dict[str, Callable[[], CheckResult]]:
    def tpm() -> CheckResult:
        from shim.attest import measure
        from shim.attest.tpm.check import run_tpm_check

        launches = measure.parse(ctx.cfg.sections.get("measure", {}))
        return run_tpm_check(ctx.cfg.sections.get("tpm", {}), Path(ctx.cfg.state_dir),
                             launch_pcr=launches.pcr if launches.tpm else None)

    def tdx() -> CheckResult:
        from shim.attest.tdx.check import report_data_for, run_tdx_check

        nonce = secrets.token_bytes(32)
        return run_tdx_check(ctx.cfg.sections.get("tdx", {}), report_data_for(nonce, digest))

    return {"tpm": tpm, "tdx": tdx}


def decide(ctx: Context, subject: Subject) -> admission.Verdict:
    verdict = admission.decide(
        image=subject.asked, digest=subject.digest, system_level=ctx.system_level,
        default_level=ctx.cfg.default_level,
        require={lvl: require_for(ctx.cfg, lvl) for lvl in levels.RANK},
        signature=signature_check(ctx, subject), labels=subject.labels,
        host_checks=host_checks(ctx, subject.digest),
    )
    ctx.verdicts.append(verdict)
    return verdict


# -- finding the image --------------------------------------------------------------------------------

def local_subject(ctx: Context, asked: str, resolved: ResolvedImage, *,
                  platform: oci.Platform | None = None) -> Subject:
    """The subject for a local record; for an index, with every other manifest nerdctl's matcher could
    take (``platform``: the one asked for, default the context's)."""
    name = resolved.record.name
    repo = None
    try:
        repo = nref.parse(name).name or None
    except UsageError:
        repo = None

    def one(r: ResolvedImage, alternatives: tuple[Subject, ...] = ()) -> Subject:
        platform_digest = r.manifest.digest if r.manifest.digest != r.digest else None
        labels = dict(r.labels)
        return Subject(asked=asked, digest=r.digest, repository=repo, platform_digest=platform_digest,
                       labels=lambda: labels, local=True, alternatives=alternatives)

    others: tuple[Subject, ...] = ()
    if resolved.record.target.media_type in oci.INDEX_TYPES:
        every = ctx.containerd.candidate_images(resolved.record, platform or ctx.platform, ctx.host)
        others = tuple(one(c) for c in every if c.manifest.digest != resolved.manifest.digest)
    return one(resolved, others)


def remote_subject(ctx: Context, asked: str) -> Subject:
    """Resolve ``asked`` at its registry: digest, platform manifest, config labels (all digest-checked)."""
    from shim.images import registry

    ref = nref.parse(asked)
    if ref.kind == "digest":
        raise NotFound(f"image {asked} is not present locally and a bare digest names no registry",
                       hint="pull it by name first: nerdctl pull REPOSITORY@sha256:…")
    repo = registry.Repository(ref.domain, ref.path)
    top = ctx.registry.get_manifest(repo, ref.digest or ref.tag or "latest")
    if ref.digest and top.digest != ref.digest:
        raise IntegrityError(f"the registry served {top.digest} for {asked}")
    platform_digest = None
    manifest_bytes = top.data
    mt = oci.media_type_of(top.data, top.media_type)
    if mt in oci.INDEX_TYPES:
        fetched: dict[str, bytes] = {top.digest: top.data}

        def fetch(d: oci.Descriptor) -> bytes:
            if d.digest not in fetched:
                data = ctx.registry.get_manifest(repo, d.digest).data
                oci.verify_digest(data, d.digest, f"manifest {d.digest} of {asked}")  # listed by the index
                fetched[d.digest] = data
            return fetched[d.digest]

        def config_platform(d: oci.Descriptor) -> oci.Platform:
            m = oci.parse_manifest(fetch(d))
            raw = ctx.registry.get_blob(repo, m.config.digest, oci.MAX_CONFIG_BYTES)
            return oci.parse_config(raw).platform

        top_desc = oci.Descriptor(mt, top.digest, len(top.data))
        try:
            chosen = platforms.choose(top_desc, platforms.pull_matcher(ctx.platform, ctx.host),
                                      lambda d: oci.parse_index(fetch(d)), config_platform)
        except NotFound as e:
            offered = ", ".join(sorted({str(d.platform) for d in oci.parse_index(top.data).manifests if d.platform}))
            raise NotFound(f"{asked}: {e.message} {ctx.platform} (it offers: {offered or 'none'})",
                           hint="pass --platform for one it offers") from e
        platform_digest = chosen.manifest.digest
        manifest_bytes = fetch(chosen.manifest)
    manifest = oci.parse_manifest(manifest_bytes)

    def labels() -> Mapping[str, str]:
        raw = ctx.registry.get_blob(repo, manifest.config.digest, oci.MAX_CONFIG_BYTES)
        return oci.parse_config(raw).labels

    return Subject(asked=asked, digest=top.digest, repository=ref.name,
                   platform_digest=platform_digest, labels=labels, local=False)


def find_image(ctx: Context, asked: str, pull: str) -> Subject:
    """The image nerdctl would use for ``asked`` under pull policy ``pull`` (always|missing|never)."""
    if pull not in ("always", "missing", "never"):
        raise UsageError(f"--pull must be always, missing or never, got {pull!r}")
    special = nref.special_kind(asked)
    if special:
        raise Denied(f"{special} references cannot be checked", check="image", image=asked,
                     hint="pull the image from a registry by name so its signature can be verified")
    if pull != "always":
        try:
            normalized = str(nref.parse(asked))
        except UsageError:
            normalized = None
        found = imagewalk.pick(ctx.containerd, asked, normalized, ctx.platform, ctx.host)
        if found is not None:
            return local_subject(ctx, asked, found)
        if pull == "never":
            raise NotFound(f"image {asked} is not present locally (and --pull=never)",
                           hint=f"nerdctl pull {asked}")
    return remote_subject(ctx, asked)


def pinned(ctx: Context, subject: Subject, *, digest: str | None = None) -> str:
    """The reference nerdctl is handed for a decided subject: ``digest``, by default
    :attr:`Subject.pin_digest`.

    What the pin can and cannot hold: nerdctl looks a reference up by name as well as by digest (its
    imagewalker asks for ``name==REF``, ``name==<REF normalized>`` and targets starting with REF), and image
    names are mutable: a `tag` or `load` (forwarded, as they neither bring in a registry image nor start a
    container) run by anyone between this check and nerdctl's own lookup could make ``sha256:<digest>`` or
    ``repo@sha256:<digest>`` name other content; every reference nerdctl accepts has such names, so no pin
    is tighter. The check below refuses such names present now; what a race could still create is caught
    on the container, which records the checked digest: ``start``/``restart`` through the wrapper and the
    runtime gate at ``create`` admit a recorded container only if its rootfs snapshot descends from the
    checked image's layers (``shim.images.rootfs``). Without the runtime gate, a ``run`` that lost such a race
    runs once, and its container can never be started again through BACON. Content with the same layers
    and another image configuration is not told apart by the rootfs: the same files, with an entrypoint,
    environment, working directory or user that `run` flags could have set as well (a profile that judges
    the image's user would see the checked image's, not the one run)."""
    if subject.local:
        imagewalk.check_pinned(ctx.containerd, subject.digest)
        return imagewalk.pinned_reference(subject.digest)
    assert subject.repository is not None
    digest = digest or subject.pin_digest
    pin = f"{subject.repository}@{digest}"
    stale = [r for r in imagewalk.matches(ctx.containerd, pin, pin) if r.target.digest != digest]
    if stale:
        raise Denied(f"a local image named {stale[0].name} points at {stale[0].target.digest}, not at the "
                     "checked digest", check="image", image=subject.asked, digest=subject.digest,
                     hint=f"remove it with `nerdctl rmi {stale[0].name}`")
    return pin


# -- audit --------------------------------------------------------------------------------------------

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


# -- the forwarded argv ------------------------------------------------------------------------------

def rewrite(inv: nargv.Invocation, target: Target, *, image: str | None = None,
            mounts: Mapping[str, str] | None = None, set_flags: Mapping[str, str] | None = None,
            add_flags: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The argv nerdctl gets: re-serialized from the parse, with the containerd address and namespace
    the checks used made explicit, the image (and image mounts) pinned, and flags set or added."""
    set_flags = dict(set_flags or {})
    globals_ = tuple((k, v) for k, v in inv.globals if k not in ("address", "host", "namespace"))
    globals_ += (("address", target.address), ("namespace", target.namespace))
    flags = tuple((k, v) for k, v in inv.flags if k not in set_flags) + tuple(set_flags.items()) + tuple(add_flags)
    return nargv.serialize(inv.replace(globals=globals_, flags=flags), image_override=image,
                           mount_overrides=dict(mounts) if mounts else None)


# -- commands -----------------------------------------------------------------------------------------

def _label_guard(inv: nargv.Invocation) -> None:
    for lab in inv.labels:
        if lab.split("=", 1)[0].startswith(records.LABEL_PREFIX):
            raise Denied(f"labels in the {records.LABEL_PREFIX} namespace are BACON's own: {lab!r}",
                         check="argv", hint="drop that --label")
    from shim.wrapper import inputs

    for path in inv.label_files:
        data = inputs.read_copy(path, what="--label-file")  # what nerdctl will read, read as the caller
        # docker/cli's opts.ReadKVStrings, which nerdctl uses: a UTF-8 BOM is dropped, lines are trimmed
        # on the left, '#' lines skipped; the key ends at the first '='. Trimmed on both sides here too.
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        for line in text.splitlines():
            if line.strip().split("=", 1)[0].strip().startswith(records.LABEL_PREFIX):
                raise Denied(f"--label-file {path} sets a label in the {records.LABEL_PREFIX} namespace",
                             check="argv", hint="remove that line")


def check_profile(ctx: Context, inv: nargv.Invocation, level: str | None, *, host: bool = False) -> None:
    """The container profile of ``level`` (the image's, as the admission found it; the host's system level
    for commands that start no container of their own), in the same decision. Raises :class:`Denied`."""
    from shim.admission.profiles import enforce

    settings, refused = enforce.judge(ctx.cfg, inv, level or ctx.system_level, host=host or level is None)
    ctx.profile = enforce.audit_fields(settings, refused)
    if refused:
        err = enforce.denial(ctx.cfg, settings, refused)
        if ctx.verdicts:
            err.image, err.digest = ctx.verdicts[0].image, ctx.verdicts[0].digest
        raise err


def gate_run(ctx: Context, inv: nargv.Invocation) -> list[str]:
    _label_guard(inv)
    assert inv.image is not None
    pull = inv.pull_policy or "missing"
    subject = find_image(ctx, inv.image, pull)
    mounts: dict[str, Subject] = {src: find_image(ctx, src, pull) for src in inv.mount_images}
    for s in (subject, *mounts.values()):
        for each in (s, *s.alternatives):
            decide(ctx, each).raise_if_denied()
    check_profile(ctx, inv, ctx.verdicts[0].level)
    image_pin = pinned(ctx, subject)
    mount_pins = {src: pinned(ctx, s) for src, s in mounts.items()}
    main = ctx.verdicts[0]
    rec = records.new_record(ctx.cfg.state_dir, digest=subject.pin_digest, image=inv.image, level=main.level or "",
                             address=ctx.target.address, namespace=ctx.target.namespace,
                             index_digest=subject.digest if subject.pin_digest != subject.digest else None,
                             platform=str(ctx.platform))
    ctx.new_records.append(rec.token)
    ctx.launches.append(Launch(main, token=rec.token))
    all_local = subject.local and all(s.local for s in mounts.values())
    return rewrite(inv, ctx.target, image=image_pin, mounts=mount_pins,
                   set_flags={"pull": "never" if all_local else "missing"},
                   add_flags=[("label", f"{records.LABEL}={rec.token}")])


def gate_start(ctx: Context, inv: nargv.Invocation) -> list[str]:
    checked: list[str] = []
    for name in inv.containers:
        container = ctx.containerd.find_container(name)
        token = container.labels.get(records.LABEL)
        rec = records.load(ctx.cfg.state_dir, token) if token else None
        if rec is None:
            if ctx.cfg.unrecorded_start != "check-image" or not container.image:
                raise Denied(f"container {name} ({container.id[:12]}) was not created through the nerdctl "
                             "wrapper: there is no admission record for it", check="record", image=container.image,
                             hint="recreate it with `nerdctl run`/`nerdctl create` through the wrapper")
            subject = unrecorded_subject(ctx, container)
        else:
            if rec.namespace != ctx.target.namespace:
                raise Denied(f"the admission record of {name} is for namespace {rec.namespace}", check="record")
            records.bind(ctx.cfg.state_dir, rec, container.id, container.created_at)
            subject = record_subject(ctx, rec, container)
        verdict = decide(ctx, subject)
        verdict.raise_if_denied()
        check_profile(ctx, inv, verdict.level)
        ctx.launches.append(Launch(verdict, token=rec.token if rec else None, container_id=container.id))
        checked.append(container.id)
    # nerdctl is handed the full IDs that were checked, never the names: a `rename` (forwarded) between this
    # check and nerdctl's own lookup would otherwise make a name point at another container. nerdctl's
    # containerwalker matches a full ID only as itself (a container whose name or longer ID also matched
    # would make two matches, which start and restart refuse).
    return rewrite(inv.replace(args=tuple(checked)), ctx.target)


def unrecorded_subject(ctx: Context, container: ContainerRecord) -> Subject:
    """``unrecorded_start = "check-image"``: the image a container made by another client names, decided
    only if the container's rootfs descends from that image's layers (``shim.images.rootfs``): its name may
    have been retagged since, onto content the container does not hold."""
    try:
        normalized: str | None = str(nref.parse(container.image))
    except UsageError:
        normalized = None
    found = imagewalk.pick(ctx.containerd, container.image, normalized, ctx.platform, ctx.host)
    if found is None:
        raise NotFound(f"the image {container.image} container {container.id[:12]} names is not present locally",
                       hint="recreate the container through the nerdctl wrapper")
    rootfs.verify(ctx.containerd, container, found)
    return local_subject(ctx, container.image, found)


def record_subject(ctx: Context, rec: records.AdmissionRecord, container: ContainerRecord | None = None) -> Subject:
    """The image a recorded container was created from, by digest (its name may point elsewhere now); with
    ``container``, only if the container's rootfs descends from that image's layers (:func:`pinned` says
    why a recorded container may hold other content)."""
    try:
        local = [r for r in imagewalk.matches(ctx.containerd, rec.digest, None) if r.target.digest == rec.digest]
    except NotFound:
        local = []
    platform = platforms.parse(rec.platform, ctx.host) if rec.platform else ctx.platform  # what create used
    for r in local:
        try:
            resolved = ctx.containerd.resolve_record(r, platform, ctx.host)
            s = local_subject(ctx, rec.image, resolved, platform=platform)
        except (NotFound, IntegrityError):
            continue
        if container is not None:
            rootfs.verify(ctx.containerd, container, resolved)
        if rec.index_digest:  # a platform manifest pinned from this signed index at create time
            return Subject(asked=rec.image, digest=rec.index_digest, repository=s.repository or _repo_of(rec.image),
                           platform_digest=s.digest, labels=s.labels, local=True)
        return replace(s, asked=rec.image, repository=s.repository or _repo_of(rec.image))
    raise Denied(f"the image {rec.digest} this container was created from is no longer present locally",
                 check="image", image=rec.image, digest=rec.digest,
                 hint=f"pull it again (nerdctl pull {rec.image}) or recreate the container")


# -- build and builder debug (docs/build.md) ----------------------------------------------------------

BUILDS = ("build", "builder debug")


def _build_refusal(why: str, hint: str) -> Denied:
    return Denied(why, check="build", hint=hint)


def dockerfile_path(inv: nargv.Invocation, cwd: str) -> str:
    """The Dockerfile nerdctl hands BuildKit (pkg/cmd/builder/build.go, pkg/buildkitutil BuildKitFile):
    ``-f`` as given (relative to the working directory), else ``Dockerfile`` in the context, else
    ``Containerfile`` there."""
    context = inv.args[0]
    if context == "-" or "://" in context:
        raise _build_refusal(f"the build context {context!r} is not a directory BACON can read before the build",
                             "give the context as a local directory (nerdctl builds only those)")
    f = inv.flag("file")
    if f == "-":
        raise _build_refusal("a Dockerfile read from standard input cannot be checked before BuildKit reads it",
                             "save it to a file and pass -f FILE")
    if f and f != ".":
        return os.path.join(cwd, f)
    base = os.path.join(cwd, context)
    dockerfile = os.path.join(base, "Dockerfile")
    if not os.path.lexists(dockerfile) and os.path.lexists(os.path.join(base, "Containerfile")):
        return os.path.join(base, "Containerfile")
    return dockerfile


def gate_build(ctx: Context, inv: nargv.Invocation, workdir: str) -> list[str]:
    """``build``/``builder debug``: every image the Dockerfile makes BuildKit fetch (and ``--image`` of
    ``builder debug``) decided like run's image at its registry, then handed over pinned in a rewritten copy
    of the Dockerfile (``-f``). What could bring in another image unseen is refused."""
    from shim.images import dockerfile
    from shim.wrapper import callerfiles

    check_profile(ctx, inv, None)  # the build reads host files for the operator: the host's profile first
    if inv.all_flags("build-context"):
        raise _build_refusal("--build-context can replace a FROM image with a directory or another image, "
                             "which BACON does not check", "drop --build-context; name images in the Dockerfile")
    if inv.flag("source-policy-file") or os.environ.get("EXPERIMENTAL_BUILDKIT_SOURCE_POLICY"):
        raise _build_refusal("a BuildKit source policy can rewrite the checked image references",
                             "drop --source-policy-file (and EXPERIMENTAL_BUILDKIT_SOURCE_POLICY)")
    if len(inv.platforms) > 1:
        raise _build_refusal("a build for several platforms fetches a FROM image per platform",
                             "build one --platform at a time")
    path = dockerfile_path(inv, os.getcwd())
    text = callerfiles.read(path, what="Dockerfile", max_bytes=dockerfile.MAX_BYTES).decode("utf-8", "replace")
    args = dockerfile.build_args(inv.all_flags("build-arg"), os.environ)
    build_platform = platforms.format_all(platforms.normalize(platforms.default_spec(ctx.host), ctx.host))
    target_platform = platforms.format_all(platforms.normalize(ctx.platform, ctx.host))
    uses = dockerfile.analyze(text, args, build_platform=build_platform, target_platform=target_platform)
    pins: dict[tuple[str, str | None], str] = {}
    default_platform = ctx.platform
    try:
        for u in uses:
            if (u.ref, u.platform) in pins:
                continue
            ctx.platform = platforms.requested(u.platform, ctx.host) if u.platform else default_platform
            subject = find_image(ctx, u.ref, "always")  # BuildKit resolves at the registry
            decide(ctx, subject).raise_if_denied()
            pins[(u.ref, u.platform)] = pinned(ctx, subject)
        debug_image = inv.flag("image") if inv.command == "builder debug" else None
        debug_pin = None
        if debug_image:
            ctx.platform = default_platform
            subject = find_image(ctx, debug_image, "always")
            decide(ctx, subject).raise_if_denied()
            debug_pin = pinned(ctx, subject)
    finally:
        ctx.platform = default_platform
    copy = os.path.join(workdir, os.path.basename(path))
    with open(copy, "w", encoding="utf-8") as f:
        f.write(dockerfile.pinned(text, uses, pins))
    ignore = path + ".dockerignore"  # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile first
    if os.path.lexists(ignore):
        with open(copy + ".dockerignore", "wb") as f:
            f.write(callerfiles.read(ignore, what="Dockerfile's .dockerignore"))
    set_flags = {"file": copy, **({"image": debug_pin} if debug_pin else {})}
    return rewrite(inv, ctx.target, set_flags=set_flags)


def _repo_of(name: str) -> str | None:
    try:
        p = nref.parse(name)
    except UsageError:
        return None
    return p.name or None


def gate_pull(ctx: Context, inv: nargv.Invocation) -> tuple[list[str], list[list[str]]]:
    assert inv.image is not None
    subject = find_image(ctx, inv.image, "always")
    decide(ctx, subject).raise_if_denied()
    check_profile(ctx, inv, ctx.verdicts[-1].level)
    # pull runs nothing: the index is pulled (all platforms asked for), and whatever later runs from it
    # locally is decided then, every manifest nerdctl's matcher could take included.
    pin = pinned(ctx, subject, digest=subject.digest)
    first = rewrite(inv, ctx.target, image=pin)
    then: list[list[str]] = []
    ref = nref.parse(inv.image)
    if ref.kind == "name" and not ref.digest:
        then.append(rewrite(nargv.parse(["tag", pin, f"{ref.name}:{ref.tag}"]), ctx.target))
    return first, then


def do_push(ctx: Context, inv: nargv.Invocation) -> int:
    """Push and sign, refusing before anything is pushed when it could not sign: no key, no password
    supplied now, or a signer whose scope does not cover the repository or the image's level
    (:mod:`shim.trust.possession`)."""
    from shim.images import registry
    from shim.trust import signing

    assert inv.image is not None
    try:
        check_profile(ctx, inv, None)  # push starts no container: the host's profile
        key, level, local, ref = _prepare_push(ctx, inv.image)
    except BaconError as e:
        audit_decision(ctx, "push-refused", image=inv.image, digest=getattr(e, "digest", None), reason=e.message,
                       failed_check=getattr(e, "check", "sign"), error=type(e).__name__)
        raise
    rc = run_real(ctx.cfg.nerdctl, rewrite(inv, ctx.target))
    if rc != 0:
        audit_decision(ctx, "push-failed", image=inv.image, digest=local.digest, exit_code=rc)
        return rc
    repo = registry.Repository(ref.domain, ref.path)
    pushed = ctx.registry.resolve(repo, ref.digest or ref.tag or "latest")
    if pushed != local.digest:
        raise IntegrityError(f"the registry holds {pushed} for {inv.image}, not the pushed {local.digest}; "
                             "nothing was signed", hint="push again, or sign the right digest with bacon sign")
    from shim.trust import possession

    annotations = possession.provenance(level)
    signed = signing.sign(ctx.registry, repo, pushed, key, annotations=annotations)
    audit_decision(ctx, "pushed-and-signed", image=inv.image, digest=pushed, level=level,
                   extra_checks=[{"check": "sign", "passed": True, "signature_tag": signed.tag,
                                  "key_id": signed.key_id, "annotations": annotations}])
    print(f"bacon: signed {repo}@{pushed} ({signed.tag}, {signed.layers} signature(s))", file=sys.stderr)
    return 0


def _prepare_push(ctx: Context, image: str) -> tuple[Any, str, ResolvedImage, nref.Reference]:
    """Everything push needs before pushing: the key opened with its password, the local image and its
    level, and the signer's scope covering both. Raises :class:`Denied` (check ``sign``) otherwise."""
    from shim.trust import keys, possession

    if ctx.cfg.signing_key is None:
        raise Denied("push signs what it pushes, and no signing key is configured", check="sign", image=image,
                     hint="set [signing] key = \"/etc/bacon/keys/team.key\" in /etc/bacon/config.toml")
    ref = nref.parse(image)
    local = imagewalk.pick(ctx.containerd, image, str(ref), ctx.platform, ctx.host)
    if local is None:
        raise NotFound(f"image {image} is not present locally", hint="nerdctl images lists what can be pushed")
    try:
        key = possession.open_signing_key(Path(ctx.cfg.signing_key), unattended=ctx.cfg.signing_unattended)
        level = levels.image_level(dict(local.labels), ctx.cfg.default_level).level
        trusted = keys.load_trusted_keys(list(ctx.cfg.trusted_keys), allowed=ctx.cfg.key_types)
        signer = possession.signer_scope(ctx.cfg, key.public_key(), trusted)
        possession.check_can_vouch(signer, ref.name, level, ctx.cfg.requirements, image)
    except Denied as e:
        e.image, e.digest = e.image or image, e.digest or local.digest
        raise
    return key, level, local, ref


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


def signer_of(verdict: admission.Verdict) -> str:
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
    if not ctx.launches or "measure" not in ctx.cfg.sections:
        return None
    from shim.attest import measure

    at = measure.now()
    events = [measure.LaunchEvent(source="wrapper", command=command, image=ln.verdict.image,
                                  digest=ln.verdict.digest, signer=signer_of(ln.verdict),
                                  level=ln.verdict.level or "", argv=("nerdctl", *forward), time=at,
                                  container_id=ln.container_id, token=ln.token, namespace=ctx.target.namespace,
                                  profile=ctx.cfg.profiles.profile(ln.verdict.level) if ln.verdict.level else None)
              for ln in ctx.launches]
    return measure.launches(ctx.cfg, events)


def _failed_check(ctx: Context, e: BaconError) -> str:
    if ctx.verdicts and ctx.verdicts[-1].outcomes:
        return ctx.verdicts[-1].outcomes[-1].check
    return "image"
