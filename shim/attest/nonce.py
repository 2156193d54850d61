"""The challenger's nonce on the command line (``--nonce HEX``): one reading for ``bacon quote tpm``,
``bacon quote tdx`` and ``bacon evidence``, which differ only in the sizes they take."""

from __future__ import annotations

from shim.common.errors import UsageError

HINT = "e.g. --nonce $(openssl rand -hex 32)"


def parse_hex(text: str, *, min_size: int = 1, max_size: int) -> bytes:
    """``min_size``..``max_size`` bytes from hex (``0x`` and case allowed). Raises :class:`UsageError`."""
    digits = (text or "").strip().lower().removeprefix("0x")
    try:
        nonce = bytes.fromhex(digits)
    except ValueError as e:
        raise UsageError(f"--nonce must be hex, got {text!r}", hint=HINT) from e
    if not min_size <= len(nonce) <= max_size:
        raise UsageError(f"--nonce must be {min_size}..{max_size} bytes ({2 * min_size} to {2 * max_size} hex "
                         f"digits), got {len(nonce)}", hint=HINT)
    return nonce
