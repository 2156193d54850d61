"""containerd's gRPC image, content, container and version API, through our own stubs (``proto/``).

:class:`Client` is the one IO seam to containerd. It answers what the gate asks:

- image name → its record (target descriptor, labels) → for an index, the manifest nerdctl would pick
  for the platform → the image config → its labels (:meth:`Client.resolve_image`);
- container id or name → its record (image name, labels, snapshot key) (:meth:`Client.find_container`);
- a snapshot and its parents, down to the bottom layer (:meth:`Client.snapshot_chain`, for
  :mod:`shim.images.rootfs`);
- the daemon's version.

Every blob read by digest is bounded in size and checked against its digest. Errors: a missing socket or
a refused connection is :class:`Unavailable` (69), an unknown image or container :class:`NotFound` (64),
content that does not match its digest :class:`IntegrityError`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from shim._proto.containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from shim._proto.containerd.services.content.v1 import content_pb2, content_pb2_grpc
from shim._proto.containerd.services.images.v1 import images_pb2, images_pb2_grpc
from shim._proto.containerd.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from shim._proto.containerd.services.version.v1 import version_pb2_grpc
from shim.common.errors import BaconError, IntegrityError, NoPermission, NotFound, Unavailable
from shim.images import oci, platforms, rootfs
from shim.wrapper.nerdctl_env import Target

MAX_MESSAGE = 16 << 20
DEFAULT_TIMEOUT = 10.0
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.enable_http_proxy", 0)]

# Channels a ``bacon serve`` worker connected before its request came (:func:`warm_channel`), by socket
# path: the request's :class:`Client` takes one instead of connecting then (a fresh process's first call
# pays the channel and the HTTP/2 handshake, several ms at the runtime gate's ``create``). A worker serves
# one request, so each channel is taken at most once; the checks on the socket still run for the caller.
_WARM: dict[str, grpc.Channel] = {}


def warm_channel(path: str, namespace: str = "default", timeout: float = 2.0) -> None:
    """Connect to the containerd at ``path`` now, for the next :class:`Client` of that socket in this
    process, and make the calls a decision makes once each (a query that matches nothing, a read of a blob
    that is not there), so that their first use is paid too. Failures are left for that client to meet."""
    if path in _WARM:
        return
    channel = grpc.insecure_channel(f"unix://{path}", options=CHANNEL_OPTIONS)
    metadata = (("containerd-namespace", namespace),)
    try:
        request = images_pb2.ListImagesRequest(filters=["name==bacon-warm-up.invalid/none"])
        images_pb2_grpc.ImagesStub(channel).List(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError:
        channel.close()
        return
    with contextlib.suppress(grpc.RpcError):  # not found: the streaming call's first use is what counts
        blob = content_pb2.ReadContentRequest(digest="sha256:" + "0" * 64, offset=0, size=0)
        for _ in content_pb2_grpc.ContentStub(channel).Read(blob, timeout=timeout, metadata=metadata):
            pass
    _WARM[path] = channel


NAME_LABEL = "nerdctl/name"

T = TypeVar("T")


@dataclass(frozen=True)
class ImageRecord:
    """An image record in containerd's metadata store: a mutable name pointing at a target."""

    name: str
    target: oci.Descriptor
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ResolvedImage:
    """What nerdctl would run for an image record on a platform: the record's target (maybe an index),
    the platform manifest chosen from it, the config, and the config's labels."""

    record: ImageRecord
    manifest: oci.Descriptor
    config_digest: str
    labels: Mapping[str, str]
    platform: oci.Platform
    layers: tuple[str, ...] | None = None  # the config's layer chain IDs (rootfs.layer_chain); None: unreadable

    @property
    def digest(self) -> str:
        """The top-level digest (the index for multi-platform images)."""
        return self.record.target.digest


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    snapshotter: str
    snapshot_key: str
    created_at: float  # seconds since the epoch, set by containerd


def _descriptor(d: Any) -> oci.Descriptor:
    return oci.Descriptor(media_type=d.media_type, digest=d.digest, size=int(d.size),
                          annotations=dict(d.annotations))


