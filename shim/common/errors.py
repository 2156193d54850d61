"""The one error root of BACON, and the exit statuses of the contract (docs/design.md §3).

Only ``main()`` functions turn these into text and an exit status. Every error carries a message saying
what failed and, where there is one, a ``hint`` saying how to fix it. Third-party errors are wrapped at
the boundary where they occur (``raise … from e``).

Standard library only: the forwarding path imports this module.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_USAGE = 64
EXIT_UNAVAILABLE = 69
EXIT_INTERNAL = 70
EXIT_DENIED = 77
EXIT_CONFIG = 78


def printable(text: str) -> str:
    """``text`` as it may reach a terminal: messages quote what images, registries and signatures say
    (label values, platforms, media types, names), and an escape sequence there could rewrite the screen,
    or a line break forge a ``bacon: hint:`` line. Control, format and separator characters (and spaces other
    than the ASCII one) are shown as Python escapes; a line break that is part of a message is kept, the
    next line indented under it."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else "\n  " if ch == "\n"
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


class BaconError(Exception):
    """Root of every error BACON raises on purpose."""

    exit_code: int = EXIT_INTERNAL
    prefix: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The text for stderr: ``bacon: <prefix>: message`` and, if any, a ``hint:`` line (both
        :func:`printable`)."""
        text = f"bacon: {self.prefix}: {printable(self.message)}"
        if self.hint:
            text += f"\nbacon: hint: {printable(self.hint)}"
        return text


class UsageError(BaconError):
    """The command line is wrong (exit 64)."""

    exit_code = EXIT_USAGE
    prefix = "usage"


class ConfigError(BaconError):
    """The configuration is missing, malformed or unsafe (exit 78)."""

    exit_code = EXIT_CONFIG
    prefix = "config"


class Unavailable(BaconError):
    """A service the decision needs (containerd, registry, TPM, TDX) cannot be reached (exit 69)."""

    exit_code = EXIT_UNAVAILABLE
    prefix = "unavailable"


class NoPermission(Unavailable):
    """This user may not read or use something the command needs (a root-owned log, socket or directory):
    exit 69, with a message that says it is a permission problem and a hint that says ``sudo``."""

    prefix = "permission denied"


class NotFound(BaconError):
    """A named thing (image, container) does not exist (exit 64: the operator named it)."""

    exit_code = EXIT_USAGE
    prefix = "not found"


class IntegrityError(BaconError):
    """Data did not match its digest, or exceeded a limit: treated as a denial of the data (exit 77)."""

    exit_code = EXIT_DENIED
    prefix = "integrity"


class Denied(BaconError):
    """A check failed: the command is refused (exit 77).

    ``check`` names the failed check (``signature``, ``level``, ``tpm``, ``tdx``, ``argv`` …).
    ``image`` and ``digest`` are filled in by the gate when known, so the first line names all three.
    """

    exit_code = EXIT_DENIED
    prefix = "denied"

    def __init__(
        self,
        message: str,
        *,
        check: str,
        hint: str | None = None,
        image: str | None = None,
        digest: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.check = check
        self.image = image
        self.digest = digest

    def render(self) -> str:
        head = (f"bacon: denied: image {printable(self.image or '-')} digest {printable(self.digest or '-')}: "
                f"check {self.check} failed: ")
        text = head + printable(self.message)
        if self.hint:
            text += f"\nbacon: hint: {printable(self.hint)}"
        return text


# The optional extras (pyproject.toml) and the top-level modules each one brings.
EXTRAS: dict[str, tuple[str, ...]] = {
    "tpm": ("tpm2_pytss",),
    "tdx": ("dcap_qvl", "jwt"),
    "keyless": ("sigstore", "sigstore_models", "sigstore_protobuf_specs"),
}


def exit_status(body: Callable[[], int], *, internal_hint: str | None = None) -> int:
    """Run an entry point's ``body`` and return its exit status: the one place where a failure becomes text
    on stderr and a status (a :class:`BaconError` its own, Ctrl-C 130, a missing optional extra 69, any
    other exception 70 with ``internal_hint``, never a traceback)."""
    import sys

    try:
        return body()
    except BaconError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bacon: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        return report_missing_module(e)
    except Exception as e:  # noqa: BLE001 - fail closed on any bug, with a message, never a traceback
        print(f"bacon: internal error: {type(e).__name__}: {printable(str(e))}", file=sys.stderr)
        if internal_hint:
            print(f"bacon: hint: {internal_hint}", file=sys.stderr)
        return EXIT_INTERNAL


def report_missing_module(e: ModuleNotFoundError) -> int:
    """Print what a ``ModuleNotFoundError`` that reached an entry point means and return the exit status:
    an optional extra not installed (69 and the line that installs it, :func:`missing_extra`), else a bug
    (70)."""
    import sys

    extra = missing_extra(e)
    if extra is None:
        print(f"bacon: internal error: {type(e).__name__}: {printable(str(e))}", file=sys.stderr)
        return EXIT_INTERNAL
    print(extra.render(), file=sys.stderr)
    return extra.exit_code


def missing_extra(e: ModuleNotFoundError) -> Unavailable | None:
    """The error to show when ``e`` is a module of an optional extra that is not installed (exit 69 and the
    line that installs it), or None when ``e`` is not one (then it is a bug: an internal error)."""
    top = (e.name or "").split(".", 1)[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return Unavailable(
                f"this needs BACON's optional '{extra}' extra, which is not installed (no module {top!r})",
                hint=f"in BACON's checkout, into the virtualenv it runs from: pip install '.[{extra}]' (the "
                     "Debian package bundles every extra: sudo apt install --reinstall bacon)")
    return None
