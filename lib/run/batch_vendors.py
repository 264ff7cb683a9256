"""The vendors' batch APIs, each behind the same three calls: submit requests, ask a batch's state,
read its results. lib.run.batch_runs drives them; this module holds no state and touches no store.

- OpenAI (Batch API): the requests as a JSONL file uploaded with purpose "batch" (files.create), a
  batch over it for /v1/chat/completions in the 24 h window (batches.create), its state
  (batches.retrieve), and its results: the output file (answers) and the error file (requests that
  failed, expired or were cancelled), read with files.content.
- Anthropic (Message Batches): the requests in the create call (messages.batches.create), its state
  (retrieve), and its results: the JSONL at the results_url that retrieve returned, downloaded from
  that very URL once it is checked to be on Anthropic's own host (the SDK's batches.results would
  retrieve again and send the key to whatever results_url the second answer names). Each result is
  succeeded, errored, canceled or expired.

A result line that cannot be read is an error of the request it names (else of each request left
without a result), naming the batch and the line: never the end of the batch's other results.

Creating a batch is paid for, so it is never simply sent again when its answer is lost (a timeout, a
lost connection, a 5xx after the vendor may have made it). OpenAI: each batch carries metadata, a
hash of its custom_ids and an id of this sending (`tag`); before creating it again, the newest
LIST_RECENT batches of the organisation are listed and one with that metadata is taken instead. What
remains: a batch made but not among the LIST_RECENT newest when listed (more made by others in the
seconds of the retries) is made twice. Anthropic's batches carry no metadata: a create whose answer
is lost is not tried again; the run stops with CreateUnconfirmed, saying so (a 429, refused before
anything was made, is tried again).

Each request's custom_id is the cache key of the transcript it makes (lib.store.transcript_key, 64 hex
digits: Anthropic's ^[a-zA-Z0-9_-]{1,64}$ holds it). The request body is the one the provider sends
directly (`request`) and a result is read by the provider's own parser (`reply`), so a batch's
transcript is the direct one's. The calls go only to the vendor's own host (keys.is_vendor_url),
with the key bound to it (providers.base.resolve_key): a batch is refused anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from lib.probes.items import Message
from lib.run import keys
from lib.run.providers import Provider, ProviderError, Reply
from lib.run.providers.anthropic_messages import AnthropicMessages
from lib.run.providers.base import classify, scrub
from lib.run.providers.openai_chat import OpenAIChat
from lib.run.runner import RunStopped

OPENAI_ENDPOINT = "/v1/chat/completions"
# OpenAI fails a whole batch with these codes when the organisation has too many tokens queued
# ("Enqueued token limit reached ... try again once some in_progress batches have been completed"):
# nothing of it ran, so its requests are rate limited, tried again as earlier batches finish.
OPENAI_LIMIT_CODES = frozenset({"token_limit_exceeded"})
# batches listed to find one whose create answer was lost (OpenAI's batches.list, newest first)
LIST_RECENT = 100
# a custom_id named in a result line that is not valid JSON
_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"([a-zA-Z0-9_-]{1,64})"')
# Anthropic names the kind of an errored request by its error type: the HTTP status it stands for
_ANTHROPIC_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass(frozen=True)
class Limits:
    """What one batch may hold: requests, and bytes of its requests as JSON lines."""

    requests: int
    bytes: int


@dataclass(frozen=True)
class Request:
    """One request of a batch: its custom_id (the transcript's cache key) and its messages."""

    custom_id: str
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class State:
    """A batch as the vendor reports it: `ended` once its results can be read (completed, expired,
    cancelled or failed); `status` the vendor's word; `error` why a batch failed as a whole, and
    `error_kind` its ProviderError kind (rate_limit: the vendor's queue was full, try it again)."""

    ended: bool
    status: str
    error: str | None = None
    error_kind: str = "bad_request"


class CreateUnconfirmed(RunStopped):
    """A batch create whose answer was lost: the vendor may have made it (and charge for it), and
    there is no way to find it (Anthropic): not tried again, the run stops with this message."""


# a result: the reply, or why the request failed (retryable when a later batch may pass)
Result = Reply | ProviderError


class Batches(Protocol):
    vendor: str
    limits: Limits

    def line(self, request: Request, temperature: float | None, max_tokens: int) -> dict[str, Any]: ...

    def submit(self, lines: list[dict[str, Any]], sending: str, again: bool) -> str: ...

    def state(self, batch_id: str) -> State: ...

    def results(self, batch_id: str, requests: dict[str, Request]) -> dict[str, Result]: ...


def chunks(lines: Iterable[dict[str, Any]], limits: Limits) -> Iterator[list[dict[str, Any]]]:
    """The lines in batches within the vendor's limits, in order."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        length = len(json.dumps(line).encode()) + 1
        if chunk and (len(chunk) >= limits.requests or size + length > limits.bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield chunk


def tag(lines: list[dict[str, Any]], sending: str) -> dict[str, str]:
    """The metadata a batch carries (OpenAI): the sha256 of its custom_ids, and `sending`, an id the
    run gives this sending of it, so that a batch sent again later is not mistaken for it."""
    digest = hashlib.sha256("\n".join(line["custom_id"] for line in lines).encode()).hexdigest()
    return {"sycoscope_requests": digest, "sycoscope_sending": sending}


def read_lines(
    vendor: str, batch_id: str, text: str, read: Any, requests: dict[str, Any]
) -> dict[str, Result]:
    """The results of a batch's JSONL text, by custom_id, each line read by `read` (a dict to a
    Result). A line that is not JSON, or not a result, is an error of the request it names, or, when
    it names none, of each request left without a result: never the end of the other lines."""
    found: dict[str, Result] = {}
    unread: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            custom_id = entry["custom_id"]
            if custom_id in requests:
                found[custom_id] = read(entry, requests[custom_id])
        except (ValueError, TypeError, KeyError, AttributeError):
            named = _CUSTOM_ID.search(line)
            error = ProviderError(
                "server", f"{vendor}: batch {batch_id}, result line {number} cannot be read"
            )
            if named and named.group(1) in requests:
                found[named.group(1)] = error
            else:
                unread.append(number)
    if unread:
        lines = ", ".join(map(str, unread[:5])) + (", ..." if len(unread) > 5 else "")
        missing = ProviderError(
            "server",
            f"{vendor}: batch {batch_id}, no readable result (result line(s) {lines} cannot be read)",
        )
        found |= {custom_id: missing for custom_id in requests if custom_id not in found}
    return found


def for_provider(provider: Provider) -> Batches:
    """The batch API of a provider at its vendor's own host; ValueError for any other."""
    if isinstance(provider, OpenAIChat) and provider.model.startswith("openai:"):
        vendor, batches = "openai", OpenAIBatches
    elif isinstance(provider, AnthropicMessages):
        vendor, batches = "anthropic", AnthropicBatches
    else:
        raise ValueError(f"{provider.model}: batches go only to OpenAI's and Anthropic's own APIs")
    if not keys.is_vendor_url(vendor, provider.url):
        raise ValueError(
            f"{provider.model} at {provider.url}: batches go only to {keys.VENDOR_URLS[vendor]}; "
            "run it without --batch"
        )
    return batches(provider)  # type: ignore[arg-type]


