"""A small OCI registry client (docs/signatures.md §5): manifests, blobs, referrers.

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

References are parsed by :mod:`shim.images.reference` (nerdctl's grammar); :meth:`Repository.of` is the one
way from a reference to its repository. The default domain's API endpoint is not hard-coded: pass it in
``endpoints`` (like the ``server`` of containerd's hosts.toml). Credentials come from
:mod:`shim.images.credentials`; where cosign keeps signatures in a registry, and fetching them, is
:mod:`shim.trust.registry_signatures`.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from shim.common import strictjson
from shim.common.errors import IntegrityError, NotFound, Unavailable, UsageError
from shim.images import oci
from shim.images.credentials import Credentials, CredentialSource
from shim.images.reference import Reference
from shim.images.reference import parse as parse_reference
from shim.trust.signatures import referrers_tag

MANIFEST_ACCEPT = (oci.MEDIA_OCI_INDEX, oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_LIST, oci.MEDIA_DOCKER_MANIFEST)
MAX_MANIFEST_BYTES = oci.MAX_MANIFEST_BYTES
DEFAULT_MAX_BLOB_BYTES = 64 << 20
MAX_TOKEN_BYTES = 1 << 20
MAX_ERROR_BYTES = 64 << 10
DEFAULT_TIMEOUT = 15.0
MAX_REDIRECTS = 3

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


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

    @classmethod
    def of(cls, ref: str | Reference) -> Repository:
        """The repository a reference names (``ref`` as parsed by :func:`shim.images.reference.parse`, nerdctl's
        grammar, or the text to parse): its domain and path. What to fetch in it is
        :attr:`Reference.manifest_reference`. Raises :class:`UsageError` for image IDs, IPFS and archives."""
        r = parse_reference(ref) if isinstance(ref, str) else ref
        if r.kind != "name":
            raise UsageError(f"{r.raw!r} is not a registry reference ({r.kind})")
        return cls(r.domain, r.path)


@dataclass(frozen=True)
class Fetched:
    """A manifest as served: exact bytes, media type and digest (sha256 of the bytes)."""

    data: bytes
    media_type: str
    digest: str


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
    is https with certificate verification. ``credentials``: a callable host → :class:`Credentials` (see
    :class:`shim.images.credentials.DockerCredentials`); ``None`` means anonymous. ``endpoints``: the API
    ``host[:port]`` for a registry host whose API is served elsewhere (the default domain's, from configuration)."""

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
            doc = strictjson.load_object(resp.body, max_size=MAX_TOKEN_BYTES)
        except strictjson.Invalid as e:
            raise Unavailable(f"registry {repo.host}: the token server's answer {e}") from e
        token = doc.get("token") or doc.get("access_token")
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
