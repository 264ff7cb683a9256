"""A loopback reward model speaking vLLM's Pooling API (`POST /pooling`, {"model", "messages"} in;
{"model", "data": [{"index", "object": "pooling", "data"}]} out), for the preference test's reward
mode. Its reward is a rule the test knows: minus the length of the last assistant message, so the
shorter reply wins. `pooling` chooses the documented output shapes: "all" (one row per token, the
last token's row holds the reward) or "last" (one value)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def reward(messages: list[dict[str, str]]) -> float:
    return -float(len(messages[-1]["content"]))


@contextmanager
def serve(model: str, pooling: str = "all", status: int = 200) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(the server's /v1 base URL, every request received: path, headers and body)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if status != 200:
                answer: dict[str, Any] = {
                    "object": "error",
                    "message": "the model is not loaded",
                    "code": status,
                }
            elif self.path != "/pooling" or body.get("model") != model:
                self.send_error(404)
                return
            else:
                value = reward(body["messages"])
                data = [[0.5], [-0.25], [value]] if pooling == "all" else [value]
                answer = {"id": "pool-1", "object": "list", "created": 0, "model": model,
                          "data": [{"index": 0, "object": "pooling", "data": data}],
                          "usage": {"prompt_tokens": 3, "total_tokens": 3}}  # fmt: skip
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", received
    finally:
        server.shutdown()
        server.server_close()
