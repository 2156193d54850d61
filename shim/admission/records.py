"""Create-time admission records: what ``start``/``restart`` check instead of trusting names or labels.

When the gate admits ``run``/``create`` it writes a record (the digest it checked, the image name, the
level, the containerd address and namespace, the chain IDs of the checked layers) under
``<state_dir>/admissions/<token>.json`` — root-only, written atomically — and forwards
``--label=bacon/admission=<token>``. The token is 128 random bits and says nothing by itself; what counts
is the record, which only root can write.

At ``start``, the container's ``bacon/admission`` label leads to the record. The first start binds the
record to that container's id (only a container created after the record may claim it); later starts
must come from the same id. A label copied onto another container therefore gets it nothing. User
labels in the ``bacon/`` namespace are refused by the gate at create time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from shim.common import atomicfile, strictjson, trustedfile
from shim.common.errors import ConfigError, Denied, IntegrityError
from shim.images import oci, rootfs

LABEL = "bacon/admission"
MAX_RECORD = 1 << 17  # bytes; a record is a few hundred, and 75 per layer (at most rootfs.MAX_LAYERS)
LABEL_PREFIX = "bacon/"
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
CLOCK_SLACK = 5.0  # seconds a container's creation may precede its record (clock granularity)


@dataclass
class AdmissionRecord:
    token: str
    digest: str
    image: str
    level: str
    address: str
    namespace: str
    created: float
    container_id: str | None = None
    index_digest: str | None = None  # the signed index ``digest`` was chosen from, when it is a platform manifest
    platform: str | None = None  # the platform create decided for (containerd's specifier syntax)
    # The chain IDs of the checked manifest's layers, bottom first (shim.images.rootfs.layer_chain): the runtime
    # gate walks the container's snapshot against them. None in records written before they were kept, or
    # when the config's layers could not be read: the gate then resolves the recorded image again.
    layers: list[str] | None = None


def _dir(state_dir: Path) -> Path:
    return Path(state_dir) / "admissions"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # no fsync of the directory (one per admission): a record lost in a crash only refuses the container
    atomicfile.write(path, data, mode=0o600, sync_directory=False)


def new_record(state_dir: Path, *, digest: str, image: str, level: str, address: str,
               namespace: str, index_digest: str | None = None, platform: str | None = None,
               layers: Sequence[str] | None = None) -> AdmissionRecord:
    rec = AdmissionRecord(token=secrets.token_hex(16), digest=digest, image=image, level=level,
                          address=address, namespace=namespace, created=time.time(), index_digest=index_digest,
                          platform=platform, layers=None if layers is None else list(layers))
    save(state_dir, rec)
    return rec


def save(state_dir: Path, rec: AdmissionRecord) -> None:
    _atomic_write(_dir(state_dir) / f"{rec.token}.json", json.dumps(asdict(rec), sort_keys=True).encode())


def remove(state_dir: Path, token: str) -> None:
    """Delete the record ``token`` (a decision that was not carried out)."""
    if _TOKEN_RE.match(token):
        with contextlib.suppress(FileNotFoundError):
            (_dir(state_dir) / f"{token}.json").unlink()


def load(state_dir: Path, token: str) -> AdmissionRecord | None:
    if not _TOKEN_RE.match(token):
        raise Denied(f"the container's {LABEL} label {token!r} is not a token BACON wrote", check="record")
    path = _dir(state_dir) / f"{token}.json"
    if not os.path.lexists(path):
        return None
    try:
        raw = trustedfile.read(path, "admission record", max_size=MAX_RECORD, private=True, symlink=False)
    except ConfigError as e:
        raise IntegrityError(f"{e.message}; refusing it") from e
    try:
        rec = AdmissionRecord(**strictjson.load_object(raw, max_size=MAX_RECORD))
    except (ValueError, TypeError) as e:  # strictjson.Invalid is a ValueError
        raise IntegrityError(f"admission record {path} is malformed: {e}") from e
    layers = rec.layers
    if layers is not None and not (isinstance(layers, list) and len(layers) <= rootfs.MAX_LAYERS
                                   and all(isinstance(d, str) and oci.is_digest(d) for d in layers)):
        raise IntegrityError(f"admission record {path} is malformed: its layers are not a list of sha256 digests")
    return rec


def bind(state_dir: Path, rec: AdmissionRecord, container_id: str, container_created: float | None) -> None:
    """Check (and on first use, record) that ``rec`` belongs to ``container_id``."""
    if rec.container_id is None:
        if container_created is not None and container_created + CLOCK_SLACK < rec.created:
            raise Denied(f"container {container_id[:12]} is older than the admission record it carries",
                         check="record", hint="recreate the container through the nerdctl wrapper")
        rec.container_id = container_id
        save(state_dir, rec)
    elif rec.container_id != container_id:
        raise Denied(f"the admission record carried by container {container_id[:12]} belongs to container "
                     f"{rec.container_id[:12]}", check="record",
                     hint="recreate the container through the nerdctl wrapper")
