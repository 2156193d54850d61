"""nerdctl's argv grammar, case by case (docs/nerdctl.md §1-4 and §8).

Each case: the arguments, then the decision (``forward``, ``gate``, ``refuse``, or ``usage`` when BACON
raises UsageError because nerdctl would reject the line or releases disagree on it), the image found, and
the argv BACON forwards (re-serialized from the parse). Every forwardable case must also re-parse to the
same invocation.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shim.common.errors import UsageError
from shim.wrapper import argv as nargv

D64 = "sha256:" + "ab" * 32
CID0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
CID1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
REG = "127.0.0.1:5000"

Case = tuple[str, list[str], str, str | None, list[str] | None]

CASES: list[Case] = [
    # --- §1: global value flags before the subcommand swallow the next token -------------------------
    ("bridge-ip swallows images", ["--bridge-ip", "images", "run", "evil"],
     "gate", "evil", ["--bridge-ip=images", "run", "--", "evil"]),
    ("bridge-ip with = leaves images", ["--bridge-ip=10.0.0.1", "images", "run", "evil"],
     "forward", None, ["--bridge-ip=10.0.0.1", "images", "run", "evil"]),
    ("debug false: false is the subcommand", ["--debug", "false", "run", "x"], "refuse", None, None),
    ("debug bool does not swallow", ["--debug", "images", "run", "evil"],
     "forward", None, ["--debug=true", "images", "run", "evil"]),
    ("debug=maybe is rejected", ["--debug=maybe", "run", "alpine"], "usage", None, None),
    ("value starting with a dash", ["--namespace", "--debug", "run", "alpine"],
     "gate", "alpine", ["--namespace=--debug", "run", "--", "alpine"]),
    # bare root booleans before the subcommand (cobra merges the root's persistent flags before Traverse)
    ("bare kube-hide-dupe before subcommand", ["--kube-hide-dupe", "images"],
     "forward", None, ["--kube-hide-dupe=true", "images"]),
    ("bare selinux-enabled before run", ["--selinux-enabled", "run", "alpine"],
     "gate", "alpine", ["--selinux-enabled=true", "run", "--", "alpine"]),
    ("bare kube-hide-dupe then -n", ["--kube-hide-dupe", "-n", "k8s.io", "images"],
     "forward", None, ["--kube-hide-dupe=true", "--namespace=k8s.io", "images"]),
    ("bare kube-hide-dupe does not swallow run", ["--kube-hide-dupe", "run", "alpine"],
     "gate", "alpine", ["--kube-hide-dupe=true", "run", "--", "alpine"]),
    ("kube-hide-dupe=true before subcommand", ["--kube-hide-dupe=true", "images"],
     "forward", None, ["--kube-hide-dupe=true", "images"]),
    ("-- before subcommand is a flag that swallows", ["--", "x", "run", "evil"], "usage", None, None),
    ("unknown global flag", ["--frobnicate", "x", "run", "alpine"], "usage", None, None),
    ("-test. is silently skipped by pflag", ["-test.v", "run", "alpine"], "usage", None, None),
    ("global missing its value", ["--namespace"], "usage", None, None),
    # --- §1: run stops at the image --------------------------------------------------------------------
    ("flags after the image go to the container", ["run", "alpine", "--namespace", "x"],
     "gate", "alpine", ["run", "--", "alpine", "--namespace", "x"]),
    ("explicit -- before the image", ["run", "--", "alpine", "ls"], "gate", "alpine", ["run", "--", "alpine", "ls"]),
    ("-- after the image is the container's", ["run", "alpine", "--", "ls"],
     "gate", "alpine", ["run", "--", "alpine", "--", "ls"]),
    ("value may start with a dash", ["run", "--name", "-x", "alpine"],
     "gate", "alpine", ["run", "--name=-x", "--", "alpine"]),
    ("lone - is a positional (an invalid image)", ["run", "-"], "usage", None, None),
    ("short run -it", ["run", "-it", "alpine", "sh"],
     "gate", "alpine", ["run", "--interactive=true", "--tty=true", "--", "alpine", "sh"]),
    ("-eFOO=1 takes the rest of the token", ["run", "-eFOO=1", "alpine"],
     "gate", "alpine", ["run", "--env=FOO=1", "--", "alpine"]),
    ("-e=X gives X", ["run", "-e=X", "alpine"], "gate", "alpine", ["run", "--env=X", "--", "alpine"]),
    ("-e X takes the next token", ["run", "-e", "FOO=1", "alpine"],
     "gate", "alpine", ["run", "--env=FOO=1", "--", "alpine"]),
    ("-dp: a bool then a value taking the next token", ["run", "-dp", "8080:80", "nginx"],
     "gate", "nginx", ["run", "--detach=true", "--publish=8080:80", "--", "nginx"]),
    ("-pd: the value is d", ["run", "-pd", "alpine"], "gate", "alpine", ["run", "--publish=d", "--", "alpine"]),
    ("--detach true: true is the image", ["run", "--detach", "true", "alpine"],
     "gate", "true", ["run", "--detach=true", "--", "true", "alpine"]),
    ("--detach=false is kept", ["run", "--detach=false", "alpine"],
     "gate", "alpine", ["run", "--detach=false", "--", "alpine"]),
    ("--rm=T is ParseBool", ["run", "--rm=T", "alpine"], "gate", "alpine", ["run", "--rm=true", "--", "alpine"]),
    ("--detach=yes is not ParseBool", ["run", "--detach=yes", "alpine"], "usage", None, None),
    ("no prefix matching", ["run", "--nam=x", "alpine"], "usage", None, None),
    ("unknown flag on run", ["run", "--frobnicate", "alpine"], "usage", None, None),
    ("-h is --hostname in run", ["run", "-h", "myhost", "alpine"],
     "gate", "alpine", ["run", "--hostname=myhost", "--", "alpine"]),
    ("--help on run only prints help", ["run", "--help"], "forward", None, ["run", "--help=true"]),
    ("-test. inside a short run", ["run", "-itest.v", "alpine"], "usage", None, None),
    ("run without an image", ["run", "-d"], "usage", None, None),
    ("run -a is --attach", ["run", "-a", "stdout", "alpine"],
     "gate", "alpine", ["run", "--attach=stdout", "--", "alpine"]),
    ("create has no -a", ["create", "-a", "stdout", "alpine"], "usage", None, None),
    ("create has no -d", ["create", "-d", "alpine"], "usage", None, None),
    ("create --name", ["create", "--name", "web", "alpine"],
     "gate", "alpine", ["create", "--name=web", "--", "alpine"]),
    ("container run is run", ["container", "run", "--rm", "alpine"],
     "gate", "alpine", ["container", "run", "--rm=true", "--", "alpine"]),
    # --- §1/§2: global flags at every level ----------------------------------------------------------
    ("namespace twice: last wins, order kept", ["--namespace", "a", "run", "--namespace", "b", "alpine"],
     "gate", "alpine", ["--namespace=a", "--namespace=b", "run", "--", "alpine"]),
    ("-n before the subcommand", ["-n", "ns", "run", "alpine"],
     "gate", "alpine", ["--namespace=ns", "run", "--", "alpine"]),
    ("-n after the subcommand is unknown", ["run", "-n", "ns", "alpine"], "usage", None, None),
    ("-n on container before run is unknown", ["container", "-n", "ns", "run", "alpine"], "usage", None, None),
    ("--n= long alias at the root", ["--n=ns", "run", "alpine"],
     "gate", "alpine", ["--namespace=ns", "run", "--", "alpine"]),
    ("-H is the address", ["-H", "unix:///run/c.sock", "ps"], "forward", None, ["--address=unix:///run/c.sock", "ps"]),
    ("-a at the root is the address", ["-a", "/c.sock", "run", "alpine"],
     "gate", "alpine", ["--address=/c.sock", "run", "--", "alpine"]),
    ("--host anywhere", ["run", "--host=/c.sock", "alpine"],
     "gate", "alpine", ["--address=/c.sock", "run", "--", "alpine"]),
    ("--storage-driver is --snapshotter", ["--storage-driver", "native", "pull", "alpine"],
     "gate", "alpine", ["--snapshotter=native", "pull", "--", "alpine"]),
    ("--insecure-registry bool", ["--insecure-registry", "pull", f"{REG}/app"],
     "gate", f"{REG}/app", ["--insecure-registry=true", "pull", "--", f"{REG}/app"]),
    ("global bool inside container group", ["container", "--debug", "run", "alpine"],
     "gate", "alpine", ["--debug=true", "container", "run", "--", "alpine"]),
    # --- help, version, unknown subcommands ------------------------------------------------------------
    ("no arguments: help", [], "forward", None, []),
    ("--help at the root", ["--help"], "forward", None, ["--help=true"]),
    ("--help swallows run while traversing", ["--help", "run"], "forward", None, ["--help=true"]),
    ("--help=true before a subcommand is an error", ["--help=true", "run", "x"], "usage", None, None),
    ("-v is the version", ["-v"], "forward", None, ["--version=true"]),
    ("container -h run x prints container help", ["container", "-h", "run", "x"],
     "forward", None, ["container", "--help=true"]),
    ("group alone prints help", ["container"], "forward", None, ["container"]),
    ("unknown subcommand", ["evil"], "refuse", None, None),
    ("unknown container subcommand", ["container", "frobnicate"], "refuse", None, None),
    # --- aliases ---------------------------------------------------------------------------------------
    ("image list is image ls", ["image", "list"], "forward", None, ["image", "ls"]),
    ("container list is container ls", ["container", "list", "-a"], "forward", None, ["container", "ls", "-a"]),
    ("ns is namespace", ["ns", "ls"], "forward", None, ["namespace", "ls"]),
    ("image remove is image rm", ["image", "remove", "x"], "forward", None, ["image", "rm", "x"]),
    ("remove is rm", ["remove", "-f", "c1"], "forward", None, ["rm", "-f", "c1"]),
    ("container remove is container rm", ["container", "remove", "c1"], "forward", None, ["container", "rm", "c1"]),
    # --- pull / push -----------------------------------------------------------------------------------
    ("image pull", ["image", "pull", "alpine"], "gate", "alpine", ["image", "pull", "--", "alpine"]),
    ("pull flags after the image", ["pull", "alpine", "--platform", "linux/arm64"],
     "gate", "alpine", ["pull", "--platform=linux/arm64", "--", "alpine"]),
    ("pull bools", ["pull", "--all-platforms", "-q", "alpine"],
     "gate", "alpine", ["pull", "--all-platforms=true", "--quiet=true", "--", "alpine"]),
    ("pull takes exactly one image", ["pull", "alpine", "busybox"], "usage", None, None),
    ("push -a is --all-tags", ["push", "-a", "--sign=cosign", f"{REG}/app:1"],
     "gate", f"{REG}/app:1", ["push", "--all-tags=true", "--sign=cosign", "--", f"{REG}/app:1"]),
    ("push interspersed", ["push", f"{REG}/app", "-q"],
     "gate", f"{REG}/app", ["push", "--quiet=true", "--", f"{REG}/app"]),
    ("pull -h is help", ["pull", "-h"], "forward", None, ["pull", "--help=true"]),
    # --- start / restart -------------------------------------------------------------------------------
    ("start", ["start", "c1"], "gate", None, ["start", "--", "c1"]),
    ("start stops at the first container", ["start", "-ai", "c1", "--debug"],
     "gate", None, ["start", "--attach=true", "--interactive=true", "--", "c1", "--debug"]),
    ("container start", ["container", "start", "c1", "c2"], "gate", None, ["container", "start", "--", "c1", "c2"]),
    ("restart flags after containers", ["restart", "c1", "-t", "3"], "gate", None, ["restart", "--time=3", "--", "c1"]),
    ("restart needs a container", ["restart"], "usage", None, None),
    ("start needs a container", ["start", "-a"], "usage", None, None),
    # --- §8: what cannot be checked is refused ---------------------------------------------------------
    ("--rootfs", ["run", "--rootfs", "/srv/root"], "refuse", "/srv/root", None),
    ("--rootfs=false is an image", ["run", "--rootfs=false", "alpine"],
     "gate", "alpine", ["run", "--rootfs=false", "--", "alpine"]),
    ("oci-archive://", ["run", "oci-archive:///tmp/a.tar"], "refuse", "oci-archive:///tmp/a.tar", None),
    ("ipfs://", ["run", f"ipfs://{CID1}"], "refuse", f"ipfs://{CID1}", None),
    ("ipns://", ["create", "ipns://app.example"], "refuse", "ipns://app.example", None),
    ("bare CIDv0", ["pull", CID0], "refuse", CID0, None),
    ("bare CIDv1", ["run", CID1], "refuse", CID1, None),
    ("--mount type=image is a second image", ["run", "--mount", "type=image,source=busybox,target=/m", "alpine"],
     "gate", "alpine", ["run", "--mount=type=image,source=busybox,target=/m", "--", "alpine"]),
    ("--mount type=image from ipfs", ["run", "--mount", f"type=image,src=ipfs://{CID1},dst=/m", "alpine"],
     "refuse", "alpine", None),
    ("--mount type=image needs a source", ["run", "--mount", "type=image,target=/m", "alpine"], "usage", None, None),
    # nerdctl's ProcessFlagMount: a later type=volume leaves type=image alone; BACON refuses a repeated setting
    ("--mount type=image then type=volume", ["run", "--mount", "type=image,source=x,target=/m,type=volume", "a"],
     "usage", None, None),
    ("--mount type twice in two cases", ["run", "--mount", "TYPE=bind,source=/x,target=/m,type=image", "a"],
     "usage", None, None),
    ("--mount src and source", ["run", "--mount", "type=image,src=x,source=y,target=/m", "a"], "usage", None, None),
    ("--mount target and dst", ["run", "--mount", "type=image,src=x,target=/m,dst=/n", "a"], "usage", None, None),
    ("--mount ro and readonly", ["run", "--mount", "type=bind,src=/x,dst=/m,ro,readonly=false", "a"],
     "usage", None, None),
    ("--mount type is matched with case", ["run", "--mount", "type=Image,src=x,dst=/m", "a"], "usage", None, None),
    ("--mount unknown key", ["run", "--mount", "type=image,src=x,dst=/m,image-subpath=/y", "a"], "usage", None, None),
    ("--mount bare field", ["run", "--mount", "type=image,src=x,dst=/m,,", "a"], "usage", None, None),
    ("--mount type=image needs a target", ["run", "--mount", "type=image,src=x", "a"], "usage", None, None),
    ("--mount keys in upper case", ["run", "--mount", "Type=image,SRC=x,Target=/m,RO", "a"],
     "gate", "a", ["run", "--mount=Type=image,SRC=x,Target=/m,RO", "--", "a"]),
    ("--mount without a type is a volume", ["run", "--mount", "src=x,dst=/m", "a"],
     "gate", "a", ["run", "--mount=src=x,dst=/m", "--", "a"]),
    ("--pull=never with a short hex", ["run", "--pull=never", "abc123"],
     "gate", "abc123", ["run", "--pull=never", "--", "abc123"]),
    ("a full digest", ["run", D64], "gate", D64, ["run", "--", D64]),
    ("an upper-case repository", ["run", "Alpine"], "usage", None, None),
    ("--platform", ["run", "--platform", "linux/arm64", "alpine"],
     "gate", "alpine", ["run", "--platform=linux/arm64", "--", "alpine"]),
    ("compose up", ["compose", "-f", "c.yml", "up", "-d"], "refuse", None, None),
    ("compose run", ["compose", "run", "web"], "refuse", None, None),
    ("compose create", ["compose", "create"], "refuse", None, None),
    ("compose start", ["compose", "start"], "refuse", None, None),
    ("compose pull", ["compose", "--debug", "pull"], "refuse", None, None),
    ("compose ps", ["compose", "ps"], "forward", None, ["compose", "ps"]),
    ("compose flags are kept", ["compose", "-f", "c.yml", "-p", "proj", "logs", "-f"],
     "forward", None, ["compose", "--file=c.yml", "--project-name=proj", "logs", "-f"]),
    ("load", ["load", "-i", "a.tar"], "forward", None, ["load", "-i", "a.tar"]),
    ("import", ["import", "a.tar", "x:1"], "forward", None, ["import", "a.tar", "x:1"]),
    # build and builder debug run the Dockerfile's images (and --image) in BuildKit: gated
    ("build", ["build", "-t", "x", "."], "gate", None, ["build", "--tag=x", "--", "."]),
    ("build flags after the context", ["build", ".", "-f", "D", "--build-arg", "A=1", "--no-cache"], "gate", None,
     ["build", "--file=D", "--build-arg=A=1", "--no-cache=true", "--", "."]),
    ("image build", ["image", "build", "-q", "ctx"], "gate", None, ["image", "build", "--quiet=true", "--", "ctx"]),
    ("builder build", ["builder", "build", "--platform", "amd64,arm64", "."], "gate", None,
     ["builder", "build", "--platform=amd64,arm64", "--", "."]),
    ("builder debug", ["--experimental", "builder", "debug", "--image", "x:1", "."], "gate", None,
     ["--experimental=true", "builder", "debug", "--image=x:1", "--", "."]),
    ("builder prune is forwarded", ["builder", "prune", "-af"], "forward", None, ["builder", "prune", "-af"]),
    ("builder alone prints help", ["builder"], "forward", None, ["builder"]),
    ("build --help", ["build", "--help"], "forward", None, ["build", "--help=true"]),
    ("build needs a context", ["build", "-t", "x"], "usage", None, None),
    ("build unknown flag", ["build", "--frobnicate", "."], "usage", None, None),
    ("compose build", ["compose", "build"], "refuse", None, None),
    ("commit", ["commit", "c1", "x:1"], "forward", None, ["commit", "c1", "x:1"]),
    ("tag", ["tag", "a", "b"], "forward", None, ["tag", "a", "b"]),
    # --- forwarded commands: the subcommand is certain, its tokens are passed through ------------------
    # exec is parsed (the container profile judges it) and forwarded re-serialized
    ("exec", ["exec", "-it", "c1", "sh"], "forward", None,
     ["exec", "--interactive=true", "--tty=true", "--", "c1", "sh"]),
    ("exec stops at the container", ["exec", "-u", "1", "c1", "--privileged", "-u", "0"], "forward", None,
     ["exec", "--user=1", "--", "c1", "--privileged", "-u", "0"]),
    ("logs -n is its own flag", ["logs", "-n", "5", "c1"], "forward", None, ["logs", "-n", "5", "c1"]),
    ("images -a", ["--namespace", "k8s.io", "images", "-a"], "forward", None, ["--namespace=k8s.io", "images", "-a"]),
    ("network create", ["network", "create", "n1"], "forward", None, ["network", "create", "n1"]),
    ("help run", ["help", "run"], "forward", None, ["help", "run"]),
    ("system prune", ["system", "prune", "-af"], "forward", None, ["system", "prune", "-af"]),
]


@pytest.mark.parametrize(("argv", "kind", "image", "forwarded"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(argv: list[str], kind: str, image: str | None, forwarded: list[str] | None) -> None:
    if kind == "usage":
        with pytest.raises(UsageError):
            nargv.classify(nargv.parse(argv))
        return
    inv = nargv.parse(argv)
    decision = nargv.classify(inv)
    assert decision.kind == kind, decision.reason
    assert inv.image == image
    assert decision.reason
    if kind == "refuse":
        assert decision.hint
        return
    out = nargv.serialize(inv)
    assert out == forwarded
    again = nargv.parse(out)
    assert again == inv
    assert nargv.classify(again).kind == kind


def test_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


# --- what the gate reads from a parse ---------------------------------------------------------------


def test_gate_values_of_a_run() -> None:
    inv = nargv.parse([
        "-n", "a", "--snapshotter=native", "--hosts-dir", "/etc/c,/etc/d", "--insecure-registry",
        "run", "--namespace", "b", "--name", "web", "-l", "policy=Low", "--label=x=y", "--label-file", "f1,f2",
        "--pull", "never", "--platform=linux/arm64", "--host", "/c.sock",
        "--mount", "type=bind,source=/x,target=/x", "--mount", "type=image,src=busybox,target=/m",
        f"{REG}/app:1", "sh", "-c", "echo",
    ])
    assert inv.command == "run"
    assert inv.namespace == "b"
    assert inv.address == "/c.sock"
    assert inv.snapshotter == "native"
    assert inv.insecure_registry is True
    assert inv.hosts_dir == ("/etc/c", "/etc/d")
    assert inv.name == "web"
    assert inv.labels == ("policy=Low", "x=y")
    assert inv.label_files == ("f1", "f2")
    assert inv.pull_policy == "never"
    assert inv.platform == "linux/arm64"
    assert inv.image == f"{REG}/app:1"
    assert inv.container_args == ("sh", "-c", "echo")
    assert inv.mount_images == ("busybox",)


def test_defaults_are_none() -> None:
    inv = nargv.parse(["run", "alpine"])
    assert (inv.address, inv.namespace, inv.snapshotter, inv.insecure_registry, inv.hosts_dir) == (
        None, None, None, None, None)
    assert inv.pull_policy == "missing"
    assert inv.platform is None
    assert inv.name is None
    assert inv.labels == ()
    assert nargv.parse(["pull", "alpine"]).pull_policy == "always"


def test_pull_platforms_are_a_slice() -> None:
    inv = nargv.parse(["pull", "--platform", "linux/amd64,linux/arm64", "--platform=linux/s390x", "alpine"])
    assert inv.platforms == ("linux/amd64", "linux/arm64", "linux/s390x")
    assert inv.platform is None


def test_start_containers() -> None:
    inv = nargv.parse(["container", "start", "-a", "web", "db"])
    assert inv.command == "start"
    assert inv.containers == ("web", "db")
    assert inv.image is None


def test_image_override_and_mount_overrides() -> None:
    pinned = f"{REG}/app@{D64}"
    inv = nargv.parse(["run", "--mount", "type=image,SOURCE=busybox,target=/m", "-d", f"{REG}/app:1", "ls", "-l"])
    out = nargv.serialize(inv, image_override=pinned, mount_overrides={"busybox": f"docker.io/library/busybox@{D64}"})
    assert out == [
        "run", f"--mount=type=image,SOURCE=docker.io/library/busybox@{D64},target=/m", "--detach=true",
        "--", pinned, "ls", "-l",
    ]
    assert nargv.parse(out).mount_images == (f"docker.io/library/busybox@{D64}",)


def test_mount_overrides_must_cover_every_image_mount() -> None:
    inv = nargv.parse(["run", "--mount", "type=image,source=busybox,target=/m", "alpine"])
    with pytest.raises(ValueError, match="busybox"):
        nargv.serialize(inv, image_override="x", mount_overrides={})


def test_pull_image_override() -> None:
    inv = nargv.parse(["--namespace=n", "pull", "-q", "alpine"])
    assert nargv.serialize(inv, image_override=f"docker.io/library/alpine@{D64}") == [
        "--namespace=n", "pull", "--quiet=true", "--", f"docker.io/library/alpine@{D64}"]


def test_image_override_needs_an_image() -> None:
    with pytest.raises(ValueError, match="no image"):
        nargv.serialize(nargv.parse(["start", "c1"]), image_override="x")


def test_unknown_subcommand_is_never_serialized() -> None:
    with pytest.raises(ValueError, match="unknown subcommand"):
        nargv.serialize(nargv.parse(["evil"]))


def test_refusals_say_why_and_what_to_do() -> None:
    d = nargv.classify(nargv.parse(["--debug", "false", "run", "x"]))
    assert "false" in d.reason
    assert "--flag=VALUE" in d.reason
    d = nargv.classify(nargv.parse(["compose", "up"]))
    assert "real binary" in d.reason
    assert d.hint is not None
    assert "nerdctl run" in d.hint


def test_usage_errors_name_the_problem() -> None:
    with pytest.raises(UsageError, match="frobnicate"):
        nargv.parse(["run", "--frobnicate", "alpine"])
    with pytest.raises(UsageError, match="Alpine"):
        nargv.classify(nargv.parse(["run", "Alpine"]))


def test_original_argv_is_kept_but_not_compared() -> None:
    a = nargv.parse(["run", "-d", "alpine"])
    b = nargv.parse(["run", "--detach", "alpine"])
    assert a == b
    assert a.argv == ("run", "-d", "alpine")


def test_run_flag_table_has_the_documented_counts() -> None:
    from shim.wrapper.argv.grammar import CREATE_FLAGS, RUN_FLAGS, FlagSet

    def count(fs: FlagSet, boolean: bool) -> int:
        return len({f.name for f in fs.longs.values() if f.boolean == boolean and not f.is_global})

    assert count(RUN_FLAGS, False) == 93
    assert count(RUN_FLAGS, True) == 14
    assert count(CREATE_FLAGS, False) == 92
    assert count(CREATE_FLAGS, True) == 13


def test_forwarding_path_imports_only_the_standard_library() -> None:
    code = (
        "import json, sys; before = set(sys.modules); from shim.wrapper import argv as a; "
        "inv = a.parse(['images']); a.classify(inv); a.serialize(inv); "
        "new = set(sys.modules) - before; "
        "print(json.dumps(sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert set(loaded) <= {"shim", "shim.common", "shim.common.errors", "shim.wrapper", "shim.wrapper.argv",
                           "shim.wrapper.argv.grammar", "shim.wrapper.argv.model", "shim.wrapper.argv.parser",
                           "shim.wrapper.argv.serialize", "shim.wrapper.argv.classify"}


@pytest.mark.parametrize(("argv", "needs"), [
    (["run", "-d"], "requires an image"), (["image", "pull"], "requires an image"),
    (["build", "-t", "x"], "requires a build context"), (["builder", "debug"], "requires a build context"),
    (["exec", "-it", "c1"], "requires a container and a command"), (["start"], "requires a container"),
])
def test_a_missing_positional_is_named_for_the_command(argv: list[str], needs: str) -> None:
    """`nerdctl build` without a context said it "requires a container"."""
    with pytest.raises(UsageError, match=needs) as e:
        nargv.parse(argv)
    assert e.value.hint == f"nerdctl {' '.join(argv[:2] if argv[0] in ('image', 'builder') else argv[:1])} --help"
