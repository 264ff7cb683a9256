"""What requests cost, from the editable price table data/prices.csv (US dollars per million tokens).

A model with no row has an unknown cost (None), never a guessed one. A dated snapshot
("anthropic:claude-3-haiku-20240307", "openai:gpt-4o-2024-08-06") or a "-latest" alias falls back to
its undated row. The bundled model, and any server on this machine or the local network (by its base
URL), cost 0. The file is read again whenever it changes, so edits apply without a restart.

Batch prices: `batch_discount` is the share of the standard price a vendor's batch API takes off
(OpenAI's Batch API and Anthropic's Message Batches: 0.5). Empty, or a file of the older four
columns, leaves a batch's cost unknown rather than guessed.
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

COLUMNS = ["model", "input_usd_per_mtok", "output_usd_per_mtok", "batch_discount", "note"]
# the header before batch prices: still read, with no batch price
OLD_COLUMNS = ["model", "input_usd_per_mtok", "output_usd_per_mtok", "note"]
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class PriceFileError(Exception):
    """The price file cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    note: str
    batch_discount: float | None = None  # the share off in a batch; None: no known batch price

    def of_batch(self) -> Price | None:
        """The price in a vendor's batch, or None when it is unknown."""
        if self.batch_discount is None:
            return None
        keep = 1 - self.batch_discount
        return Price(self.input_usd_per_mtok * keep, self.output_usd_per_mtok * keep, self.note)


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
                if header not in (COLUMNS, OLD_COLUMNS):
                    raise PriceFileError(
                        f"{where}: the header must be {','.join(COLUMNS)}, not {','.join(row)}"
                    )
                continue
            if len(row) != len(header):
                raise PriceFileError(f"{where}: expected {len(header)} fields, found {len(row)}")
            cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
            model = cells["model"]
            if ":" not in model:
                raise PriceFileError(f"{where}: model {model!r} must be 'provider:model'")
            if model in table:
                raise PriceFileError(f"{where}: {model} has a price already")
            table[model] = Price(
                _usd(cells["input_usd_per_mtok"], where, "input"),
                _usd(cells["output_usd_per_mtok"], where, "output"),
                cells["note"],
                _discount(cells.get("batch_discount", ""), where),
            )
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


def _discount(text: str, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PriceFileError(f"{where}: batch_discount {text!r} is not a number") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise PriceFileError(f"{where}: batch_discount {text!r} must be from 0 to 1 (0.5: half price)")
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


def price(
    model: str, base_url: str | None = None, path: Path | None = None, batch: bool = False
) -> Price | None:
    """The price of a model's requests, sent one by one or, with `batch`, in a vendor's batch."""
    if model.startswith("bundled:") or is_local(base_url):
        return Price(0.0, 0.0, "runs locally")
    table = load(path)
    found = table.get(model) or table.get(_SNAPSHOT.sub("", model))
    return found.of_batch() if batch and found is not None else found


def cost(
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    base_url: str | None = None,
    path: Path | None = None,
    batch: bool = False,
) -> float | None:
    """US dollars for one request (in a batch with `batch`), or None if the model's price or a token
    count is unknown."""
    p = price(model, base_url, path, batch)
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
    batch: bool = False,
) -> float | None:
    """An upper bound in US dollars for n requests: every reply is taken to use all of max_tokens."""
    one = cost(model, prompt_tokens_each, max_tokens, base_url, path, batch)
    return None if one is None else one * n_requests
