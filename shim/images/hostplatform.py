"""This host's platform as containerd computes it, read from ``uname`` and ``/proc/cpuinfo`` (the IO
edge of :mod:`shim.images.platforms`, which holds the rule)."""

from __future__ import annotations

import os
import sys

from shim.images.platforms import Host, cpuinfo_field, host_from_uname

_CPUINFO_LIMIT = 1 << 20


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return f.read(_CPUINFO_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""


def this_host() -> Host:
    machine = os.uname().machine
    text = _cpuinfo() if machine.lower().startswith(("arm", "aarch64")) else ""
    return host_from_uname(machine, byteorder=sys.byteorder, cpu_architecture=cpuinfo_field(text, "CPU architecture"),
                           model_name=cpuinfo_field(text, "model name"))
