"""Scores of a reply to a conversation from servers that score text rather than write it: the
preference test's log-probability and reward modes (lib.measure.preference).

- LogprobScorer: the bundled model's llama.cpp server (/v1/completions with echo and logprobs).
  The score is the MEAN log-probability per token of the reply given the conversation, rendered
  with the model's own chat template (read from its GGUF file). Mean, not sum: the two replies
  of a pair differ in length, and a sum charges every extra token, so it would mostly measure
  which reply is shorter. Scored.raw holds the mean, the sum and the token count; the preference
  test stores it in its judgement's raw record. A likelihood is not a preference: this mode shows
  which reply the model finds likelier, not which one a preference model would reward.
- RewardScorer: a reward model behind vLLM's Pooling API (`POST /pooling` at the server's root,
  {"model", "messages", "add_generation_prompt": false}; the server applies the model's chat
  template, and the reply is the conversation's last turn: no empty assistant turn may follow it).
  The answer's `data` is the pooled output: one value (LAST pooling) or one per token (ALL
  pooling); the score is the value at the last token, the reward of the whole conversation.

Requests go through the OpenAI SDK's client (its errors become ProviderError, as a provider's),
with no retries; the key is the server's own (servers.py) or a placeholder, never a vendor's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from lib.probes.items import Message, assistant
from lib.run import servers
from lib.run.providers.base import (
    PLACEHOLDER_KEY,
    ProviderError,
    account_headers_off,
    direct_http_client,
    resolve_key,
    translate,
)

MODES = ("pairwise", "logprob", "reward")


@dataclass(frozen=True)
class Scored:
    value: float
    raw: dict[str, Any]  # what the score was made from, JSON-serialisable


class Scorer(Protocol):
    model: str  # "provider:model", as a run names it
    base_url: str | None  # the server, part of a score's cache key; None for the bundled model
    version: str | None  # the model the server says answered, when it says

    def score(self, conversation: list[Message], reply: str) -> Scored: ...


class _Client:
    """An SDK client at a server's root URL (the scoring paths are not all under /v1)."""

    def __init__(self, root: str, vendor: str, timeout: float, key: str | None):
        self.root, self.vendor, self.timeout = root.rstrip("/"), vendor, timeout
        self.key = resolve_key("openai", vendor, self.root, key)
        self.client = openai.OpenAI(
            api_key=self.key,
            base_url=self.root,
            timeout=timeout,
            max_retries=0,
            http_client=direct_http_client(openai, self.root),
            default_headers=account_headers_off(openai, "openai", self.root),
        )

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.client.post(path, body=body, cast_to=object)
        except Exception as e:
            raise translate(e, openai, self.vendor, self.root + path, self.timeout, self.key) from None
        if not isinstance(answer, dict):
            raise ProviderError("server", f"{self.vendor} ({self.root}{path}) answered with no JSON object")
        return answer


def _root(base_url: str) -> str:
    """A server's root from its OpenAI base URL (http://host:8000/v1 -> http://host:8000)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


# ---------------------------------------------------------------------------------------------
# Log-probabilities: the bundled model
@functools.cache
def _bundled_template() -> Any:
    """The bundled model's chat template, from its GGUF file (loaded without its weights)."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from lib.run.providers import bundled

    vocab = Llama(str(bundled.model_path()), vocab_only=True, verbose=False)
    template = vocab.metadata.get("tokenizer.chat_template")
    if not template:
        raise ProviderError("bad_request", f"{bundled.CANONICAL}'s model file holds no chat template")
    eos = vocab.detokenize([vocab.token_eos()], special=True).decode("utf-8", errors="replace")
    bos = vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", errors="replace")
    return Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=True)


