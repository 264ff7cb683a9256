"""What every provider shares: the reply, the error and how a vendor's HTTP failure is classified."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from lib.probes.items import Message
from lib.run import keys

# Local servers ignore the key, but the SDKs will not send a request without one.
PLACEHOLDER_KEY = "not-needed"

KINDS = ("auth", "quota", "not_found", "rate_limit", "server", "timeout", "bad_request", "connection")
RETRYABLE = frozenset({"rate_limit", "server", "timeout", "connection"})


@dataclass(frozen=True)
class Reply:
    text: str  # the assistant's full reply as a person reads it (native prefill: prefill + continuation)
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None  # None for a batch result: the vendor answered within 24 h, timed by no one
    finish_reason: str | None
    raw: dict[str, Any]  # the raw response, JSON-serialisable


class ProviderError(Exception):
    """A failed request. `kind` says what went wrong, `retryable` whether trying again may help,
    `retry_after` the wait in seconds the server asked for, if it did. The message never holds a key."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown ProviderError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.retryable = kind in RETRYABLE
        self.retry_after = retry_after
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, for errors that cross processes
        return (ProviderError, (self.kind, self.message, self.retry_after))


class BundledServerError(RuntimeError):
    """The bundled model's server cannot start (package missing, no free port, it died): defined
    here so that the command line can name it without importing the server's module."""


class Provider(Protocol):
    model: str  # canonical "provider:model", e.g. "openai:gpt-4o-mini", "bundled:smollm2"
    base_url: str | None
    prefill_mode: str  # how a trailing assistant message is sent: "native" or "instruction"

    def complete(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed: int | None = None
    ) -> Reply: ...


# Vendors echo a masked key in some messages ("Incorrect API key provided: sk-proj-****abcd"):
# any key-like token goes, not only the exact key.
_KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{4,}")


def scrub(text: str, key: str | None) -> str:
    if key and len(key) >= 8:  # a placeholder like "x" must not mangle the message
        text = text.replace(key, "[key]")
    return _KEYLIKE.sub("[key]", text)


def classify(status: int, code: str | None, error_type: str | None, detail: str) -> str:
    """The kind of an HTTP error answer, from its status and the vendor's error code and type."""
    quota_codes = {"insufficient_quota", "contract_spend_limit_reached", "enforced_spend_limit_reached"}
    if code in quota_codes or error_type in {"insufficient_quota", "billing_error"} or status == 402:
        return "quota"
    # Anthropic answers an empty prepaid balance with a 400 whose only sign is its text.
    if status == 400 and "credit balance" in detail.lower():
        return "quota"
    if code == "model_not_found" or status == 404:
        return "not_found"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server"
    return "bad_request"


def status_message(vendor: str, where: str, kind: str, status: int, detail: str, key: str | None) -> str:
    what = {
        "auth": "refused the API key, or the key has no access to this",
        "quota": "reports the account's quota or credit is used up",
        "not_found": "does not know this model or path",
        "rate_limit": "is rate limiting requests",
        "server": "had a server error",
        "timeout": "timed out on its side",
        "bad_request": "refused the request",
    }[kind]
    return scrub(f"{vendor} ({where}) {what} (HTTP {status}): {detail}", key)


def error_detail(body: object, fallback: str) -> tuple[str | None, str | None, str]:
    """(code, type, message) from a vendor error body: {"error": {...}} or the inner object."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return None, None, fallback
    details = inner.get("details")
    code = inner.get("code") or (details.get("error_code") if isinstance(details, dict) else None)
    message = inner.get("message")
    return (
        str(code) if code is not None else None,
        str(inner["type"]) if inner.get("type") is not None else None,
        str(message) if message else fallback,
    )


def split_prefill(messages: list[Message]) -> tuple[list[Message], str | None]:
    """The conversation without its trailing assistant turn, and that turn's text (the prefill)."""
    if messages and messages[-1]["role"] == "assistant":
        return list(messages[:-1]), messages[-1]["content"]
    return list(messages), None


def retry_after(headers: Any) -> float | None:
    """The wait a 429 or 503 asks for, in seconds, from retry-after-ms or retry-after (seconds)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            continue  # an HTTP date: rare from these vendors, and the runner has its own backoff
    return None


def translate(
    error: Exception, sdk: Any, vendor: str, where: str, timeout: float, key: str | None
) -> Exception:
    """The ProviderError for an exception of a vendor SDK (`sdk` is the openai or anthropic module,
    whose exception classes share names); other exceptions come back unchanged."""
    if isinstance(error, sdk.APITimeoutError):
        return ProviderError("timeout", f"{vendor} ({where}) did not answer within {timeout:g} s")
    if isinstance(error, sdk.APIConnectionError):
        cause = error.__cause__ or error
        return ProviderError("connection", scrub(f"cannot reach {vendor} at {where}: {cause}", key))
    if isinstance(error, sdk.APIStatusError):
        status = error.status_code
        code, error_type, detail = error_detail(error.body, str(error.message))
        kind = classify(status, code, error_type, detail)
        message = status_message(vendor, where, kind, status, detail, key)
        return ProviderError(kind, message, retry_after(error.response.headers))
    if isinstance(error, sdk.APIError):  # a 2xx answer the SDK could not read
        return ProviderError(
            "server", scrub(f"{vendor} ({where}) sent an answer that cannot be read: {error}", key)
        )
    return error


def resolve_key(provider: str, vendor: str, url: str, server_key: str | None = None) -> str:
    """The key to send to `url`. The vendor's key (OPENAI_API_KEY, ANTHROPIC_API_KEY) goes only to
    the vendor's own host (keys.is_vendor_url): it must be configured there. Any other server gets
    `server_key`, its own key named by the owner (lib/run/servers.py), else a placeholder: a local
    server ignores it, and no vendor's key is ever sent to an address the vendor does not own."""
    if server_key:
        return server_key
    if not keys.is_vendor_url(provider, url):
        return PLACEHOLDER_KEY
    key = keys.get_key(provider)
    if key is None:
        raise ProviderError("auth", f"no {vendor} API key: {keys.where(provider)}")
    return key


# Headers the SDKs add from the environment, naming or opening the owner's account: OpenAI's
# organization and project, and every header of ANTHROPIC_CUSTOM_HEADERS ("Name: value" lines).
def _account_headers(provider: str) -> list[str]:
    if provider == "openai":
        return ["OpenAI-Organization", "OpenAI-Project"]
    lines = os.environ.get("ANTHROPIC_CUSTOM_HEADERS", "").split("\n")
    return [line.partition(":")[0].strip() for line in lines if ":" in line]


def account_headers_off(sdk: Any, provider: str, url: str) -> dict[str, Any]:
    """default_headers for an SDK client (openai or anthropic module) at `url`: for any host but
    the vendor's, the account headers the SDK would add from the environment are left out."""
    if keys.is_vendor_url(provider, url):
        return {}
    return {name: sdk.Omit() for name in _account_headers(provider)}


def direct_http_client(sdk: Any, url: str) -> Any:
    """For a server on this machine, an HTTP client of the SDK (openai or anthropic module) that
    ignores HTTP(S)_PROXY: a proxy cannot reach our loopback. None (the SDK's default) otherwise."""
    if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        return sdk.DefaultHttpxClient(trust_env=False)
    return None
