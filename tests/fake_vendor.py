"""A loopback fake of the OpenAI and Anthropic HTTP APIs, for tests: a real HTTP server on 127.0.0.1
(a free port, in a thread) that answers /v1/chat/completions (OpenAI) and /v1/messages (Anthropic).

Each test scripts its answers, consumed one per request in order, then the default (success):

    with FakeVendor() as fake:
        fake.script(fake.rate_limited(), Ok("fine"))
        provider = make_provider("openai:gpt-4o-mini", base_url=fake.openai_url)

Every request is recorded (path, headers, JSON body) so tests see what was sent. Error bodies copy
the shape of each vendor's real errors.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass
class Ok:
    text: str = "Hello from the fake vendor."
    finish: str | None = None  # default: "stop" (OpenAI) or "end_turn" (Anthropic)
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class Fail:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    """Answer nothing until the fake closes (the client's timeout fires first)."""


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


Step = Ok | Fail | Hang


def _openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


class FakeVendor:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._steps: list[Step] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll keeps close() quick: it waits for the serving loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:  # the OpenAI SDK's base URL ends in /v1
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:  # the Anthropic SDK adds /v1/messages itself
        return self.url

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeVendor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the vendors' failures, as they send them ------------------------------------------
    @staticmethod
    def rate_limited(vendor: str) -> Fail:
        if vendor == "openai":
            body = _openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
        else:
            body = _anthropic_error("rate_limit_error", "Number of requests has exceeded your rate limit")
        return Fail(429, body, {"retry-after": "2"})

    @staticmethod
    def server_error(vendor: str) -> Fail:
        if vendor == "openai":
            return Fail(
                500, _openai_error("The server had an error processing your request.", "server_error", None)
            )
        return Fail(500, _anthropic_error("api_error", "Internal server error"))

    @staticmethod
    def overloaded() -> Fail:
        return Fail(529, _anthropic_error("overloaded_error", "Overloaded"))

    @staticmethod
    def bad_key(vendor: str, key: str) -> Fail:
        # Echo the key in full, worse than the vendors do (they mask most of it), to prove that
        # no part of it reaches a ProviderError message.
        if vendor == "openai":
            return Fail(
                401,
                _openai_error(
                    f"Incorrect API key provided: {key}.", "invalid_request_error", "invalid_api_key"
                ),
            )
        return Fail(401, _anthropic_error("authentication_error", f"invalid x-api-key {key}"))

    @staticmethod
    def no_quota(vendor: str) -> Fail:
        if vendor == "openai":
            message = "You exceeded your current quota, please check your plan and billing details."
            return Fail(429, _openai_error(message, "insufficient_quota", "insufficient_quota"))
        message = "Your credit balance is too low to access the Anthropic API."
        return Fail(400, _anthropic_error("invalid_request_error", message))

    @staticmethod
    def unknown_model(vendor: str, model: str) -> Fail:
        if vendor == "openai":
            message = f"The model `{model}` does not exist or you do not have access to it."
            return Fail(404, _openai_error(message, "invalid_request_error", "model_not_found"))
        return Fail(404, _anthropic_error("not_found_error", f"model: {model}"))

    # -- serving ---------------------------------------------------------------------------
    def _next_step(self) -> Step:
        with self._lock:
            return self._steps.pop(0) if self._steps else Ok()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet tests

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                with fake._lock:
                    fake.requests.append(Recorded(self.path, headers, body))
                if self.path not in (OPENAI_PATH, ANTHROPIC_PATH):
                    return self._send(
                        404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                    )
                step = fake._next_step()
                if isinstance(step, Hang):
                    fake._closing.wait(60)
                    return
                if isinstance(step, Fail):
                    return self._send(step.status, step.body, step.headers)
                if self.path == OPENAI_PATH:
                    return self._send(200, openai_reply(step, body))
                return self._send(200, anthropic_reply(step, body))

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


def openai_reply(step: Ok, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": step.text},
                "finish_reason": step.finish or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        },
    }


def anthropic_reply(step: Ok, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", ""),
        "content": [{"type": "text", "text": step.text}],
        "stop_reason": step.finish or "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": step.prompt_tokens, "output_tokens": step.completion_tokens},
    }