def _expired(vendor: str) -> ProviderError:
    return ProviderError("timeout", f"{vendor}: the batch expired (24 h) before this request was answered")


def _cancelled(vendor: str) -> ProviderError:
    return ProviderError("server", f"{vendor}: the batch was cancelled before this request was answered")


class OpenAIBatches:
    vendor = "OpenAI"
    # 50,000 requests and 200 MB a batch file (platform.openai.com/docs/guides/batch), MB taken as
    # decimal: the smaller reading, so that a batch is within the limit whichever is meant
    limits = Limits(50_000, 200_000_000)

    def __init__(self, provider: OpenAIChat):
        self.provider = provider

    def line(self, request: Request, temperature: float | None, max_tokens: int) -> dict[str, Any]:
        body = self.provider.request(list(request.messages), temperature, max_tokens)
        return {"custom_id": request.custom_id, "method": "POST", "url": OPENAI_ENDPOINT, "body": body}

    def submit(self, lines: list[dict[str, Any]], sending: str, again: bool) -> str:
        """The id of a new batch of the lines; `again` when an earlier try of this sending failed:
        then a batch it made, its answer lost, is found by its metadata and taken instead."""
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        metadata = tag(lines, sending)
        client = self.provider.client
        try:
            if again:
                for made in client.batches.list(limit=LIST_RECENT).data:
                    if (made.metadata or {}) == metadata:
                        return made.id
            uploaded = client.files.create(file=("sycoscope-batch.jsonl", data), purpose="batch")
            batch = client.batches.create(
                input_file_id=uploaded.id,
                endpoint=OPENAI_ENDPOINT,
                completion_window="24h",
                metadata=metadata,
            )
        except Exception as e:
            raise self.provider.failure(e) from None
        return batch.id

    def state(self, batch_id: str) -> State:
        try:
            batch = self.provider.client.batches.retrieve(batch_id)
        except Exception as e:
            raise self.provider.failure(e) from None
        ended = batch.status in ("completed", "expired", "cancelled", "failed")
        if batch.status != "failed":
            return State(ended, batch.status)
        found = batch.errors.data if batch.errors and batch.errors.data else []
        error = "; ".join(f"{e.code}: {e.message}" for e in found) or "the batch failed"
        limited = any(e.code in OPENAI_LIMIT_CODES for e in found)
        return State(
            ended,
            batch.status,
            scrub(f"{self.vendor} refused the batch: {error}", None),
            "rate_limit" if limited else "bad_request",
        )

    def results(self, batch_id: str, requests: dict[str, Request]) -> dict[str, Result]:
        client = self.provider.client
        try:
            batch = client.batches.retrieve(batch_id)
            files = [client.files.content(f).text for f in (batch.output_file_id, batch.error_file_id) if f]
        except Exception as e:
            raise self.provider.failure(e) from None
        found: dict[str, Result] = {}
        for text in files:
            found |= read_lines(self.vendor, batch_id, text, self._result, requests)
        gone = _expired if batch.status == "expired" else _cancelled
        return {custom_id: found.get(custom_id) or gone(self.vendor) for custom_id in requests}

    def _result(self, entry: dict[str, Any], _request: Request) -> Result:
        response = entry.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            try:
                return self.provider.reply(response.get("body") or {}, None)
            except ProviderError as e:
                return e
        error = entry.get("error") or (response.get("body") or {}).get("error") or {}
        code, message = error.get("code"), str(error.get("message") or "no message")
        if code == "batch_expired":
            return _expired(self.vendor)
        if code == "batch_cancelled":
            return _cancelled(self.vendor)
        status = int(status or 500)
        kind = classify(status, code, error.get("type"), message)
        return ProviderError(
            kind, scrub(f"{self.vendor} batch request failed (HTTP {status}): {message}", None)
        )


