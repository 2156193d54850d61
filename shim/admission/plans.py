"""The plan of each gated command: the argv nerdctl gets (:func:`rewrite`), pinned to what was decided.

- ``run``/``create`` (:func:`gate_run`): the image and ``--mount type=image`` sources found and decided,
  the container profile judged, an admission record written, ``--pull=never|missing`` and the record's
  label added;
- ``start``/``restart`` (:func:`gate_start`): each container's admission record (or, when configured, the
  image an unrecorded container names) decided again, handed over by full ID;
- ``build``/``builder debug`` (:func:`gate_build`, docs/build.md): every image the Dockerfile fetches
  decided and pinned in a rewritten copy of the Dockerfile;
- ``pull`` (:func:`gate_pull`): the registry's digest pulled, then tagged with the name asked for;
- ``push`` (:func:`do_push`): forwarded, then the pushed digest is signed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shim.admission import levels, records
from shim.admission.context import Context, Launch, Subject, audit_decision
from shim.admission.finding import find_image, pinned, record_subject, unrecorded_subject
from shim.admission.image_checks import check_image
from shim.common.errors import BaconError, Denied, IntegrityError, NotFound
from shim.images import imagewalk, platforms
from shim.images import reference as nref
from shim.images.containerd import ResolvedImage
from shim.wrapper import argv as nargv
from shim.wrapper.exec import run_real
from shim.wrapper.nerdctl_env import Target


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
            check_image(ctx, each).raise_if_denied()
    check_profile(ctx, inv, ctx.verdicts[0].level)
    image_pin = pinned(ctx, subject)
    mount_pins = {src: pinned(ctx, s) for src, s in mounts.items()}
    main = ctx.verdicts[0]
    rec = records.new_record(ctx.cfg.state_dir, digest=subject.pin_digest, image=inv.image, level=main.level or "",
                             address=ctx.target.address, namespace=ctx.target.namespace,
                             index_digest=subject.digest if subject.pin_digest != subject.digest else None,
                             platform=str(ctx.platform), layers=subject.layers())
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
        verdict = check_image(ctx, subject)
        verdict.raise_if_denied()
        check_profile(ctx, inv, verdict.level)
        ctx.launches.append(Launch(verdict, token=rec.token if rec else None, container_id=container.id))
        checked.append(container.id)
    # nerdctl is handed the full IDs that were checked, never the names: a `rename` (forwarded) between this
    # check and nerdctl's own lookup would otherwise make a name point at another container. nerdctl's
    # containerwalker matches a full ID only as itself (a container whose name or longer ID also matched
    # would make two matches, which start and restart refuse).
    return rewrite(inv.replace(args=tuple(checked)), ctx.target)


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
            check_image(ctx, subject).raise_if_denied()
            pins[(u.ref, u.platform)] = pinned(ctx, subject)
        debug_image = inv.flag("image") if inv.command == "builder debug" else None
        debug_pin = None
        if debug_image:
            ctx.platform = default_platform
            subject = find_image(ctx, debug_image, "always")
            check_image(ctx, subject).raise_if_denied()
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


def gate_pull(ctx: Context, inv: nargv.Invocation) -> tuple[list[str], list[list[str]]]:
    assert inv.image is not None
    subject = find_image(ctx, inv.image, "always")
    check_image(ctx, subject).raise_if_denied()
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
    repo = registry.Repository.of(ref)
    pushed = ctx.registry.resolve(repo, ref.manifest_reference)
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
