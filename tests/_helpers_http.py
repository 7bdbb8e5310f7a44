"""A real HTTP server on 127.0.0.1 for tests that download (images, weights)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from typing import Iterator


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files like SimpleHTTPRequestHandler without writing a log line per request."""

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: str) -> Iterator[str]:
    """Serve ``directory`` from a background thread; yields the base URL, closes the port on exit."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class HubHandler(http.server.BaseHTTPRequestHandler):
    """Answers like huggingface.co for ``/<org>/<repo>/resolve/main/<file>``: a HEAD or GET there is a 302 to
    ``/cdn/<org>/<repo>/<file>`` carrying ``X-Linked-ETag`` (the LFS sha256, quoted) and ``X-Linked-Size``;
    the CDN path serves the bytes. ``server.files`` maps ``org/repo/file`` -> bytes; ``server.headers_for``
    maps the same key -> the (etag, size) to report, or None for no headers (default: the true ones);
    ``server.truncate`` maps a key -> how many bytes the CDN actually sends. Small files (JSON) are served
    directly with 200, as the Hub serves non-LFS files."""

    def log_message(self, *args) -> None:
        pass

    def _key(self):
        parts = self.path.split("/")
        if len(parts) >= 6 and parts[3] == "resolve":
            return "/".join(parts[1:3] + parts[5:]), "resolve"
        if len(parts) >= 5 and parts[1] == "cdn":
            return "/".join(parts[2:]), "cdn"
        return None, None

    def _answer(self, body: bool) -> None:
        import hashlib

        key, kind = self._key()
        self.server.requests.append((self.command, self.path))
        data = self.server.files.get(key) if key else None
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "resolve" and not key.endswith(".json"):
            self.send_response(302)
            self.send_header("Location", f"/cdn/{key}")
            reported = self.server.headers_for.get(key, (hashlib.sha256(data).hexdigest(), len(data)))
            if reported is not None:
                self.send_header("X-Linked-ETag", f'"{reported[0]}"')
                self.send_header("X-Linked-Size", str(reported[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = data[:self.server.truncate.get(key, len(data))]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)


@contextlib.contextmanager
def serve_hub(files) -> Iterator[http.server.ThreadingHTTPServer]:
    """A fake Hugging Face Hub on 127.0.0.1 (see HubHandler); yields the server (``server.base`` is its URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    server.files, server.headers_for, server.truncate, server.requests = dict(files), {}, {}, []
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