class AnthropicBatches:
    vendor = "Anthropic"
    # 100,000 requests or 256 MB a batch (docs.anthropic.com, batch processing), MB taken as decimal
    limits = Limits(100_000, 256_000_000)

    def __init__(self, provider: AnthropicMessages):
        self.provider = provider

    def line(self, request: Request, temperature: float | None, max_tokens: int) -> dict[str, Any]:
        params = self.provider.request(list(request.messages), temperature, max_tokens)
        return {"custom_id": request.custom_id, "params": params}

    def submit(self, lines: list[dict[str, Any]], sending: str, again: bool) -> str:
        """The id of a new batch of the lines. A create whose answer is lost (a timeout, a lost
        connection, a 5xx) may have made the batch, which no metadata would find: CreateUnconfirmed."""
        try:
            return self.provider.client.messages.batches.create(requests=lines).id  # type: ignore[arg-type]
        except Exception as e:
            error = self.provider.failure(e)
        if isinstance(error, ProviderError) and error.kind in ("timeout", "connection", "server"):
            raise CreateUnconfirmed(
                f"{error}; {self.vendor} may have made the batch of {len(lines)} request(s) all the same "
                "(and will charge for it): it was not sent again. Look for it in the Anthropic Console "
                "(Message Batches) and cancel it if it is unwanted; running again sends these requests in "
                "a new batch, and what the lost one answers is not collected"
            )
        raise error

    def state(self, batch_id: str) -> State:
        try:
            batch = self.provider.client.messages.batches.retrieve(batch_id)
        except Exception as e:
            raise self.provider.failure(e) from None
        return State(batch.processing_status == "ended", batch.processing_status)

    def results(self, batch_id: str, requests: dict[str, Request]) -> dict[str, Result]:
        client = self.provider.client
        try:
            batch = client.messages.batches.retrieve(batch_id)
        except Exception as e:
            raise self.provider.failure(e) from None
        url = batch.results_url
        if not url:  # not ended, or its results archived (29 days after it was made)
            raise ProviderError("server", f"{self.vendor}: batch {batch_id} has no results_url")
        # The key goes with the download: only to the vendor's own host, and only to this URL, the
        # one checked (not the SDK's batches.results, which retrieves the batch again).
        if not keys.is_vendor_url("anthropic", url):
            raise ProviderError(
                "server", f"{self.vendor}: batch {batch_id} has its results off its API host: not fetched"
            )
        try:
            text = client.get(url, cast_to=str, options={"headers": {"Accept": "application/binary"}})
        except Exception as e:
            raise self.provider.failure(e) from None
        found = read_lines(self.vendor, batch_id, text, self._result, requests)
        return {custom_id: found.get(custom_id) or _cancelled(self.vendor) for custom_id in requests}

    def _result(self, entry: dict[str, Any], request: Request) -> Result:
        result = entry["result"]
        if result.get("type") == "succeeded":
            return self.provider.reply(list(request.messages), result.get("message") or {}, None)
        if result.get("type") == "expired":
            return _expired(self.vendor)
        if result.get("type") == "canceled":
            return _cancelled(self.vendor)
        error = (result.get("error") or {}).get("error") or {}
        error_type, message = error.get("type"), str(error.get("message") or "no message")
        status = _ANTHROPIC_STATUS.get(str(error_type), 500)
        kind = classify(status, None, error_type, message)
        return ProviderError(
            kind, scrub(f"{self.vendor} batch request failed ({error_type}): {message}", None)
        )
