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
