"""A loopback fake of OpenAI's Batch API and Anthropic's Message Batches API, for tests: a real HTTP
server on 127.0.0.1 (a free port, in a thread) answering the documented endpoints with the documented
shapes, the replies themselves built as tests/fake_vendor.py builds a direct answer.

OpenAI: POST /v1/files (multipart, purpose=batch), POST /v1/batches, GET /v1/batches/{id},
GET /v1/files/{id}/content (the output file of answers, the error file of failed, expired and
cancelled requests). Anthropic: POST /v1/messages/batches, GET /v1/messages/batches/{id},
GET /v1/messages/batches/{id}/results (results_url), each result succeeded, errored, canceled or
expired.

A test decides each request's fate with `answer(vendor, custom_id, body)` (an Ok or a Fail of
fake_vendor, or EXPIRED, CANCELED), the vendor's states a batch passes through before it ends, one a
poll (`steps`: say ["validating", "in_progress", "finalizing"] or ["in_progress", "cancelling"] for
OpenAI, ["in_progress", "canceling"] for Anthropic; none: it ends at the first poll), or `hold` to
keep every batch in progress. Faults: a create refused (`refuse_create`), a create made but answered
with an error (`lose_create`: an HTTP status, its answer lost), the next batch failed as a whole
(`fail_batches`: OpenAI's (code, message)), results archived (`archived`: Anthropic's results_url
null), a result line spoiled (`spoil(vendor, custom_id, line) -> line`), results_url on another host
(`results_url_of`), and a hook run before results are served (`before_results`, outside the lock:
another run may collect meanwhile). Requests are checked as the vendors check them: custom_id
^[a-zA-Z0-9_-]{1,64}$ and unique in the batch, an Anthropic request only {custom_id, params} with
the Messages API's params, an OpenAI line {custom_id, method, url, body}. `submissions` holds what was
submitted, `max_open` the most batches out at once, `headers` each request's headers.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_vendor import Fail, Ok, anthropic_reply, openai_reply

EXPIRED = "expired"
CANCELED = "canceled"
Fate = Ok | Fail | str
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# The Messages API's request fields a batch request's params may hold (docs.anthropic.com, Message
# Batches: params are a Messages API request, without stream).
ANTHROPIC_PARAMS = {
    "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences",
    "metadata", "tools", "tool_choice", "thinking", "service_tier",
}  # fmt: skip


@dataclass
class Batch:
    id: str
    vendor: str  # "openai" | "anthropic"
    requests: list[dict[str, Any]]  # the JSONL lines (OpenAI) or the requests (Anthropic)
    polls: int = 0
    ended: bool = False
    status: str = "validating"  # OpenAI's word, or Anthropic's processing_status, before it ends
    failed: tuple[str, str] | None = None  # OpenAI: (code, message) of a batch failed as a whole
    metadata: dict[str, str] | None = None  # OpenAI
    fates: dict[str, Fate] = field(default_factory=dict)


class FakeBatches:
    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self.submissions: list[Batch] = []
        self.files: dict[str, bytes] = {}
        self.answer: Callable[[str, str, dict[str, Any]], Fate] = lambda vendor, custom_id, body: Ok()
        self.steps: list[str] = []
        self.hold = False
        self.refuse_create: Fail | None = None
        self.lose_create: int | None = None
        self.fail_batches: tuple[str, str] | None = None
        self.archived = False
        self.spoil: Callable[[str, str, str], str] | None = None
        self.results_url_of: Callable[[Batch], str] | None = None
        self.before_results: Callable[[Batch], None] | None = None
        self.max_open = 0
        self.paths: list[tuple[str, str]] = []  # (method, path) of every request
        self.headers: list[dict[str, str]] = []  # lower-case names, of every request
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submitted(self, vendor: str) -> list[Batch]:
        return [b for b in self.submissions if b.vendor == vendor]

    # -- the vendors' objects ------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _create(self, vendor: str, requests: list[dict[str, Any]]) -> Batch:
        batch = Batch(self._new_id("batch_" if vendor == "openai" else "msgbatch_"), vendor, requests)
        if vendor == "openai":
            batch.failed, self.fail_batches = self.fail_batches, None
        for r in requests:
            body = r["body"] if vendor == "openai" else r["params"]
            batch.fates[r["custom_id"]] = self.answer(vendor, r["custom_id"], body)
        self.batches[batch.id] = batch
        self.submissions.append(batch)
        self.max_open = max(self.max_open, sum(not b.ended and not b.failed for b in self.batches.values()))
        return batch

    def _poll(self, batch: Batch) -> None:
        batch.polls += 1
        if batch.ended or self.hold:
            batch.status = batch.status if batch.ended else "in_progress"
        elif batch.polls <= len(self.steps):
            batch.status = self.steps[batch.polls - 1]
        else:
            batch.ended = True

    def _openai_status(self, batch: Batch) -> str:
        if batch.failed:
            return "failed"
        if not batch.ended:
            return batch.status
        fates = set(map(str, (f for f in batch.fates.values() if isinstance(f, str))))
        return "expired" if EXPIRED in fates else "cancelled" if CANCELED in fates else "completed"

    def _counts(self, batch: Batch) -> Counter[str]:
        """How many of the batch's requests ended each way, once it ended (else none)."""
        if not batch.ended or batch.failed:
            return Counter()
        return Counter(
            "succeeded" if isinstance(f, Ok) else "errored" if isinstance(f, Fail) else f
            for f in batch.fates.values()
        )

    @staticmethod
    def invalid(vendor: str, requests: Any) -> str | None:
        """Why the vendor refuses these requests (its documented checks), or None."""
        if not isinstance(requests, list) or not requests:
            return "requests: a non-empty list is required"
        seen: set[str] = set()
        for n, r in enumerate(requests):
            custom_id = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
                return f"requests.{n}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
            if custom_id in seen:
                return f"requests.{n}.custom_id: {custom_id} is not unique"
            seen.add(custom_id)
            if vendor == "openai":
                if set(r) != {"custom_id", "method", "url", "body"} or r["method"] != "POST":
                    return f"line {n + 1}: custom_id, method POST, url and body are required"
                if r["url"] != "/v1/chat/completions" or not r["body"].get("model"):
                    return f"line {n + 1}: the url must be /v1/chat/completions, the body name a model"
                continue
            if set(r) != {"custom_id", "params"} or not isinstance(r["params"], dict):
                return f"requests.{n}: only custom_id and params"
            params = r["params"]
            if set(params) - ANTHROPIC_PARAMS:
                extra = sorted(set(params) - ANTHROPIC_PARAMS)
                return f"requests.{n}.params: {extra}: Extra inputs are not permitted"
            if not isinstance(params.get("model"), str) or not isinstance(params.get("max_tokens"), int):
                return f"requests.{n}.params: model and max_tokens are required"
            messages = params.get("messages")
            if (
                not isinstance(messages, list)
                or not messages
                or any(
                    not isinstance(m, dict)
                    or m.get("role") not in ("user", "assistant")
                    or "content" not in m
                    for m in messages
                )
            ):
                return f"requests.{n}.params.messages: a list of user and assistant messages is required"
        return None

    def _openai_batch(self, batch: Batch) -> dict[str, Any]:
        status = self._openai_status(batch)
        output = error = None
        if batch.ended and not batch.failed:
            ok_lines, error_lines = self._openai_results(batch)
            if ok_lines:
                output = f"file-out-{batch.id}"
                self.files[output] = ok_lines
            if error_lines:
                error = f"file-err-{batch.id}"
                self.files[error] = error_lines
        ended = self._counts(batch)
        completed = ended["succeeded"]
        failed = ended["errored"] + ended[EXPIRED] + ended[CANCELED]
        counts = {"total": len(batch.requests), "completed": completed, "failed": failed}
        errors = None
        if batch.failed:
            code, message = batch.failed
            errors = {"object": "list", "data": [{"code": code, "message": message, "line": None}]}
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": f"file-in-{batch.id}",
            "completion_window": "24h",
            "status": status,
            "output_file_id": output,
            "error_file_id": error,
            "created_at": 1_700_000_000,
            "request_counts": counts,
            "metadata": batch.metadata,
        }

    def _openai_results(self, batch: Batch) -> tuple[bytes, bytes]:
        ok, failed = [], []
        for r in batch.requests:
            fate, custom_id = batch.fates[r["custom_id"]], r["custom_id"]
            line: dict[str, Any] = {"id": f"batch_req_{custom_id[:8]}", "custom_id": custom_id}
            if isinstance(fate, Ok):
                body = openai_reply(fate, r["body"])
                ok.append(
                    line
                    | {"response": {"status_code": 200, "request_id": "req_1", "body": body}, "error": None}
                )
            elif isinstance(fate, Fail):
                response = {"status_code": fate.status, "request_id": "req_2", "body": fate.body}
                failed.append(line | {"response": response, "error": None})
            else:
                code = "batch_expired" if fate == EXPIRED else "batch_cancelled"
                error = {"code": code, "message": f"This request was {fate} before it was executed."}
                failed.append(line | {"response": None, "error": error})
        return self._jsonl("openai", ok), self._jsonl("openai", failed)

    def _jsonl(self, vendor: str, lines: list[dict[str, Any]]) -> bytes:
        text = [json.dumps(x) for x in lines]
        if self.spoil is not None:
            text = [self.spoil(vendor, x["custom_id"], t) for x, t in zip(lines, text, strict=True)]
        return "".join(t + "\n" for t in text).encode()

    def _anthropic_batch(self, batch: Batch) -> dict[str, Any]:
        ended = batch.ended
        counts = self._counts(batch)
        results_url = None
        if ended and not self.archived:
            results_url = f"{self.url}/v1/messages/batches/{batch.id}/results"
            if self.results_url_of is not None:
                results_url = self.results_url_of(batch) or results_url
        canceling = batch.status == "canceling" or CANCELED in counts
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else batch.status,
            "request_counts": {
                "processing": 0 if ended else len(batch.requests),
                "succeeded": counts["succeeded"],
                "errored": counts["errored"],
                "canceled": counts[CANCELED],
                "expired": counts[EXPIRED],
            },
            "ended_at": "2025-01-01T01:00:00Z" if ended else None,
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "archived_at": "2025-01-30T00:00:00Z" if ended and self.archived else None,
            "cancel_initiated_at": "2025-01-01T00:30:00Z" if canceling else None,
            "results_url": results_url,
        }

    def _anthropic_results(self, batch: Batch) -> bytes:
        lines: list[dict[str, Any]] = []
        for r in batch.requests:
            fate = batch.fates[r["custom_id"]]
            if isinstance(fate, Ok):
                result: dict[str, Any] = {"type": "succeeded", "message": anthropic_reply(fate, r["params"])}
            elif isinstance(fate, Fail):
                result = {"type": "errored", "error": fate.body}
            else:
                result = {"type": fate}
            lines.append({"custom_id": r["custom_id"], "result": result})
        return self._jsonl("anthropic", lines)

    # -- serving -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                with fake._lock:
                    self._record("POST")
                    creating = self.path in ("/v1/batches", "/v1/messages/batches")
                    if fake.refuse_create is not None and creating:
                        refused, fake.refuse_create = fake.refuse_create, None
                        return self._send(refused.status, refused.body)
                    if self.path == "/v1/files":
                        return self._upload(data)
                    if self.path == "/v1/batches":
                        body = json.loads(data)
                        text = fake.files[body["input_file_id"]].decode()
                        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
                        why = fake.invalid("openai", lines)
                        if why is not None:
                            return self._send(
                                400, {"error": {"message": why, "type": "invalid_request_error"}}
                            )
                        batch = fake._create("openai", lines)
                        batch.metadata = body.get("metadata")
                        answer = fake._openai_batch(batch)
                    elif self.path == "/v1/messages/batches":
                        requests = json.loads(data).get("requests")
                        why = fake.invalid("anthropic", requests)
                        if why is not None:
                            error = {"type": "invalid_request_error", "message": why}
                            return self._send(400, {"type": "error", "error": error})
                        answer = fake._anthropic_batch(fake._create("anthropic", requests))
                    else:
                        return self._send(
                            404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                        )
                    lost, fake.lose_create = fake.lose_create, None
                if lost is not None:  # made, but the answer is an error: the client cannot know
                    error = {"type": "api_error", "message": "Internal server error"}
                    return self._send(
                        lost,
                        {"type": "error", "error": error} if "messages" in self.path else {"error": error},
                    )
                return self._send(200, answer)

            def _record(self, method: str) -> None:
                fake.paths.append((method, self.path))
                fake.headers.append({name.lower(): value for name, value in self.headers.items()})

            def do_GET(self) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                hook, fake.before_results = fake.before_results, None  # once: it may call us again
                of = None
                if parts[:2] == ["v1", "files"] and len(parts) == 4:
                    of = fake.batches.get(parts[2].removeprefix("file-out-").removeprefix("file-err-"))
                elif parts[:3] == ["v1", "messages", "batches"] and parts[4:] == ["results"]:
                    of = fake.batches.get(parts[3])
                if hook is not None and of is None:
                    fake.before_results = hook  # not yet
                elif hook is not None:
                    hook(of)
                with fake._lock:
                    self._record("GET")
                    if parts == ["v1", "batches"]:  # newest first, as OpenAI lists them
                        made = [
                            fake._openai_batch(b) for b in reversed(fake.submissions) if b.vendor == "openai"
                        ]
                        query = parse_qs(urlsplit(self.path).query)
                        limit = int(query.get("limit", ["20"])[0])
                        return self._send(
                            200, {"object": "list", "data": made[:limit], "has_more": len(made) > limit}
                        )
                    if parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in fake.batches:
                        batch = fake.batches[parts[2]]
                        fake._poll(batch)
                        return self._send(200, fake._openai_batch(batch))
                    if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[2] in fake.files:
                        return self._send_bytes(fake.files[parts[2]])
                    if parts[:3] == ["v1", "messages", "batches"] and len(parts) >= 4:
                        batch = fake.batches.get(parts[3])
                        if batch is not None and len(parts) == 4:
                            fake._poll(batch)
                            return self._send(200, fake._anthropic_batch(batch))
                        if batch is not None and parts[4:] == ["results"] and batch.ended:
                            return self._send_bytes(fake._anthropic_results(batch))
                return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def _upload(self, data: bytes) -> None:
                header = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
                message = BytesParser(policy=policy.default).parsebytes(header + data)
                fields = {
                    part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                    for part in message.iter_parts()
                }
                if fields.get("purpose") != b"batch":
                    return self._send(400, {"error": {"message": "purpose must be batch", "type": "invalid"}})
                file_id = fake._new_id("file-")
                fake.files[file_id] = fields["file"]
                return self._send(
                    200,
                    {
                        "id": file_id,
                        "object": "file",
                        "bytes": len(fields["file"]),
                        "created_at": 1_700_000_000,
                        "filename": "batch.jsonl",
                        "purpose": "batch",
                        "status": "processed",
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_bytes(json.dumps(payload).encode(), status, "application/json")

            def _send_bytes(
                self, data: bytes, status: int = 200, kind: str = "application/octet-stream"
            ) -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