class Client:
    """A connection to one containerd socket and namespace. Use as a context manager."""

    def __init__(self, target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target
        self.timeout = timeout
        path = target.address
        try:
            st = os.stat(path)
        except FileNotFoundError as e:
            raise Unavailable(
                f"containerd socket {path} does not exist",
                hint="start containerd, or point nerdctl at its socket with --address or CONTAINERD_ADDRESS",
            ) from e
        except PermissionError as e:
            raise NoPermission(f"you (uid {os.geteuid()}) may not reach containerd's socket {path}: "
                               f"{e.strerror}", hint="run the command with sudo") from e
        except OSError as e:
            raise Unavailable(f"cannot reach containerd socket {path}: {e.strerror}") from e
        if not stat.S_ISSOCK(st.st_mode):
            raise Unavailable(f"{path} is not a socket", hint="check --address / CONTAINERD_ADDRESS")
        if not os.access(path, os.R_OK | os.W_OK):  # else gRPC reports only "failed to connect"
            raise NoPermission(f"you (uid {os.geteuid()}) may not use containerd's socket {path} (owner uid "
                               f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})",
                               hint="run the command with sudo; containerd is running, its socket is root's")
        warm = _WARM.pop(path, None)
        self._channel = warm if warm is not None else grpc.insecure_channel(f"unix://{path}", options=CHANNEL_OPTIONS)
        self._metadata = (("containerd-namespace", target.namespace),)

    # Each service's stub is made when first used: making one registers every method of the service with
    # the channel, and a decision (the runtime gate's create) may use two of the five services.
    @functools.cached_property
    def _images(self) -> images_pb2_grpc.ImagesStub:
        return images_pb2_grpc.ImagesStub(self._channel)

    @functools.cached_property
    def _content(self) -> content_pb2_grpc.ContentStub:
        return content_pb2_grpc.ContentStub(self._channel)

    @functools.cached_property
    def _containers(self) -> containers_pb2_grpc.ContainersStub:
        return containers_pb2_grpc.ContainersStub(self._channel)

    @functools.cached_property
    def _version(self) -> version_pb2_grpc.VersionStub:
        return version_pb2_grpc.VersionStub(self._channel)

    @functools.cached_property
    def _snapshots(self) -> snapshots_pb2_grpc.SnapshotsStub:
        return snapshots_pb2_grpc.SnapshotsStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors ---------------------------------------------------------------------------------

    def _wrap(self, e: grpc.RpcError, what: str) -> BaconError:
        code = e.code() if isinstance(e, grpc.Call) else None
        detail = e.details() if isinstance(e, grpc.Call) else str(e)
        where = f"containerd at {self.target.address} (namespace {self.target.namespace})"
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(f"{what} not found in {where}")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return Unavailable(f"{where} did not answer ({what}): {detail}",
                               hint="check that containerd is running and that the socket is the right one")
        return Unavailable(f"{where} failed {what}: {code.name if code else 'error'}: {detail}")

    def _call(self, fn: Any, request: Any, what: str) -> Any:
        try:
            return fn(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise self._wrap(e, what) from e

    # -- version --------------------------------------------------------------------------------

    def version(self) -> tuple[str, str]:
        from google.protobuf import empty_pb2

        r = self._call(self._version.Version, empty_pb2.Empty(), "version")
        return str(r.version), str(r.revision)

    # -- images ---------------------------------------------------------------------------------

    def get_image(self, name: str) -> ImageRecord:
        r = self._call(self._images.Get, images_pb2.GetImageRequest(name=name), f"image {name!r}")
        return self._image(r.image)

    def list_images(self, filters: Sequence[str] = ()) -> list[ImageRecord]:
        r = self._call(self._images.List, images_pb2.ListImagesRequest(filters=list(filters)), "image list")
        return [self._image(i) for i in r.images]

    @staticmethod
    def _image(i: Any) -> ImageRecord:
        return ImageRecord(name=i.name, target=_descriptor(i.target), labels=dict(i.labels))

    # -- content --------------------------------------------------------------------------------

    def info(self, digest: str) -> tuple[int, Mapping[str, str]]:
        r = self._call(self._content.Info, content_pb2.InfoRequest(digest=digest), f"content {digest}")
        return int(r.info.size), dict(r.info.labels)

    def has_content(self, digest: str) -> bool:
        try:
            self.info(digest)
        except NotFound:
            return False
        return True

    def read_blob(self, digest: str, max_size: int, expected_size: int | None = None) -> bytes:
        """The blob ``digest``, at most ``max_size`` bytes, checked against its digest."""
        if not oci.is_digest(digest):
            raise IntegrityError(f"refusing to read content by malformed digest {digest!r}")
        if expected_size is not None and expected_size > max_size:
            raise IntegrityError(f"content {digest} is {expected_size} bytes, more than the limit of {max_size}")
        request = content_pb2.ReadContentRequest(digest=digest, offset=0, size=0)
        chunks: list[bytes] = []
        total = 0
        try:
            stream = self._content.Read(request, timeout=self.timeout, metadata=self._metadata)
            for part in stream:
                total += len(part.data)
                if total > max_size:
                    stream.cancel()  # type: ignore[no-untyped-call]
                    raise IntegrityError(f"content {digest} is larger than the limit of {max_size} bytes")
                chunks.append(part.data)
        except grpc.RpcError as e:
            raise self._wrap(e, f"content {digest}") from e
        data = b"".join(chunks)
        oci.verify_digest(data, digest, f"content {digest} read from containerd")
        if expected_size is not None and len(data) != expected_size:
            raise IntegrityError(f"content {digest} is {len(data)} bytes, its descriptor says {expected_size}")
        return data

    # -- resolution -----------------------------------------------------------------------------

    def resolve_record(self, record: ImageRecord, platform: oci.Platform, host: platforms.Host) -> ResolvedImage:
        """Follow a record's target to the manifest nerdctl runs for ``platform`` (containerd's walk with
        nerdctl's matcher for a stored image), its config and labels."""
        matcher = platforms.local_matcher(platform, host)
        chosen = platforms.choose(record.target, matcher, self._read_index, self._config_platform)
        return self._resolved(record, chosen.manifest, platform, matcher)

    def candidate_images(self, record: ImageRecord, platform: oci.Platform,
                         host: platforms.Host) -> list[ResolvedImage]:
        """Every manifest under the record's target that nerdctl's matcher for ``platform`` accepts, each
        resolved to its config and labels. Raises :class:`NotFound` naming one whose content is missing."""
        matcher = platforms.local_matcher(platform, host)
        out = []
        for c in platforms.candidates(record.target, matcher, self._read_index, self._config_platform):
            try:
                out.append(self._resolved(record, c.manifest, platform, matcher))
            except NotFound as e:
                raise NotFound(f"image {record.name} lists a manifest for {platform} ({c.manifest.digest}) whose "
                               f"content is not here: {e.message}",
                               hint="pull the image again through the nerdctl wrapper, which pins the one "
                                    "platform it checked") from e
        return out

    def _read_index(self, d: oci.Descriptor) -> oci.Index:
        return oci.parse_index(self.read_blob(d.digest, oci.MAX_MANIFEST_BYTES, d.size))

    def _config_platform(self, d: oci.Descriptor) -> oci.Platform:
        manifest = oci.parse_manifest(self.read_blob(d.digest, oci.MAX_MANIFEST_BYTES, d.size))
        raw = self.read_blob(manifest.config.digest, oci.MAX_CONFIG_BYTES, manifest.config.size)
        return oci.parse_config(raw).platform

    def _resolved(self, record: ImageRecord, chosen: oci.Descriptor, platform: oci.Platform,
                  matcher: platforms.MatchComparer) -> ResolvedImage:
        manifest = oci.parse_manifest(self.read_blob(chosen.digest, oci.MAX_MANIFEST_BYTES, chosen.size))
        cfg_raw = self.read_blob(manifest.config.digest, oci.MAX_CONFIG_BYTES, manifest.config.size)
        config = oci.parse_config(cfg_raw)
        if chosen is record.target and not matcher.match(config.platform):
            # nerdctl runs a single-manifest image whatever its config says; BACON asks for --platform.
            raise IntegrityError(
                f"image {record.name} is for platform {config.platform}, not {platform}",
                hint="pass --platform to nerdctl if that is what you mean",
            )
        return ResolvedImage(record=record, manifest=chosen, config_digest=manifest.config.digest,
                             labels=config.labels, platform=platform, layers=rootfs.known_layer_chain(cfg_raw))

    def resolve_image(self, name: str, platform: oci.Platform | None = None,
                      host: platforms.Host | None = None) -> ResolvedImage:
        """Image name → record → platform manifest → config → labels (default: this host's platform)."""
        if host is None:
            from shim.images.hostplatform import this_host

            host = this_host()
        return self.resolve_record(self.get_image(name), platform or platforms.default_spec(host), host)

    # -- containers -----------------------------------------------------------------------------

    def get_container(self, container_id: str) -> ContainerRecord:
        r = self._call(self._containers.Get, containers_pb2.GetContainerRequest(id=container_id),
                       f"container {container_id!r}")
        return self._container(r.container)

    def list_containers(self, filters: Sequence[str] = ()) -> list[ContainerRecord]:
        r = self._call(self._containers.List, containers_pb2.ListContainersRequest(filters=list(filters)),
                       "container list")
        return [self._container(c) for c in r.containers]

    def find_container(self, req: str) -> ContainerRecord:
        """A container by name or ID prefix, as nerdctl's containerwalker finds it: the
        ``nerdctl/name`` label equal to ``req`` OR the id starting with ``req``; more than one match is
        an error, as in nerdctl."""
        if not req:
            raise NotFound("empty container name")
        quoted = _quote_filter(req)
        escaped = _quote_filter("^" + _regex_escape(req))
        found = self.list_containers([f'labels."{NAME_LABEL}"=={quoted}', f"id~={escaped}"])
        unique = {c.id: c for c in found}
        if not unique:
            raise NotFound(f"no container named or with ID prefix {req!r} in namespace {self.target.namespace}",
                           hint="nerdctl ps -a lists the containers")
        if len(unique) > 1:
            raise NotFound(f"{req!r} matches {len(unique)} containers ({', '.join(sorted(unique))[:200]}); "
                           "use a longer ID or the full name")
        return next(iter(unique.values()))

    # -- snapshots ------------------------------------------------------------------------------

    def snapshot_chain(self, snapshotter: str, key: str, *, limit: int) -> list[rootfs.Snapshot]:
        """The snapshot ``key`` and its parents, top first, at most ``limit`` of them (a longer chain is
        cut: the caller compares it with an image's, which it then cannot equal)."""
        out: list[rootfs.Snapshot] = []
        while key and len(out) < limit:
            r = self._call(self._snapshots.Stat, snapshots_pb2.StatSnapshotRequest(snapshotter=snapshotter, key=key),
                           f"snapshot {key!r} ({snapshotter})")
            out.append(rootfs.Snapshot(name=r.info.name, parent=r.info.parent, kind=int(r.info.kind)))
            key = r.info.parent
        return out

    @staticmethod
    def _container(c: Any) -> ContainerRecord:
        labels = dict(c.labels)
        created = c.created_at.seconds + c.created_at.nanos / 1e9
        return ContainerRecord(id=c.id, name=labels.get(NAME_LABEL, ""), image=c.image, labels=labels,
                               snapshotter=c.snapshotter, snapshot_key=c.snapshot_key, created_at=created)


def _regex_escape(s: str) -> str:
    # Go RE2 escaping of metacharacters (the filter value is a Go regexp in containerd).
    return "".join("\\" + ch if ch in r"\.+*?()|[]{}^$" else ch for ch in s)


def _quote_filter(s: str) -> str:
    """containerd filter syntax: a double-quoted string with backslash escapes."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
