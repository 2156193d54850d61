"""Every table is parsed when the configuration is loaded: a bad ``[tpm]``, ``[tdx]``, ``[measure]``,
``[policy]``, ``[service]`` or ``[runtime]`` value makes ``bacon status``, ``bacon verify`` and a gated
``nerdctl run`` exit 78 naming the key, before anything is asked of the TPM or containerd.

The TPM the configuration names and the containerd the commands would ask are sockets that listen and never
answer: after the command, neither may hold a connection. Run through the real entry points, in fresh
processes, as an operator runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.common import config
from shim.common.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "registry.example/team/app:1"

# (table text, the key the refusal must name); {tcti} is the listening stand-in's TCTI, {run} a private dir
BAD: dict[str, tuple[str, str]] = {
    "tpm-value": ('[tpm]\ntcti = "{tcti}"\ntimeout = -1\n', "'timeout'"),
    "tpm-unknown-key": ('[tpm]\ntcti = "{tcti}"\ntimout = 5\n', "timout"),
    "tdx-value": ('[tdx]\npccs_url = "http://pccs.example:8081"\n', "'pccs_url'"),
    "tdx-unknown-key": ('[tdx]\nbusy_retry = 3\n', "busy_retry"),
    "measure-value": ('[measure]\ninto = ["tpm"]\npcr = 16\n', "'pcr'"),
    "policy-value": ('[policy]\nrunning_above_level = "kill"\n', "running_above_level"),
    "policy-unknown-key": ('[policy]\nrunning_above = "stop"\n', "running_above"),
    "service-value": ('[service]\nsocket = "decide.sock"\n', "socket"),
    "service-unknown-key": ('[service]\nsocket = "{run}/decide.sock"\nworkers = 4\n', "workers"),
    "runtime-value": ('[runtime]\nrunc = "runc"\n', "runc"),
    "runtime-unknown-key": ('[runtime]\nrunc = "/usr/sbin/runc"\nshim = "/x"\n', "shim"),
}


@dataclass
class Host:
    config: Path
    tpm: socket.socket  # where [tpm] tcti points
    containerd: socket.socket  # where CONTAINERD_ADDRESS points
    containerd_path: Path
    run: Path


def _connected(listener: socket.socket) -> bool:
    """Whether anyone connected to ``listener`` (a connection completes into the backlog unaccepted)."""
    listener.setblocking(False)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    etc, run = tmp_path / "etc", tmp_path / "run"
    for d in (etc, run):
        d.mkdir(mode=0o755)
        d.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tpm, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as containerd:
        tpm.bind(("127.0.0.1", 0))
        tpm.listen(8)
        containerd.bind(str(run / "containerd.sock"))
        containerd.listen(8)
        yield Host(etc / "config.toml", tpm, containerd, run / "containerd.sock", run)


def write(h: Host, case: str) -> str:
    """A configuration whose only fault is ``case`` (levels need the TPM: a probe would ask it); the key."""
    table, key = BAD[case]
    tcti = f"swtpm:host=127.0.0.1,port={h.tpm.getsockname()[1]}"
    base = (f'level = "Mid"\nnerdctl = "/bin/true"\nstate_dir = "{h.run}/state"\naudit_log = "{h.run}/audit.jsonl"\n'
            '[trust]\nkeys = ["/etc/bacon/keys/team.pub"]\n')
    if not table.startswith("[tpm]"):
        base += f'[tpm]\ntcti = "{tcti}"\n'
    h.config.write_text(base + table.format(tcti=tcti, run=h.run))
    h.config.chmod(0o644)
    return key


def run(h: Host, entry: str, args: list[str], containerd: Path) -> subprocess.CompletedProcess[str]:
    code = f"import sys\nfrom {entry} import main\nsys.exit(main())"
    return subprocess.run([sys.executable, "-I", "-c", code, *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={"BACON_CONFIG": str(h.config), "PATH": "/usr/bin:/bin",
                                         "CONTAINERD_ADDRESS": str(containerd), "HOME": str(h.run)})


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_table_is_refused_at_load(host: Host, case: str) -> None:
    key = write(host, case)
    with pytest.raises(ConfigError, match=key.strip("'")) as e:
        config.load(host.config)
    assert e.value.exit_code == 78
    assert str(host.config) in e.value.message


@pytest.mark.parametrize("case", sorted(BAD))
def test_bacon_verify_exits_78_naming_the_key_before_containerd_or_the_tpm(host: Host, case: str) -> None:
    key = write(host, case)
    r = run(host, "shim.operator.cli", ["verify", IMAGE], host.containerd_path)
    assert r.returncode == 78, r.stderr
    assert key in r.stderr
    assert not _connected(host.containerd), "bacon verify asked containerd with a configuration it refuses"
    assert not _connected(host.tpm), "bacon verify asked the TPM with a configuration it refuses"


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_gated_nerdctl_run_exits_78_naming_the_key_before_containerd_or_the_tpm(host: Host, case: str) -> None:
    key = write(host, case)
    r = run(host, "shim.wrapper.main", ["run", "--rm", IMAGE], host.containerd_path)
    assert r.returncode == 78, r.stderr
    assert key in r.stderr
    assert not _connected(host.containerd), "the wrapper asked containerd with a configuration it refuses"
    assert not _connected(host.tpm), "the wrapper asked the TPM with a configuration it refuses"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bacon_status_exits_78_naming_the_key_and_leaves_the_tpm_alone(host: Host, case: str) -> None:
    """The TPM and TDX probes need the configuration (which TPM, which reference values): with it unusable
    they ask nothing (containerd's probe needs none of it, and is pointed nowhere here)."""
    key = write(host, case)
    r = run(host, "shim.operator.cli", ["status", "--timeout", "5"], host.run / "no-containerd.sock")
    assert r.returncode == 78, r.stdout + r.stderr
    assert key in r.stdout
    assert "the configuration cannot be used" in r.stdout
    assert not _connected(host.tpm), "bacon status asked the TPM named by a configuration it refuses"
