"""Signing proves possession: the key's password supplied at the moment of signing, the signer's scope
checked before anything is pushed, and the provenance every signature BACON makes carries
(docs/scopes.md).

- :func:`open_signing_key`: the password comes from ``COSIGN_PASSWORD``, else a prompt when standard
  input is a terminal (:func:`getpass.getpass`: it opens the controlling terminal, ``/dev/tty``, with echo
  off), never from the configuration. A key without a password (a plain PEM key, or one whose password
  is empty) is refused unless ``[signing] unattended = true``.
- :func:`signer_scope`: the ``[trust] keys`` entry holding the signing key's public half (by key id), and
  :func:`check_can_vouch`: whether that signer may vouch for a repository at a level (the same rules as
  admission, :mod:`shim.trust.scopes`).
- :func:`provenance`: the ``bacon.*`` annotations (host, operator, time, level, version).

Refusals are :class:`Denied` with check ``sign`` (exit 77); an unreadable key is a :class:`ConfigError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shim import __version__
from shim.common.config import Config, under_sudo
from shim.common.errors import ConfigError, Denied
from shim.trust import keys, scopes

PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 - the variable's name, not a password
ANNOTATION_PREFIX = "bacon."
HOST, OPERATOR, TIME, LEVEL, VERSION = (f"{ANNOTATION_PREFIX}{n}" for n in ("host", "operator", "time", "level",
                                                                            "version"))
PASSWORD_HINT = (f"supply the key's password now: run from a terminal to be prompted, or set {PASSWORD_ENV} "
                 "(under sudo only the prompt, unless sudoers keeps COSIGN_PASSWORD: docs/scopes.md)")

Ask = Callable[[str], str]


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(keys.MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read signing key {path}: {e.strerror}",
                          hint="check [signing] key (a root-only cosign.key)") from e


def is_protected(pem: bytes) -> bool:
    """True for a key that needs a password to open (cosign's encrypted formats, encrypted PKCS#8)."""
    return (any(f"-----BEGIN {label}-----".encode() in pem for label in keys.COSIGN_PEM_TYPES)
            or b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem)


def _ask_terminal(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


def open_signing_key(path: Path, *, unattended: bool, environ: Mapping[str, str] | None = None,
                     interactive: bool | None = None, ask: Ask = _ask_terminal) -> keys.SigningKey:
    """The signing key at ``path``, opened with a password supplied now (module docstring).

    ``interactive`` defaults to whether standard input is a terminal. Raises :class:`Denied` (no password,
    a key without one and not ``unattended``, a wrong one) or :class:`ConfigError` (unreadable key)."""
    env = os.environ if environ is None else environ
    pem = _read(path)
    not_unattended = ("anyone allowed to run the wrapper could sign with it; give the key a password "
                      "(cosign generate-key-pair), or accept that with [signing] unattended = true")
    if not is_protected(pem):
        if not unattended:
            raise Denied(f"signing key {path} has no password, so signing with it proves nothing", check="sign",
                         hint=not_unattended)
        return keys.load_signing_key(pem, str(path))
    password = env.get(PASSWORD_ENV)
    if password is None:
        import sys

        if not (sys.stdin.isatty() if interactive is None else interactive):
            raise Denied(f"signing with {path} needs its password now, and none was given ({PASSWORD_ENV} is not "
                         "set and standard input is not a terminal to ask on)", check="sign", hint=PASSWORD_HINT)
        try:
            password = ask(f"Password for signing key {path}: ")
        except (EOFError, KeyboardInterrupt, OSError) as e:
            raise Denied(f"no password was entered for signing key {path}", check="sign", hint=PASSWORD_HINT) from e
    if password == "" and not unattended:
        raise Denied(f"an empty password was given for signing key {path}: a key without a password proves "
                     "nothing", check="sign", hint=not_unattended)
    try:
        return keys.load_signing_key(pem, str(path), password.encode())
    except ConfigError as e:
        if "cannot decrypt" in e.message or "bad decrypt" in e.message.lower() or "password" in e.message.lower():
            raise Denied(f"the password given does not open signing key {path}", check="sign",
                         hint=PASSWORD_HINT) from e
        raise


def signer_scope(cfg: Config, public: keys.PublicKey, trusted: Sequence[keys.PublicKey]) -> scopes.SignerInfo:
    """The signer a signature by ``public`` will be judged as here: the ``[trust] keys`` entry whose key
    has the same key id (``trusted`` are those keys, loaded), else unscoped (a key this host does not
    trust; its signatures will not be admitted here at all)."""
    from shim.trust import signers

    for pub in trusted:
        if pub.key_id == public.key_id:
            return signers.key_signer(cfg, pub)
    return scopes.SignerInfo(name=public.name, shown=f"signing key {public.name} (not under [trust] keys)",
                             scope=scopes.UNSCOPED)


def check_can_vouch(signer: scopes.SignerInfo, repository: str, level: str,
                    requirements: Sequence[scopes.Requirement], image: str) -> None:
    """Raise :class:`Denied` (check ``sign``) unless ``signer`` may vouch for ``repository`` at ``level``."""
    why = scopes.judge(signer, repository, requirements) or scopes.level_ceiling_reason(signer, level)
    if why is not None:
        raise Denied(f"refusing to sign: {why}", check="sign", image=image,
                     hint="sign it with a key whose scope covers it (docs/scopes.md); nothing was pushed or signed")


def operator(environ: Mapping[str, str] | None = None) -> str:
    """Who asked: the sudo user when root runs us under sudo, else the user running us."""
    env = os.environ if environ is None else environ
    if os.getuid() == 0 and under_sudo(env) and env.get("SUDO_USER"):
        return env["SUDO_USER"]
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def provenance(level: str, environ: Mapping[str, str] | None = None, now: float | None = None) -> dict[str, str]:
    """The annotations every signature BACON makes carries (cosign's ``-a``)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return {HOST: os.uname().nodename, OPERATOR: operator(environ), TIME: stamp, LEVEL: level, VERSION: __version__}
