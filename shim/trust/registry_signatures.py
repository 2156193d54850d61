"""Where cosign keeps an image's signatures in its registry, and fetching them (docs/signatures.md): Sigstore
bundles as referrers (the referrers API, else the ``sha256-<hex>`` fallback tag) and the classic
``sha256-<hex>.sig`` manifest, whose payloads are fetched as the verifier asks for them; and the repository
as cosign writes it in a payload (:func:`docker_reference`). The HTTP is :mod:`shim.images.registry`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from shim.common import strictjson
from shim.common.errors import IntegrityError, NotFound
from shim.images import oci
from shim.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN
from shim.images.registry import Client, Repository
from shim.trust.signatures import BUNDLE_MEDIA_TYPES, DEFAULT_LIMITS, Limits, Material, sig_tag


def docker_reference(repo: Repository) -> str:
    """The repository as cosign writes it in a payload (the default domain in its legacy spelling)."""
    host = LEGACY_DEFAULT_DOMAIN if repo.host == DEFAULT_DOMAIN else repo.host
    return f"{host}/{repo.name}"


class LazyBlobs(Mapping[str, bytes]):
    """Payload blobs fetched from the registry when first asked for, each checked against its digest and
    bounded (``max_bytes`` each, ``max_total`` all together, whatever sizes the manifest declares: a blob
    over what is left is :class:`IntegrityError`); iterating yields only those fetched so far."""

    def __init__(self, client: Client, repo: Repository, max_bytes: int, max_total: int | None = None) -> None:
        self._client, self._repo, self._max = client, repo, max_bytes
        self._left = max_bytes if max_total is None else max_total
        self._got: dict[str, bytes] = {}

    def __getitem__(self, digest: str) -> bytes:
        if digest not in self._got:
            try:
                data = self._client.get_blob(self._repo, digest, min(self._max, self._left))
            except NotFound as e:
                raise KeyError(digest) from e
            self._left -= len(data)
            self._got[digest] = data
        return self._got[digest]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._got))

    def __len__(self) -> int:
        return len(self._got)


def _bundle_descriptors(index: bytes, digest: str, limits: Limits) -> list[str]:
    """Digests of the referrers that are Sigstore bundles (by ``artifactType``), at most ``max_bundles``."""
    try:
        doc = strictjson.loads(index, max_size=oci.MAX_MANIFEST_BYTES)
    except strictjson.Invalid as e:
        raise IntegrityError(f"referrers index for {digest} {e}") from e
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise IntegrityError(f"referrers index for {digest} has no manifests list")
    out = []
    for entry in entries[: oci.MAX_INDEX_ENTRIES]:
        if (isinstance(entry, dict) and isinstance(entry.get("artifactType"), str)
                and entry["artifactType"] in BUNDLE_MEDIA_TYPES
                and isinstance(entry.get("digest"), str) and oci.is_digest(entry["digest"])):
            out.append(entry["digest"])
    return out[: limits.max_bundles]


def fetch_signatures(client: Client, repo: Repository, digest: str, limits: Limits = DEFAULT_LIMITS) -> Material:
    """The signature material for ``digest`` in ``repo``: bundle referrers (API or fallback tag) and the
    classic ``.sig`` manifest, with classic payloads fetched lazily as the verifier asks for them.

    Malformed referrers, and a referrers index that cannot be read, are skipped (another image's signature
    cannot block this one); the classic manifest is returned raw for the verifier to judge, or skipped when
    it cannot be read and bundles were found. Raises :class:`Unavailable`."""
    try:
        index = client.referrers(repo, digest)
        refs = _bundle_descriptors(index, digest, limits) if index is not None else []
    except IntegrityError:
        refs = []  # a referrers index we do not read (a key twice, too deep): it cannot hide a .sig signature
    layers: list[oci.Descriptor] = []  # each referrer's bundle (its manifests are small, bounded and counted)
    for ref in refs:
        try:
            m = oci.parse_manifest(client.get_manifest(repo, ref, accept=(oci.MEDIA_OCI_MANIFEST,)).data)
        except (NotFound, IntegrityError):
            continue
        if (m.subject is not None and m.subject.digest == digest and m.layers
                and m.layers[0].media_type in BUNDLE_MEDIA_TYPES and m.layers[0].size <= limits.max_bundle_bytes):
            layers.append(m.layers[0])
    # The smallest first, within limits.max_bundle_total (a bundle is a few kilobytes): referrers padded to
    # the size limit do not push a real bundle out of reach.
    bundles: list[bytes] = []
    spent = 0
    for layer in sorted(layers, key=lambda d: d.size):
        if spent + layer.size > limits.max_bundle_total:
            break
        spent += layer.size
        try:
            bundles.append(client.get_blob(repo, layer.digest, layer.size))  # no more than it declares
        except (NotFound, IntegrityError):
            continue
    try:
        classic: bytes | None = client.get_manifest(repo, sig_tag(digest)).data
    except NotFound:
        classic = None
    except IntegrityError:
        if not bundles:
            raise  # the denial says what is wrong with it
        classic = None  # nor can a .sig manifest we do not read hide a bundle
    return Material(digest=digest, classic_manifest=classic, bundles=tuple(bundles),
                    blobs=LazyBlobs(client, repo, limits.max_payload_bytes, limits.max_payload_total))
