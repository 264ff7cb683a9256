"""OpenAI-compatible servers named by the dashboard's owner (vLLM, Ollama, llama.cpp, LM Studio on a
lab machine): a visitor chooses among their names and never types an address, so where requests go
and which key goes with them is the owner's choice.

In .streamlit/secrets.toml, one table a server:

    [servers.lab]
    base_url = "http://gpu-box.lan:8000/v1"
    api_key = "..."   # optional: this server's own key, sent to it alone

or in the environment, SYCOSCOPE_SERVERS holding the same as JSON:

    SYCOSCOPE_SERVERS='{"lab": {"base_url": "http://gpu-box.lan:8000/v1"}}'

A name in both is the environment's. A server without api_key gets a placeholder (local servers
ignore it); a vendor's key never goes to a server (lib/run/providers/base.py, resolve_key). The
key is never shown: Server's repr leaves it out, and the UI says only whether there is one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.run import keys
from lib.run.keys import KeyConfigError

ENV = "SYCOSCOPE_SERVERS"
FIELDS = ("base_url", "api_key")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@dataclass(frozen=True)
class Server:
    name: str
    base_url: str  # without a trailing slash, as it keys cached transcripts
    api_key: str | None = field(default=None, repr=False)


def _server(name: object, table: object, where: str) -> Server:
    """One server from its table; `where` names the file or variable for messages."""
    # Imported here: the providers package imports this module.
    from lib.run.providers import PROVIDERS

    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in PROVIDERS:
        raise KeyConfigError(
            f"{where}: a server's name is up to 40 letters, digits, '-', '_' or '.', and not one of "
            f"{', '.join(PROVIDERS)}; {str(name)[:40]!r} is not"
        )
    place = f"{where}: server {name!r}"
    if not isinstance(table, dict):
        raise KeyConfigError(f"{place} must be a table with base_url and, optionally, api_key")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise KeyConfigError(f"{place}: unknown field {unknown[0]!r}; known: {', '.join(FIELDS)}")
    url = table.get("base_url")
    # The URL is not quoted back: it may hold a user name and password.
    if not isinstance(url, str):
        raise KeyConfigError(f"{place}: base_url is missing or not a string")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise KeyConfigError(f"{place}: base_url is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KeyConfigError(f"{place}: base_url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise KeyConfigError(f"{place}: {CREDENTIALS_IN_URL}")
    key = table.get("api_key")
    if key is not None and not isinstance(key, str):
        raise KeyConfigError(f"{place}: api_key must be a string")
    return Server(name, url.strip().rstrip("/"), (key or "").strip() or None)


# A URL is stored with every run and transcript, and shown on Transcripts: never a secret in it.
CREDENTIALS_IN_URL = "base_url holds a user name or password; give the server's key as api_key instead"


def refuse_credentials(url: str | None) -> None:
    """Raise ValueError if a base URL given on the command line holds a user name or password."""
    if url and (urlsplit(url).username or urlsplit(url).password):
        raise ValueError(f"--base-url {CREDENTIALS_IN_URL.removeprefix('base_url ')}")


def _from_secrets(path: Path) -> dict[str, Server]:
    tables = keys.read_secrets(path).get("servers", {})
    if not isinstance(tables, dict):
        raise KeyConfigError(f"{path}: servers must be tables, [servers.NAME]")
    return {name: _server(name, table, str(path)) for name, table in tables.items()}


def _from_env() -> dict[str, Server]:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return {}
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        # e.msg and the place only: str(e) is the same, but the value (with keys) is never quoted.
        raise KeyConfigError(
            f"{ENV} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    if not isinstance(data, dict):
        raise KeyConfigError(f'{ENV} must be a JSON object: {{"NAME": {{"base_url": ...}}}}')
    return {name: _server(name, table, ENV) for name, table in data.items()}


def configured(secrets: Path | None = None) -> dict[str, Server]:
    """Every configured server by name, sorted; raises KeyConfigError for a malformed entry."""
    found = {**_from_secrets(secrets or keys.SECRETS), **_from_env()}
    return dict(sorted(found.items()))


def where() -> str:
    """Where the owner names a server, for messages."""
    return f"add a [servers.NAME] table with base_url to {keys.shown_path(keys.SECRETS)}, or set {ENV}"


def get(name: str, secrets: Path | None = None) -> Server:
    """The server named `name`; ValueError naming those there are when there is none."""
    found = configured(secrets)
    if name not in found:
        there = f"configured: {', '.join(found)}" if found else "none is configured"
        raise ValueError(f"no server named {name!r} ({there}): {where()}")
    return found[name]
