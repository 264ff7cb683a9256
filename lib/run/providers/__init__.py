"""Model providers: one `complete` call per request, the same Reply and ProviderError from every vendor.

    provider = make_provider("anthropic:claude-haiku-4-5")
    reply = provider.complete(messages, temperature=None, max_tokens=256)

Specs: `openai:<model>` (Chat Completions; with `base_url`, or `server` naming one the owner
configured in lib/run/servers.py, any OpenAI-compatible server), `anthropic:<model>` (Messages API),
`bundled:smollm2` (the offline model, served on demand). SDK retries are off: the caller retries
what ProviderError.retryable marks.

Keys are bound to hosts (base.resolve_key): OPENAI_API_KEY goes only to api.openai.com and
ANTHROPIC_API_KEY only to api.anthropic.com, over https. Another base URL gets the configured
server's own key, else a placeholder.
"""

from __future__ import annotations

from lib.run import keys, servers
from lib.run.providers.base import KINDS, BundledServerError, Provider, ProviderError, Reply

__all__ = [
    "KINDS",
    "BundledServerError",
    "PROVIDERS",
    "Provider",
    "ProviderError",
    "Reply",
    "key_status",
    "make_provider",
]

PROVIDERS = ("openai", "anthropic", "bundled")


def make_provider(
    spec: str, base_url: str | None = None, timeout: float = 60, server: str | None = None
) -> Provider:
    """The provider for "provider:model", at `base_url` or at the configured server named `server`
    (whose URL `base_url`, if given, must be). Raises ValueError for a malformed spec or an unknown
    server, and ProviderError("auth") when the vendor needs a key and none is configured."""
    name, _, model = spec.partition(":")
    if name not in PROVIDERS or not model.strip():
        raise ValueError(
            f"model {spec!r} is not 'provider:model' with provider one of {', '.join(PROVIDERS)} "
            "(e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5, bundled:smollm2)"
        )
    server_key = None
    if server is not None:
        named = servers.get(server)
        if name != "openai":
            raise ValueError(f"server {server!r} is OpenAI-compatible: its models are openai:<model>")
        if base_url is not None and base_url.rstrip("/") != named.base_url:
            # A run planned for one URL must not send to another (its transcripts are keyed by it).
            raise ValueError(f"server {server!r} has another URL now: plan the run again")
        base_url, server_key = named.base_url, named.api_key
    # Imported here: the two SDKs take 2.5 s to import, and pages that only show key_status need neither.
    if name == "openai":
        from lib.run.providers.openai_chat import OpenAIChat

        return OpenAIChat(model, base_url, timeout, key=server_key)
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
