"""What the runtime gate decided at ``create``, kept so that ``exec`` into that container is judged by the
profile of the level the container was admitted at.

At every ``create`` the gate first forgets what it kept for that namespace and container ID, and once it
admits, keeps ``<state_dir>/runtime/<namespace>/<container id>.json`` (root-only, written atomically): the
level (the wrapper's admission record's, or the full admission's), how it was admitted, the image, and the
bundle with its ``config.json``'s identity (device, inode, modification time). ``exec`` finds the container's
bundle in runc's own state (``<runc root>/<id>/state.json``, what runc itself execs into) and takes what was
kept only when the bundle and its ``config.json`` are the same file the gate decided: a container made
later under the same ID without the gate (a client naming another runtime binary) gets nothing from it.
What is kept for containers whose bundle is gone is removed at the next ``create`` in the namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from shim.common import atomicfile, strictjson, trustedfile
from shim.common.errors import ConfigError, Denied

DIR = "runtime"
MAX_SIZE = 1 << 16
MAX_STATE = 16 << 20  # bytes of runc's state.json read (it holds the container's whole configuration)
CHECK = "runtime"
# containerd's identifiers (namespaces, container IDs): letters and digits, runs joined by one of ._-
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class Kept:
    namespace: str
    container_id: str
    level: str
    how: str  # "record" (the wrapper admitted it) | "admission" (the gate did)
    image: str | None
    digest: str | None
    bundle: str
    spec: tuple[int, int, int]  # the bundle's config.json: st_dev, st_ino, st_mtime_ns


def valid_id(name: str) -> bool:
    """Whether ``name`` is a containerd identifier (so also a safe file name)."""
    return 0 < len(name) <= 76 and set(name) <= _ID_CHARS and name[0].isalnum() and name[-1].isalnum() \
        and name.isascii()


def _path(state_dir: str | Path, namespace: str, container_id: str) -> Path:
    if not (valid_id(namespace) and valid_id(container_id)):
        raise Denied(f"namespace {namespace!r} / container {container_id!r} is not a containerd identifier",
                     check=CHECK)
    return Path(state_dir) / DIR / namespace / f"{container_id}.json"


def spec_identity(bundle: str | Path) -> tuple[int, int, int]:
    """The identity of the bundle's ``config.json`` (not following a symbolic link). Raises ``OSError``."""
    st = os.stat(Path(bundle) / "config.json", follow_symlinks=False)
    return st.st_dev, st.st_ino, st.st_mtime_ns


def forget(state_dir: str | Path, namespace: str, container_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path(state_dir, namespace, container_id).unlink()


def keep(state_dir: str | Path, kept: Kept) -> None:
    """Write ``kept`` (root-only, atomically) and remove what was kept for containers whose bundle is gone.
    Raises ``OSError``."""
    path = _path(state_dir, kept.namespace, kept.container_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # no fsync: after a crash the containers are gone too, and a lost file fails closed
    atomicfile.write(path, json.dumps(asdict(kept), sort_keys=True).encode(), mode=0o600, fsync=False)
    _prune(path.parent, keep_name=path.name, bundles=Path(kept.bundle).parent)


def _prune(directory: Path, keep_name: str, bundles: Path) -> None:
    """Remove what was kept for containers whose bundle is gone. A container whose bundle is a sibling of
    this one's (``bundles``: the same containerd) costs one ``stat``; only the others are read."""
    for entry in os.scandir(directory):
        name = entry.name
        if name == keep_name or not name.endswith(".json") or os.path.lexists(bundles / name[:-5]):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            bundle = strictjson.loads(Path(entry.path).read_bytes(), max_size=MAX_SIZE)["bundle"]
            if isinstance(bundle, str) and not os.path.lexists(bundle):
                os.unlink(entry.path)


def find(state_dir: str | Path, namespace: str, container_id: str, bundle: str) -> Kept | None:
    """What was kept for the container whose bundle is ``bundle``; None when nothing was, or when it was
    kept for another bundle or another ``config.json`` (another container under the same ID). Raises
    :class:`Denied` when what was kept cannot be trusted or read."""
    path = _path(state_dir, namespace, container_id)
    if not os.path.lexists(path):
        return None
    try:
        raw = trustedfile.read(path, "the runtime gate's decision", max_size=MAX_SIZE, private=True, symlink=False)
        obj = strictjson.load_object(raw, max_size=MAX_SIZE)
        obj["spec"] = tuple(obj["spec"])
        kept = Kept(**obj)
    except ConfigError as e:
        raise Denied(f"{e.message}; refusing it", check=CHECK, hint=e.hint) from e
    except (ValueError, TypeError, KeyError) as e:  # strictjson.Invalid is a ValueError
        raise Denied(f"what the runtime gate kept at {path} is malformed: {e}", check=CHECK,
                     hint="recreate the container") from e
    try:
        same = kept.bundle == bundle and kept.spec == spec_identity(bundle)
    except OSError:
        same = False
    return kept if same and kept.namespace == namespace and kept.container_id == container_id else None


def check_runc_root(runc_root: str) -> None:
    """runc keeps each container's state (its init's PID, the namespaces ``exec`` joins, its cgroups) under
    ``--root``, which a containerd client chooses (``ctr run --runc-root``): whoever may rename or replace
    what is in it forges that state, and ``runc exec`` then joins the namespaces it names (the host's) as
    root. So the root must be trusted as BACON's own files are (:mod:`shim.common.trustedfile`: root's, and
    writable by nobody else along its path); one that does not exist yet is judged by the directory runc
    would make it in. Raises :class:`Denied`."""
    path = os.path.normpath(runc_root)
    if not os.path.isabs(path):
        raise Denied(f"runc --root {runc_root} is not an absolute path", check=CHECK)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    try:
        trustedfile.resolve(path, "runc's state directory (--root)", directory=True)
    except ConfigError as e:
        raise Denied(f"{e.message} (runc --root {runc_root}: whoever may change it forges containers' state)",
                     check=CHECK, hint="use containerd's own runc root (do not set the runc options' Root, "
                                       "ctr --runc-root) or one only root can write") from e


def bundle_of(runc_root: str, container_id: str) -> str:
    """The bundle runc recorded for ``container_id`` under ``runc_root`` (its ``state.json``, the
    ``bundle=`` label runc itself execs by), which must be trusted (:func:`check_runc_root`). Raises
    :class:`Denied`."""
    from shim.runtime import specfile as runtime_specfile

    if container_id in (".", "..") or "/" in container_id or not container_id:
        raise Denied(f"{container_id!r} is not a container ID runc accepts", check=CHECK)
    check_runc_root(runc_root)
    path = os.path.join(runc_root, container_id, "state.json")
    try:
        raw = _read_bounded(path, MAX_STATE)
        state = strictjson.loads(raw, max_size=MAX_STATE)
        labels = state["config"]["labels"]
    except (OSError, ValueError, KeyError, TypeError, runtime_specfile.SpecFileError) as e:
        reason = e.strerror if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
        raise Denied(f"cannot read runc's state of container {container_id!r} ({path}): {reason}", check=CHECK,
                     hint="runc exec needs a container runc made, under the same --root") from e
    bundles = [lb.removeprefix("bundle=") for lb in labels if isinstance(lb, str) and lb.startswith("bundle=")]
    if len(bundles) != 1 or not bundles[0].startswith("/"):
        raise Denied(f"runc's state of container {container_id!r} names no single bundle", check=CHECK)
    return bundles[0]


def _read_bounded(path: str, limit: int) -> bytes:
    from shim.runtime import specfile as runtime_specfile

    return runtime_specfile.read_bytes(path, limit)
