"""A ``bacon serve`` worker connects to containerd before its request comes (shim.images.containerd.warm_channel,
shim.service.server._warm_up): the request's client takes that channel once, and every check on the socket
still runs for the request (docs/runtime.md, "What create and exec cost")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.common.errors import NoPermission, Unavailable
from shim.images import containerd as ctd
from shim.service import server
from shim.wrapper.nerdctl_env import Target
from tests.conftest import Host, Signed, trusted_config
from tests.harness.containerd import Containerd

pytestmark = [pytest.mark.integration, pytest.mark.containerd]


@pytest.fixture(autouse=True)
def no_warm_channels() -> Iterator[None]:
    for ch in ctd._WARM.values():
        ch.close()
    ctd._WARM.clear()
    yield
    for ch in ctd._WARM.values():
        ch.close()
    ctd._WARM.clear()


def test_a_warmed_channel_serves_the_next_client_of_its_socket_once(containerd: Containerd) -> None:
    path = str(containerd.socket)
    ctd.warm_channel(path)
    warm = ctd._WARM[path]
    with ctd.Client(Target(path, "default")) as first:
        assert first._channel is warm
        assert path not in ctd._WARM  # taken: a second client connects on its own
        assert first.list_images(["name==none.invalid/x"]) == []
    with ctd.Client(Target(path, "default")) as second:
        assert second._channel is not warm
        assert second.list_images(["name==none.invalid/x"]) == []


def test_nothing_is_kept_for_a_socket_that_does_not_answer(tmp_path: Path) -> None:
    ctd.warm_channel(str(tmp_path / "no.sock"), timeout=0.5)
    assert ctd._WARM == {}


def test_the_socket_is_checked_for_the_request_even_with_a_warmed_channel(containerd: Containerd,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(containerd.socket)
    ctd.warm_channel(path)
    assert path in ctd._WARM
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # a caller who may not use the socket
    with pytest.raises(NoPermission):
        ctd.Client(Target(path, "default"))


def test_a_warmed_channel_is_not_used_for_another_socket(containerd: Containerd, tmp_path: Path) -> None:
    ctd.warm_channel(str(containerd.socket))
    with pytest.raises(Unavailable, match="does not exist"):
        ctd.Client(Target(str(tmp_path / "other.sock"), "default"))
    assert str(containerd.socket) in ctd._WARM


def test_the_service_worker_connects_to_the_runtime_gates_containerd(host: Host, signed: Signed,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trusted_config(host, signed.trusted, extra=f'[runtime]\ncontainerd = "{host.containerd.socket}"\n')
    monkeypatch.setenv("BACON_CONFIG", str(host.config))
    monkeypatch.delenv("CONTAINERD_ADDRESS", raising=False)  # nerdctl's default socket is not there
    server._warm_up()
    assert list(ctd._WARM) == [str(host.containerd.socket)]
