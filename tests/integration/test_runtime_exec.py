"""The runtime gate at ``runc exec``: a process started in a running container goes through the profile of
the level the container was admitted at, whoever asks (``ctr task exec``, or anyone calling the ``runc``
containerd runs with a process file). Real containerd, real runc, the harness's signed images.

``ctr task exec`` sends the container's own process with ``--user`` applied (containerd 1.6's ctr offers no
capabilities for exec); a client of containerd's API can send any process, which the shim writes to a file
for ``runc exec --process``: those are sent here straight to the launcher, as the shim calls it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.admission.profiles.request import DEFAULT_CAPABILITIES
from shim.runtime import decided as runtime_decided
from tests.conftest import Signed
from tests.harness import runtime as runtime_h
from tests.integration.test_runtime_gate import Gated, ctr, gated  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

NAMESPACE = "default"
RUNC_ROOT = f"/run/containerd/runc/{NAMESPACE}"  # where containerd's runc shim keeps runc's state
RESTRICTED_LOW = '[levels.Low]\nrequire = ["signature"]\nprofile = "restricted"\n'


@pytest.fixture(scope="module")
def running(gated: Gated, signed: Signed) -> Iterator[str]:  # noqa: F811
    """A container of the signed Low image that ctr made and the gate admitted (under baseline), running."""
    gated.configure(signed)
    cid = f"rtx-running-{secrets.token_hex(3)}"  # runc's state directory is the host's: no leftover's name
    rc, _, err = ctr(gated, "run", "-d", signed["low"].ref, cid, "sleep", "600")
    assert rc == 0, err
    try:
        yield cid
    finally:
        runtime_h.remove_task(gated.containerd, cid)


def bundle(g: Gated, cid: str) -> Path:
    return g.containerd.root.parent / "state" / "io.containerd.runtime.v2.task" / NAMESPACE / cid


def exec_lines(g: Gated) -> list[dict[str, Any]]:
    return [line for line in g.runtime_lines() if line.get("command") == "exec"]


def assert_exec_refused(g: Gated, rc: int, err: str, check: str, cid: str, before: int) -> dict[str, Any]:
    assert rc != 0, err
    assert "bacon: denied:" in err, err
    assert f"check {check} failed" in err, err
    lines = exec_lines(g)
    assert len(lines) == before + 1, lines
    line = lines[-1]
    assert line["verdict"] == "denied", line
    assert line["failed_check"] == check, line
    assert line["container"] == cid, line
    return line


def the_containers_process(g: Gated, cid: str) -> dict[str, Any]:
    spec = json.loads((bundle(g, cid) / "config.json").read_text())
    process: dict[str, Any] = spec["process"]
    return process


def runc_exec(g: Gated, cid: str, *exec_args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The launcher as containerd's shim calls it for an exec (in the bundle, with its --root and --log)."""
    b = bundle(g, cid)
    argv = [str(g.launcher), "--root", RUNC_ROOT, "--log", str(log or b / "log.json"), "--log-format", "json",
            "exec", *exec_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACON_")}
    return subprocess.run(argv, cwd=b, env=env, capture_output=True, text=True, timeout=60)


def process_file(tmp_path: Path, process: dict[str, Any] | str, name: str = "process.json") -> Path:
    f = tmp_path / name
    f.write_text(process if isinstance(process, str) else json.dumps(process))
    return f


# -- ctr task exec ------------------------------------------------------------------------------------------

def test_ctr_exec_into_an_admitted_container_runs(gated: Gated, signed: Signed, running: str) -> None:  # noqa: F811
    gated.configure(signed)
    before = len(exec_lines(gated))
    rc, out, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-ok", running, "sh", "-c", "echo exec-ran")
    assert rc == 0, err
    assert "exec-ran" in out
    assert len(exec_lines(gated)) == before  # an admitted exec is not audited


def test_ctr_exec_as_root_is_refused_under_restricted_and_a_numeric_user_runs(
        gated: Gated, signed: Signed, running: str) -> None:  # noqa: F811
    """The container was admitted at Low under baseline; Low's profile is now restricted: its exec as
    root is refused (the level kept at create decides), as a numeric non-root user it runs."""
    gated.configure(signed, runtime=RESTRICTED_LOW)
    before = len(exec_lines(gated))
    rc, out, err = ctr(gated, "tasks", "exec", "--user", "0", "--exec-id", "rtx-root", running, "sh", "-c",
                       "echo as-root")
    assert "as-root" not in out
    assert "OCI runtime exec failed" in err, err  # containerd passed the gate's line back to ctr
    line = assert_exec_refused(gated, rc, err, "profile", running, before)
    assert "restricted profile of level Low" in err, err
    assert "run-as-non-root" in err, err
    assert line["level"] == "Low", line
    assert line["profile"] == "restricted", line
    assert line["digest"] == signed["low"].digest, line
    rc, out, err = ctr(gated, "tasks", "exec", "--user", "1000", "--exec-id", "rtx-user", running, "sh", "-c",
                       "echo as-1000 $(id -u)")
    assert rc == 0, err
    assert "as-1000 1000" in out
    gated.configure(signed)  # baseline again: root may exec
    rc, out, err = ctr(gated, "tasks", "exec", "--user", "0", "--exec-id", "rtx-root2", running, "sh", "-c",
                       "echo as-root-baseline")
    assert rc == 0, err
    assert "as-root-baseline" in out


def test_exec_through_bacon_serve(gated: Gated, signed: Signed, running: str) -> None:  # noqa: F811
    from tests.integration.test_service import Served

    served = Served(gated.host)
    gated.configure(signed, runtime=f'[service]\nsocket = "{served.socket}"\n{RESTRICTED_LOW}')
    served.start()
    try:
        before = len(exec_lines(gated))
        rc, _, err = ctr(gated, "tasks", "exec", "--user", "0", "--exec-id", "rtx-s1", running, "true")
        assert_exec_refused(gated, rc, err, "profile", running, before)
        rc, out, err = ctr(gated, "tasks", "exec", "--user", "1000", "--exec-id", "rtx-s2", running, "echo",
                           "served-exec")
        assert rc == 0, err
        assert "served-exec" in out
        assert served.requests() == 2
    finally:
        served.stop()


# -- what any containerd client can send: a process file --------------------------------------------------

def test_a_process_with_capabilities_beyond_the_default_is_refused(gated: Gated, signed: Signed, running: str,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    gated.configure(signed)
    process = the_containers_process(gated, running)
    process["args"] = ["sh", "-c", "echo should-not-run"]
    ok = process_file(tmp_path, process, "ok.json")
    r = runc_exec(gated, running, "--process", str(ok), running)
    assert r.returncode == 0, r.stderr
    assert "should-not-run" in r.stdout  # the same process without extra capabilities runs
    process["capabilities"] = {k: [*v, "CAP_SYS_ADMIN"] for k, v in process["capabilities"].items()}
    f = process_file(tmp_path, process)
    before = len(exec_lines(gated))
    log = tmp_path / "log.json"
    r = runc_exec(gated, running, "--process", str(f), "--detach", running, log=log)
    assert r.returncode == 77, r.stderr
    line = assert_exec_refused(gated, r.returncode, r.stderr, "profile", running, before)
    assert "SYS_ADMIN" in line["reason"], line
    # where containerd reads runc's errors, one line
    (entry,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert entry["level"] == "error", entry
    assert entry["msg"].startswith("bacon: denied:"), entry


@pytest.mark.parametrize("case", ["Capabilities", "capabilitieſ", "twice"])
def test_a_key_runc_reads_as_another_is_refused(gated: Gated, signed: Signed, running: str,  # noqa: F811
                                                tmp_path: Path, case: str) -> None:
    """Go's JSON decoder (runc's) matches keys case-insensitively: a key the gate read exactly would be
    missed. Before, {"Capabilities": …SYS_ADMIN} was admitted and run with SYS_ADMIN."""
    gated.configure(signed)
    process = the_containers_process(gated, running)
    process["args"] = ["sh", "-c", "grep CapEff /proc/self/status"]
    caps = {k: [*v, "CAP_SYS_ADMIN"] for k, v in process.pop("capabilities").items()}
    if case == "twice":
        text = json.dumps(process)[:-1] + ', "capabilities": {}, "CAPABILITIES": ' + json.dumps(caps) + "}"
    else:
        text = json.dumps({**process, case: caps})
    before = len(exec_lines(gated))
    r = runc_exec(gated, running, "--process", str(process_file(tmp_path, text)), running)
    assert_exec_refused(gated, r.returncode, r.stderr, "spec", running, before)


@pytest.mark.parametrize("case", ["malformed", "not-an-object", "missing", "symlink", "fifo", "too-large",
                                  "nan-uid", "bad-caps"])
def test_a_process_file_that_cannot_be_read_as_runc_reads_it_is_refused(
        gated: Gated, signed: Signed, running: str, tmp_path: Path, case: str) -> None:  # noqa: F811
    gated.configure(signed)
    process = the_containers_process(gated, running)
    process["args"] = ["true"]
    f = tmp_path / "process.json"
    if case == "malformed":
        f.write_text(json.dumps(process)[:-3])
    elif case == "not-an-object":
        f.write_text(json.dumps([process]))
    elif case == "symlink":
        target = process_file(tmp_path, process, "real.json")
        f.symlink_to(target)
    elif case == "fifo":
        os.mkfifo(f)
    elif case == "too-large":
        process["env"] = [f"X{i}={'x' * 1000}" for i in range(5000)]
        f.write_text(json.dumps(process))
    elif case == "nan-uid":
        f.write_text(json.dumps(process).replace('"uid": 0', '"uid": NaN'))
        assert "NaN" in f.read_text()
    elif case == "bad-caps":
        process["capabilities"] = "ALL"
        f.write_text(json.dumps(process))
    check = "profile" if case == "bad-caps" else "spec"
    before = len(exec_lines(gated))
    r = runc_exec(gated, running, "--process", str(f), running)
    assert_exec_refused(gated, r.returncode, r.stderr, check, running, before)


def test_process_flags_beside_a_process_file_are_refused(gated: Gated, signed: Signed, running: str,  # noqa: F811
                                                        tmp_path: Path) -> None:
    gated.configure(signed, runtime=RESTRICTED_LOW)
    process = the_containers_process(gated, running)
    process["args"] = ["true"]
    process["user"] = {"uid": 0, "gid": 0}
    before = len(exec_lines(gated))
    # runc ignores --user beside --process and would run as root
    r = runc_exec(gated, running, "--user", "1000", "--process", str(process_file(tmp_path, process)), running)
    assert_exec_refused(gated, r.returncode, r.stderr, "spec", running, before)


# -- runc exec's own flags (no process file: the container's process with the flags applied) ----------------

def test_inline_exec_flags_go_through_the_profile(gated: Gated, signed: Signed, running: str) -> None:  # noqa: F811
    gated.configure(signed)
    r = runc_exec(gated, running, running, "echo", "inline-ran")
    assert r.returncode == 0, r.stderr
    assert "inline-ran" in r.stdout
    for flags, check, words in ((["--cap", "CAP_SYS_ADMIN"], "profile", "SYS_ADMIN"),
                                (["-c", "CAP_NET_ADMIN"], "profile", "NET_ADMIN"),
                                (["--apparmor", "unconfined"], "profile", "apparmor"),
                                (["--process-label", "system_u:system_r:spc_t:s0"], "profile", "selinux"),
                                (["--user", "root"], "spec", "uid[:gid]"),
                                (["--bogus"], "runtime", "not one the runtime gate knows")):
        before = len(exec_lines(gated)) if check != "runtime" else None
        r = runc_exec(gated, running, *flags, running, "true")
        assert r.returncode == 77, (flags, r.stderr)
        assert "bacon: denied:" in r.stderr, (flags, r.stderr)
        assert words in r.stderr, (flags, r.stderr)
        if before is not None:
            assert_exec_refused(gated, r.returncode, r.stderr, check, running, before)
    gated.configure(signed, runtime=RESTRICTED_LOW)
    r = runc_exec(gated, running, "-u", "0", running, "true")
    assert r.returncode == 77, r.stderr
    assert "run-as-non-root" in r.stderr, r.stderr
    r = runc_exec(gated, running, "-u", "1000:1000", running, "echo", "inline-1000")
    assert r.returncode == 0, r.stderr
    assert "inline-1000" in r.stdout


# -- what create kept -------------------------------------------------------------------------------------

def test_a_container_the_gate_kept_nothing_for_gets_restricted(gated: Gated, signed: Signed, running: str,  # noqa: F811
                                                               tmp_path: Path) -> None:
    gated.configure(signed)
    kept = gated.host.state_dir / runtime_decided.DIR / NAMESPACE / f"{running}.json"
    saved = kept.read_bytes()
    assert json.loads(saved)["level"] == "Low"
    try:
        kept.unlink()
        before = len(exec_lines(gated))
        rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-nokept", running, "true")
        assert_exec_refused(gated, rc, err, "profile", running, before)
        assert "restricted applies" in err, err
        rc, _, err = ctr(gated, "tasks", "exec", "--user", "1000", "--exec-id", "rtx-nokept2", running, "true")
        assert rc == 0, err
        # kept for another container under this ID (another config.json): not this container's
        obj = json.loads(saved)
        obj["spec"] = [obj["spec"][0], obj["spec"][1] + 1, obj["spec"][2]]
        kept.write_text(json.dumps(obj))
        kept.chmod(0o600)
        rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-other", running, "true")
        assert rc != 0, err
        assert "restricted applies" in err, err
        # malformed, or writable by others: refused, not ignored
        kept.write_text("{")
        rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-malformed", running, "true")
        assert rc != 0, err
        assert "check runtime failed" in err, err
        kept.write_bytes(saved)
        kept.chmod(0o666)
        rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-writable", running, "true")
        assert rc != 0, err
        assert "check runtime failed" in err, err
    finally:
        kept.write_bytes(saved)
        kept.chmod(0o600)
    rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-restored", running, "true")
    assert rc == 0, err


def test_a_refused_create_forgets_what_was_kept_for_the_id(gated: Gated, signed: Signed) -> None:  # noqa: F811
    gated.configure(signed)
    cid = f"rtx-reused-{secrets.token_hex(3)}"
    kept = gated.host.state_dir / runtime_decided.DIR / NAMESPACE / f"{cid}.json"
    rc, _, err = ctr(gated, "run", "--rm", signed["low"].ref, cid, "true")
    assert rc == 0, err
    assert kept.exists()
    rc, _, err = ctr(gated, "run", "--rm", signed["unsigned"].ref, cid, "true")
    assert rc != 0, err
    assert "bacon: denied:" in err, err
    assert not kept.exists()


def test_exec_into_a_wrapper_admitted_container_takes_its_records_level(gated: Gated, signed: Signed) -> None:  # noqa: F811
    gated.configure(signed)
    h = gated.host
    r = subprocess.run([*h.wrapper, "run", "-d", signed["low"].ref, "sleep", "600"], env=h.env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip().splitlines()[-1]
    try:
        kept = json.loads((h.state_dir / runtime_decided.DIR / NAMESPACE / f"{cid}.json").read_text())
        assert kept["how"] == "record", kept
        assert kept["level"] == "Low", kept
        rc, out, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-w1", cid, "echo", "wrapper-exec")
        assert rc == 0, err
        assert "wrapper-exec" in out
        gated.configure(signed, runtime=RESTRICTED_LOW)
        before = len(exec_lines(gated))
        rc, _, err = ctr(gated, "tasks", "exec", "--exec-id", "rtx-w2", cid, "true")
        line = assert_exec_refused(gated, rc, err, "profile", cid, before)
        assert line["digest"] == signed["low"].digest, line
    finally:
        ctr(gated, "tasks", "rm", "-f", cid)
        ctr(gated, "containers", "rm", cid)


def test_an_exec_may_not_ask_for_more_than_its_container(gated: Gated, signed: Signed, tmp_path: Path) -> None:  # noqa: F811
    """A container that dropped capabilities (and has no-new-privileges), at a restricted level: a process
    sent for it with containerd's default capabilities back, or without no-new-privileges, was admitted
    (an exec was judged only against the default set)."""
    gated.configure(signed)
    cid = f"rtx-dropped-{secrets.token_hex(3)}"
    drops = [a for c in sorted(DEFAULT_CAPABILITIES - {"NET_BIND_SERVICE"}) for a in ("--cap-drop", f"CAP_{c}")]
    rc, _, err = ctr(gated, "run", "-d", *drops, signed["low"].ref, cid, "sleep", "600")
    assert rc == 0, err
    try:
        gated.configure(signed, runtime=RESTRICTED_LOW)
        own = the_containers_process(gated, cid)
        assert own["noNewPrivileges"] is True
        assert set(own["capabilities"]["bounding"]) == {"CAP_NET_BIND_SERVICE"}
        same = {**own, "args": ["sh", "-c", "echo same-ran"], "user": {"uid": 1000, "gid": 1000}}
        r = runc_exec(gated, cid, "--process", str(process_file(tmp_path, same, "same.json")), cid)
        assert r.returncode == 0, r.stderr
        assert "same-ran" in r.stdout
        default_caps = [f"CAP_{c}" for c in sorted(DEFAULT_CAPABILITIES)]
        for name, change, rule in (
                ("caps", {"capabilities": {k: default_caps for k in ("bounding", "effective", "permitted")}},
                 "restricted-capabilities"),
                ("nnp", {"noNewPrivileges": False}, "privilege-escalation")):
            before = len(exec_lines(gated))
            f = process_file(tmp_path, {**same, **change}, f"{name}.json")
            r = runc_exec(gated, cid, "--process", str(f), cid)
            line = assert_exec_refused(gated, r.returncode, r.stderr, "profile", cid, before)
            assert rule in line["reason"], line
        # under baseline the default set is what any container may have
        gated.configure(signed)
        r = runc_exec(gated, cid, "--process", str(process_file(tmp_path, {**same, "capabilities": {
            k: default_caps for k in ("bounding", "effective", "permitted")}}, "baseline.json")), cid)
        assert r.returncode == 0, r.stderr
    finally:
        runtime_h.remove_task(gated.containerd, cid)
