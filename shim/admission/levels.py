"""Policy levels: the image's ``policy`` label and the host's system level.

``High`` > ``Mid`` > ``Low``. A label must be exactly one of those strings: no case folding, no
trimming, no Unicode normalization (``Hіgh`` with a Cyrillic ``і`` is a denial that shows the code
points). A missing label means the configured default level (``High`` unless set). A label whose *key*
only looks like ``policy`` (``Policy``, ``POLICY``, ``ｐolicy``, ``policy `` with a space, a zero-width
character in it) is a denial too, beside the exact key or alone: whoever wrote it meant a level, and
which one the image has must not depend on how a reader folds keys.

The system level lives in the configuration (``level``) and may be overridden by ``bacon policy set``,
which writes ``<state_dir>/level`` atomically; every decision reads it once. While that file exists the
configuration's ``level =`` has no effect: :func:`level_origin` says which one decides, and ``bacon
status``, ``bacon policy show`` and the shipped configuration's comment say so; ``bacon policy reset``
(or ``policy set`` to the configuration's own level) removes the file.

Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shim.common import atomicfile
from shim.common.config import LEVELS, Config
from shim.common.errors import ConfigError, Denied

LABEL = "policy"
RANK = {name: i for i, name in enumerate(LEVELS)}
LEVEL_FILE = "level"


def describe(value: str) -> str:
    """A label value as an operator can see what is wrong with it: repr plus any non-ASCII code points."""
    odd = [f"U+{ord(c):04X}" for c in value if not (c.isascii() and c.isprintable())]
    return repr(value) + (f" (contains {', '.join(odd)})" if odd else "")


@dataclass(frozen=True)
class ImageLevel:
    level: str
    from_label: bool  # False: the label was missing and the default applied


def _looks_like_label(key: str) -> bool:
    """``key`` reads as ``policy`` once case, compatibility forms, spaces and invisible characters go."""
    import unicodedata

    folded = unicodedata.normalize("NFKC", key).casefold()
    return "".join(c for c in folded if not (c.isspace() or unicodedata.category(c) == "Cf")) == LABEL


def image_level(labels: dict[str, str] | object, default: str) -> ImageLevel:
    """The level of an image from its config labels. Raises :class:`Denied` for a malformed label, or a
    label whose key looks like ``policy`` without being it."""
    if not isinstance(labels, dict):
        raise Denied("image config labels are not a map", check="level")
    lookalikes = sorted(k for k in labels if isinstance(k, str) and k != LABEL and _looks_like_label(k))
    if lookalikes:
        shown = ", ".join(describe(k) for k in lookalikes[:5])
        raise Denied(
            f"the image has a label whose key looks like {LABEL!r} but is not: {shown}",
            check="level",
            hint="rebuild the image with exactly one policy label, LABEL policy=\"High\", \"Mid\" or \"Low\" "
                 "(lower-case key), and sign it",
        )
    if LABEL not in labels:
        return ImageLevel(default, from_label=False)
    value = labels[LABEL]
    if not isinstance(value, str) or value not in RANK:
        shown = describe(value) if isinstance(value, str) else repr(value)
        raise Denied(
            f"the image's policy label is {shown}, not one of {', '.join(reversed(LEVELS))}",
            check="level",
            hint="rebuild the image with LABEL policy=\"High\", \"Mid\" or \"Low\" (exact spelling) and sign it",
        )
    return ImageLevel(value, from_label=True)


def admits(system_level: str, container_level: str) -> bool:
    return RANK[container_level] <= RANK[system_level]


def check_level(system_level: str, image: ImageLevel) -> None:
    """Container level ≤ system level, or :class:`Denied`."""
    if not admits(system_level, image.level):
        source = "its policy label" if image.from_label else "the default for images without a policy label"
        raise Denied(
            f"the image is level {image.level} ({source}), above this host's system level {system_level}",
            check="level",
            hint="run it on a host whose level allows it, or (as root) `bacon policy set "
            f"{image.level}` if this host should accept {image.level} images",
        )


def system_level(cfg: Config) -> str:
    """The host's system level: ``<state_dir>/level`` if ``bacon policy set`` wrote one, else the config's."""
    path = Path(cfg.state_dir) / LEVEL_FILE
    from shim.common import trustedfile

    if not os.path.lexists(path):
        return cfg.level
    value = trustedfile.read(path, "the system level file", max_size=64).decode("ascii", "replace").strip()
    if value not in RANK:
        raise ConfigError(f"{path} holds {value!r}, not a level", hint="bacon policy set High|Mid|Low")
    return value


@dataclass(frozen=True)
class LevelOrigin:
    """Which setting decides the system level. ``override`` is ``<state_dir>/level`` when ``bacon policy
    set`` wrote one (it then wins over ``configured``, the configuration's ``level =``)."""

    level: str
    configured: str
    config_path: Path
    override: Path | None

    @property
    def shadowed(self) -> bool:
        """The configuration says another level than the one in force."""
        return self.override is not None and self.level != self.configured

    def describe(self) -> str:
        if self.override is None:
            return f"from level = \"{self.configured}\" in {self.config_path}"
        text = f"from {self.override}, written by `bacon policy set`"
        if self.shadowed:
            text += (f"; it overrides level = \"{self.configured}\" in {self.config_path} "
                     "(`sudo bacon policy reset` to follow the configuration)")
        return text

    def to_json(self) -> dict[str, object]:
        return {"level": self.level, "configured": self.configured, "config": str(self.config_path),
                "override": str(self.override) if self.override else None, "shadowed": self.shadowed}


def level_origin(cfg: Config) -> LevelOrigin:
    """The system level and which setting decides it. Raises :class:`ConfigError` as :func:`system_level`."""
    level = system_level(cfg)
    path = Path(cfg.state_dir) / LEVEL_FILE
    return LevelOrigin(level, cfg.level, cfg.path, path if os.path.lexists(path) else None)


def remove_system_level(cfg: Config) -> bool:
    """Remove ``<state_dir>/level`` (the configuration's level applies again). True when there was one."""
    path = Path(cfg.state_dir) / LEVEL_FILE
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    atomicfile.fsync_directory(path.parent)
    return True


def write_system_level(cfg: Config, level: str) -> None:
    """Atomically replace ``<state_dir>/level`` (tmp file, fsync, rename, fsync the directory)."""
    if level not in RANK:
        raise ConfigError(f"{level!r} is not a level: use one of {', '.join(reversed(LEVELS))}")
    state = Path(cfg.state_dir)
    state.mkdir(mode=0o755, parents=True, exist_ok=True)
    atomicfile.write(state / LEVEL_FILE, (level + "\n").encode(), mode=0o644)
