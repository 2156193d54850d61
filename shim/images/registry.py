"""A small OCI registry client (docs/signatures.md §5), and where cosign keeps signatures in it.

Standard library (``http.client``, ``ssl``) rather than a library, on purpose:

- raw bytes: a digest is the sha256 of the exact body, so nothing may re-serialize JSON (oras-py 0.2.43
  returns parsed JSON, has no tag→digest resolver, no referrers API, hard-codes the manifest type on
  upload and keeps one token per client);
- bounds and redirects under our control: every body is read with a size limit (manifests 4 MiB,
  blobs by parameter), redirects are bounded, never downgrade https to http, and drop credentials when
  they leave the registry's host (``urllib`` and ``requests`` carry headers across redirects);
- plain http only for hosts the configuration lists as insecure;
- import time: ``http.client`` is ~5 ms, ``requests`` ~60 ms and ``httpx`` ~100 ms on the admission path.

Errors: :class:`Unavailable` for transport failures, timeouts, 5xx, 429 and refused credentials;
:class:`NotFound` for an unknown manifest; :class:`IntegrityError` for a digest mismatch or a body over its
limit. Connections are kept alive per host, one client per command.

References are parsed by :mod:`shim.images.reference` (nerdctl's grammar); :func:`split_reference` only adapts
its result. The default domain's API endpoint is not hard-coded: pass it in ``endpoints`` (like the
``server`` of containerd's hosts.toml). Its Docker credentials are looked up under the legacy spelling
too, as the Docker CLI stores them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shim.common.errors import IntegrityError, NotFound, Unavailable, UsageError
from shim.images import oci
from shim.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN
from shim.images.reference import parse as parse_reference
from shim.trust.signatures import BUNDLE_MEDIA_TYPES, DEFAULT_LIMITS, Limits, Material, referrers_tag, sig_tag

MANIFEST_ACCEPT = (oci.MEDIA_OCI_INDEX, oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_LIST, oci.MEDIA_DOCKER_MANIFEST)
MAX_MANIFEST_BYTES = oci.MAX_MANIFEST_BYTES
DEFAULT_MAX_BLOB_BYTES = 64 << 20
MAX_TOKEN_BYTES = 1 << 20
MAX_ERROR_BYTES = 64 << 10
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_TIMEOUT = 15.0
MAX_REDIRECTS = 3
HELPER_TIMEOUT = 10.0

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")
_HELPER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Repository:
    """A repository at a registry: ``host`` as in references (``127.0.0.1:5000``), ``name`` its path."""

    host: str
    name: str

    def __post_init__(self) -> None:
        if not _HOST_RE.match(self.host):
            raise UsageError(f"invalid registry host {self.host!r}")
        if not _NAME_RE.match(self.name) or len(self.name) > 255:
            raise UsageError(f"invalid repository name {self.name!r}")

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"


@dataclass(frozen=True)
class Reference:
    repository: Repository
    tag: str | None = None
    digest: str | None = None

    @property
    def ref(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"


def split_reference(ref: str) -> Reference:
    """A registry reference (``shim.images.reference.parse``, nerdctl's grammar) as repository, tag and digest.
    Raises :class:`UsageError` for image IDs, IPFS and archives, and digests other than sha256."""
    r = parse_reference(ref)
    if r.kind != "name":
        raise UsageError(f"{ref!r} is not a registry reference ({r.kind})")
    if r.digest and not oci.is_digest(r.digest):
        raise UsageError(f"{ref!r}: only full sha256 digests are accepted")
    return Reference(Repository(r.domain, r.path), r.tag or None, r.digest or None)


@dataclass(frozen=True)
class Fetched:
    """A manifest as served: exact bytes, media type and digest (sha256 of the bytes)."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


CredentialSource = Callable[[str], "Credentials | None"]


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path(env.get("HOME", "~")).expanduser() / ".docker" / "config.json"


def docker_reference(repo: Repository) -> str:
    """The repository as cosign writes it in a payload (the default domain in its legacy spelling)."""
    host = LEGACY_DEFAULT_DOMAIN if repo.host == DEFAULT_DOMAIN else repo.host
    return f"{host}/{repo.name}"


def _host_of(key: str) -> str:
    """The host part of an ``auths`` key (``https://host/v1/`` → ``host``)."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0]


class DockerCredentials:
    """Credentials from a Docker client config: ``auths`` (base64 ``user:pass``), ``credHelpers`` and
    ``credsStore`` (``docker-credential-<name> get``, looked up on PATH). Identity tokens (OAuth refresh
    tokens) are not supported. A missing or unreadable config means no credentials. ``path`` defaults to
    :func:`docker_config_path` of ``environ``."""

    def __init__(self, path: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.path = path if path is not None else docker_config_path(self.environ)
        self._doc: dict[str, object] | None = None

    def _config(self) -> dict[str, object]:
        if self._doc is None:
            self._doc = {}
            if self.path is not None:
                try:
                    with self.path.open("rb") as f:
                        raw = f.read(MAX_CONFIG_BYTES + 1)
                    doc = json.loads(raw) if len(raw) <= MAX_CONFIG_BYTES else {}
                    self._doc = doc if isinstance(doc, dict) else {}
                except (OSError, ValueError):
                    self._doc = {}
        return self._doc

    def __call__(self, host: str) -> Credentials | None:
        doc = self._config()
        names = {host, LEGACY_DEFAULT_DOMAIN} if host == DEFAULT_DOMAIN else {host}
        server = f"https://{LEGACY_DEFAULT_DOMAIN}/v1/" if host == DEFAULT_DOMAIN else host
        helpers = doc.get("credHelpers")
        if isinstance(helpers, dict):
            for name in sorted(names):
                if isinstance(helpers.get(name), str):
                    return self._helper(helpers[name], server)
        auths = doc.get("auths")
        if isinstance(auths, dict):
            for key, entry in auths.items():
                if isinstance(key, str) and _host_of(key) in names and isinstance(entry, dict):
                    creds = self._auth_entry(entry)
                    if creds is not None:
                        return creds
        store = doc.get("credsStore")
        if isinstance(store, str) and store:
            return self._helper(store, server)
        return None

    @staticmethod
    def _auth_entry(entry: Mapping[str, object]) -> Credentials | None:
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                user, sep, pw = base64.b64decode(auth, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return Credentials(user, pw) if sep else None
        username, password = entry.get("username"), entry.get("password")
        if isinstance(username, str) and isinstance(password, str) and username:
            return Credentials(username, password)
        return None

    def _helper(self, name: str, host: str) -> Credentials | None:
        if not _HELPER_RE.match(name):
            return None
        exe = shutil.which(f"docker-credential-{name}", path=self.environ.get("PATH", os.defpath))
        if exe is None:
            return None
        try:
            r = subprocess.run([exe, "get"], input=host.encode(), capture_output=True, timeout=HELPER_TIMEOUT,
                               env=self.environ, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0 or len(r.stdout) > MAX_CONFIG_BYTES:
            return None
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            return None
        user = doc.get("Username") if isinstance(doc, dict) else None
        secret = doc.get("Secret") if isinstance(doc, dict) else None
        if isinstance(user, str) and isinstance(secret, str) and user and user != "<token>":
            return Credentials(user, secret)
        return None


@dataclass
class _Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""


def _error_text(resp: _Response) -> str:
    try:
        doc = json.loads(resp.body)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return f"{errs[0].get('code', '')}: {str(errs[0].get('message', ''))[:200]}"
    except ValueError:
        pass
    return resp.body[:200].decode("utf-8", "replace").strip()


def _challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', rest)}
    return scheme.lower(), params


class Client:
    """One registry session: kept-alive connections, tokens per (host, scope), credentials on demand.

    ``insecure``: hosts (``host[:port]``, as in references) spoken to over plain http; every other host
    is https with certificate verification. ``credentials``: a callable host → :class:`Credentials`
    (see :class:`DockerCredentials`); ``None`` means anonymous. ``endpoints``: the API ``host[:port]``
    for a registry host whose API is served elsewhere (the default domain's, from configuration)."""

    def __init__(self, *, insecure: Collection[str] = (), credentials: CredentialSource | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_redirects: int = MAX_REDIRECTS,
                 ssl_context: ssl.SSLContext | None = None, user_agent: str = "bacon",
                 endpoints: Mapping[str, str] | None = None) -> None:
        self.insecure = frozenset(insecure)
        self.endpoints = dict(endpoints or {})
        self.credentials = credentials
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._ssl = ssl_context
        self.user_agent = user_agent
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._tokens: dict[tuple[str, str], str] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    # -- transport ---------------------------------------------------------------------------------

    def _endpoint(self, host: str) -> str:
        return self.endpoints.get(host, host)

    def _base(self, host: str) -> str:
        """``scheme://netloc`` of a registry's API: plain http only when the registry host (or its
        endpoint) is listed as insecure."""
        netloc = self._endpoint(host)
        scheme = "http" if host in self.insecure or netloc in self.insecure else "https"
        return f"{scheme}://{netloc}"

    def _conn(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is not None:
            return conn, True
        if scheme == "https":
            ctx = self._ssl or ssl.create_default_context()
            conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
        self._conns[key] = conn
        return conn, False

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._conns.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _once(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
              max_bytes: int) -> _Response:
        """One request with its whole answer within ``timeout`` seconds in total. The socket timeout bounds
        each read only: a server that sends a byte just before every timeout would never be done, so a
        timer shuts the connection down when the total is up, and that is reported as a timeout."""
        u = urllib.parse.urlsplit(url)
        late = threading.Event()

        def expire() -> None:
            late.set()
            conn = self._conns.get((u.scheme, u.netloc))
            sock = conn.sock if conn is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            return self._attempt(method, url, headers, body, max_bytes, late)
        except (Unavailable, IntegrityError) as e:
            if not late.is_set():
                raise
            self._drop(u.scheme, u.netloc)
            raise Unavailable(f"registry {u.netloc}: {method} {u.path} timed out: no complete answer within "
                              f"{self.timeout:g}s") from e
        finally:
            timer.cancel()

    def _attempt(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                 max_bytes: int, late: threading.Event) -> _Response:
        u = urllib.parse.urlsplit(url)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        hdrs = {"User-Agent": self.user_agent, **headers}
        for attempt in (0, 1):
            conn, reused = self._conn(u.scheme, u.netloc)
            try:
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
                length = resp.getheader("Content-Length")
                if method == "HEAD":
                    data = resp.read()  # empty; completes the response so the connection can be reused
                else:
                    limit = max_bytes if resp.status < 300 else MAX_ERROR_BYTES
                    if length is not None and length.isdigit() and int(length) > limit:
                        self._drop(u.scheme, u.netloc)
                        raise IntegrityError(f"{method} {url}: response of {length} bytes exceeds the limit of {limit}")
                    data = resp.read(limit + 1)
                    if len(data) > limit:
                        self._drop(u.scheme, u.netloc)
                        raise IntegrityError(f"{method} {url}: response exceeds the limit of {limit} bytes")
                    if not resp.isclosed():
                        resp.read()  # drain (bounded above) so the connection can be reused
                if resp.will_close:
                    self._drop(u.scheme, u.netloc)
                return _Response(resp.status, resp.headers, data, url)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop(u.scheme, u.netloc)
                if reused and attempt == 0 and not late.is_set():
                    continue  # a kept-alive connection the server had closed: retry once on a new one
                raise Unavailable(f"registry {u.netloc}: {method} {u.path}: {e}") from e
            except ssl.SSLError as e:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"registry {u.netloc}: TLS failed: {e}",
                                  hint="if this registry is plain http, list it under [registry] insecure") from e
            except TimeoutError as e:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"registry {u.netloc}: {method} {u.path} timed out after {self.timeout}s") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop(u.scheme, u.netloc)
                raise Unavailable(f"registry {u.netloc} is unreachable: {e}") from e
        raise AssertionError("unreachable")

    def _follow(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                max_bytes: int) -> _Response:
        origin = urllib.parse.urlsplit(url)
        for _ in range(self.max_redirects + 1):
            resp = self._once(method, url, headers, body, max_bytes)
            if resp.status not in _REDIRECTS:
                return resp
            location = resp.header("Location")
            if not location:
                raise Unavailable(f"registry {origin.netloc}: redirect without a Location")
            nxt = urllib.parse.urljoin(url, location)
            n = urllib.parse.urlsplit(nxt)
            downgrade = n.scheme == "http" and urllib.parse.urlsplit(url).scheme == "https"
            if n.scheme not in ("http", "https") or (downgrade and n.netloc not in self.insecure):
                raise Unavailable(f"registry {origin.netloc}: refused redirect to {n.scheme}://{n.netloc}")
            if n.netloc != origin.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status == 303:
                method, body = "GET", None
            url = nxt
        raise Unavailable(f"registry {origin.netloc}: more than {self.max_redirects} redirects")

    def _request(self, method: str, repo: Repository, path_or_url: str, *, headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, push: bool = False, max_bytes: int = MAX_MANIFEST_BYTES) -> _Response:
        """A request to ``repo``'s registry, answering one auth challenge (Bearer token or Basic)."""
        url = path_or_url if "://" in path_or_url else self._base(repo.host) + path_or_url
        scope = f"repository:{repo.name}:{'pull,push' if push else 'pull'}"
        hdrs = dict(headers or {})
        token = self._tokens.get((repo.host, scope))
        if token:
            hdrs["Authorization"] = token
        resp = self._follow(method, url, dict(hdrs), body, max_bytes)
        if resp.status != 401:
            return resp
        scheme, params = _challenge(resp.header("WWW-Authenticate"))
        creds = self.credentials(repo.host) if self.credentials else None
        if scheme == "bearer" and params.get("realm"):
            auth = "Bearer " + self._token(repo, params, scope, creds)
        elif scheme == "basic" and creds is not None:
            auth = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        else:
            raise Unavailable(f"registry {repo.host} requires authentication for {repo.name}",
                              hint=f"log in to {repo.host} (docker login / nerdctl login) as the user running this")
        self._tokens[(repo.host, scope)] = auth
        hdrs["Authorization"] = auth
        resp = self._follow(method, url, hdrs, body, max_bytes)
        if resp.status == 401:
            raise Unavailable(f"registry {repo.host} refused the credentials for {repo.name}: {_error_text(resp)}",
                              hint=f"log in to {repo.host} again")
        return resp

    def _token(self, repo: Repository, params: Mapping[str, str], scope: str, creds: Credentials | None) -> str:
        realm = urllib.parse.urlsplit(params["realm"])
        if realm.scheme != "https" and not (realm.scheme == "http" and realm.netloc in self.insecure):
            raise Unavailable(f"registry {repo.host}: token realm {realm.scheme}://{realm.netloc} is not https",
                              hint="list the token server under [registry] insecure only if it is on a trusted network")
        query = [("scope", scope)] + ([("service", params["service"])] if "service" in params else [])
        url = urllib.parse.urlunsplit((realm.scheme, realm.netloc, realm.path or "/",
                                       "&".join(filter(None, [realm.query, urllib.parse.urlencode(query)])), ""))
        hdrs = {"Accept": "application/json"}
        if creds is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        resp = self._follow("GET", url, hdrs, None, MAX_TOKEN_BYTES)
        if resp.status != 200:
            raise Unavailable(f"registry {repo.host}: the token server answered {resp.status}: {_error_text(resp)}",
                              hint=f"log in to {repo.host} (docker login / nerdctl login)")
        try:
            doc = json.loads(resp.body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError) as e:
            raise Unavailable(f"registry {repo.host}: the token server sent no JSON") from e
        if not isinstance(token, str) or not token:
            raise Unavailable(f"registry {repo.host}: the token server sent no token")
        return token

    @staticmethod
    def _fail(resp: _Response, what: str, host: str) -> Unavailable:
        hint = f"log in to {host}" if resp.status == 403 else None
        return Unavailable(f"registry {host}: {what}: HTTP {resp.status} {_error_text(resp)}".rstrip(), hint=hint)

    # -- manifests ---------------------------------------------------------------------------------

    def head_manifest(self, repo: Repository, ref: str) -> tuple[str, str, int] | None:
        """``(digest, media type, size)`` from a HEAD, or ``None`` when the registry sends no digest.
        Raises :class:`NotFound` when the manifest does not exist."""
        resp = self._request("HEAD", repo, f"/v2/{repo.name}/manifests/{ref}",
                             headers={"Accept": ", ".join(MANIFEST_ACCEPT)})
        if resp.status == 404:
            raise NotFound(f"{repo}:{ref} is not in the registry")
        if resp.status != 200:
            raise self._fail(resp, f"HEAD manifest {ref}", repo.host)
        digest = resp.header("Docker-Content-Digest")
        if not oci.is_digest(digest):
            return None
        size = resp.header("Content-Length")
        return digest, resp.header("Content-Type").split(";")[0].strip(), int(size) if size.isdigit() else -1

    def resolve(self, repo: Repository, ref: str) -> str:
        """The digest ``ref`` (a tag or digest) names now: HEAD, else GET and hash."""
        head = self.head_manifest(repo, ref)
        if head is not None:
            if oci.is_digest(ref) and head[0] != ref:
                raise IntegrityError(f"{repo}@{ref}: the registry answered for {head[0]}")
            return head[0]
        return self.get_manifest(repo, ref).digest

    def get_manifest(self, repo: Repository, ref: str, accept: Collection[str] = MANIFEST_ACCEPT) -> Fetched:
        """The manifest ``ref`` names, exact bytes. When ``ref`` is a digest the bytes must hash to it.
        Raises :class:`NotFound`, :class:`IntegrityError`, :class:`Unavailable`."""
        resp = self._request("GET", repo, f"/v2/{repo.name}/manifests/{ref}", headers={"Accept": ", ".join(accept)})
        if resp.status == 404:
            raise NotFound(f"{repo}:{ref} is not in the registry")
        if resp.status != 200:
            raise self._fail(resp, f"GET manifest {ref}", repo.host)
        digest = oci.sha256_digest(resp.body)
        if oci.is_digest(ref):
            oci.verify_digest(resp.body, ref, f"manifest {repo}@{ref}")
        served = resp.header("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != digest:
            raise IntegrityError(f"manifest {repo}:{ref}: the registry says {served}, the bytes are {digest}")
        media_type = oci.media_type_of(resp.body, resp.header("Content-Type").split(";")[0].strip())
        return Fetched(resp.body, media_type, digest)

    def put_manifest(self, repo: Repository, ref: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under ``ref`` (tag or its digest) with its media type; returns its digest."""
        digest = oci.sha256_digest(data)
        if oci.is_digest(ref) and ref != digest:
            raise IntegrityError(f"manifest for {repo}@{ref} hashes to {digest}")
        resp = self._request("PUT", repo, f"/v2/{repo.name}/manifests/{ref}", body=data, push=True,
                             headers={"Content-Type": media_type, "Content-Length": str(len(data))})
        if resp.status not in (200, 201, 202):
            raise self._fail(resp, f"PUT manifest {ref}", repo.host)
        served = resp.header("Docker-Content-Digest")
        if served and served != digest:
            raise IntegrityError(f"PUT manifest {repo}:{ref}: the registry stored {served}, we sent {digest}")
        return digest

    # -- blobs -------------------------------------------------------------------------------------

    def get_blob(self, repo: Repository, digest: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> bytes:
        """A blob, at most ``max_bytes``, checked against ``digest``."""
        if not oci.is_digest(digest):
            raise IntegrityError(f"not a sha256 digest: {digest!r}")
        resp = self._request("GET", repo, f"/v2/{repo.name}/blobs/{digest}", max_bytes=max_bytes)
        if resp.status == 404:
            raise NotFound(f"blob {digest} is not in {repo}")
        if resp.status != 200:
            raise self._fail(resp, f"GET blob {digest}", repo.host)
        oci.verify_digest(resp.body, digest, f"blob {repo}@{digest}")
        return resp.body

    def blob_exists(self, repo: Repository, digest: str) -> bool:
        resp = self._request("HEAD", repo, f"/v2/{repo.name}/blobs/{digest}", push=True)
        if resp.status in (200, 404):
            return resp.status == 200
        raise self._fail(resp, f"HEAD blob {digest}", repo.host)

    def push_blob(self, repo: Repository, data: bytes) -> str:
        """Upload a blob unless the repository has it (POST, then PUT with the digest); its digest."""
        digest = oci.sha256_digest(data)
        if self.blob_exists(repo, digest):
            return digest
        resp = self._request("POST", repo, f"/v2/{repo.name}/blobs/uploads/", push=True, body=b"",
                             headers={"Content-Length": "0"})
        location = resp.header("Location")
        if resp.status != 202 or not location:
            raise self._fail(resp, "start blob upload", repo.host)
        url = urllib.parse.urljoin(f"{self._base(repo.host)}/v2/{repo.name}/blobs/uploads/", location)
        elsewhere = urllib.parse.urlsplit(url).netloc
        if elsewhere != self._endpoint(repo.host):
            raise Unavailable(f"registry {repo.host}: refused an upload location on another host ({elsewhere})")
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        resp = self._request("PUT", repo, url, body=data, push=True,
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
        if resp.status not in (201, 204):
            raise self._fail(resp, f"PUT blob {digest}", repo.host)
        return digest

    # -- referrers ---------------------------------------------------------------------------------

    def referrers(self, repo: Repository, digest: str) -> bytes | None:
        """The OCI index of manifests whose subject is ``digest``: the referrers API, else the
        ``sha256-<hex>`` fallback tag; ``None`` when neither has one."""
        resp = self._request("GET", repo, f"/v2/{repo.name}/referrers/{digest}",
                             headers={"Accept": oci.MEDIA_OCI_INDEX})
        if resp.status == 200 and resp.header("Content-Type").split(";")[0].strip() == oci.MEDIA_OCI_INDEX:
            return resp.body
        if resp.status >= 500 or resp.status in (401, 403, 429):
            raise self._fail(resp, f"GET referrers {digest}", repo.host)
        try:
            return self.get_manifest(repo, referrers_tag(digest), accept=(oci.MEDIA_OCI_INDEX,)).data
        except NotFound:
            return None


class LazyBlobs(Mapping[str, bytes]):
    """Payload blobs fetched from the registry when first asked for, each checked against its digest and
    bounded; iterating yields only those fetched so far (what the cache keeps)."""

    def __init__(self, client: Client, repo: Repository, max_bytes: int) -> None:
        self._client, self._repo, self._max = client, repo, max_bytes
        self._got: dict[str, bytes] = {}

    def __getitem__(self, digest: str) -> bytes:
        if digest not in self._got:
            try:
                self._got[digest] = self._client.get_blob(self._repo, digest, self._max)
            except NotFound as e:
                raise KeyError(digest) from e
        return self._got[digest]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._got))

    def __len__(self) -> int:
        return len(self._got)


def _bundle_descriptors(index: bytes, digest: str, limits: Limits) -> list[str]:
    """Digests of the referrers that are Sigstore bundles (by ``artifactType``), at most ``max_bundles``."""
    try:
        doc = json.loads(index)
    except (ValueError, RecursionError) as e:
        raise IntegrityError(f"referrers index for {digest} is not JSON") from e
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise IntegrityError(f"referrers index for {digest} has no manifests list")
    out = []
    for entry in entries[: oci.MAX_INDEX_ENTRIES]:
        if (isinstance(entry, dict) and isinstance(entry.get("artifactType"), str)
                and entry["artifactType"] in BUNDLE_MEDIA_TYPES
                and isinstance(entry.get("digest"), str) and oci.is_digest(entry["digest"])):
            out.append(entry["digest"])
    return out[: limits.max_bundles]


def fetch_signatures(client: Client, repo: Repository, digest: str, limits: Limits = DEFAULT_LIMITS) -> Material:
    """The signature material for ``digest`` in ``repo``: bundle referrers (API or fallback tag) and the
    classic ``.sig`` manifest, with classic payloads fetched lazily as the verifier asks for them.

    Malformed referrers are skipped (another image's signature cannot block this one); the classic
    manifest is returned raw for the verifier to judge. Raises :class:`Unavailable`."""
    bundles: list[bytes] = []
    index = client.referrers(repo, digest)
    if index is not None:
        for ref in _bundle_descriptors(index, digest, limits):
            try:
                m = oci.parse_manifest(client.get_manifest(repo, ref, accept=(oci.MEDIA_OCI_MANIFEST,)).data)
                if m.subject is None or m.subject.digest != digest or not m.layers:
                    continue
                layer = m.layers[0]
                if layer.media_type not in BUNDLE_MEDIA_TYPES or layer.size > limits.max_bundle_bytes:
                    continue
                bundles.append(client.get_blob(repo, layer.digest, limits.max_bundle_bytes))
            except (NotFound, IntegrityError):
                continue
    try:
        classic: bytes | None = client.get_manifest(repo, sig_tag(digest)).data
    except NotFound:
        classic = None
    return Material(digest=digest, classic_manifest=classic, bundles=tuple(bundles),
                    blobs=LazyBlobs(client, repo, limits.max_payload_bytes))
