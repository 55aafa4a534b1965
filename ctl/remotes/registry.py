"""The registry client: resolve, fetch and push manifests and blobs (OCI distribution API).

The methods map onto the API's endpoints::

    resolve         HEAD /v2/<repo>/manifests/<tag|digest>   (GET when headers fall short)
    fetch_manifest  GET  /v2/<repo>/manifests/<digest>
    open_blob       GET  /v2/<repo>/blobs/<digest>           (Range: bytes=<offset>-)
    blob_exists     HEAD /v2/<repo>/blobs/<digest>
    push_blob       POST /v2/<repo>/blobs/uploads/, then PUT <location>?digest=<digest>
    push_manifest   PUT  /v2/<repo>/manifests/<tag|digest>

Everything received is checked against the descriptor it was asked for: a
digest or size that differs is DataCorrupted. Schema 1 manifests are refused.
Scheme, TLS trust, authentication, redirects and retries are the Transport's.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from ctl import __version__, oci
from ctl.closing import Closing
from ctl.errdefs import DataCorrupted, InvalidArgument, Unavailable
from ctl.reference import validate_domain, validate_repository
from ctl.remotes.auth import CredentialStore
from ctl.remotes.transport import Transport, pull_scope, push_scope, reason

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from _typeshed import StrPath

    from ctl.reference import Reference

MAX_MANIFEST_SIZE = 4 << 20
CHUNK_SIZE = 1 << 20
# A tag list's next page, as the distribution spec gives it: Link: <url>; rel="next".
_NEXT_PAGE = re.compile(r'\s*<([^>]+)>\s*;\s*rel="?next"?')
MANIFEST_ACCEPT = ", ".join(
    (
        oci.MEDIA_TYPE_OCI_INDEX,
        oci.MEDIA_TYPE_OCI_MANIFEST,
        oci.MEDIA_TYPE_DOCKER_LIST,
        oci.MEDIA_TYPE_DOCKER_MANIFEST,
        "*/*",
    )
)
_SCHEMA1_TYPES = frozenset(
    {oci.MEDIA_TYPE_DOCKER_SCHEMA1, "application/vnd.docker.distribution.manifest.v1+json"}
)
_KNOWN_MANIFEST_TYPES = oci.INDEX_TYPES | oci.MANIFEST_TYPES
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Registry(Closing):
    """Registry talks to one registry domain (``docker.io``, ``localhost:5000``).

    ``certs_dirs`` are searched for ``<domain>/ca.crt``; ``credentials`` default
    to docker's config file. ``retries`` and ``backoff`` (seconds, doubled per
    retry) bound the retries of failed requests. A Registry may be shared by
    threads; close it when done.
    """

    def __init__(
        self,
        domain: str,
        *,
        insecure: bool = False,
        certs_dirs: Sequence[StrPath] = (),
        credentials: CredentialStore | None = None,
        user_agent: str = f"ctl/{__version__}",
        retries: int = 4,
        backoff: float = 0.2,
        timeout: tuple[float, float] = (15.0, 60.0),
    ) -> None:
        self.domain = validate_domain(domain)
        self._transport = Transport(
            domain,
            insecure=insecure,
            certs_dirs=certs_dirs,
            credentials=credentials if credentials is not None else CredentialStore(),
            user_agent=user_agent,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
        )

    def close(self) -> None:
        self._transport.close()

    def resolve(self, ref: Reference) -> oci.Descriptor:
        """resolve finds the manifest or index that ``ref`` names; NotFound if there is none.

        With a digest in ``ref`` the answer must carry that digest (DataCorrupted
        otherwise); with only a tag, whatever the registry says the tag is.
        """
        if ref.domain != self.domain:
            raise InvalidArgument(f"cannot resolve {ref} with a client for {self.domain}")
        what = f"resolving {ref}"
        path = self._path(ref.path, "manifests", ref.object)
        headers = {"Accept": MANIFEST_ACCEPT}
        with self._transport.request(
            "HEAD", path, scope=pull_scope(ref.path), what=what, headers=headers
        ) as response:
            if response.status_code != 200:
                raise self._transport.error(response, what)
            digest = response.headers.get("Docker-Content-Digest", "")
            length = response.headers.get("Content-Length", "")
            media_type = _content_type(response)
        if media_type in _SCHEMA1_TYPES:
            raise _schema1(what)
        if (
            re.fullmatch(r"sha256:[a-f0-9]{64}", digest)
            and length.isdigit()
            and media_type in _KNOWN_MANIFEST_TYPES
        ):
            desc = oci.Descriptor(media_type, digest, int(length))
        else:
            desc = self._resolve_by_get(ref, path, what)
        if ref.digest is not None and desc.digest != ref.digest:
            raise DataCorrupted(f"{what}: the registry answered with manifest {desc.digest}")
        return desc

    def _resolve_by_get(self, ref: Reference, path: str, what: str) -> oci.Descriptor:
        """_resolve_by_get reads the manifest itself when HEAD's headers do not describe it."""
        headers = {"Accept": MANIFEST_ACCEPT}
        with self._transport.request(
            "GET", path, scope=pull_scope(ref.path), what=what, headers=headers, stream=True
        ) as response:
            if response.status_code != 200:
                raise self._transport.error(response, what)
            body = _read_body(response, MAX_MANIFEST_SIZE, what)
            media_type = _detect_media_type(_content_type(response), body, what)
        return oci.Descriptor(media_type, oci.sha256_digest(body), len(body))

    def fetch_manifest(self, repo: str, desc: oci.Descriptor) -> bytes:
        """fetch_manifest downloads a manifest or index and checks its digest and size.

        Manifests over 4 MiB are refused (InvalidArgument), as containerd does.
        """
        what = f"fetching manifest {self.domain}/{repo}@{desc.digest}"
        if desc.size > MAX_MANIFEST_SIZE:
            raise InvalidArgument(
                f"{what}: {desc.size} bytes is more than the {MAX_MANIFEST_SIZE} bytes "
                "allowed for a manifest"
            )
        with self._transport.request(
            "GET",
            self._path(repo, "manifests", desc.digest),
            scope=pull_scope(repo),
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        ) as response:
            if response.status_code != 200:
                raise self._transport.error(response, what)
            if _content_type(response) in _SCHEMA1_TYPES:
                raise _schema1(what)
            body = _read_body(response, desc.size, what)
        _verify(body, desc, what)
        return body

    def open_blob(self, repo: str, desc: oci.Descriptor, offset: int = 0) -> BlobStream:
        """open_blob starts downloading a blob, from ``offset`` if the registry allows.

        The returned stream's ``offset`` is where the served bytes really start:
        0 when the registry ignored the Range request. The caller verifies the
        digest of the whole blob; the stream only guards the size.
        """
        what = f"fetching blob {self.domain}/{repo}@{desc.digest}"
        if offset < 0 or (offset and offset >= desc.size):
            raise InvalidArgument(
                f"{what}: offset {offset} is outside the blob's {desc.size} bytes"
            )
        # Blobs are stored as they are: no transfer compression, whose undoing
        # would change the bytes the digest covers.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._transport.request(
            "GET",
            self._path(repo, "blobs", desc.digest),
            scope=pull_scope(repo),
            what=what,
            headers=headers,
            stream=True,
        )
        try:
            if response.status_code == 200:
                served = 0
            elif response.status_code == 206:
                served = _range_start(response, what)
            else:
                raise self._transport.error(response, what)
            if served not in (0, offset):
                raise Unavailable(f"{what}: asked for bytes from {offset}, got from {served}")
        except BaseException:
            response.close()
            raise
        return BlobStream(response, what=what, offset=served, size=desc.size)

    def check_login(self) -> None:
        """check_login asks ``/v2/`` with this registry's credentials, as ``docker login`` does.

        It returns when the registry accepts them (or asks for none), and
        raises Unauthorized when it refuses them.
        """
        what = f"logging in to {self.domain}"
        with self._transport.request("GET", "/v2/", scope="", what=what) as response:
            if response.status_code != 200:
                raise self._transport.error(response, what)

    def list_tags(self, repo: str) -> list[str]:
        """list_tags is every tag of ``repo`` (``/v2/<repo>/tags/list``), page after page."""
        what = f"listing the tags of {self.domain}/{repo}"
        validate_repository(repo)
        target: str | None = f"/v2/{repo}/tags/list"
        tags: list[str] = []
        while target is not None:
            with self._transport.request(
                "GET", target, scope=pull_scope(repo), what=what, stream=True
            ) as response:
                if response.status_code != 200:
                    raise self._transport.error(response, what)
                body = _read_body(response, MAX_MANIFEST_SIZE, what)
                link = _NEXT_PAGE.match(response.headers.get("Link", ""))
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise DataCorrupted(f"{what}: the registry's answer is not a tag list") from None
            tags += [tag for tag in page if isinstance(tag, str)]
            target = link.group(1) if link else None
        return tags

    def blob_exists(self, repo: str, desc: oci.Descriptor) -> bool:
        """blob_exists tells whether the repository has the blob; it asks for push access."""
        what = f"checking blob {self.domain}/{repo}@{desc.digest}"
        with self._transport.request(
            "HEAD", self._path(repo, "blobs", desc.digest), scope=push_scope(repo), what=what
        ) as response:
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return False
            raise self._transport.error(response, what)

    def push_blob(self, repo: str, desc: oci.Descriptor, data: BinaryIO) -> None:
        """push_blob uploads ``desc.size`` bytes from ``data`` in one request (monolithic upload).

        The registry checks the digest; a mismatch is DataCorrupted.
        """
        what = f"pushing blob {desc.digest} to {self.domain}/{repo}"
        start = self._path(repo, "blobs", "uploads") + "/"
        with self._transport.request(
            "POST", start, scope=push_scope(repo), what=what, headers={"Content-Length": "0"}
        ) as response:
            if response.status_code != 202:
                raise self._transport.error(response, what)
            location = response.headers.get("Location")
            if not location:
                raise Unavailable(f"{what}: the registry gave no upload location")
        parts = urlsplit(urljoin(self._transport.base_url + start, location))
        query = "&".join(q for q in (parts.query, urlencode({"digest": desc.digest})) if q)
        upload = urlunsplit(parts._replace(query=query))
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
        with self._transport.request(
            "PUT", upload, scope=push_scope(repo), what=what, headers=headers, data=data
        ) as response:
            if response.status_code != 201:
                raise self._transport.error(response, what)

    def push_manifest(
        self, repo: str, tag_or_digest: str, media_type: str, body: bytes
    ) -> oci.Descriptor:
        """push_manifest stores a manifest or index under a tag (or its digest); returns it."""
        desc = oci.Descriptor(media_type, oci.sha256_digest(body), len(body))
        what = f"pushing manifest {desc.digest} to {self.domain}/{repo}:{tag_or_digest}"
        if tag_or_digest.startswith("sha256:") and tag_or_digest != desc.digest:
            raise InvalidArgument(f"{what}: the manifest's digest is {desc.digest}")
        with self._transport.request(
            "PUT",
            self._path(repo, "manifests", tag_or_digest),
            scope=push_scope(repo),
            what=what,
            headers={"Content-Type": media_type},
            data=body,
        ) as response:
            if response.status_code != 201:
                raise self._transport.error(response, what)
            stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != desc.digest:
            raise DataCorrupted(f"{what}: the registry stored it as {stored}")
        return desc

    def _path(self, repo: str, kind: str, obj: str) -> str:
        validate_repository(repo)
        if kind != "blobs" or obj != "uploads":
            _validate_object(obj)
        return f"/v2/{repo}/{kind}/{obj}"


