"""The runtime gate's lines: what BACON's ``runc`` launcher adds to the real runc.

- a pass-through verb (``runc --root R list``): the launcher vs the real runc, same argv;
- ``create`` of a container the wrapper admitted (its record), and of one another client made (full
  admission: signature, level, rootfs chain, profile), with ``bacon serve`` (as packaged) and without it
  (information): the gate with ``[runtime] runc = /bin/true`` (so
  the time ends when the real runc would be exec'd) vs ``/bin/true`` with the same argv. The container is
  a real containerd container of the harness's signed ``low`` image; its bundle holds the ``config.json``
  Debian's ctr writes (tests/vectors/oci-spec/ctr-default.json), where containerd's shim puts bundles.
- the full admission at create against ``cosign verify --key`` (the wrapper's admission budget);
- ``exec`` into the wrapper-admitted container (``runc exec --process FILE``, as containerd's shim calls it,
  the container's own process): the gate (what create kept, the process file, the profile) vs ``/bin/true``
  with the same argv, with ``bacon serve`` and without it (information: exec is no pass-through verb now,
  but it runs as often as health checks do).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.host import BenchHost, deb_shaped_launcher
from benchmarks.measure import Command, Pair
from shim.admission import records
from shim.runtime import argv as runtime_argv
from shim.runtime.gate import TASK_DIR
from tests.conftest import make_host, trusted_config

PASS_THROUGH_BUDGET_MS = 10.0
CREATE_RECORD_BUDGET_MS = 30.0
SPEC = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "oci-spec" / "ctr-default.json"


def _bundle(work: Path, cid: str) -> Path:
    bundle = work / "state" / TASK_DIR / "default" / cid
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    spec = json.loads(SPEC.read_text())
    spec["linux"]["cgroupsPath"] = f"/default/{cid}"  # as ctr names it: /<namespace>/<container id>
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle


def _create_argv(launcher: str, work: Path, bundle: Path, cid: str) -> list[str]:
    return [launcher, "--root", str(work / "runc-root" / "default"), "--log", str(bundle / "log.json"),
            "--log-format", "json", "create", "--bundle", str(bundle), "--pid-file", str(bundle / "init.pid"), cid]


def _exec_argv(launcher: str, work: Path, bundle: Path, cid: str, process: Path) -> list[str]:
    return [launcher, "--root", str(work / "runc-root" / "default"), "--log", str(bundle / "log.json"),
            "--log-format", "json", "exec", "--process", str(process), "--detach", "--pid-file",
            str(bundle / "exec.pid"), cid]


def _layers(socket: Path, ref: str) -> tuple[str, ...]:
    """The chain IDs of the image's layers, which the wrapper keeps in its admission record."""
    from shim.images import rootfs
    from shim.images.containerd import Client
    from shim.wrapper.nerdctl_env import Target

    client = Client(Target(address=str(socket), namespace="default"))
    try:
        return rootfs.layer_chain(client.read_blob(client.resolve_image(ref).config_digest, 1 << 20))
    finally:
        client.close()


def _runc_state(work: Path, bundle: Path, cid: str) -> None:
    """The part of runc's state.json the gate reads at exec: the container's bundle."""
    state = work / "runc-root" / "default" / cid / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"id": cid, "config": {"labels": [f"bundle={bundle}"]}}))


