"""Finding exactly the image nerdctl will use, and pinning it: the local record nerdctl's imagewalker
would pick (``shim.images.imagewalk``) or the registry's manifest (digest-checked, the platform chosen as
nerdctl's matcher would), the image an admission record names, and the reference nerdctl is handed
(:func:`pinned`, which says what a pin can and cannot hold).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace

from shim.admission import records
from shim.admission.context import Context, Subject
from shim.common.errors import Denied, IntegrityError, NotFound, UsageError
from shim.images import imagewalk, oci, platforms, rootfs
from shim.images import reference as nref
from shim.images.containerd import ContainerRecord, ImageRecord, ResolvedImage


def local_subject(ctx: Context, asked: str, resolved: ResolvedImage, *,
                  platform: oci.Platform | None = None) -> Subject:
    """The subject for a local record; for an index, with every other manifest nerdctl's matcher could
    take (``platform``: the one asked for, default the context's)."""
    name = resolved.record.name
    repo = _repo_of(name)

    def one(r: ResolvedImage, alternatives: tuple[Subject, ...] = ()) -> Subject:
        platform_digest = r.manifest.digest if r.manifest.digest != r.digest else None
        labels, layers = dict(r.labels), r.layers
        return Subject(asked=asked, digest=r.digest, repository=repo, platform_digest=platform_digest,
                       labels=lambda: labels, local=True, alternatives=alternatives, layers=lambda: layers)

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
    repo = registry.Repository.of(ref)
    top = ctx.registry.get_manifest(repo, ref.manifest_reference)
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
    @functools.cache
    def config() -> bytes:  # read when the labels are first asked for (after the signature), then kept
        data: bytes = ctx.registry.get_blob(repo, manifest.config.digest, oci.MAX_CONFIG_BYTES)
        return data

    def labels() -> Mapping[str, str]:
        return oci.parse_config(config()).labels

    def layers() -> tuple[str, ...] | None:
        return rootfs.known_layer_chain(config())

    return Subject(asked=asked, digest=top.digest, repository=ref.name,
                   platform_digest=platform_digest, labels=labels, local=False, layers=layers)


def find_image(ctx: Context, asked: str, pull: str) -> Subject:
    """The image nerdctl would use for ``asked`` under pull policy ``pull`` (always|missing|never)."""
    if pull not in ("always", "missing", "never"):
        raise UsageError(f"--pull must be always, missing or never, got {pull!r}")
    special = nref.special_kind(asked)
    if special:
        raise Denied(f"{special} references cannot be checked", check="image", image=asked,
                     hint="pull the image from a registry by name so its signature can be verified")
    _refuse_other_digests(asked)
    if pull != "always":
        try:
            normalized = str(nref.parse(asked))
        except UsageError:
            normalized = None
        unreadable: list[tuple[str, IntegrityError]] = []

        def skipped(record: ImageRecord, e: Exception) -> None:
            if isinstance(e, IntegrityError):
                unreadable.append((record.name, e))

        found = imagewalk.pick(ctx.containerd, asked, normalized, ctx.platform, ctx.host, on_skip=skipped)
        if found is not None:
            return local_subject(ctx, asked, found)
        if pull == "never":
            _refuse_unreadable(asked, unreadable)
            raise NotFound(f"image {asked} is not present locally (and --pull=never)",
                           hint=f"nerdctl pull {asked}")
        try:
            return remote_subject(ctx, asked)
        except NotFound:
            _refuse_unreadable(asked, unreadable)
            raise
    return remote_subject(ctx, asked)


def _refuse_unreadable(asked: str, unreadable: list[tuple[str, IntegrityError]]) -> None:
    """Nothing else to decide on, and a local record of that name holds what BACON does not read as an image
    (an unknown media type, a Docker schema 1 manifest, content other than its type says): refused with
    what is wrong with it, not reported as missing (``nerdctl images`` lists it)."""
    if unreadable:
        name, e = unreadable[0]
        raise Denied(f"the local image {name} cannot be checked: {e.message}", check="image", image=asked,
                     hint=e.hint or f"remove it (nerdctl rmi {name}) and pull the image again through the wrapper")


def _refuse_other_digests(asked: str) -> None:
    """A reference by a digest of another algorithm than sha256 (nerdctl's grammar takes ``sha384`` and
    ``sha512``): what BACON checks content against, signatures name and registries answer by is sha256, so
    such a reference cannot be checked (before, a registry's 404 or 400 for it read as "not found" or as a
    registry failing)."""
    try:
        digest = nref.parse(asked).digest
    except UsageError:
        return  # not a reference nerdctl's grammar takes: the lookups below say so
    if digest and not oci.is_digest(digest):
        raise Denied(f"{asked} names its image by a {digest.partition(':')[0]} digest; BACON checks images by "
                     "sha256 digest only", check="image", image=asked,
                     hint="name the image by its tag or its sha256 digest (`nerdctl image inspect` or the registry "
                          "shows it)")


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


def _repo_of(name: str) -> str | None:
    try:
        p = nref.parse(name)
    except UsageError:
        return None
    return p.name or None
