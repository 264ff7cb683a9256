"""A loopback file server for download tests: serves bytes the test itself wrote, and can lie
about their length to imitate a connection cut mid-download."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# path -> the body, or (the body, the Content-Length to announce) for a truncated download
Routes = dict[str, bytes | tuple[bytes, int]]


@contextmanager
def serve(routes: Routes) -> Iterator[tuple[str, list[str]]]:
    """(base url, the paths requested so far) while the server runs."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            hits.append(self.path)
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            body, length = route if isinstance(route, tuple) else (route, len(route))
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
