"""Model providers: one `complete` call per request, the same Reply and ProviderError from every vendor.

    provider = make_provider("anthropic:claude-haiku-4-5")
    reply = provider.complete(messages, temperature=None, max_tokens=256)

Specs: `openai:<model>` (Chat Completions; with `base_url`, any OpenAI-compatible server),
`anthropic:<model>` (Messages API), `bundled:smollm2` (the offline model, served on demand).
SDK retries are off: the caller retries what ProviderError.retryable marks.
"""

from __future__ import annotations

from lib.run import keys
from lib.run.providers.base import KINDS, Provider, ProviderError, Reply

__all__ = ["KINDS", "PROVIDERS", "Provider", "ProviderError", "Reply", "key_status", "make_provider"]

PROVIDERS = ("openai", "anthropic", "bundled")


def make_provider(spec: str, base_url: str | None = None, timeout: float = 60) -> Provider:
    """The provider for "provider:model". Raises ValueError for a malformed spec and
    ProviderError("auth") when the vendor needs a key and none is configured."""
    name, _, model = spec.partition(":")
    if name not in PROVIDERS or not model.strip():
        raise ValueError(
            f"model {spec!r} is not 'provider:model' with provider one of {', '.join(PROVIDERS)} "
            "(e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5, bundled:smollm2)"
        )
    # Imported here: the two SDKs take 2.5 s to import, and pages that only show key_status need neither.
    if name == "openai":
        from lib.run.providers.openai_chat import OpenAIChat

        return OpenAIChat(model, base_url, timeout)
    if name == "anthropic":
        from lib.run.providers.anthropic_messages import AnthropicMessages

        return AnthropicMessages(model, base_url, timeout)
    from lib.run.providers import bundled

    if model != bundled.MODEL_ALIAS:
        raise ValueError(f"the bundled model is {bundled.CANONICAL}, not {spec!r}")
    if base_url:
        raise ValueError(f"{bundled.CANONICAL} runs its own server: give no base URL")
    return bundled.BundledChat(timeout)


def key_status(provider: str) -> bool:
    """Whether a key is configured for a provider ("openai", or a spec like "openai:gpt-4o"), for
    the UI. Never the key. The bundled model needs none."""
    name = provider.partition(":")[0]
    if name == "bundled":
        return True
    return keys.has_key(name)
