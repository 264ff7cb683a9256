"""Anthropic Messages API.

- Leading system messages go to `system=`.
- A trailing assistant turn is sent natively, as the last assistant turn, which the model continues
  ("native" prefill mode); Reply.text is prefill + continuation. The API refuses a final assistant
  turn that ends in whitespace, so the prefill is sent without its trailing whitespace (the model then
  writes that space itself) and Reply.text starts with the prefill as sent.
- Temperature. The SDK's messages.create (anthropic 2.14) has no temperature parameter, and current
  models take none; older models still accept one in the request body. So temperature is sent, in the
  body, only when the caller gives one (not None): a model that refuses it answers 400, which comes
  back as ProviderError("bad_request") naming the cause, rather than being dropped in silence (a
  transcript must not claim a temperature that was not applied). Pass None for current models.
- The Messages API has no seed: `seed` is ignored.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic

from lib.probes.items import Message
from lib.run import keys
from lib.run.providers.base import (
    ProviderError,
    Reply,
    account_headers_off,
    direct_http_client,
    resolve_key,
    split_prefill,
    translate,
)


def native_prefill(messages: list[Message]) -> tuple[str | None, list[Message], str]:
    """(system, messages as sent, prefill as sent) for a conversation."""
    leading = 0
    while leading < len(messages) and messages[leading]["role"] == "system":
        leading += 1
    system = "\n\n".join(m["content"] for m in messages[:leading]) or None
    rest, prefill = split_prefill(list(messages[leading:]))
    if any(m["role"] == "system" for m in rest):
        raise ProviderError(
            "bad_request", "Anthropic takes system messages only at the start of a conversation"
        )
    sent_prefill = (prefill or "").rstrip()
    if sent_prefill:
        rest.append({"role": "assistant", "content": sent_prefill})
    return system, rest, sent_prefill


class AnthropicMessages:
    prefill_mode = "native"
    vendor = "Anthropic"

    def __init__(self, model_name: str, base_url: str | None = None, timeout: float = 60):
        self.name = model_name
        self.model = f"anthropic:{model_name}"
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self._url = self.base_url or keys.VENDOR_URLS["anthropic"]
        # ANTHROPIC_API_KEY only to api.anthropic.com; another base URL gets a placeholder.
        self._key = resolve_key("anthropic", self.vendor, self._url)
        # An explicit key and URL keep the SDK from reading ANTHROPIC_BASE_URL or profile files.
        self.client = anthropic.Anthropic(
            api_key=self._key,
            base_url=self._url,
            timeout=timeout,
            max_retries=0,
            http_client=direct_http_client(anthropic, self._url),
            default_headers=account_headers_off(anthropic, "anthropic", self._url),
        )

    @property
    def url(self) -> str:
        """Where requests go: a batch goes only where keys.is_vendor_url allows (lib.run.batch_vendors)."""
        return self._url

    def failure(self, error: Exception) -> Exception:
        """The ProviderError for an exception of this client's calls, the key scrubbed."""
        return translate(error, anthropic, self.vendor, self._url, self.timeout, self._key)

    def request(self, messages: list[Message], temperature: float | None, max_tokens: int) -> dict[str, Any]:
        """The request body (temperature in it when given): what complete() sends, and the params of
        a batch request (lib.run.batch_vendors)."""
        system, sent, _ = native_prefill(messages)
        request: dict[str, Any] = {"model": self.name, "max_tokens": max_tokens, "messages": sent}
        if system is not None:
            request["system"] = system
        if temperature is not None:
            request["temperature"] = temperature
        return request

    def reply(self, messages: list[Message], body: dict[str, Any], latency_ms: float | None) -> Reply:
        """The Reply of a message as JSON, sent for `messages`: a direct answer, or a batch result's."""
        _, _, prefill = native_prefill(messages)
        blocks = body.get("content") or []
        continuation = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
        usage = body.get("usage") or {}
        return Reply(
            text=prefill + continuation,
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            latency_ms=latency_ms,
            finish_reason=body.get("stop_reason"),
            raw=body,
        )

    def complete(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed: int | None = None
    ) -> Reply:
        request = self.request(messages, temperature, max_tokens)
        # messages.create takes no temperature argument: it goes in the body (see above)
        if "temperature" in request:
            request["extra_body"] = {"temperature": request.pop("temperature")}
        start = time.perf_counter()
        try:
            response = self.client.messages.create(**request)
        except Exception as e:
            raise self.failure(e) from None
        return self.reply(messages, response.model_dump(mode="json"), (time.perf_counter() - start) * 1000)
