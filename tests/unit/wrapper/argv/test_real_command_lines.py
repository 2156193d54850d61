"""Real nerdctl command lines, as operators and nerdctl's own documentation write them: the image BACON
checks, the platform, the containerd address and namespace it checks them in, and the argv nerdctl gets.

Each line was also read by spf13/cobra v1.10.2 and spf13/pflag v1.0.10 (the versions nerdctl pins) over
nerdctl's command tree while this table was written: the path, image, positionals and flag values agree
(docs/nerdctl.md §1). What nerdctl is handed (``plans.rewrite``) must read back to the pinned image, the
same platform, the address and namespace the checks used, and the container's own arguments untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.admission.plans import rewrite
from shim.wrapper import argv as nargv
from shim.wrapper.nerdctl_env import DEFAULT_ADDRESS, Target, resolve

REG = "registry.example"
D = "sha256:" + "3f" * 32

# (command line, image, platform, (address, namespace) from the command line, the container's arguments)
Line = tuple[str, str, str | None, tuple[str | None, str | None], tuple[str, ...]]

LINES: list[Line] = [
    ("run -d --name nginx -p 80:80 nginx:alpine", "nginx:alpine", None, (None, None), ()),
    ("run -it --rm alpine sh", "alpine", None, (None, None), ("sh",)),
    ("run --rm -it busybox:1.36 sh -c 'echo hello; sleep 1'", "busybox:1.36", None, (None, None),
     ("sh", "-c", "echo hello; sleep 1")),
    ("--namespace k8s.io run --rm -it busybox:1.36 sh", "busybox:1.36", None, (None, "k8s.io"), ("sh",)),
    ("-n k8s.io run -d nginx", "nginx", None, (None, "k8s.io"), ()),
    ("--namespace=k8s.io container run --rm alpine true", "alpine", None, (None, "k8s.io"), ("true",)),
    ("--address=/run/k3s/containerd/containerd.sock --namespace=k8s.io run --rm alpine", "alpine", None,
     ("/run/k3s/containerd/containerd.sock", "k8s.io"), ()),
    ("-H unix:///run/containerd/containerd.sock run --rm alpine", "alpine", None,
     ("unix:///run/containerd/containerd.sock", None), ()),
    ("-a /run/c.sock -n ns1 run --rm alpine", "alpine", None, ("/run/c.sock", "ns1"), ()),
    ("run --host=/run/c.sock --namespace ns2 --rm alpine", "alpine", None, ("/run/c.sock", "ns2"), ()),
    ("run --rm --platform=arm64 alpine uname -m", "alpine", "arm64", (None, None), ("uname", "-m")),
    ("run --rm --platform linux/arm/v7 alpine uname -m", "alpine", "linux/arm/v7", (None, None), ("uname", "-m")),
    ("run --platform=linux/amd64 --platform linux/s390x alpine", "alpine", "linux/s390x", (None, None), ()),
    (f"container run -d --restart=always --net=host {REG}/team/app:1.2", f"{REG}/team/app:1.2", None,
     (None, None), ()),
    ("run --rm -v /srv/data:/data:ro -e FOO=bar -e=BAZ=1 -eQUX=2 alpine env", "alpine", None, (None, None),
     ("env",)),
    (f"run --rm --mount type=image,source={REG}/tools:1,target=/tools alpine ls /tools", "alpine", None,
     (None, None), ("ls", "/tools")),
    ("create --name web -p 8080:80 nginx", "nginx", None, (None, None), ()),
    ("container create -it --name dev alpine sh", "alpine", None, (None, None), ("sh",)),
    (f"run --pull=always --rm {REG}/team/app:1", f"{REG}/team/app:1", None, (None, None), ()),
    (f"run --pull never {REG}/team/app@{D}", f"{REG}/team/app@{D}", None, (None, None), ()),
    (f"run --rm {REG}/team/app:1@{D} true", f"{REG}/team/app:1@{D}", None, (None, None), ("true",)),
    ("run --rm --gpus all nvidia/cuda:12.0-base nvidia-smi", "nvidia/cuda:12.0-base", None, (None, None),
     ("nvidia-smi",)),
    ("run -dit --name c1 alpine", "alpine", None, (None, None), ()),
    ("run --rm -p 127.0.0.1:8080:80 -p80:80 nginx", "nginx", None, (None, None), ()),
    ("run --rm --entrypoint /bin/sh alpine -c 'echo hi'", "alpine", None, (None, None), ("-c", "echo hi")),
    ("run --rm -u 1000:1000 -w /work alpine pwd", "alpine", None, (None, None), ("pwd",)),
    ("run --rm -m 512m --cpus 1.5 --memory-swap -1 --stop-timeout -1 alpine", "alpine", None, (None, None), ()),
    ("run --rm --cap-drop=ALL --security-opt no-new-privileges alpine id", "alpine", None, (None, None), ("id",)),
    ("--snapshotter=stargz run -it --rm registry.example/stargz/python:3.10-esgz",
     "registry.example/stargz/python:3.10-esgz", None, (None, None), ()),
    ("--insecure-registry run --rm 127.0.0.1:5000/team/app:1", "127.0.0.1:5000/team/app:1", None, (None, None), ()),
    ("--debug-full run --rm alpine", "alpine", None, (None, None), ()),
    ("run --name=x -l app=web --label=tier=front alpine", "alpine", None, (None, None), ()),
    ("run --rm --network=none --sysctl net.ipv4.ip_forward=1 --init alpine", "alpine", None, (None, None), ()),
    ("run -d --health-cmd 'curl -f http://localhost' --health-interval 30s nginx", "nginx", None, (None, None), ()),
    ("run -d --log-driver=json-file --log-opt max-size=10m nginx", "nginx", None, (None, None), ()),
    ("run --rm -t alpine", "alpine", None, (None, None), ()),
    # after the image, everything is the container's, flags included
    ("run --rm alpine --namespace x --platform linux/arm64 -n y", "alpine", None, (None, None),
     ("--namespace", "x", "--platform", "linux/arm64", "-n", "y")),
    ("run --rm -- alpine -- ls", "alpine", None, (None, None), ("--", "ls")),
    ("run --rm --name -dash alpine", "alpine", None, (None, None), ()),
    # a bool never takes the next token: "true" is the image
    ("run --rm true", "true", None, (None, None), ()),
    ("run --detach=false --rm=true alpine", "alpine", None, (None, None), ()),
    # pull and push read flags after the image too (interspersed)
    ("pull alpine", "alpine", None, (None, None), ()),
    ("pull --platform=linux/arm64 alpine", "alpine", "linux/arm64", (None, None), ()),
    ("image pull --quiet alpine:3.19 --namespace k8s.io", "alpine:3.19", None, (None, "k8s.io"), ()),
    ("-n k8s.io pull --unpack=false alpine", "alpine", None, (None, "k8s.io"), ()),
    (f"pull {REG}/team/app:1 --platform linux/amd64", f"{REG}/team/app:1", "linux/amd64", (None, None), ()),
]


def _split(line: str) -> list[str]:
    import shlex

    return shlex.split(line)


@pytest.mark.parametrize(("line", "image", "platform", "cli", "container_args"), LINES, ids=[c[0] for c in LINES])
def test_what_bacon_reads(line: str, image: str, platform: str | None, cli: tuple[str | None, str | None],
                          container_args: tuple[str, ...]) -> None:
    inv = nargv.parse(_split(line))
    assert nargv.classify(inv).kind == "gate"
    assert inv.image == image
    assert inv.platform == platform
    assert (inv.address, inv.namespace) == cli
    assert inv.container_args == container_args


@pytest.mark.parametrize(("line", "image", "platform", "cli", "container_args"), LINES, ids=[c[0] for c in LINES])
def test_what_nerdctl_is_handed_reads_back_to_what_was_checked(
        line: str, image: str, platform: str | None, cli: tuple[str | None, str | None],
        container_args: tuple[str, ...]) -> None:
    inv = nargv.parse(_split(line))
    target = Target("/run/checked.sock", "checked-ns")
    pinned = f"{REG}/pinned@{D}"
    out = rewrite(inv, target, image=pinned)
    again = nargv.parse(out)
    assert again.command == inv.command
    assert again.image == pinned
    assert (again.address, again.namespace) == (target.address, target.namespace)
    assert again.platforms == inv.platforms
    assert again.container_args == container_args
    assert nargv.classify(again).kind == "gate"


def _no_toml(tmp_path: Path, **env: str) -> dict[str, str]:
    return {"NERDCTL_TOML": str(tmp_path / "absent.toml"), **env}


# (command line, environment, nerdctl.toml or None, the containerd target the checks use)
WHERE: list[tuple[str, dict[str, str], str | None, Target]] = [
    ("run --rm alpine", {}, None, Target(DEFAULT_ADDRESS, "default")),
    ("run --rm alpine", {"CONTAINERD_NAMESPACE": "k8s.io"}, None, Target(DEFAULT_ADDRESS, "k8s.io")),
    ("-n moby run --rm alpine", {"CONTAINERD_NAMESPACE": "k8s.io"}, None, Target(DEFAULT_ADDRESS, "moby")),
    ("run --rm alpine", {"CONTAINERD_ADDRESS": "unix:///run/k3s/containerd/containerd.sock"}, None,
     Target("/run/k3s/containerd/containerd.sock", "default")),
    ("run --rm alpine", {}, 'address = "/run/t.sock"\nnamespace = "from-toml"\n', Target("/run/t.sock", "from-toml")),
    ("run --rm alpine", {"CONTAINERD_NAMESPACE": "env"}, 'namespace = "from-toml"\n', Target(DEFAULT_ADDRESS, "env")),
    ("--namespace=cli run --rm alpine", {"CONTAINERD_NAMESPACE": "env"}, 'namespace = "from-toml"\n',
     Target(DEFAULT_ADDRESS, "cli")),
    ("-H /run/a.sock run --host /run/b.sock alpine", {}, None, Target("/run/b.sock", "default")),
    ("--storage-driver=native -n a pull alpine --namespace b", {}, None, Target(DEFAULT_ADDRESS, "b")),
]


@pytest.mark.parametrize(("line", "env", "toml", "target"), WHERE, ids=[f"{c[0]} {c[1]}" for c in WHERE])
def test_where_the_checks_are_made(tmp_path: Path, line: str, env: dict[str, str], toml: str | None,
                                   target: Target) -> None:
    environ = _no_toml(tmp_path, **env)
    if toml is not None:
        (tmp_path / "absent.toml").write_text(toml)
    inv = nargv.parse(_split(line))
    assert resolve(inv.address, inv.namespace, environ) == target
