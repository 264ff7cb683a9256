"""What requests cost, from the editable price table data/prices.csv (US dollars per million tokens).

A model with no row has an unknown cost (None), never a guessed one. A dated snapshot
("anthropic:claude-3-haiku-20240307", "openai:gpt-4o-2024-08-06") or a "-latest" alias falls back to
its undated row. The bundled model, and any server on this machine or the local network (by its base
URL), cost 0. The file is read again whenever it changes, so edits apply without a restart.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lib.paths import PRICES
from lib.probes.probesets import textfile

COLUMNS = ["model", "input_usd_per_mtok", "output_usd_per_mtok", "note"]
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class PriceFileError(Exception):
    """The price file cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    note: str


_cache: dict[Path, tuple[float, dict[str, Price]]] = {}


def load(path: Path | None = None) -> dict[str, Price]:
    """The table, model -> Price. Raises PriceFileError naming the file and line of a bad row."""
    path = path or PRICES
    mtime = path.stat().st_mtime if path.exists() else -1.0
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        _cache[path] = (mtime, _read(path) if mtime >= 0 else {})
    return _cache[path][1]


def _read(path: Path) -> dict[str, Price]:
    table: dict[str, Price] = {}
    with open(path, newline="", encoding=textfile.ENCODING) as f:  # an editor's BOM is no header
        # Comment lines are kept as blank lines so that the reader's line numbers stay the file's.
        lines = ("\n" if line.lstrip().startswith("#") else line for line in f)
        reader = csv.reader(lines)
        header: list[str] | None = None
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if not row or not "".join(row).strip():
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                if header != COLUMNS:
                    raise PriceFileError(
                        f"{where}: the header must be {','.join(COLUMNS)}, not {','.join(row)}"
                    )
                continue
            if len(row) != len(COLUMNS):
                raise PriceFileError(f"{where}: expected {len(COLUMNS)} fields, found {len(row)}")
            model, given_in, given_out, note = (cell.strip() for cell in row)
            if ":" not in model:
                raise PriceFileError(f"{where}: model {model!r} must be 'provider:model'")
            if model in table:
                raise PriceFileError(f"{where}: {model} has a price already")
            table[model] = Price(_usd(given_in, where, "input"), _usd(given_out, where, "output"), note)
    if header is None:
        raise PriceFileError(f"{path}: empty, expected the header {','.join(COLUMNS)}")
    return table


def _usd(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PriceFileError(f"{where}: {column} price {text!r} is not a number") from None
    if not value >= 0:  # also refuses nan
        raise PriceFileError(f"{where}: {column} price {text!r} must be 0 or more")
    return value


def is_local(base_url: str | None) -> bool:
    """Whether a server runs on this machine or the local network (it costs nothing per token)."""
    host = urlsplit(base_url).hostname if base_url else None
    if not host:
        return False
    if host == "localhost" or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def price(model: str, base_url: str | None = None, path: Path | None = None) -> Price | None:
    if model.startswith("bundled:") or is_local(base_url):
        return Price(0.0, 0.0, "runs locally")
    table = load(path)
    return table.get(model) or table.get(_SNAPSHOT.sub("", model))


def cost(
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    base_url: str | None = None,
    path: Path | None = None,
) -> float | None:
    """US dollars for one request, or None if the model's price or a token count is unknown."""
    p = price(model, base_url, path)
    if p is None:
        return None
    if p.input_usd_per_mtok == 0 and p.output_usd_per_mtok == 0:
        return 0.0
    if prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * p.input_usd_per_mtok + completion_tokens * p.output_usd_per_mtok) / 1e6


def estimate(
    model: str,
    n_requests: int,
    prompt_tokens_each: int,
    max_tokens: int,
    base_url: str | None = None,
    path: Path | None = None,
) -> float | None:
    """An upper bound in US dollars for n requests: every reply is taken to use all of max_tokens."""
    one = cost(model, prompt_tokens_each, max_tokens, base_url, path)
    return None if one is None else one * n_requests