def reply_logprobs(answer: dict[str, Any], reply: str) -> list[float]:
    """The log-probabilities of the reply's tokens in an echoed completion of prefix + reply: the
    fewest last prompt tokens that spell the reply. (Counting from the end: the server leaves some
    special tokens of the prefix out of its echo.) Raises ProviderError when no run of last tokens
    spells it (the prefix and the reply merged into one token at their boundary)."""
    choice = (answer.get("choices") or [{}])[0]
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    generated = (answer.get("usage") or {}).get("completion_tokens")
    if not isinstance(tokens, list) or not isinstance(values, list) or not isinstance(generated, int):
        raise ProviderError("server", "the server's completion has no echoed log-probabilities")
    end = len(tokens) - generated
    spelled, start = "", end
    while start > 0 and len(spelled) < len(reply):
        start -= 1
        spelled = str(tokens[start]) + spelled
    if spelled != reply:
        raise ProviderError(
            "bad_request", "the reply's tokens do not start where the conversation's end: cannot score it"
        )
    picked = values[start:end]
    if not picked or any(isinstance(v, bool) or not isinstance(v, int | float) for v in picked):
        raise ProviderError("server", "the server gave no log-probability for some of the reply's tokens")
    return [float(v) for v in picked]


class LogprobScorer:
    """Mean log-probability per token of a reply, from the bundled model's server."""

    def __init__(self, timeout: float = 120):
        from lib.run.providers import bundled

        self.model, self.version, self.timeout = bundled.CANONICAL, None, timeout
        self.base_url = None  # the bundled server's port changes from run to run: not its identity
        self._client: _Client | None = None

    def _connected(self) -> _Client:
        from lib.run.providers import bundled

        root = _root(bundled.server().url)  # the server may have restarted on another port
        if self._client is None or self._client.root != root:
            self._client = _Client(root, "the bundled model", self.timeout, PLACEHOLDER_KEY)
        return self._client

    def score(self, conversation: list[Message], reply: str) -> Scored:
        from lib.run.providers import bundled

        prefix = _bundled_template()(messages=list(conversation)).prompt
        answer = self._connected().post(
            "/v1/completions",
            {"model": bundled.MODEL_ALIAS, "prompt": prefix + reply, "max_tokens": 1, "echo": True,
             "logprobs": 1, "temperature": 0},
        )  # fmt: skip
        values = reply_logprobs(answer, reply)
        raw = {"mean": sum(values) / len(values), "sum": sum(values), "n_tokens": len(values)}
        return Scored(raw["mean"], raw)


# ---------------------------------------------------------------------------------------------
# Reward models: vLLM's Pooling API
def reward_value(answer: dict[str, Any]) -> float:
    """The reward in a Pooling API answer: the value at the last token of its first output."""
    data = answer.get("data")
    pooled = data[0].get("data") if isinstance(data, list) and data and isinstance(data[0], dict) else None
    while isinstance(pooled, list) and pooled and isinstance(pooled[-1], list):
        pooled = pooled[-1]  # one row per token (ALL pooling): the last token's
    if isinstance(pooled, list) and pooled:
        pooled = pooled[-1]
    if isinstance(pooled, bool) or not isinstance(pooled, int | float):
        raise ProviderError("server", "the reward server's answer holds no number in data[0].data")
    return float(pooled)


class RewardScorer:
    """A reward model's score of the conversation with the reply as the assistant's turn."""

    def __init__(
        self, spec: str, base_url: str | None = None, server: str | None = None, timeout: float = 60
    ):
        name, _, model = spec.partition(":")
        if name != "openai" or not model.strip():
            raise ValueError(f"a reward model is openai:<model> behind a compatible server, not {spec!r}")
        key = None
        if server is not None:
            named = servers.get(server)
            base_url, key = named.base_url, named.api_key
        if not base_url:
            raise ValueError("a reward model needs its server: give --base-url or --server")
        self.model, self.name, self.version = spec, model, None
        self._client = _Client(_root(base_url), "the reward server", timeout, key)
        self.base_url = base_url.rstrip("/")

    def score(self, conversation: list[Message], reply: str) -> Scored:
        answer = self._client.post(
            "/pooling",
            {
                "model": self.name,
                "messages": [*conversation, assistant(reply)],
                "add_generation_prompt": False,
            },
        )
        if isinstance(answer.get("model"), str):
            self.version = answer["model"]
        return Scored(reward_value(answer), {"reward": reward_value(answer), "model": answer.get("model")})