class BlobStream(Closing):
    """BlobStream is a blob download in progress: iterate over it for chunks of bytes.

    ``offset`` is the position in the blob of the first byte served. A
    connection lost or cut short raises Unavailable (the caller may resume from
    what it has); more bytes than the descriptor's size raise DataCorrupted.
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        what: str,
        offset: int,
        size: int,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.offset = offset
        self.size = size
        self._response = response
        self._what = what
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        expected = self.size - self.offset
        received = 0
        try:
            for chunk in self._response.raw.stream(self._chunk_size, decode_content=False):
                received += len(chunk)
                if received > expected:
                    raise DataCorrupted(
                        f"{self._what}: the registry sent more than the blob's {self.size} bytes"
                    )
                yield chunk
        except (OSError, urllib3.exceptions.HTTPError, requests.RequestException) as err:
            raise Unavailable(
                f"{self._what}: download stopped after {self.offset + received} of "
                f"{self.size} bytes: {reason(err)}"
            ) from err
        if received < expected:
            raise Unavailable(
                f"{self._what}: the registry closed the connection after "
                f"{self.offset + received} of {self.size} bytes"
            )

    def close(self) -> None:
        self._response.close()


def _validate_object(obj: str) -> None:
    if obj.startswith("sha256:"):
        oci.validate_digest(obj)
    elif not re.fullmatch(r"[\w][\w.-]{0,127}", obj, re.ASCII):
        raise InvalidArgument(f"invalid tag {obj!r}")


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _read_body(response: requests.Response, limit: int, what: str) -> bytes:
    """_read_body reads a (decoded) response body, refusing more than ``limit`` bytes."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise DataCorrupted(f"{what}: the registry sent {length} bytes, expected at most {limit}")
    body = bytearray()
    try:
        for chunk in response.iter_content(64 << 10):
            body += chunk
            if len(body) > limit:
                raise DataCorrupted(f"{what}: the registry sent more than {limit} bytes")
    except requests.RequestException as err:
        raise Unavailable(f"{what}: connection lost: {reason(err)}") from err
    return bytes(body)


