"""What the container profile costs (``python -m benchmarks`` rows ``profile_*``).

Measured in one fresh interpreter of the launchers' kind (``python -I -S``), as the wrapper runs:

- on the forwarding path, the only profile code a forwarded command runs: importing
  :mod:`shim.admission.profiles.classes` and :func:`~shim.admission.profiles.classes.needs_decision` on the parse
  (``ps -a``,  ``logs -f x``, ``exec -it c sh``), which answers "no decision needed";
- on the gated path, the whole decision of a long ``run`` line (import of the rule modules, the request
  built from the parse, the rules applied), which runs inside an admission.

Budget: under 1 ms on the forwarding path (issue 14); the gated path is reported for information (an
admission's budget is measured in the admission rows).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

PROBE = r"""
import json, sys, time
from shim.wrapper.argv import parse  # the wrapper imports it anyway
t0 = time.perf_counter()
from shim.admission.profiles import classes
t1 = time.perf_counter()
lines = [["ps", "-a"], ["logs", "-f", "x"], ["exec", "-it", "c", "sh"]]
invs = [parse(a) for a in lines]
n = 2000
t2 = time.perf_counter()
for _ in range(n):
    for inv in invs:
        assert not classes.needs_decision(inv)
t3 = time.perf_counter()
import dataclasses, typing, collections.abc, re, shim.common.errors, shim.common.configfile  # loaded by any admission
t4 = time.perf_counter()
from shim.admission.profiles import from_argv, request, rules, settings as _  # the profile's own modules
t5 = time.perf_counter()
import shim.common.config  # what an admission has loaded before the profile is decided
run = parse(["run", "--rm", "-d", "--name", "web", "-p", "8080:80", "-v", "data:/data", "-e", "A=1",
             "--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE", "--read-only", "--user=1000",
             "--security-opt", "no-new-privileges", "--memory", "256m", "img"])
settings = rules.Settings(profile="restricted")
m = 500
t6 = time.perf_counter()
for _ in range(m):
    assert rules.refusals_of(from_argv.requested(run), settings) == ()
t7 = time.perf_counter()
print(json.dumps({"forward_import_ms": (t1 - t0) * 1e3, "forward_check_us": (t3 - t2) / (n * len(invs)) * 1e6,
                  "gated_import_ms": (t5 - t4) * 1e3, "gated_decide_us": (t7 - t6) / m * 1e6}))
"""


def measure(python: str, sys_path: Sequence[str], runs: int = 5) -> dict[str, float]:
    """Medians over ``runs`` fresh interpreters."""
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        r = subprocess.run([python, "-I", "-S", "-c", f"import sys; sys.path[:0] = {list(sys_path)!r}\n" + PROBE],
                           capture_output=True, text=True, check=True, timeout=120)
        samples.append(json.loads(r.stdout))
    return {k: sorted(s[k] for s in samples)[len(samples) // 2] for k in samples[0]}
