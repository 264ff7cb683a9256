"""Vendor API keys: read from the environment, else from .streamlit/secrets.toml at the repo root.

A key is read when a provider is made and handed straight to its SDK client: it is never stored by
Sycoscope, never logged and never shown. The UI asks only whether one is configured (`has_key`).
secrets.toml takes the Streamlit form, top-level names: `OPENAI_API_KEY = "sk-..."`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from lib.paths import REPO, SECRETS

# provider name -> the variable that holds its key, in the environment and in secrets.toml
KEY_NAMES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class KeyConfigError(Exception):
    """The secrets file cannot be read: the message names the file and the place."""


def key_name(provider: str) -> str:
    try:
        return KEY_NAMES[provider]
    except KeyError:
        raise ValueError(
            f"no API key is used by provider {provider!r}; known: {', '.join(KEY_NAMES)}"
        ) from None


def _from_secrets(name: str, path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        # The decoder names line and column; the text of the file (a key) is never quoted.
        raise KeyConfigError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise KeyConfigError(f"{path} is not UTF-8 text") from None
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyConfigError(f"{path}: {name} must be a string")
    return value.strip() or None


def get_key(provider: str, secrets: Path | None = None) -> str | None:
    """The key for `provider` ("openai" or "anthropic"), or None if none is configured."""
    name = key_name(provider)
    value = os.environ.get(name, "").strip()
    return value or _from_secrets(name, secrets or SECRETS)


def has_key(provider: str, secrets: Path | None = None) -> bool:
    return get_key(provider, secrets) is not None


def where(provider: str) -> str:
    """Where a person puts the key, for messages."""
    path = SECRETS.relative_to(REPO) if SECRETS.is_relative_to(REPO) else SECRETS
    return f"set {key_name(provider)} in the environment or in {path}"
