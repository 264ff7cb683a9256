"""What every probe set shares: its description, the files it reads, and the errors it raises."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.paths import DOWNLOADS
from lib.probes.items import Item, Message, Probe, assistant, user
from lib.probes.probesets.textfile import numbered_lines

# What a set loads to: each item with its probes, in the set's order.
Rows = list[tuple[Item, list[Probe]]]

# progress(label, done, total): called as work advances; total is None when unknown.
Progress = Callable[[str, int, int | None], None]


class ProbeSetError(Exception):
    """Bad input a person can fix: the message names the file, the line and the key."""

    def __init__(self, message: str, file: Path | str | None = None, line: int | None = None, key: str = ""):
        where = ", ".join(
            part
            for part in (
                str(file) if file else "",
                f"line {line}" if line else "",
                f"key {key!r}" if key else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line, self.key = file, line, key


class UnknownSet(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Remote:
    url: str
    filename: str  # the official file name, also its name in a --from folder and in the cache
    sha256: str | None = None


# read(set_id, files): the rows of a set from its local files (none for a built-in set)
Reader = Callable[[str, list[Path]], Rows]


@dataclass(frozen=True)
class ProbeSet:
    set_id: str
    task: str
    title: str
    source: str  # "builtin" | "official" | "custom"
    description: str
    read: Reader
    files: tuple[Remote, ...] = ()

    def load(
        self, from_dir: Path | None = None, progress: Progress | None = None, cache: Path | None = None
    ) -> Rows:
        """The set's items and probes. An official set reads its files from `from_dir` (the user's
        own copy, not hash-checked) or downloads them into `cache` (default data/downloads/)."""
        from lib.probes.probesets.download import fetch  # the built-in sets never need it

        if not self.files:
            return self.read(self.set_id, [])
        if from_dir is not None:
            paths = [Path(from_dir) / f.filename for f in self.files]
            for path in paths:
                if not path.is_file():
                    raise ProbeSetError(f"{self.set_id} needs its official file {path.name} here", path)
        else:
            folder = (cache or DOWNLOADS) / self.set_id.split("/")[0]
            paths = [fetch(remote, folder, progress) for remote in self.files]
        rows = self.read(self.set_id, paths)
        if not rows:
            raise ProbeSetError("no rows: the file is empty", paths[0])
        return rows

    @property
    def origin(self) -> str | None:
        return " ".join(f.url for f in self.files) or None


# -- reading official files ------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line (a BOM and CRLF line ends are no error); a line that
    is not a JSON object is an error."""
    try:
        for number, line in numbered_lines(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProbeSetError(f"not valid JSON ({e.msg} at column {e.colno})", path, number) from None
            if not isinstance(row, dict):
                raise ProbeSetError("expected a JSON object", path, number)
            yield number, row
    except OSError as e:
        raise ProbeSetError(f"cannot read: {e.strerror}", path) from None
    except UnicodeDecodeError as e:
        raise ProbeSetError(f"not UTF-8 text ({e.reason})", path) from None


def field(
    row: dict[str, Any], dotted: str, path: Path, line: int, kind: type | tuple[type, ...] = str
) -> Any:
    """row["a"]["b"] for "a.b", or an error naming the file, line and key."""
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ProbeSetError(f"missing key{looks_like(row)}", path, line, dotted)
        value = value[part]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProbeSetError(f"expected {names}, found {type(value).__name__}", path, line, dotted)
    return value


def looks_like(row: dict[str, Any]) -> str:
    """A hint for a row of another set's file given in the wrong place."""
    base = row.get("base") if isinstance(row.get("base"), dict) else {}
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    guess = (
        "feedback.jsonl"
        if "prompt_template_type" in metadata
        else "are_you_sure.jsonl"
        if "correct_letter" in base
        else "answer.jsonl"
        if "incorrect_answer" in base
        else "mimicry.jsonl"
        if "attribution" in base
        else "a Perez et al. sycophancy file"
        if "answer_matching_behavior" in row
        else ""
    )
    return f" (this row looks like one of {guess}: is it the file of another set?)" if guess else ""


def official_messages(row: dict[str, Any], path: Path, line: int) -> tuple[Message, ...]:
    """The row's `prompt` as chat messages; a trailing `ai` turn stays as an assistant prefill."""
    turns = field(row, "prompt", path, line, list)
    if not turns:
        raise ProbeSetError("empty conversation", path, line, "prompt")
    messages = []
    for n, turn in enumerate(turns):
        key = f"prompt[{n}]"
        if not isinstance(turn, dict) or turn.get("type") not in ("human", "ai"):
            raise ProbeSetError("expected {type: human|ai, content: ...}", path, line, key)
        if not isinstance(turn.get("content"), str):
            raise ProbeSetError("missing text", path, line, f"{key}.content")
        messages.append((user if turn["type"] == "human" else assistant)(turn["content"]))
    return tuple(messages)
