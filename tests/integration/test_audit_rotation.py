"""The shipped logrotate policy (packaging/deb/debian/bacon.logrotate), run by the real logrotate while decisions are
being logged: no line is lost or torn, and `bacon audit` reads every one across the rotated (and
compressed) files, in order. Decisions come from real wrapper denials (the gate's own audit path) and,
to press many appends into each rotation, from processes that append through ``shim.admission.audit.record``, the
function every decision is written with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Host, Signed

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

POLICY = Path(__file__).resolve().parents[2] / "packaging" / "deb" / "debian" / "bacon.logrotate"
WRITERS, PER_WRITER = 4, 250
MAX_ROTATIONS = 60
APPENDER = """
import sys
from pathlib import Path
from shim.admission import audit
log, name, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    audit.record(log, argv=["nerdctl", "run", f"r/{name}:{i}"], verdict="denied", image=f"r/{name}:{i}",
                 digest=None, level="Low", system_level="Low", checks=[], writer=name, seq=i)
"""


def test_logrotate_policy_under_concurrent_decisions_loses_no_line(gate_host: Host, signed: Signed,
                                                                   tmp_path: Path) -> None:
    logrotate = shutil.which("logrotate", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if logrotate is None:
        pytest.skip("logrotate is not installed (scripts/install-deps installs it)")
    log = gate_host.audit_log
    log.parent.mkdir(mode=0o750, exist_ok=True)
    conf = tmp_path / "logrotate.conf"
    text = POLICY.read_text()
    assert "/var/log/bacon/audit.jsonl {" in text
    # As shipped (`create 0640 root adm`, compress, delaycompress); -f rotates on every run.
    conf.write_text(text.replace("/var/log/bacon/audit.jsonl {", f"{log} {{"))
    conf.chmod(0o644)
    state = tmp_path / "logrotate.state"

    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(log), f"w{k}", str(PER_WRITER)])
               for k in range(WRITERS)]
    unsigned = signed["unsigned"].ref
    denials = [subprocess.Popen([*gate_host.wrapper, "run", "--rm", unsigned], env=gate_host.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(3)]
    rotations = 0
    # At most MAX_ROTATIONS: past the policy's `rotate 104` logrotate deletes the oldest file, by design
    # (on a loaded machine the writers may outlast a hundred forced rotations).
    while (any(p.poll() is None for p in writers + denials) and rotations < MAX_ROTATIONS) or rotations < 3:
        r = subprocess.run([logrotate, "-f", "-s", str(state), str(conf)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        rotations += 1
        time.sleep(0.05)
    assert all(p.wait() == 0 for p in writers)
    assert all(p.wait() == 77 for p in denials)

    rotated = sorted(p.name for p in log.parent.iterdir() if p.name != log.name)
    assert any(n.endswith(".gz") for n in rotated), rotated  # compressed, and still read below
    assert f"{log.name}.1" in rotated  # delaycompress: the newest rotated file stays plain
    r = subprocess.run([*gate_host.bacon, "audit", "-n", "0", "--json"], env=gate_host.env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bad"] == []
    entries = doc["entries"]
    seen = [(e["writer"], e["seq"]) for e in entries if "writer" in e]
    assert sorted(seen) == sorted((f"w{k}", i) for k in range(WRITERS) for i in range(PER_WRITER))
    for k in range(WRITERS):  # each writer's lines in the order it wrote them, across the files
        assert [s for w, s in seen if w == f"w{k}"] == list(range(PER_WRITER))
    assert [e["image"] for e in entries if "writer" not in e] == [unsigned] * 3
    assert 3 <= rotations <= MAX_ROTATIONS
    assert 2 <= len(rotated) <= rotations  # notifempty: a run that finds the log empty rotates nothing