def rows(bh: BenchHost, args: Any, pair: Callable[..., Pair], row: Callable[..., Any], ms: Callable[[Any], str],
         pair_data: Callable[[Pair], dict[str, Any]], cosign_low: Command,
         serving: Callable[..., contextlib.AbstractContextManager[None]]) -> list[Any]:
    out: list[Any] = []
    work = bh.work / "runtime"
    (work / "runc-root").mkdir(parents=True, exist_ok=True)
    h = make_host(work / "host", bh.containerd, bh.registry)
    trusted_config(h, bh.key, extra=f'[runtime]\nrunc = "/bin/true"\ncontainerd = "{bh.containerd.socket}"\n')
    launcher = work / "bin" / "runc"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    if args.bin is None:  # this environment's gate, started the way the .deb starts it (#!python -IS)
        gate = work / "bin" / "bacon-runtime"
        deb_shaped_launcher(gate, "shim.runtime.main", bh.python)
    else:
        gate = Path(args.bin) / "bacon-runtime"
    launcher.write_text(runtime_argv.launcher("/usr/sbin/runc", str(gate), {"BACON_CONFIG": str(h.config)}))
    launcher.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    # 1. a pass-through verb
    p = pair(Command("gate runc list", [str(launcher), "--root", str(work / "runc-root"), "list"], env),
             Command("runc list", ["/usr/sbin/runc", "--root", str(work / "runc-root"), "list"], env),
             args.forward_runs)
    added = p.a_ms.median - p.b_ms.median
    out.append(row("runtime_pass_through", "runtime gate: a pass-through verb (runc list)", ms(p.a_ms), "the real runc",
                   ms(p.b_ms), f"+{added:.1f} ms", f"≤ +{PASS_THROUGH_BUDGET_MS:.0f} ms",
                   added <= PASS_THROUGH_BUDGET_MS, {**pair_data(p), "added_ms": round(added, 3)}))

    img = bh.images["low"]
    # 2. create of a wrapper-admitted container (its record), and 3. of one ctr made (full admission):
    # with bacon serve (as packaged), then in the gate's own process (information)
    rec = records.new_record(h.state_dir, digest=img.digest, image=img.ref, level="Low",
                             address=str(bh.containerd.socket), namespace="default",
                             layers=_layers(bh.containerd.socket, img.ref))
    bh.containerd.ctr("containers", "create", "--label", f"{records.LABEL}={rec.token}", img.ref, "bench-rt-rec")
    bh.containerd.ctr("containers", "create", img.ref, "bench-rt-ctr")
    runtime_extra = f'[runtime]\nrunc = "/bin/true"\ncontainerd = "{bh.containerd.socket}"\n'
    cases = (("bench-rt-rec", "record", "create, wrapper-admitted container", CREATE_RECORD_BUDGET_MS),
             ("bench-rt-ctr", "admission", "create, full admission (ctr's container)", None))
    try:
        for served in (True, False):
            with serving(h, "Low", runtime_extra) if served else contextlib.nullcontext():
                for cid, key, what, budget in cases:
                    bundle = _bundle(work, cid)
                    how = "with bacon serve" if served else "(info) in its own process, no bacon serve"
                    gate_cmd = Command(f"gate create {cid}", _create_argv(str(launcher), work, bundle, cid), env)
                    p = pair(gate_cmd, Command("/bin/true create", _create_argv("/bin/true", work, bundle, cid), env))
                    added = p.a_ms.median - p.b_ms.median
                    checked = served and budget is not None
                    out.append(row(f"runtime_create_{key}{'' if served else '_unserved'}",
                                   f"runtime gate: {what}, {how}", ms(p.a_ms), "/bin/true (the real runc's exec)",
                                   ms(p.b_ms), f"+{added:.1f} ms", f"≤ +{budget:.0f} ms" if checked else "(info)",
                                   added <= budget if checked and budget is not None else None,
                                   {**pair_data(p), "added_ms": round(added, 3)}))
                    if key == "record":  # 4. exec into it, after its create kept the level
                        process = work / "process.json"
                        process.write_text(json.dumps(json.loads(SPEC.read_text())["process"]))
                        _runc_state(work, bundle, cid)
                        gate_exec = _exec_argv(str(launcher), work, bundle, cid, process)
                        q = pair(Command(f"gate exec {cid}", gate_exec, env),
                                 Command("/bin/true exec", _exec_argv("/bin/true", work, bundle, cid, process), env))
                        added = q.a_ms.median - q.b_ms.median
                        out.append(row(f"runtime_exec{'' if served else '_unserved'}",
                                       f"runtime gate: exec --process, wrapper-admitted container, {how}",
                                       ms(q.a_ms), "/bin/true (the real runc's exec)", ms(q.b_ms),
                                       f"+{added:.1f} ms", "(info)", None,
                                       {**pair_data(q), "added_ms": round(added, 3)}))
                    if key == "admission" and served:
                        q = pair(gate_cmd, cosign_low)
                        ratio = q.a_ms.median / q.b_ms.median
                        out.append(row("runtime_create_vs_cosign", f"runtime gate: {what}, {how}, vs cosign",
                                       ms(q.a_ms), "cosign verify --key", ms(q.b_ms), f"{ratio:.2f}×",
                                       "≤ 1.0× cosign", ratio <= 1.0, {**pair_data(q), "ratio": round(ratio, 3)}))
    finally:
        bh.containerd.ctr("containers", "rm", "bench-rt-rec", "bench-rt-ctr", check=False)
    return out


if __name__ == "__main__":  # only these lines: python -m benchmarks.runtime [--quick]
    import sys

    from benchmarks import __main__ as bench

    bench.run_all = lambda bh, args: bench.runtime_rows(bh, args)
    sys.exit(bench.main(sys.argv[1:]))
