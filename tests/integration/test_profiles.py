"""Container profiles through the wrapper, against the real containerd and registry, with the stand-in
nerdctl: every Pod Security Standards control and every place nerdctl runs host code or touches host files
as root is refused under baseline and restricted (nothing reaches nerdctl) and admitted under privileged
(forwarded); ordinary runs stay admitted under baseline; refusals explain themselves and are audited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.integration.test_gate import audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

# IMG: a signed Low image; CTR: a container created through the wrapper from it.
CONTAINER = [
    ("privileged", ["run", "--rm", "--privileged", "IMG"]),
    ("host pid", ["run", "--rm", "--pid=host", "IMG"]),
    ("host ipc", ["run", "--rm", "--ipc", "host", "IMG"]),
    ("host network", ["run", "--rm", "--network=host", "IMG"]),
    ("host uts", ["run", "--rm", "--uts=host", "IMG"]),
    ("host cgroupns", ["run", "--rm", "--cgroupns=host", "IMG"]),
    ("cap-add ALL", ["run", "--rm", "--cap-add", "ALL", "IMG"]),
    ("cap-add SYS_ADMIN", ["run", "--rm", "--cap-add=SYS_ADMIN", "IMG"]),
    ("volume /", ["run", "--rm", "-v", "/:/host", "IMG"]),
    ("bind mount /etc", ["run", "--rm", "--mount", "type=bind,src=/etc,dst=/x", "IMG"]),
    ("device", ["run", "--rm", "--device", "/dev/mem", "IMG"]),
    ("seccomp unconfined", ["run", "--rm", "--security-opt", "seccomp=unconfined", "IMG"]),
    ("apparmor unconfined", ["run", "--rm", "--security-opt", "apparmor=unconfined", "IMG"]),
    ("selinux disabled", ["run", "--rm", "--security-opt", "label=disable", "IMG"]),
    ("systempaths", ["run", "--rm", "--security-opt", "systempaths=unconfined", "IMG"]),
    ("unsafe sysctl", ["run", "--rm", "--sysctl", "kernel.core_pattern=|/tmp/x", "IMG"]),
    ("log driver binary", ["run", "--rm", "--log-driver=binary:///any/program", "IMG"]),
    ("log-path", ["run", "--rm", "--log-opt", "log-path=/etc/cron.d/x", "IMG"]),
    ("runtime path", ["run", "--rm", "--runtime=/any/program", "IMG"]),
    ("cni-path", ["--cni-path=/any/dir", "run", "--rm", "IMG"]),
    ("data-root", ["--data-root=/etc", "run", "--rm", "IMG"]),
    ("cidfile", ["run", "--rm", "--cidfile", "CIDFILE", "IMG"]),
    ("pidfile", ["run", "--rm", "--pidfile", "/etc/x.pid", "IMG"]),
    ("init-binary", ["run", "--rm", "--init", "--init-binary=/bin/sh", "IMG"]),
    ("annotation", ["run", "--rm", "--annotation", "run.oci.handler=krun", "IMG"]),
    ("cgroup-parent", ["run", "--rm", "--cgroup-parent=/", "IMG"]),
    ("pull --verify", ["pull", "--verify=cosign", "IMG"]),
]
HOST = [
    ("internal oci-hook", ["internal", "oci-hook", "createRuntime"]),
    ("cp from host", ["cp", "/etc/shadow", "CTR:/x"]),
    ("save -o", ["save", "-o", "/etc/x.tar", "IMG"]),
    ("load -i", ["load", "-i", "/etc/shadow"]),
    ("build", ["build", "-t", "x", "CTXDIR"]),  # its Dockerfile's FROM is IMG (docs/build.md)
    ("compose -f", ["compose", "-f", "/etc/shadow", "config"]),
    ("global cni-netconfpath", ["--cni-netconfpath=/tmp/net", "ps"]),
    ("exec --privileged", ["exec", "--privileged", "CTR", "sh"]),
]


def _configure(host: Host, signed: Signed, profile: str) -> None:
    trusted_config(host, signed.trusted, extra=f'[levels.Low]\nprofile = "{profile}"\n')


def _fill(argv: list[str], host: Host, signed: Signed, ctr: str = "") -> list[str]:
    ctxdir = host.root / "ctx"
    if "CTXDIR" in argv:
        ctxdir.mkdir(exist_ok=True)
        (ctxdir / "Dockerfile").write_text(f"FROM {signed['low'].ref}\n")
    subst = {"IMG": signed["low"].ref, "CTR": ctr, "CIDFILE": str(host.root / "cid"), "CTXDIR": str(ctxdir)}
    return [subst.get(a, a.replace("CTR:", f"{ctr}:")) for a in argv]


def _container(host: Host, signed: Signed, name: str) -> str:
    r = nerdctl(host, "create", "--name", name, signed["low"].ref)
    assert r.rc == 0, r.stderr
    return name


def _remove(host: Host, ctr: str) -> None:
    subprocess.run([*host.wrapper, "rm", "-f", ctr], env=host.env(), capture_output=True, timeout=60)


@pytest.mark.parametrize("profile", ["baseline", "restricted", "privileged"])
@pytest.mark.parametrize(("case", "argv"), CONTAINER + HOST, ids=[c for c, _ in CONTAINER + HOST])
def test_every_control_and_host_code_path(host: Host, signed: Signed, profile: str, case: str,
                                          argv: list[str]) -> None:
    _configure(host, signed, "privileged")
    ctr = _container(host, signed, f"prof-{abs(hash((case, profile))) % 10**8}") if "CTR" in " ".join(argv) else ""
    _configure(host, signed, profile)
    try:
        r = nerdctl(host, *_fill(argv, host, signed, ctr))
        last = audit_lines(host)[-1]
        if profile == "privileged":
            assert r.forwarded, (r.rc, r.stderr)
            assert "check profile failed" not in r.stderr
            assert last["verdict"] == "admitted", last
            assert last["profile"] == "privileged"
            return
        assert r.rc == 77, (r.rc, r.stderr)
        assert r.first_line.startswith("bacon: denied: "), r.stderr
        assert "check profile failed" in r.first_line, r.first_line
        assert f"the {profile} profile of" in r.first_line
        assert r.forwarded == [], "a refused command must not reach nerdctl"
        assert ("bacon: hint: " in r.stderr and "[levels.Low" in r.stderr) or "[global_flags]" in r.stderr
        assert last["verdict"] == "denied"
        assert last["profile"] == profile
        assert last["refused_options"], last
    finally:
        if ctr:
            _configure(host, signed, "privileged")
            _remove(host, ctr)


ORDINARY = [
    ["run", "--rm", "-v", "bacon-data:/data", "IMG"],
    ["run", "--rm", "-p", "18080:80", "-e", "A=1", "--env", "B=2", "IMG"],
    ["run", "--rm", "--cap-drop", "NET_RAW", "--read-only", "--user", "1000:1000", "IMG"],
    ["run", "--rm", "--tmpfs", "/tmp", "-w", "/", "--security-opt", "no-new-privileges", "IMG"],
]


@pytest.mark.parametrize("argv", ORDINARY, ids=[" ".join(a[2:-1]) for a in ORDINARY])
def test_ordinary_runs_stay_admitted_under_baseline(gate_host: Host, signed: Signed, argv: list[str]) -> None:
    r = nerdctl(gate_host, *_fill(argv, gate_host, signed))
    assert r.rc == 0, r.stderr
    assert "hello-from-low" in r.stdout  # it really ran
    [line] = audit_lines(gate_host)
    assert (line["verdict"], line["profile"], line["refused_options"]) == ("admitted", "baseline", [])


def test_a_refusal_names_option_profile_rule_and_the_line_that_allows_it(gate_host: Host, signed: Signed) -> None:
    r = nerdctl(gate_host, "run", "--rm", "--cap-add=SYS_ADMIN", "-v", "/srv:/srv:ro", signed["low"].ref)
    assert r.rc == 77
    assert signed["low"].digest in r.first_line  # the image and digest, as every denial
    assert "the baseline profile of level Low refuses --cap-add=SYS_ADMIN (capabilities:" in r.first_line
    assert "-v" not in r.first_line or "--volume=/srv:/srv:ro (host-paths:" in r.first_line
    hint = r.stderr.splitlines()[1]
    assert '[levels.Low.allow] capabilities = ["SYS_ADMIN"]' in hint
    assert '[levels.Low.allow] host_paths = ["/srv"]' in hint
    [line] = audit_lines(gate_host)
    assert line["failed_check"] == "profile"
    refused = line["refused_options"]
    assert isinstance(refused, list)
    assert [o["option"] for o in refused] == ["--cap-add=SYS_ADMIN", "--volume=/srv:/srv:ro"]
    # and the allowance it names admits exactly that
    trusted_config(gate_host, signed.trusted, extra='[levels.Low.allow]\ncapabilities = ["SYS_ADMIN"]\n'
                                                    'host_paths = ["/srv"]\n')
    r = nerdctl(gate_host, "run", "--rm", "--cap-add=SYS_ADMIN", "-v", "/srv:/srv:ro", signed["low"].ref)
    assert r.rc == 0, r.stderr
    r = nerdctl(gate_host, "run", "--rm", "--cap-add=SYS_ADMIN", "-v", "/srv:/srv", signed["low"].ref)
    assert r.rc == 77, "the allowance is read-only"


def test_restricted_exec_as_root_is_refused(host: Host, signed: Signed) -> None:
    _configure(host, signed, "restricted")
    r = nerdctl(host, "create", "--name", "restricted-exec", "--user=1000", "--cap-drop=ALL",
                "--security-opt=no-new-privileges", signed["low"].ref)
    assert r.rc == 0, r.stderr
    try:
        r = nerdctl(host, "exec", "-u", "0", "restricted-exec", "id")
        assert r.rc == 77, r.stderr
        assert "run-as-non-root" in r.first_line
        assert r.forwarded == []
        r = nerdctl(host, "exec", "-u", "1000", "restricted-exec", "id")
        assert r.rc == 0, r.stderr
        assert r.forwarded
    finally:
        _remove(host, "restricted-exec")


def test_bacon_status_shows_each_levels_profile(host: Host, signed: Signed) -> None:
    trusted_config(host, signed.trusted, extra='[levels.Low]\nprofile = "restricted"\n'
                                             '[levels.High]\nprofile = "privileged"\n')
    r = subprocess.run([*host.bacon, "status", "--json"], env=host.env(), capture_output=True, text=True,
                       timeout=120)
    doc = json.loads(r.stdout)
    assert doc["profiles"] == {"Low": "restricted", "Mid": "baseline", "High": "privileged"}
    r = subprocess.run([*host.bacon, "status"], env=host.env(), capture_output=True, text=True, timeout=120)
    assert "profile restricted" in r.stdout
    assert "profile privileged" in r.stdout


def test_bacon_verify_shows_the_profiles_verdict(gate_host: Host, signed: Signed) -> None:
    img = signed["low"].ref
    r = subprocess.run([*gate_host.bacon, "verify", img, "--json", "--", "--privileged", "-p", "80:80"],
                       env=gate_host.env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 77, r.stderr
    doc = json.loads(r.stdout)
    assert doc["admitted"] is False
    assert doc["profile"]["profile"] == "baseline"
    assert [o["option"] for o in doc["profile"]["refused_options"]] == ["--privileged"]
    assert doc["checks"][-1]["passed"] is True  # the image itself passes: the profile refuses
    r = subprocess.run([*gate_host.bacon, "verify", img, "--", "-p", "80:80", "-e", "A=1"],
                       env=gate_host.env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "[pass] profile   baseline (level Low): nothing refused" in r.stdout


def test_a_file_option_is_refused_before_any_file_is_touched(gate_host: Host, signed: Signed, tmp_path: Path) -> None:
    cid = Path(str(tmp_path)) / "cid"
    r = nerdctl(gate_host, "run", "--rm", "--cidfile", str(cid), signed["low"].ref)
    assert r.rc == 77
    assert not cid.exists()


def test_exec_env_file_is_admitted_under_baseline_read_as_the_caller(host: Host, signed: Signed,
                                                                      tmp_path: Path) -> None:
    """exec --env-file is read by the wrapper as the caller and handed over sealed: baseline admits it."""
    _configure(host, signed, "baseline")
    ctr = _container(host, signed, "prof-exec-env")
    env = Path(str(tmp_path)) / "app.env"
    env.write_text("A=1\n")
    try:
        r = nerdctl(host, "exec", "--env-file", str(env), ctr, "env")
        [argv] = r.forwarded
        assert any(a.startswith("--env-file=/proc/self/fd/") for a in argv), argv
        assert audit_lines(host)[-1]["verdict"] == "admitted"
    finally:
        _remove(host, ctr)


def test_exec_into_a_container_without_an_admission_record_is_judged_as_restricted(host: Host, signed: Signed) -> None:
    """A container made by another client has no recorded level: exec into it gets restricted (fail closed),
    even when the level's own profile is privileged."""
    _configure(host, signed, "privileged")
    img = signed["low"]
    assert nerdctl(host, "pull", img.ref).rc == 0  # the image is local, and the pull admitted
    host.containerd.ctr("containers", "create", "--label", "nerdctl/name=unrecorded-exec", img.ref, "unrecorded-exec-1")
    try:
        r = nerdctl(host, "exec", "--privileged", "unrecorded-exec", "sh")
        assert r.rc == 77, r.stderr
        assert "has no admission record: restricted applies" in r.first_line
        assert r.forwarded == []
        r = nerdctl(host, "exec", "-u", "0", "unrecorded-exec", "id")
        assert "run-as-non-root" in r.first_line
        r = nerdctl(host, "exec", "-u", "1000", "unrecorded-exec", "id")
        assert r.forwarded, r.stderr
    finally:
        host.containerd.ctr("containers", "rm", "unrecorded-exec-1", check=False)
