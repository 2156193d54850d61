"""`bacon enable` / `disable` planning (pure), the configuration edit, records, and an enable interrupted
before the wrapper went in (the real nerdctl must stay where it was, and disable must clean up)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.common.errors import BaconError, ConfigError
from shim.operator import enable as en
from shim.operator.enable import FILE, NOTHING, OTHER, SYMLINK, WRAPPER, Found

T = Path("/usr/local/bin/nerdctl")
C = Path("/usr/local/libexec/bacon/nerdctl")
LIBEXEC = Path("/opt/libexec")
W = Path("/opt/bacon/bin/nerdctl")
REAL = Found(str(T), FILE, executable=True, sha256="ab" * 32, mode=0o755, uid=0, gid=0, size=10)


def test_the_wrapper_already_there_is_harmless() -> None:
    assert en.plan_enable(Found(str(T), WRAPPER, executable=True), T, C, LIBEXEC, W, None).action == "already"


def test_a_real_nerdctl_goes_to_the_configured_path() -> None:
    plan = en.plan_enable(REAL, T, C, LIBEXEC, W, Found(str(C), NOTHING))
    assert (plan.action, plan.aside, plan.real, plan.aside_created, plan.config_after) == ("install", C, C, True, None)


def test_when_the_configuration_names_the_target_it_goes_to_libexec_and_the_configuration_follows() -> None:
    plan = en.plan_enable(REAL, T, T, LIBEXEC, W, Found(str(LIBEXEC / "nerdctl"), NOTHING))
    assert plan.aside == LIBEXEC / "nerdctl"
    assert (plan.config_before, plan.config_after) == (str(T), str(LIBEXEC / "nerdctl"))


def test_an_identical_copy_aside_is_reused_but_a_different_one_is_refused() -> None:
    same = Found(str(C), FILE, executable=True, sha256="ab" * 32, mode=0o755, uid=0, gid=0, size=10)
    plan = en.plan_enable(REAL, T, C, LIBEXEC, W, same)
    assert plan.action == "install"
    assert not plan.aside_created
    other = Found(str(C), FILE, executable=True, sha256="cd" * 32, mode=0o755, uid=0, gid=0, size=10)
    with pytest.raises(ConfigError, match="they differ"):
        en.plan_enable(REAL, T, C, LIBEXEC, W, other)


@pytest.mark.parametrize(("found", "aside", "message"), [
    (Found(str(T), OTHER, note="a directory"), None, "a directory, not an executable"),
    (Found(str(T), FILE, executable=False, sha256="00", mode=0o644, uid=0, gid=0), None, "not executable"),
    (Found(str(T), SYMLINK, link="gone", resolved="/gone"), None, "dangling symlink"),
    (Found(str(T), NOTHING), Found(str(C), NOTHING), "configured real nerdctl .* is\nmissing|missing or not exec"),
    (REAL, Found(str(C), WRAPPER, executable=True), "is the BACON wrapper itself"),
])
def test_refusals(found: Found, aside: Found | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        en.plan_enable(found, T, C, LIBEXEC, W, aside)


def test_no_entry_point_is_refused() -> None:
    with pytest.raises(ConfigError, match="entry point"):
        en.plan_enable(REAL, T, C, LIBEXEC, None, None)


def test_nothing_at_the_target_keeps_the_configured_real_nerdctl() -> None:
    plan = en.plan_enable(Found(str(T), NOTHING), T, C, LIBEXEC, W,
                          Found(str(C), FILE, executable=True, sha256="ab" * 32, mode=0o755, uid=0, gid=0))
    assert (plan.action, plan.aside, plan.real) == ("install", None, C)
    with pytest.raises(ConfigError, match=r"the configuration names .* as the real"):
        en.plan_enable(Found(str(T), NOTHING), T, T, LIBEXEC, W, None)


def test_a_symlink_to_the_configured_real_nerdctl_needs_no_move(tmp_path: Path) -> None:
    real = tmp_path / "libexec" / "nerdctl"
    real.parent.mkdir()
    real.write_bytes(b"#!/bin/sh\n")
    real.chmod(0o755)
    target = tmp_path / "bin" / "nerdctl"
    target.parent.mkdir()
    target.symlink_to(real)
    plan = en.plan_enable(en.observe(target), target, real, LIBEXEC, W, en.observe(real))
    assert (plan.action, plan.aside, plan.real) == ("install", None, real)
    assert "stays there" in plan.notes[0]


def test_disable_plans() -> None:
    wrapper = Found(str(T), WRAPPER, executable=True)
    assert en.plan_disable(T, None, REAL, None).action == "nothing"
    with pytest.raises(ConfigError, match="nothing records"):
        en.plan_disable(T, None, wrapper, None)
    rec = en.Record(target=str(T), found=REAL, phase="enabled", wrapper=str(W), aside=str(C), aside_created=True)
    aside_ok = Found(str(C), FILE, executable=True, sha256="ab" * 32, mode=0o755, uid=0, gid=0, size=10)
    assert en.plan_disable(T, rec, wrapper, aside_ok).action == "restore"
    with pytest.raises(ConfigError, match=r"not at .* as recorded"):
        en.plan_disable(T, rec, wrapper, Found(str(C), NOTHING))
    with pytest.raises(ConfigError, match="no longer the BACON wrapper"):
        en.plan_disable(T, rec, Found(str(T), FILE, executable=True, sha256="ee" * 32, mode=0o755, uid=0, gid=0),
                        aside_ok)
    rec.phase = "enabling"
    assert en.plan_disable(T, rec, REAL, aside_ok).action == "cleanup"


def test_set_config_nerdctl_changes_one_line_only() -> None:
    text = '# BACON\nlevel = "Mid"\nnerdctl = "/usr/local/bin/nerdctl"  # real\n[trust]\nkeys = []\n'
    out = en.set_config_nerdctl(text, "/opt/libexec/nerdctl")
    assert out == '# BACON\nlevel = "Mid"\nnerdctl = "/opt/libexec/nerdctl"  # real\n[trust]\nkeys = []\n'
    assert en.set_config_nerdctl(out, "/usr/local/bin/nerdctl") == text
    assert en.set_config_nerdctl('level = "Low"\n[tpm]\ntcti = "x"\n', "/n") == (
        'level = "Low"\nnerdctl = "/n"\n[tpm]\ntcti = "x"\n')
    assert en.set_config_nerdctl('level = "Low"', "/n") == 'level = "Low"\nnerdctl = "/n"\n'
    with pytest.raises(ConfigError, match="safely"):
        en.set_config_nerdctl('nerdctl = """/a"""\n', "/n")


def test_observe_and_records(tmp_path: Path) -> None:
    f = tmp_path / "nerdctl"
    f.write_bytes(b"#!/bin/sh\n")
    f.chmod(0o750)
    found = en.observe(f)
    assert (found.kind, found.executable, found.mode) == (FILE, True, 0o750)
    link = tmp_path / "link"
    link.symlink_to("nerdctl")
    s = en.observe(link)
    assert (s.kind, s.link, s.resolved, s.sha256) == (SYMLINK, "nerdctl", str(f), found.sha256)
    assert en.observe(tmp_path).kind == OTHER
    assert en.observe(tmp_path / "none").kind == NOTHING
    rec = en.Record(target=str(f), found=found, phase="enabled", wrapper=str(W))
    en.save_record(tmp_path / "state", rec)
    back = en.load_record(tmp_path / "state", f)
    assert back is not None
    assert back.found == found
    assert back.phase == "enabled"
    en.record_path(tmp_path / "state", f).chmod(0o666)
    with pytest.raises(ConfigError, match="is writable by others"):
        en.load_record(tmp_path / "state", f)


def test_an_enable_interrupted_before_the_wrapper_keeps_the_real_nerdctl(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "bin" / "nerdctl"
    target.parent.mkdir()
    target.write_bytes(b"#!/bin/sh\necho real\n")
    target.chmod(0o755)
    aside = tmp_path / "libexec" / "nerdctl"
    wrapper = tmp_path / "wrapper"
    wrapper.write_bytes(b"from shim.wrapper.main import main\n")
    state = tmp_path / "state"
    plan = en.plan_enable(en.observe(target), target, aside, tmp_path, wrapper, en.observe(aside))
    real_symlink = en._symlink

    def crash_at_target(link: str, dst: Path, uid: int | None = None, gid: int | None = None) -> None:
        if dst == target:
            raise OSError(28, "No space left on device")  # the last step fails
        real_symlink(link, dst, uid, gid)

    monkeypatch.setattr(en, "_symlink", crash_at_target)
    with pytest.raises(BaconError, match="still holds a file"):
        en.apply_enable(plan, state, tmp_path / "config.toml")
    assert target.read_bytes() == b"#!/bin/sh\necho real\n"
    assert not target.is_symlink()
    assert aside.read_bytes() == target.read_bytes()
    rec = en.load_record(state, target)
    assert rec is not None
    assert rec.phase == "enabling"
    assert rec.aside_created
    # disable undoes the half-done enable: the second name goes, the real nerdctl stays
    d = en.plan_disable(target, rec, en.observe(target), en.observe(aside))
    assert d.action == "cleanup"
    en.apply_disable(d, state)
    assert not aside.exists()
    assert target.read_bytes() == b"#!/bin/sh\necho real\n"
    assert en.load_record(state, target) is None
    # and a retried enable finishes
    monkeypatch.setattr(en, "_symlink", real_symlink)
    en.apply_enable(en.plan_enable(en.observe(target), target, aside, tmp_path, wrapper, en.observe(aside)), state,
                    tmp_path / "config.toml")
    assert os.readlink(target) == str(wrapper)
    assert en.is_wrapper(target)


def test_disable_removes_only_the_empty_directories_enable_made(tmp_path: Path) -> None:
    top = tmp_path / "usr-local"
    top.mkdir()
    libexec = top / "libexec" / "bacon"
    assert en.missing_dirs(libexec) == [str(top / "libexec"), str(libexec)]
    libexec.mkdir(parents=True)
    rec = en.Record(target=str(T), found=REAL, phase="enabled", wrapper=str(W), aside=str(libexec / "nerdctl"),
                    aside_created=True, dirs_created=en.missing_dirs(libexec) or [str(top / "libexec"), str(libexec)])
    (top / "libexec" / "other-tool").mkdir()  # someone else's, made after enable
    assert en.remove_dirs_created(rec) == [str(libexec)]
    assert (top / "libexec" / "other-tool").is_dir()
    (top / "libexec" / "other-tool").rmdir()
    assert en.remove_dirs_created(rec) == [str(top / "libexec")]
    assert top.is_dir()  # it was there before enable
    assert en.Record.from_json(rec.to_json()).dirs_created == rec.dirs_created


def test_the_runtime_enable_record_is_read_as_a_trusted_file(tmp_path: Path) -> None:
    """The same rule as the nerdctl enable record: a symlink or a record others may write is a configuration
    error (78) naming the fix, not an OSError (ELOOP) escaping as an internal error."""
    from shim.operator import enable_runtime

    state = tmp_path / "state"
    target = tmp_path / "runc"
    path = enable_runtime.record_path(state, target)
    assert enable_runtime.load_record(state, target) is None
    path.parent.mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text("{}")
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="is a symlink") as e:
        enable_runtime.load_record(state, target)
    assert e.value.hint is not None
    assert "restore" in e.value.hint
    path.unlink()
    path.write_text("{}")
    path.chmod(0o620)
    with pytest.raises(ConfigError, match="is writable by others"):
        enable_runtime.load_record(state, target)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="unreadable"):
        enable_runtime.load_record(state, target)
