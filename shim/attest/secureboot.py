"""Whether the firmware booted with Secure Boot: the one reading of the UEFI ``SecureBoot`` variable.

Linux shows EFI variables as files in efivarfs (``/sys/firmware/efi/efivars``), named
``<Name>-<vendor GUID>``; each holds 4 bytes of attributes, then the value. ``SecureBoot`` (vendor
EFI_GLOBAL_VARIABLE) is one byte: 1 when the firmware enforces Secure Boot, 0 when it does not.

``bacon status`` and the TPM part of it report this; it informs (the PCRs the TPM check compares hold what
Secure Boot measured), it decides nothing. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EFI = Path("/sys/firmware/efi")
EFIVARS = EFI / "efivars"
GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"  # EFI_GLOBAL_VARIABLE
VARIABLE = f"SecureBoot-{GLOBAL_VARIABLE}"

ENABLED, DISABLED, UNKNOWN = "enabled", "disabled", "unknown"
# why the state is unknown
NO_EFIVARFS = "efivarfs is not mounted"
NO_VARIABLE = "the firmware has no SecureBoot variable"


@dataclass(frozen=True)
class Reading:
    """``state`` is ENABLED, DISABLED or UNKNOWN; for UNKNOWN, ``why`` says what was found."""

    state: str
    why: str = ""


def read(efivars: Path = EFIVARS) -> Reading:
    """The Secure Boot state from the efivarfs at ``efivars``. Never raises."""
    var = efivars / VARIABLE
    try:
        data = var.read_bytes()
    except FileNotFoundError:
        try:
            mounted = efivars.is_dir() and any(efivars.iterdir())
        except OSError:
            mounted = False
        return Reading(UNKNOWN, NO_VARIABLE if mounted else NO_EFIVARFS)
    except OSError as e:
        return Reading(UNKNOWN, f"cannot read {var}: {e.strerror}")
    value = data[4] if len(data) == 5 else None  # 4 bytes of attributes, then the value
    if value == 1:
        return Reading(ENABLED)
    if value == 0:
        return Reading(DISABLED)
    return Reading(UNKNOWN, f"{len(data)}-byte SecureBoot variable")
