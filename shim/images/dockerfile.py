"""The images a Dockerfile makes BuildKit run, found statically, and the Dockerfile with them pinned
(docs/build.md).

BuildKit pulls every stage's ``FROM`` image and runs ``RUN`` steps in it; it also runs the frontend named
by a ``# syntax=`` directive, and a ``COPY --from=IMAGE`` or ``RUN --mount=…,from=IMAGE`` brings another
image's files into a stage whose steps can run them. Each is an :class:`ImageUse`. References are resolved as
BuildKit's Dockerfile frontend resolves them: global ``ARG`` defaults (before the first ``FROM``) overridden
by ``--build-arg``, plus the automatic platform arguments; ``FROM <earlier stage name>`` and ``scratch`` are
not images; ``COPY --from``/``from=`` may also name a stage by name or index.

What cannot be resolved without running anything is refused with a hint rather than guessed: a variable
that is not set, an expansion other than ``$NAME``/``${NAME}``, a variable in a ``--from``, a heredoc (the
parser below does not follow them, so the lines after ``<<`` would be misread).

The Dockerfile is parsed with ``dockerfile-parse`` (instructions, line continuations, the escape
directive); ``ARG`` pairs are split with its word splitter. Pure: text in, data or text out.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shim.common.errors import Denied

MAX_BYTES = 1 << 20

_PLAIN_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_]")
_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
_PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
                  "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT")
_REFUSED_ARGS = ("BUILDKIT_SYNTAX",)  # a build argument that names the frontend image to run


@dataclass(frozen=True)
class ImageUse:
    """One image reference BuildKit will fetch: ``kind`` is ``from``, ``syntax``, ``copy-from`` or
    ``mount-from``; ``written`` the text to replace in ``line`` (0-based, the instruction's first line);
    ``platform`` the specifier it is fetched for (``None``: the build's target platform)."""

    kind: str
    ref: str
    line: int
    written: str
    platform: str | None = None


def _refuse(why: str, hint: str, line: int | None = None) -> Denied:
    where = f"Dockerfile line {line + 1}: " if line is not None else "Dockerfile: "
    return Denied(where + why, check="build", hint=hint)


def build_args(values: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``--build-arg`` as nerdctl hands them to BuildKit: ``K=V``, or ``K`` taken from the environment
    (skipped when unset); the last value of a key wins."""
    out: dict[str, str] = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not key:
            raise Denied(f"invalid --build-arg {v!r}", check="build", hint="write it as NAME=VALUE")
        if not eq:
            if key not in environ:
                continue
            value = environ[key]
        out[key] = value
    for key in _REFUSED_ARGS:
        if key in out:
            raise Denied(f"--build-arg {key} names a BuildKit frontend image to run, which BACON does not check",
                         check="build", hint=f"drop --build-arg {key}; use the default frontend")
    return out


def platform_args(build: str, target: str) -> dict[str, str]:
    """BuildKit's automatic platform arguments from ``os/arch[/variant]`` specifiers."""
    out = {}
    for prefix, spec in (("BUILD", build), ("TARGET", target)):
        parts = spec.split("/")
        out[prefix + "PLATFORM"] = spec
        out[prefix + "OS"] = parts[0]
        out[prefix + "ARCH"] = parts[1] if len(parts) > 1 else ""
        out[prefix + "VARIANT"] = parts[2] if len(parts) > 2 else ""
    return out


def _expand(text: str, scope: Mapping[str, str | None], line: int, what: str) -> str:
    """``$NAME``/``${NAME}`` substituted from ``scope``; anything else with ``$`` or a quote is refused."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        value = scope.get(name)
        if value is None:
            raise _refuse(f"{what} {text!r} uses ${name}, which has no value before the build runs",
                          f"give it a default (ARG {name}=…) before the first FROM, or pass --build-arg {name}=…",
                          line)
        return value

    rest = _PLAIN_VAR.sub(lambda m: "", text)
    if "$" in rest or any(c in text for c in "\"'\\`"):
        raise _refuse(f"{what} {text!r} cannot be resolved statically",
                      "write the reference literally, or as $NAME / ${NAME} of an ARG with a value", line)
    return _PLAIN_VAR.sub(sub, text)


def _words(value: str) -> list[str]:
    from dockerfile_parse.util import WordSplitter

    return list(WordSplitter(value).split(dequote=False))


def _arg_pairs(value: str) -> list[tuple[str, str | None]]:
    from dockerfile_parse.util import WordSplitter

    out: list[tuple[str, str | None]] = []
    for word in WordSplitter(value).split():
        key, eq, default = word.partition("=")
        out.append((key, default if eq else None))
    return out


def _syntax(lines: Sequence[str]) -> tuple[int, str] | None:
    """The ``# syntax=`` parser directive: only in the comment lines that open the file."""
    for i, raw in enumerate(lines):
        m = _DIRECTIVE.match(raw.strip())
        if m is None:
            return None
        if m.group(1).lower() == "syntax":
            return i, m.group(2)
    return None


def analyze(text: str, args: Mapping[str, str], *, build_platform: str, target_platform: str) -> list[ImageUse]:
    """Every image the build fetches, in order. Raises :class:`Denied` (check ``build``) for what cannot be
    resolved statically."""
    from dockerfile_parse import DockerfileParser

    if len(text.encode()) > MAX_BYTES:
        raise _refuse(f"it is larger than {MAX_BYTES} bytes", "a Dockerfile that large is not supported")
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    structure = parser.structure
    uses: list[ImageUse] = []
    lines = text.splitlines()
    syntax = _syntax(lines)
    if syntax is not None:
        uses.append(ImageUse("syntax", syntax[1], syntax[0], syntax[1]))

    scope: dict[str, str | None] = dict(platform_args(build_platform, target_platform))
    stages: list[str] = []
    seen_from = False
    for ins in structure:
        kind, value, line = ins["instruction"], ins["value"], ins["startline"]
        if kind in ("RUN", "COPY", "ADD") and _HEREDOC.search(value):
            raise _refuse("heredocs (<<) are not followed by BACON's Dockerfile reader",
                          "move the script to a file in the context and COPY or RUN it", line)
        if kind == "ARG" and not seen_from:
            for key, default in _arg_pairs(value):
                scope[key] = args.get(key, default)
        elif kind == "FROM":
            seen_from = True
            uses.extend(_from(value, line, scope, stages))
        elif kind in ("COPY", "ADD", "RUN") and seen_from:
            uses.extend(_from_flags(kind, value, line, stages))
    return uses


def _from(value: str, line: int, scope: Mapping[str, str | None], stages: list[str]) -> list[ImageUse]:
    words = _words(value)
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    if len(rest) not in (1, 3) or (len(rest) == 3 and rest[1].lower() != "as"):
        raise _refuse(f"FROM {value!r} is not FROM [--platform=…] IMAGE [AS NAME]", "fix the FROM line", line)
    platform = None
    for f in flags:
        name, _, v = f[2:].partition("=")
        if name != "platform":
            raise _refuse(f"FROM flag {f!r} is not understood", "remove it", line)
        platform = _expand(v, scope, line, "FROM --platform")
    written = rest[0]
    image = _expand(written, scope, line, "FROM")
    is_stage = image.lower() in stages
    if len(rest) == 3:
        stages.append(rest[2].lower())
    if is_stage or image == "scratch":
        return []
    return [ImageUse("from", image, line, written, platform)]


def _from_flags(kind: str, value: str, line: int, stages: Sequence[str]) -> list[ImageUse]:
    out = []
    for w in _words(value):
        if not w.startswith("--"):
            break
        refs: list[str] = []
        if kind in ("COPY", "ADD") and w.startswith("--from="):
            refs = [w[len("--from="):]]
        elif kind == "RUN" and w.startswith("--mount="):
            refs = [kv.partition("=")[2] for kv in w[len("--mount="):].split(",") if kv.partition("=")[0] == "from"]
        for ref in refs:
            if "$" in ref or any(c in ref for c in "\"'\\`"):
                raise _refuse(f"{kind} {w!r}: a variable in --from cannot be resolved statically",
                              "name the stage or image literally", line)
            if ref.lower() in stages or ref.isdigit():
                continue
            out.append(ImageUse("copy-from" if kind != "RUN" else "mount-from", ref, line, ref))
    return out


def pinned(text: str, uses: Sequence[ImageUse], pins: Mapping[tuple[str, str | None], str]) -> str:
    """``text`` with each use's reference replaced by ``pins[(use.ref, use.platform)]`` in its instruction's
    first line.

    Raises :class:`Denied` when a use cannot be found where it was read (a reference split across a line
    continuation): the build is refused rather than run half pinned."""
    lines = text.splitlines(keepends=True)
    for u in uses:
        pin = pins[(u.ref, u.platform)]
        raw = lines[u.line]
        if u.kind == "syntax":
            m = re.match(r"^(\s*#\s*syntax\s*=\s*)(.*?)(\s*)$", raw, re.IGNORECASE)
            new = None if m is None else m.group(1) + pin + m.group(3)
        elif u.kind == "from":
            new = _replace_word(raw, u.written, pin, after=r"^\s*from\s+(?:--\S+\s+)*")
        elif u.kind == "copy-from":
            new = _replace_word(raw, "--from=" + u.written, "--from=" + pin, after=r"^\s*\w+\s+(?:--\S+\s+)*?")
        else:
            new = _replace_in_mount(raw, u.written, pin)
        if new is None:
            raise _refuse(f"cannot pin {u.ref!r} where it is written", "write the reference on the instruction's "
                          "first line, without a line continuation inside it", u.line)
        lines[u.line] = new
    return "".join(lines)


def _replace_word(raw: str, old: str, new: str, *, after: str) -> str | None:
    m = re.match(after + re.escape(old) + r"(?=\s|$)", raw, re.IGNORECASE)
    if m is None:
        return None
    return raw[:m.end() - len(old)] + new + raw[m.end():]


def _replace_in_mount(raw: str, old: str, new: str) -> str | None:
    pattern = re.compile(r"(--mount=(?:[^\s,]+,)*from=)" + re.escape(old) + r"(?=[,\s]|$)")
    if pattern.search(raw) is None:
        return None
    return pattern.sub(lambda m: m.group(1) + new, raw)
