"""Bounded HTTP(S) downloads: a size cap and a total deadline on every byte ms_clip fetches.

``urllib``'s ``timeout`` bounds each socket operation, not the download: a server that sends one
byte every few seconds never trips it (a predict URL dripping a byte every 3 s hung past 100 s with a
10 s timeout), and nothing bounds the size (an endless body grew to 3 GB in 9 s). :func:`fetch`
adds both:

* **size**: a response whose ``Content-Length`` exceeds ``max_bytes`` is refused before its body is
  read; without a length, reading stops at ``max_bytes + 1`` bytes. Memory therefore stays below
  ``max_bytes`` plus one read chunk.
* **total deadline**: a watchdog timer shuts the connection's sockets down when ``deadline_s`` has
  passed since the request started (connect, TLS, headers and body alike), which wakes any blocked
  read; the deadline is also checked between reads. ``timeout_s`` stays the per-operation timeout,
  which catches a server that stops sending altogether sooner.

Either limit raises :class:`DownloadLimitError` (one line: the URL, the limit, what to change). HTTP
and connection errors are raised as ``urllib`` raises them (``HTTPError``, ``URLError``,
``TimeoutError``), so callers keep their own wording for "offline" or "not found".

Documented limits (each can be raised per call, or by environment variable for the CLI):

==================  ==========================  =======================================
what                default                     environment variable
==================  ==========================  =======================================
image URL size      64 MiB                      ``MS_CLIP_IMAGE_URL_MAX_BYTES``
image URL time      60 s total                  ``MS_CLIP_IMAGE_URL_DEADLINE_S``
weights size        the file's Content-Length,  ``MS_CLIP_DOWNLOAD_MAX_BYTES``
                    at most 4 GiB
weights time        3600 s total                ``MS_CLIP_DOWNLOAD_DEADLINE_S``
==================  ==========================  =======================================
"""
from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import urllib.request
from typing import BinaryIO, Callable, List, Optional, Union

from ms_clip.errors import MsClipError

__all__ = ["DownloadLimitError", "fetch", "limit_from_env", "IMAGE_MAX_BYTES", "IMAGE_DEADLINE_S",
           "WEIGHTS_MAX_BYTES", "WEIGHTS_DEADLINE_S"]

IMAGE_MAX_BYTES = 64 << 20  # a 64 MiB image is ~16k x 16k JPEG; larger is almost certainly not a photo
IMAGE_DEADLINE_S = 60.0
WEIGHTS_MAX_BYTES = 4 << 30  # OpenAI's largest CLIP file (RN50x64) is 1.26 GB, ViT-L/14@336px 0.89 GB
WEIGHTS_DEADLINE_S = 3600.0  # 0.9 GB at 250 kB/s
_CHUNK = 1 << 16
_USER_AGENT = "ms_clip"


class DownloadLimitError(MsClipError, RuntimeError):
    """A download exceeded its size cap or total deadline; the message names the URL, the limit and the fix."""


def limit_from_env(name: str, default: float) -> float:
    """A positive number from environment variable ``name``, else ``default`` (bad values name the variable)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DownloadLimitError(f"environment variable {name}={text!r} must be a positive number")
    return value


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= (1 << 20) else f"{int(n)} bytes"


class _Watchdog:
    """Shuts down every socket a request opened once the deadline passes (wakes blocked reads)."""

    def __init__(self, deadline_s: float):
        self.deadline = time.monotonic() + deadline_s
        self.expired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def register(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:
            self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # socket.socket.shutdown, not SSLSocket.shutdown: the latter also tears down the TLS object
        # that a blocked read in the other thread is using; a plain TCP shutdown makes that read end.
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies, redirects) whose HTTP(S) connections report their sockets."""

    class _HTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.register(self.sock)

    class _HTTPSConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.register(self.sock)

    class _HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):  # noqa: ANN001 - urllib's signature
            return self.do_open(_HTTPConnection, req)

    class _HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):  # noqa: ANN001
            return self.do_open(_HTTPSConnection, req)

    # build_opener drops its default HTTP/HTTPS handlers when subclasses of them are passed.
    return urllib.request.build_opener(_HTTPHandler(), _HTTPSHandler())


