"""Every example in every `bacon ... --help` runs against a harness host.

The host: a real containerd and registry, a real swtpm with a recorded baseline, the harness's trusted key
(at the place the examples name, under the host's own /etc/bacon), level Mid, and `127.0.0.1:5000/team/app:1`
pushed, signed and pulled. What the examples name on the real machine is mapped into the test's own
directories (the registry's port, /etc/bacon, /tmp, /usr/local/bin and sbin, /usr/local/libexec/bacon), so no
example touches the machine. There is no TDX here: the examples that need a TD quote exit 69, and the
table below says so for each of them. An example missing from the table fails the test.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, make_host, sign_image, trusted_config
from tests.harness import containerd as containerd_h
from tests.harness import images as images_h
from tests.harness import registry as registry_h
from tests.harness import swtpm as swtpm_h
from tests.harness.proc import sigint_default
from tests.integration.test_evidence import boot
from tests.unit.operator.test_cli_help import all_examples, split_example

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.swtpm]

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "tdx"
NO_TDX = 69  # EXIT_UNAVAILABLE: a TD quote needs a TDX guest, which this machine is not
FOLLOW = "runs until Ctrl-C"

EXPECTED: dict[str, set[int] | str] = {
    "bacon status": {0},
    "bacon status --json": {0},
    "bacon status --timeout 3": {0},
    "sudo bacon doctor": {0},
    "bacon doctor --json": {0},
    "sudo bacon enable --path /usr/local/bin/nerdctl": {0},
    "sudo bacon enable --path /usr/local/bin/nerdctl --libexec /usr/local/libexec/bacon --json": {0},
    "sudo bacon disable --path /usr/local/bin/nerdctl": {0},
    "sudo bacon enable --runtime --path /usr/local/sbin/runc": {0},
    "sudo bacon disable --runtime --path /usr/local/sbin/runc": {0},
    "sudo bacon audit": {0},
    "sudo bacon audit --verdict denied --since 1h": {0},
    "sudo bacon audit --image 127.0.0.1:5000/team/app -n 5 --json": {0},
    "sudo bacon audit --follow --verdict denied": FOLLOW,
    "sudo bacon serve --socket /run/bacon/decide.sock": FOLLOW,
    "sudo bacon serve --stop": {0},
    "bacon version --json": {0},
    "bacon image --json 127.0.0.1:5000/team/app:1": {0},
    "bacon verify 127.0.0.1:5000/team/app:1": {0},
    "bacon verify --json --pull=always 127.0.0.1:5000/team/app:1": {0},
    "bacon verify 127.0.0.1:5000/team/app:1 -- --privileged -v /srv:/srv": {77},  # the baseline profile refuses
    "bacon sign --key /etc/bacon/keys/team.key 127.0.0.1:5000/team/app:1": {0},
    "bacon policy show": {0},
    "sudo bacon policy set Mid": {0},
    "sudo bacon policy set High": {0},
    "sudo bacon policy set Low --running=stop": {0},
    "sudo bacon policy reset": {0},
    "sudo bacon baseline record": {0},
    "bacon baseline show": {0},
    "bacon baseline show --diff": {0},
    "bacon baseline show --diff --json": {0},
    "bacon quote tpm --nonce 00112233 --out /tmp/q": {0},
    "bacon quote tpm --nonce 00112233 --pcrs 0,7": {0},
    "bacon quote tdx --nonce 00112233 --out /tmp/td.quote": {NO_TDX},
    "bacon tdx verify --quote td.quote --collateral collateral.json --at 1750329147": {0},
    "bacon tdx verify --quote td.quote --collateral collateral.json --at 1750329147 --json": {0},
    "sudo bacon tdx collateral refresh": {NO_TDX},
    "sudo bacon evidence --nonce 00112233445566778899aabbccddeeff --out /tmp/evidence": {0},
    "bacon evidence verify /tmp/evidence --nonce 00112233445566778899aabbccddeeff": {0},
    "bacon evidence verify /tmp/evidence --nonce 00112233445566778899aabbccddeeff --json": {0},
}


def test_the_table_lists_every_example() -> None:
    assert sorted(EXPECTED) == sorted(all_examples())


@pytest.fixture(scope="module")
def example_host(tmp_path_factory: pytest.TempPathFactory, containerd: containerd_h.Containerd,
                 registry: registry_h.Registry, signed: Signed) -> Iterator[tuple[Host, swtpm_h.Swtpm]]:
    if swtpm_h.binary() is None:
        pytest.skip("swtpm is not installed (apt-get install swtpm)")
    root = tmp_path_factory.mktemp("examples")
    tpm = swtpm_h.start(root, "swtpm-examples")
    host = make_host(root / "host", containerd, registry)
    keys = host.root / "etc" / "keys"
    keys.mkdir(mode=0o755)
    shutil.copy2(signed.trusted.private, keys / "team.key")
    shutil.copy2(signed.trusted.public, keys / "team.pub")
    bios = root / "binary_bios_measurements"
    boot(tpm, bios)  # a boot event log for the evidence examples
    # team.key is a plain PEM key: `bacon sign` may sign with it only unattended (docs/scopes.md)
    trusted_config(host, signed.trusted, level="Mid",
                   extra=f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{bios}"\n[measure]\ninto = ["tpm"]\n'
                         '[signing]\nunattended = true\n')
    app = images_h.push(signed.images.layout, registry, "low", repo_path="team/app", tag="1")
    sign_image(app, signed.trusted)
    images_h.pull(containerd, app)
    for setup in (["baseline", "record"], ["verify", app.ref]):  # a baseline, and a first audit line
        r = subprocess.run([*host.bacon, *setup], env=host.env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    yield host, tpm
    tpm.stop()


def localize(argv: list[str], host: Host, scratch: Path) -> list[str]:
    """The example's argv with the machine's paths and the registry's address mapped into the test."""
    paths = [("/etc/bacon/", f"{host.root}/etc/"), ("/tmp/", f"{scratch}/tmp/"),
             ("/usr/local/bin/", f"{scratch}/usr-local-bin/"), ("/usr/local/sbin/", f"{scratch}/usr-local-sbin/"),
             ("/usr/local/libexec/bacon", f"{scratch}/libexec-bacon"),
             ("/run/bacon/", f"{host.root}/run/")]  # a unix socket's path is at most 107 bytes
    out = []
    for word in argv:
        word = word.replace("127.0.0.1:5000", host.registry.host)
        for old, new in paths:
            if word.startswith(old):
                word = new + word[len(old):]
                break
        out.append(word)
    return out


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(example: str, example_host: tuple[Host, swtpm_h.Swtpm], tmp_path: Path) -> None:
    host, _tpm = example_host
    (host.state_dir / "level").unlink(missing_ok=True)  # each example starts at the configured level
    scratch = Path(str(tmp_path))
    for d in ("tmp", "usr-local-bin"):
        (scratch / d).mkdir()
    shutil.copy(VECTORS / "tdx_quote", scratch / "td.quote")
    shutil.copy(VECTORS / "tdx_quote_collateral.json", scratch / "collateral.json")
    env, argv = split_example(example)
    cmd = [*host.bacon, *localize(argv, host, scratch)]
    if argv[:2] == ["evidence", "verify"]:  # the bundle the example before it writes
        nonce = argv[argv.index("--nonce") + 1]
        made = subprocess.run([*host.bacon, "evidence", "--nonce", nonce, "--out", str(scratch / "tmp" / "evidence")],
                              env=host.env(), capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
    expected = EXPECTED[example]
    if expected == FOLLOW:
        p = subprocess.Popen(cmd, env=host.env(**env), cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=sigint_default, text=True)
        time.sleep(2)
        assert p.poll() is None, f"{example} ended early: {p.communicate()}"
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=20)
        assert p.returncode == 130, err
        return
    r = subprocess.run(cmd, env=host.env(**env), cwd=scratch, capture_output=True, text=True, timeout=120)
    assert r.returncode not in (64, 70), f"{example}: usage or internal error\n{r.stdout}\n{r.stderr}"
    assert isinstance(expected, set)
    assert r.returncode in expected, f"{example}: exit {r.returncode}, expected {expected}\n{r.stdout}\n{r.stderr}"
    if r.returncode == NO_TDX:
        assert "TDX guest" in r.stderr or "configfs-tsm" in r.stderr, r.stderr