def _verify(body: bytes, desc: oci.Descriptor, what: str) -> None:
    if len(body) != desc.size:
        raise DataCorrupted(f"{what}: got {len(body)} bytes, the descriptor says {desc.size}")
    actual = oci.sha256_digest(body)
    if actual != desc.digest:
        raise DataCorrupted(f"{what}: the content has digest {actual}")


def _schema1(what: str) -> InvalidArgument:
    return InvalidArgument(
        f"{what}: schema 1 manifests are not supported",
        hint="push the image again with a current docker, podman or skopeo",
    )


def _detect_media_type(content_type: str, body: bytes, what: str) -> str:
    """_detect_media_type reads the media type from the manifest when the header does not say."""
    try:
        document: Any = json.loads(body)
    except ValueError as err:
        raise InvalidArgument(f"{what}: the manifest is not JSON") from err
    if not isinstance(document, dict):
        raise InvalidArgument(f"{what}: the manifest is not a JSON object")
    declared = document.get("mediaType")
    if document.get("schemaVersion") == 1 or content_type in _SCHEMA1_TYPES:
        raise _schema1(what)
    if isinstance(declared, str) and declared:
        return declared
    if content_type in _KNOWN_MANIFEST_TYPES:
        return content_type
    if "manifests" in document:
        return oci.MEDIA_TYPE_OCI_INDEX
    if "config" in document:
        return oci.MEDIA_TYPE_OCI_MANIFEST
    raise InvalidArgument(f"{what}: cannot tell what kind of manifest this is ({content_type})")


def _range_start(response: requests.Response, what: str) -> int:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None:
        raise Unavailable(f"{what}: partial content without a valid Content-Range")
    return int(match.group(1))