def fetch(url: str, dest: Optional[Union[str, os.PathLike]] = None, *, max_bytes: int, deadline_s: float,
          timeout_s: float = 10.0, what: str = "download", hint: str = "",
          progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Union[bytes, str]:
    """Download ``url`` into memory (``dest=None``: returns the bytes) or into the file ``dest`` (returns it).

    Args:
        url: an http(s) URL.
        dest: a file path to write (created or truncated; the caller renames/deletes it), or None.
        max_bytes: size cap; refused up front when ``Content-Length`` is larger, else stopped when reached.
        deadline_s: total time for connect + headers + body.
        timeout_s: per socket operation (a server that goes silent fails after this).
        what: what is being downloaded, for messages ("image URL", "weights").
        hint: what the user can change to allow more ("set MS_CLIP_IMAGE_URL_MAX_BYTES ...").
        progress: called as ``progress(bytes_so_far, content_length_or_None)`` after each chunk.

    Raises:
        DownloadLimitError: size cap or deadline exceeded (one line: URL, limit, ``hint``).
        urllib.error.HTTPError / URLError / TimeoutError / OSError: as urllib raises them.
    """
    if max_bytes <= 0 or deadline_s <= 0 or timeout_s <= 0:
        raise ValueError(f"max_bytes, deadline_s and timeout_s must be positive, got {max_bytes}, {deadline_s}, "
                         f"{timeout_s}")
    start = time.monotonic()
    received = 0
    fix = f"; {hint}" if hint else ""

    def too_slow() -> DownloadLimitError:
        return DownloadLimitError(f"{url}: {what} did not finish within its {deadline_s:g} s total deadline "
                                  f"({received} bytes in {time.monotonic() - start:.1f} s; the server is too slow "
                                  f"or stalls){fix}")

    def too_big(size: str) -> DownloadLimitError:
        return DownloadLimitError(f"{url}: {what} is larger than its {_mib(max_bytes)} limit ({size}){fix}")

    watchdog = _Watchdog(deadline_s)
    out: Optional[BinaryIO] = None
    buffer = bytearray()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            response = _opener(watchdog).open(request, timeout=min(timeout_s, deadline_s))
        except Exception:
            if watchdog.expired:
                raise too_slow() from None
            raise
        with response:
            length_text = response.headers.get("Content-Length")
            length = int(length_text) if length_text and length_text.strip().isdigit() else None
            if length is not None and length > max_bytes:
                raise too_big(f"Content-Length {_mib(length)}")
            if dest is not None:
                out = open(dest, "wb")
            while True:
                if watchdog.remaining() <= 0:
                    raise too_slow()
                try:
                    # read1: returns after one socket read, so the deadline is checked at least per chunk
                    # (read(n) keeps receiving until n bytes, however slowly they come).
                    block = response.read1(min(_CHUNK, max_bytes + 1 - received))
                except Exception:
                    if watchdog.expired:
                        raise too_slow() from None
                    raise
                if not block:
                    if watchdog.expired:  # the watchdog's shutdown looks like the end of the body
                        raise too_slow()
                    break
                received += len(block)
                if received > max_bytes:
                    raise too_big(f"more than {_mib(max_bytes)} received without a Content-Length")
                if out is not None:
                    out.write(block)
                else:
                    buffer += block
                if progress is not None:
                    progress(received, length)
            if length is not None and received != length:  # http.client stops at the length; short = cut
                raise http.client.IncompleteRead(bytes(0), length - received)
    finally:
        watchdog.cancel()
        if out is not None:
            out.close()
    return os.fspath(dest) if dest is not None else bytes(buffer)
