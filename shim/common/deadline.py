"""Work on a device that may stop answering, waited for at most a deadline.

tpm2-tss waits for a TPM's answer without a deadline (its synchronous calls retry until one comes), and a
read of configfs-tsm's ``outblob`` blocks until the Quote Generation Service answers: a device that stops
answering mid-command, or answers a byte at a time, would hold any command forever. :func:`bounded` runs
the work in a worker thread (which releases the GIL while it waits in the kernel or the TCTI) and gives
up after the deadline; the worker is then abandoned (a daemon thread: the process exits after reporting).

Every read of the TPM or of TDX goes through here, in every command (admissions, ``status``, ``baseline``,
``quote``, ``tdx``), with the configured ``[tpm] timeout`` / ``[tdx] timeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from shim.common.errors import BaconError

T = TypeVar("T")


def bounded(seconds: float, work: Callable[[], T], timed_out: Callable[[], BaconError], name: str = "device") -> T:
    """``work()``'s result, or its exception, if it ends within ``seconds``; else ``timed_out()`` is raised."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread, re-raised there
            box["error"] = e

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise timed_out()
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    result: T = box["result"]
    return result
