"""What every admission check returns, so the gate can audit and explain checks uniformly.

A check either returns a passing :class:`CheckResult` or raises: :class:`shim.common.errors.Denied` when the
host or image fails the check, :class:`shim.common.errors.Unavailable` when the check cannot run (which the gate
also turns into a denial: fail closed). A check never returns a failing result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """A passed check: its name (``signature``, ``level``, ``tpm``, ``tdx``), a one-line summary, and
    machine-readable details for the audit log and ``--json``."""

    name: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
