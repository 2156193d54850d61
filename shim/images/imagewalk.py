"""Which local image record nerdctl would use for a reference, found the way nerdctl finds it.

nerdctl's imagewalker (pkg/idutil/imagewalker, docs/nerdctl.md §5) makes one Images.List with
OR-ed filters: ``name==<normalized>``, ``name==<raw>``, ``target.digest~=^sha256:<raw>.*$`` and
``target.digest~=^<raw>.*$``; results come in name order, and the first whose content exists for the
platform wins. :func:`pick` does the same.

:func:`check_pinned` guards what is forwarded: the gate hands nerdctl ``sha256:<full digest>``, which
the walker matches both by digest and by a record *named* like that digest. Every record that lookup
can match must point at the checked digest; a forged name (``nerdctl tag``/``load`` do not check that
a digest inside a name is true) is refused, naming the record.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from shim.common.errors import Denied, IntegrityError, NotFound
from shim.images import oci, platforms
from shim.images import reference as nref
from shim.images.containerd import Client, ImageRecord, ResolvedImage


def _re_quote(s: str) -> str:
    """Go's regexp.QuoteMeta."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def walker_filters(raw: str, normalized: str | None) -> list[str]:
    filters = []
    if normalized:
        filters.append(f"name=={_q(normalized)}")
    filters += [
        f"name=={_q(raw)}",
        f"target.digest~={_q('^sha256:' + _re_quote(raw) + '.*$')}",
        f"target.digest~={_q('^' + _re_quote(raw) + '.*$')}",
    ]
    return filters


def matches(client: Client, raw: str, normalized: str | None) -> list[ImageRecord]:
    """Every record nerdctl's walker matches for ``raw``, in name order."""
    found = {r.name: r for r in client.list_images(walker_filters(raw, normalized))}
    return [found[n] for n in sorted(found)]


def pick(client: Client, raw: str, normalized: str | None, platform: oci.Platform, host: platforms.Host,
         on_skip: Callable[[ImageRecord, Exception], None] | None = None) -> ResolvedImage | None:
    """The record nerdctl would run for ``raw`` (``None`` when nothing local matches).

    A short digest prefix matching records of different digests is refused: nerdctl would pick by
    name order, which is not what the operator meant."""
    records = matches(client, raw, normalized)
    if not records:
        return None
    by_name = [r for r in records if r.name in (normalized, raw)]
    if not by_name:
        targets = {r.target.digest for r in records}
        if len(targets) > 1:
            raise Denied(f"{raw!r} is a digest prefix of {len(targets)} different local images",
                         check="image", hint="give the full digest or an image name")
    for r in records:
        try:
            return client.resolve_record(r, platform, host)
        except (NotFound, IntegrityError) as e:
            if on_skip:
                on_skip(r, e)
    return None


def pinned_reference(digest: str) -> str:
    """The reference the gate forwards for a local image: the full digest, which nerdctl resolves to
    the records whose target is that digest."""
    if not oci.is_digest(digest):
        raise IntegrityError(f"refusing to pin to malformed digest {digest!r}")
    return digest


def check_pinned(client: Client, digest: str) -> list[ImageRecord]:
    """Refuse if any record nerdctl could resolve ``sha256:<digest>`` to points anywhere else."""
    ref = pinned_reference(digest)
    # how a reference parser reads "sha256:<hex>" as a name: an official repository of the default domain
    normalized = f"{nref.DEFAULT_DOMAIN}/{nref.OFFICIAL_REPO_PREFIX}{ref}"
    records = matches(client, ref, normalized)
    forged = [r for r in records if r.target.digest != digest]
    if forged:
        names = ", ".join(f"{r.name} -> {r.target.digest}" for r in forged[:5])
        raise Denied(f"local image name(s) look like {digest} but point elsewhere: {names}",
                     check="image", digest=digest,
                     hint="remove the forged name(s) with `nerdctl rmi NAME` and try again")
    if not records:
        raise NotFound(f"no local image has target {digest}")
    return records
