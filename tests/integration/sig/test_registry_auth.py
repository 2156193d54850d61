"""Token and Basic auth, Docker credentials and redirects, against small in-process HTTP servers on
loopback (the Debian registry runs without auth; these servers play a registry and its token service,
with the exact challenges the distribution spec describes)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shim.common.errors import IntegrityError, Unavailable
from shim.images import oci
from shim.images.credentials import Credentials
from shim.images.registry import Client, Repository

pytestmark = [pytest.mark.integration]

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":' \
           b'{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:' + b"0" * 64 + \
           b'","size":2},"layers":[]}'
USER, PASSWORD = "alice", "pa:ss"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class Server:
    def __init__(self, route: Route) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                outer.seen.append((self.command, self.path, dict(self.headers.items())))
                status, headers, body = route(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[[Route], Server]]:
    made: list[Server] = []

    def make(route: Route) -> Server:
        made.append(Server(route))
        return made[-1]

    yield make
    for s in made:
        s.close()


def token_registry(servers: Callable[[Route], Server]) -> tuple[Server, Server]:
    """A registry that wants a Bearer token, and the token service that wants Basic credentials."""

    def token(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        if h.headers.get("Authorization") != BASIC or q.get("service") != ["fake"]:
            return 401, {}, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad creds"}]}'
        return 200, {"Content-Type": "application/json"}, json.dumps({"access_token": "tok-" + q["scope"][0]}).encode()

    auth = servers(token)

    def reg(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        scope = "repository:team/app:pull"
        if h.headers.get("Authorization") != f"Bearer tok-{scope}":
            challenge = f'Bearer realm="http://{auth.host}/token",service="fake",scope="{scope}"'
            return 401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        return 200, {"Content-Type": oci.MEDIA_OCI_MANIFEST,
                     "Docker-Content-Digest": oci.sha256_digest(MANIFEST)}, MANIFEST

    return servers(reg), auth


def test_bearer_token_flow_with_basic_credentials(servers: Callable[[Route], Server]) -> None:
    reg, auth = token_registry(servers)
    creds = {reg.host: Credentials(USER, PASSWORD)}
    with Client(insecure={reg.host, auth.host}, credentials=creds.get) as c:
        repo = Repository(reg.host, "team/app")
        assert c.get_manifest(repo, "v1").data == MANIFEST
        assert c.resolve(repo, "v1") == oci.sha256_digest(MANIFEST)
    assert len(auth.seen) == 1  # the token is reused within the session


def test_wrong_credentials_are_unavailable_with_a_hint(servers: Callable[[Route], Server]) -> None:
    reg, auth = token_registry(servers)
    with Client(insecure={reg.host, auth.host}, credentials=lambda h: Credentials(USER, "wrong")) as c, \
            pytest.raises(Unavailable, match="token server answered 401") as e:
        c.get_manifest(Repository(reg.host, "team/app"), "v1")
    assert "log in" in (e.value.hint or "")


def test_token_realm_over_plain_http_must_be_listed(servers: Callable[[Route], Server]) -> None:
    reg, auth = token_registry(servers)
    with Client(insecure={reg.host}, credentials=lambda h: Credentials(USER, PASSWORD)) as c, \
            pytest.raises(Unavailable, match="is not https"):
        c.get_manifest(Repository(reg.host, "team/app"), "v1")
    assert auth.seen == []  # the credentials never left


def test_basic_challenge(servers: Callable[[Route], Server]) -> None:
    def reg(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if h.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return 200, {"Content-Type": oci.MEDIA_OCI_MANIFEST}, MANIFEST

    s = servers(reg)
    with Client(insecure={s.host}, credentials=lambda h: Credentials(USER, PASSWORD)) as c:
        assert c.get_manifest(Repository(s.host, "team/app"), "v1").data == MANIFEST
    with Client(insecure={s.host}) as c, pytest.raises(Unavailable, match="requires authentication"):
        c.get_manifest(Repository(s.host, "team/app"), "v1")


def test_redirect_drops_credentials_on_another_host_and_is_bounded(servers: Callable[[Route], Server]) -> None:
    blob = b"hello"
    digest = oci.sha256_digest(blob)
    storage = servers(lambda h: (200, {}, blob))

    def reg(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if h.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        if "/blobs/" in h.path:
            return 307, {"Location": f"http://{storage.host}/data/{digest}"}, b""
        return 302, {"Location": h.path}, b""  # a loop

    s = servers(reg)
    with Client(insecure={s.host, storage.host}, credentials=lambda h: Credentials(USER, PASSWORD)) as c:
        assert c.get_blob(Repository(s.host, "team/app"), digest) == blob
        assert "Authorization" not in storage.seen[0][2]
        with pytest.raises(Unavailable, match="more than 3 redirects"):
            c.get_manifest(Repository(s.host, "team/app"), "v1")


def test_served_digest_must_match_the_bytes(servers: Callable[[Route], Server]) -> None:
    s = servers(lambda h: (200, {"Content-Type": oci.MEDIA_OCI_MANIFEST,
                                 "Docker-Content-Digest": "sha256:" + "1" * 64}, MANIFEST))
    with Client(insecure={s.host}) as c:
        with pytest.raises(IntegrityError, match="the registry says"):
            c.get_manifest(Repository(s.host, "team/app"), "v1")
        with pytest.raises(IntegrityError, match="content is"):
            c.get_manifest(Repository(s.host, "team/app"), "sha256:" + "2" * 64)


def test_server_error_is_unavailable(servers: Callable[[Route], Server]) -> None:
    s = servers(lambda h: (503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}'))
    with Client(insecure={s.host}) as c, pytest.raises(Unavailable, match="HTTP 503 UNAVAILABLE"):
        c.get_manifest(Repository(s.host, "team/app"), "v1")
