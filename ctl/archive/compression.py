"""Streaming decompression of layer blobs, chosen by their first bytes.

``decompress(stream)`` yields the uncompressed bytes of a gzip (``1f 8b``),
zstd (``28 b5 2f fd``) or uncompressed stream in pieces of at most ``CHUNK``
bytes, never holding the whole layer in memory. The media type is not
trusted for this: registries serve uncompressed layers under gzip media
types and the other way round, so containerd sniffs the magic bytes too.

gzip uses ``zlib.decompressobj`` directly, which is faster than
``gzip.GzipFile`` and releases the GIL while it inflates. Streams of several
gzip members (``pigz``, concatenated files) and zero padding after the last
member are read as ``gzip -d`` reads them.

zstd has no decoder in Python 3.11's standard library. ctl calls
``libzstd.so.1`` through ``ctypes`` rather than depending on the
``zstandard`` wheel (a compiled extension would tie the single ``.pex`` to
one CPython ABI) or on the ``zstd`` command (absent from minimal servers):
the library is present wherever ``apt``, ``rpm`` or systemd are, because
they link it.
"""

from __future__ import annotations

import functools
import zlib
from typing import TYPE_CHECKING, BinaryIO

from ctl.errdefs import DataCorrupted, Unimplemented

if TYPE_CHECKING:
    import ctypes
    from collections.abc import Iterator

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decompress(stream: BinaryIO) -> Iterator[bytes]:
    """decompress yields the uncompressed bytes of ``stream``, whatever its compression.

    Raises DataCorrupted when a compressed stream is malformed or ends early,
    and Unimplemented for zstd on a machine without libzstd.
    """
    head = stream.read(CHUNK)
    while 0 < len(head) < len(ZSTD_MAGIC):
        more = stream.read(CHUNK)
        if not more:
            break
        head += more
    if head.startswith(GZIP_MAGIC):
        return _gunzip(head, stream)
    if head.startswith(ZSTD_MAGIC):
        return _unzstd(head, stream)
    return _plain(head, stream)


def _plain(data: bytes, stream: BinaryIO) -> Iterator[bytes]:
    while data:
        yield data
        data = stream.read(CHUNK)


def _gunzip(data: bytes, stream: BinaryIO) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    while True:
        while data:
            if inflater.eof:
                # Zero padding may follow the last member; a new member starts with 1f 8b.
                data = data.lstrip(b"\0")
                if not data:
                    break
                inflater = zlib.decompressobj(wbits=31)
            try:
                out = inflater.decompress(data, CHUNK)
            except zlib.error as err:
                raise DataCorrupted(f"layer is not valid gzip: {err}") from err
            if out:
                yield out
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        data = stream.read(CHUNK)
        if not data:
            break
    if not inflater.eof:
        try:
            out = inflater.flush()
        except zlib.error as err:
            raise DataCorrupted(f"layer is not valid gzip: {err}") from err
        if out:
            yield out
        if not inflater.eof:
            raise DataCorrupted("gzip stream of the layer ends early")


@functools.cache
def _load_libzstd() -> ctypes.CDLL:
    import ctypes
    import ctypes.util

    try:
        lib = ctypes.CDLL("libzstd.so.1")
    except OSError:
        found = ctypes.util.find_library("zstd")
        if found is None:
            raise Unimplemented(
                "zstd layers need libzstd, which is not installed",
                hint="install the libzstd1 (Debian) or libzstd (RHEL) package",
            ) from None
        lib = ctypes.CDLL(found)
    lib.ZSTD_createDStream.restype = ctypes.c_void_p
    lib.ZSTD_createDStream.argtypes = []
    lib.ZSTD_freeDStream.argtypes = [ctypes.c_void_p]
    lib.ZSTD_initDStream.restype = ctypes.c_size_t
    lib.ZSTD_initDStream.argtypes = [ctypes.c_void_p]
    lib.ZSTD_decompressStream.restype = ctypes.c_size_t
    lib.ZSTD_decompressStream.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    lib.ZSTD_getErrorName.restype = ctypes.c_char_p
    lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
    return lib


def _unzstd(data: bytes, stream: BinaryIO) -> Iterator[bytes]:
    import ctypes

    class Buffer(ctypes.Structure):
        # ZSTD_inBuffer and ZSTD_outBuffer: {pointer, size, pos}.
        _fields_ = (("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t))

    lib = _load_libzstd()
    dstream = lib.ZSTD_createDStream()
    if not dstream:
        raise MemoryError("ZSTD_createDStream")
    try:
        lib.ZSTD_initDStream(dstream)
        out = ctypes.create_string_buffer(CHUNK)
        outbuf = Buffer(ctypes.cast(out, ctypes.c_void_p), CHUNK, 0)
        inbuf = Buffer(None, 0, 0)
        # 0 once a frame is complete and flushed; otherwise more input is due.
        ret = 0
        while True:
            # ``data`` stays referenced while libzstd reads it through the pointer.
            inbuf.ptr = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
            inbuf.size = len(data)
            inbuf.pos = 0
            # A full output buffer may leave decoded bytes pending: call again until it is not.
            while inbuf.pos < inbuf.size or outbuf.pos == CHUNK:
                outbuf.pos = 0
                ret = lib.ZSTD_decompressStream(dstream, ctypes.byref(outbuf), ctypes.byref(inbuf))
                if lib.ZSTD_isError(ret):
                    name = lib.ZSTD_getErrorName(ret).decode(errors="replace")
                    raise DataCorrupted(f"layer is not valid zstd: {name}")
                if outbuf.pos:
                    yield ctypes.string_at(out, outbuf.pos)
            data = stream.read(CHUNK)
            if not data:
                break
        if ret != 0:
            raise DataCorrupted("zstd stream of the layer ends early")
    finally:
        lib.ZSTD_freeDStream(dstream)
