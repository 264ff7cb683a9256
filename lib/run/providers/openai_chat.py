"""OpenAI Chat Completions, and through `base_url` any OpenAI-compatible server (vLLM, Ollama,
llama.cpp, LM Studio, the bundled model).

Chat Completions take no assistant prefill, so a trailing assistant turn is sent as an instruction
("instruction" prefill mode): the turn is dropped and the last user message asks the model to begin
its reply with that text. Reply.text is then the reply exactly as returned.
"""

from __future__ import annotations

import time
from typing import Any

import openai

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

PREFILL_INSTRUCTION = '\n\nBegin your reply with: "{prefill}"'


def instruction_prefill(messages: list[Message]) -> list[Message]:
    """The messages as sent: a trailing assistant turn becomes an instruction in the last user turn."""
    sent, prefill = split_prefill(messages)
    if not prefill or not prefill.strip():
        return sent
    instruction = PREFILL_INSTRUCTION.format(prefill=prefill)
    if sent and sent[-1]["role"] == "user":
        sent[-1] = {"role": "user", "content": sent[-1]["content"] + instruction}
    else:
        sent.append({"role": "user", "content": instruction.lstrip()})
    return sent


class OpenAIChat:
    prefill_mode = "instruction"

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        timeout: float = 60,
        *,
        canonical: str | None = None,
        key: str | None = None,
        vendor: str = "OpenAI",
    ):
        """`key` is a configured server's own key, or the bundled model's placeholder; without it,
        the key is the one resolve_key binds to the URL (OPENAI_API_KEY for api.openai.com only).
        `canonical` lets the bundled model reuse this class under its own name."""
        self.name = model_name
        self.model = canonical or f"openai:{model_name}"
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.vendor = vendor
        self._server_key = key
        self.connect(self.base_url or keys.VENDOR_URLS["openai"])

    def connect(self, url: str) -> None:
        """Send requests to `url` from now on (the bundled server's moves when it restarts), with
        the key bound to that URL."""
        self._url = url
        self._key = resolve_key("openai", self.vendor, url, self._server_key)
        # The runner retries with its own policy, so the SDK must not retry behind its back.
        self.client = openai.OpenAI(
            api_key=self._key,
            base_url=url,
            timeout=self.timeout,
            max_retries=0,
            http_client=direct_http_client(openai, url),
            default_headers=account_headers_off(openai, "openai", url),
        )
        # api.openai.com wants max_completion_tokens (reasoning models refuse max_tokens), while
        # compatible servers (llama.cpp, older vLLM) know only max_tokens.
        self._limit_field = "max_completion_tokens" if keys.is_vendor_url("openai", url) else "max_tokens"

    @property
    def url(self) -> str:
        """Where requests go: a batch goes only where keys.is_vendor_url allows (lib.run.batch_vendors)."""
        return self._url

    def failure(self, error: Exception) -> Exception:
        """The ProviderError for an exception of this client's calls, the key scrubbed."""
        return translate(error, openai, self.vendor, self._url, self.timeout, self._key)

    def request(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed: int | None = None
    ) -> dict[str, Any]:
        """The request body: what complete() sends, and what a batch line carries (lib.run.batch_vendors)."""
        request: dict[str, Any] = {
            "model": self.name,
            "messages": instruction_prefill(messages),
            self._limit_field: max_tokens,
        }
        if temperature is not None:
            request["temperature"] = temperature
        if seed is not None:
            request["seed"] = seed
        return request

    def reply(self, body: dict[str, Any], latency_ms: float | None) -> Reply:
        """The Reply of a chat completion as JSON: a direct answer, or a batch result's body."""
        choices = body.get("choices") or []
        if not choices:
            raise ProviderError("server", f"{self.vendor} ({self._url}) returned no choices")
        choice = choices[0]
        message = choice.get("message") or {}
        usage = body.get("usage") or {}
        return Reply(
            text=message.get("content") or message.get("refusal") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
            raw=body,
        )

    def complete(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed: int | None = None
    ) -> Reply:
        start = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                **self.request(messages, temperature, max_tokens, seed)
            )
        except Exception as e:
            raise self.failure(e) from None
        return self.reply(response.model_dump(mode="json"), (time.perf_counter() - start) * 1000)
