"""Vendor API keys: read from the environment, else from .streamlit/secrets.toml at the repo root,
and bound to their vendor's own API host.

A key is read when a provider is made and handed straight to its SDK client: it is never stored by
Sycoscope, never logged and never shown. The UI asks only whether one is configured (`has_key`).
secrets.toml takes the Streamlit form, top-level names: `OPENAI_API_KEY = "sk-..."`.

OPENAI_API_KEY goes only to https://api.openai.com, ANTHROPIC_API_KEY only to
https://api.anthropic.com (`is_vendor_url`): any other server (a base URL, a configured server of
lib/run/servers.py) gets its own configured key or none. `read_secrets` is the one reader of the
secrets file, for the keys, the servers and the operator password alike.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.paths import REPO, SECRETS

# provider name -> the variable that holds its key, in the environment and in secrets.toml
KEY_NAMES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# provider name -> its vendor's API: the only address its key is sent to
VENDOR_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


class KeyConfigError(ValueError):
    """The secrets file (or a setting in the environment) cannot be read: the message names the
    file or variable and the place, never the text of a key."""


def key_name(provider: str) -> str:
    try:
        return KEY_NAMES[provider]
    except KeyError:
        raise ValueError(
            f"no API key is used by provider {provider!r}; known: {', '.join(KEY_NAMES)}"
        ) from None


def read_secrets(path: Path | None = None) -> dict[str, Any]:
    """The secrets file as a table; empty when there is none. Read as utf-8-sig: an editor's
    byte-order mark is no error."""
    path = path or SECRETS
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as e:
        # The decoder names line and column; the text of the file (a key) is never quoted.
        raise KeyConfigError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise KeyConfigError(f"{path} is not UTF-8 text") from None


def get_key(provider: str, secrets: Path | None = None) -> str | None:
    """The key for `provider` ("openai" or "anthropic"), or None if none is configured."""
    name = key_name(provider)
    value = os.environ.get(name, "").strip()
    if value:
        return value
    stored = read_secrets(secrets).get(name)
    if stored is None:
        return None
    if not isinstance(stored, str):
        raise KeyConfigError(f"{secrets or SECRETS}: {name} must be a string")
    return stored.strip() or None


def has_key(provider: str, secrets: Path | None = None) -> bool:
    return get_key(provider, secrets) is not None


def is_vendor_url(provider: str, url: str) -> bool:
    """Whether `url` is the vendor's own API host (same scheme, host and port): the only place
    the vendor's key may go. A look-alike (http, another port, a proxy) is not."""
    official = urlsplit(VENDOR_URLS[provider])
    try:
        target = urlsplit(url)
        return (target.scheme, target.hostname, target.port) == (
            official.scheme,
            official.hostname,
            official.port,
        )
    except ValueError:  # no URL at all (a bad port, an unclosed IPv6 bracket): not the vendor's
        return False


def shown_path(path: Path) -> Path:
    """A path as messages show it: relative to the repo when inside it."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def where(provider: str) -> str:
    """Where a person puts the key, for messages."""
    return f"set {key_name(provider)} in the environment or in {shown_path(SECRETS)}"
