"""Fetching an image from a registry into the content store.

The order makes an interrupted pull safe to repeat: children are committed
before their parents, and the image record is written last, so a record
never points at content that is not there. Blobs already committed are
skipped without a request; a blob cut off midway resumes from the bytes in
its ingest (HTTP Range) on the next pull.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from ctl.content.helpers import copy_from, verify_blob
from ctl.errdefs import AlreadyExists, DataCorrupted, NotFound, Unavailable
from ctl.images import manifests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ctl.content import ContentStore
    from ctl.oci import Descriptor, Platform
    from ctl.progress import Progress
    from ctl.reference import Reference
    from ctl.remotes.registry import Registry

R = TypeVar("R")

# Layers fetched at once: containerd and docker default to 3.
MAX_CONCURRENT_DOWNLOADS = 3
# Fresh connections tried for one blob when a transfer drops midway.
BLOB_ATTEMPTS = 4


class _Stopped(Exception):
    """_Stopped ends a download because another one failed (or Ctrl-C); not an error of its own."""


class Fetcher:
    """Fetcher copies one image's content from a registry into a content store."""

    def __init__(
        self,
        store: ContentStore,
        registry: Registry,
        ref: Reference,
        platform: Platform,
        progress: Progress,
    ) -> None:
        self._store = store
        self._registry = registry
        self._repo = ref.path
        self._ref = ref
        self._platform = platform
        self._progress = progress
        # Documents fetched but not yet committed: they are committed after their children.
        self._pending: dict[str, bytes] = {}
        self._stop = threading.Event()

    def fetch(self) -> Descriptor:
        """fetch resolves the reference and fetches its content; returns the target."""
        target = self._registry.resolve(self._ref)
        manifest_desc = target
        if manifests.is_index(target):
            data = self._fetch_document(target, "index")
            listed = manifests.index_manifests(target, data)
            manifest_desc = manifests.select_platform(listed, self._platform)
        manifest = manifests.Manifest.parse(
            manifest_desc, self._fetch_document(manifest_desc, "manifest")
        )
        blobs = [(manifest.config, "config")] + [(layer, "layer") for layer in manifest.layers]
        pool = ThreadPoolExecutor(MAX_CONCURRENT_DOWNLOADS)
        try:
            for future in [pool.submit(self._fetch_blob, d, kind) for d, kind in blobs]:
                future.result()
        except BaseException as err:
            # A failed blob or Ctrl-C stops the other downloads at their next
            # chunk; what they wrote stays in their ingests, for the next pull
            # to resume. A failure waits for them (nothing may write on behind
            # the caller's back); Ctrl-C does not (the CLI exits at once).
            self._stop.set()
            pool.shutdown(wait=not isinstance(err, KeyboardInterrupt), cancel_futures=True)
            raise
        pool.shutdown()
        # Children first, parents last: a committed manifest implies its blobs.
        self._commit_document(manifest_desc, "manifest")
        if target is not manifest_desc:
            self._commit_document(target, "index")
        return target

    def _fetch_document(self, desc: Descriptor, kind: str) -> bytes:
        stored = self._stored(desc, lambda: manifests.read_document(self._store, desc))
        if stored is not None:
            return stored
        data = self._registry.fetch_manifest(self._repo, desc)
        self._pending[desc.digest] = data
        return data

    def _commit_document(self, desc: Descriptor, kind: str) -> None:
        data = self._pending.pop(desc.digest, None)
        if data is None:
            return
        try:
            with self._store.writer(f"{kind}-{desc.digest}", desc) as writer:
                writer.truncate(0)
                writer.write(data)
                writer.commit(desc.size, desc.digest)
        except AlreadyExists:
            pass

    def _fetch_blob(self, desc: Descriptor, kind: str) -> None:
        while True:
            try:
                writer = self._store.writer(f"{kind}-{desc.digest}", desc)
                break
            except AlreadyExists:
                if self._stored(desc, lambda: self._verify(desc)):
                    self._progress.finished(desc, "exists")
                    return
        with writer:
            for attempt in range(BLOB_ATTEMPTS):
                try:
                    copy_from(writer, lambda offset: self._open(desc, kind, offset), desc)
                    break
                except _Stopped:
                    return
                except Unavailable:
                    # The bytes so far stay in the ingest; a fresh request resumes from them.
                    if attempt == BLOB_ATTEMPTS - 1 or self._stop.is_set():
                        self._progress.finished(desc, "failed")
                        raise
        self._progress.finished(desc, "done")

    def _stored(self, desc: Descriptor, read: Callable[[], R]) -> R | None:
        """_stored returns what ``read`` makes of the committed blob ``desc``, or None.

        None if it is absent or damaged: a wrong size (one stat), or what
        ``read`` raises for a wrong digest or an unreadable file. A damaged
        blob is removed, to be fetched again, unless another pull replaced
        it meanwhile (its ctime, set by the commit's rename, changed).
        """
        try:
            seen = self._store.info(desc.digest)
        except NotFound:
            return None
        if seen.size == desc.size:
            try:
                return read()
            except NotFound:
                return None
            except (DataCorrupted, OSError):
                pass
        with contextlib.suppress(NotFound):
            if self._store.info(desc.digest).created_at == seen.created_at:
                self._store.delete(desc.digest)
        return None

    def _verify(self, desc: Descriptor) -> bool:
        verify_blob(self._store, desc)
        return True

    def _open(self, desc: Descriptor, kind: str, offset: int) -> tuple[int, Iterator[bytes]]:
        stream = self._registry.open_blob(self._repo, desc, offset)
        self._progress.started(desc, kind, stream.offset)

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in stream:
                    if self._stop.is_set():
                        raise _Stopped
                    self._progress.advanced(desc, len(chunk))
                    yield chunk
            finally:
                stream.close()

        return stream.offset, chunks()
