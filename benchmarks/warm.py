"""``python -m benchmarks.warm N nerdctl-args…``: the same admission N times in one process, after a first
one that loads every module: what each would cost a process that stays loaded (a daemon). Prints the
times (ms) as JSON. The exec of the admitted command is replaced by an exception; BACON_CONFIG etc.
come from the environment, as for the wrapper."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import NoReturn


class _Exec(Exception):
    pass


def _no_exec(*_: object) -> NoReturn:
    raise _Exec


def main() -> int:
    n, args = int(sys.argv[1]), sys.argv[2:]
    os.execve = _no_exec  # type: ignore[assignment]  # the admitted command is not run: the timing ends where the wrapper would exec
    from shim.wrapper.main import run

    times = []
    for i in range(n + 1):
        start = time.perf_counter()
        try:
            run(args)
        except _Exec:
            pass
        else:
            raise SystemExit("the admission did not end in an exec")
        if i:
            times.append((time.perf_counter() - start) * 1000)
    print(json.dumps(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
