"""``bacon version`` and ``bacon image``: what containerd says, through the gRPC API."""

from __future__ import annotations

import argparse
import json
import sys

from shim import __version__
from shim.common.errors import BaconError
from shim.images import platforms
from shim.images.containerd import Client
from shim.wrapper.nerdctl_env import resolve


def cmd_version(args: argparse.Namespace) -> int:
    """BACON's version always (it needs nothing); then containerd's, or why it cannot be had (exit 69)."""
    target = resolve(args.address, args.namespace)
    if not args.json:
        print(f"bacon {__version__}", flush=True)
    try:
        with Client(target) as c:
            version, revision = c.version()
    except BaconError as e:
        if args.json:
            print(json.dumps({"bacon": __version__, "containerd": {"error": e.message, "hint": e.hint,
                                                                   "address": target.address}}))
        raise
    if args.json:
        print(json.dumps({"bacon": __version__, "containerd": {"version": version, "revision": revision,
                                                               "address": target.address}}))
    else:
        print(f"containerd {version} ({revision}) at {target.address}")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    target = resolve(args.address, args.namespace)
    from shim.images.hostplatform import this_host

    host = this_host()
    platform = platforms.requested(args.platform, host)
    with Client(target) as c:
        r = c.resolve_image(args.image, platform, host)
    doc = {
        "name": r.record.name,
        "namespace": target.namespace,
        "target": {"mediaType": r.record.target.media_type, "digest": r.record.target.digest,
                   "size": r.record.target.size},
        "platform": str(r.platform),
        "manifest": r.manifest.digest,
        "config": r.config_digest,
        "labels": dict(r.labels),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    w = sys.stdout.write
    w(f"image     {r.record.name} (namespace {target.namespace})\n")
    w(f"target    {r.record.target.digest} {r.record.target.media_type}\n")
    w(f"platform  {r.platform} -> manifest {r.manifest.digest}\n")
    w(f"config    {r.config_digest}\n")
    for k, v in sorted(r.labels.items()):
        w(f"label     {k}={v}\n")
    return 0
