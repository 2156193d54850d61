"""Arbitrary content and image records in the harness's real containerd, as anyone who may use its socket can
write them: blobs through ``ctr content ingest`` (containerd checks each against its digest), and an image
record whose target is any descriptor through the images service's ``Create`` (what ``ctr`` and nerdctl's
pull, load and tag call; ``ctr`` has no command that takes a target as it is).

``Create`` is called over gRPC with the request encoded here: BACON's own ``proto/`` subset reads images and
never writes them, and a test-only method is not added to it. A ``CreateImageRequest`` is field 1 (the
image, length-delimited), which is BACON's ``Image`` message encoded as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tests.harness.containerd import Containerd


def ingest(containerd: Containerd, data: bytes, *, children: Sequence[str] = (), namespace: str = "default") -> str:
    """Put ``data`` in the content store (checked against its digest by containerd); its digest. ``children``:
    digests it refers to, labelled so that containerd's garbage collector keeps them while this is kept.

    Content nothing refers to is collected at containerd's next garbage collection (``ctr`` ingests without
    a lease): write top-down, the image record first (:func:`create_image`, which needs no content), then
    its target, then what that refers to."""
    import hashlib
    import subprocess

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = subprocess.run(["ctr", "--address", str(containerd.socket), "--namespace", namespace, "content", "ingest",
                        "--expected-size", str(len(data)), "--expected-digest", digest, f"bacon-test-{digest}"],
                       input=data, capture_output=True, check=False, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"ctr content ingest: {r.stderr.decode(errors='replace')}")
    labels = [f"containerd.io/gc.ref.content.c.{i}={child}" for i, child in enumerate(children)]
    if labels:
        r2 = containerd.ctr("content", "label", digest, *labels, namespace=namespace, check=False)
        if r2.returncode != 0:
            raise RuntimeError(f"ctr content label: {r2.stderr}")
    return digest


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def create_image(containerd: Containerd, name: str, media_type: str, digest: str, size: int, *,
                 labels: Mapping[str, str] | None = None, namespace: str = "default") -> None:
    """An image record ``name`` whose target is the descriptor given, whatever the store holds (replacing
    a record of that name)."""
    import grpc

    from shim._proto.containerd.services.images.v1 import images_pb2
    from shim._proto.containerd.types import descriptor_pb2

    containerd.ctr("images", "rm", name, namespace=namespace, check=False)
    image = images_pb2.Image(name=name, labels=dict(labels or {}),
                             target=descriptor_pb2.Descriptor(media_type=media_type, digest=digest, size=size))
    body = image.SerializeToString()
    request = b"\x0a" + _varint(len(body)) + body
    with grpc.insecure_channel(f"unix://{containerd.socket}") as channel:
        create = channel.unary_unary("/containerd.services.images.v1.Images/Create",
                                     request_serializer=lambda b: b, response_deserializer=lambda b: b)
        create(request, timeout=30, metadata=(("containerd-namespace", namespace),))
