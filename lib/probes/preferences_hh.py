"""Human preference comparisons in the chosen/rejected format of Anthropic's hh-rlhf data (Bai et al.
2022), which Sharma et al. 2023 (section 4.1, Fig. 5) analysed: what makes a response preferred?

Each line of a file is a JSON object {"chosen": TEXT, "rejected": TEXT}, each TEXT a whole
conversation written "\\n\\nHuman: ...\\n\\nAssistant: ...". The two share the conversation up to the
last Assistant turn and differ in that turn: the response a crowdworker preferred (chosen) and the
one they did not (rejected). A file is plain JSON lines or gzip-compressed (.gz), as released.

The shared conversation is found as the two texts' common beginning, cut back to the last
"\\n\\nAssistant:" in it: a response that itself writes "Human:" or "Assistant:" (some do, continuing
the dialogue) stays whole in its response. A pair whose two responses are the same text has no human
choice to explain: it is left out (`read` counts it in `Pairs.identical`).

The official files are downloaded for users with the project's downloader (sha256-checked against
the Git LFS pointers of github.com/anthropics/hh-rlhf, whose LFS objects GitHub serves from its
media host; the repository's default branch is taken to be `master`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lib import paths
from lib.probes.items import Message, assistant, user
from lib.probes.probesets.base import ProbeSetError, Progress, Remote
from lib.probes.probesets.download import fetch
from lib.probes.probesets.textfile import numbered_lines

_MEDIA = "https://media.githubusercontent.com/media/anthropics/hh-rlhf/master/"


def _remote(path: str, sha256: str) -> Remote:
    return Remote(_MEDIA + path, path.replace("/", "-"), sha256)


# The helpfulness tranches (the paper analysed the helpfulness data), each file's sha256 from its
# LFS pointer in the repository.
FILES = {
    "helpful-base/test": _remote(
        "helpful-base/test.jsonl.gz", "8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b"
    ),
    "helpful-base/train": _remote(
        "helpful-base/train.jsonl.gz", "518a5bf288456fc9f3b7c980c54116fba0c52f274d3f4d344675d83e4058f6f4"
    ),
    "helpful-online/test": _remote(
        "helpful-online/test.jsonl.gz", "39a475cc7e0df972902f8e3a0972726fce826ac65369bda8c671de4330c60a10"
    ),
    "helpful-rejection-sampled/test": _remote(
        "helpful-rejection-sampled/test.jsonl.gz",
        "abc35dbc56015db1dae0faa484514ccbc3eee0133bfcd557fc69250619b028bb",
    ),
}
DEFAULT = "helpful-base/test"
FOLDER = "hh-rlhf"  # under data/downloads/
_TURN = re.compile(r"\n\n(Human|Assistant): ")
_LAST_ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class Pair:
    """One human choice between two responses to the same conversation."""

    key: str  # made from the texts: the same comparison has the same key in any file
    line: int
    conversation: tuple[Message, ...]  # the shared turns, ending with the user's last message
    chosen: str
    rejected: str


@dataclass(frozen=True)
class Pairs:
    source: str  # how the file is named in the store and on the page
    pairs: list[Pair]
    identical: int  # lines left out: both responses the same text


def source_name(path: Path) -> str:
    """An official file by its name in FILES (e.g. hh-rlhf/helpful-base/test), any other by its file name."""
    for name, remote in FILES.items():
        if path.name == remote.filename and path.parent.name == FOLDER:
            return f"{FOLDER}/{name}"
    return path.name


def cached_path(name: str = DEFAULT) -> Path:
    """Where the official file `name` is kept once downloaded (it may not be there yet)."""
    return paths.DOWNLOADS / FOLDER / _official(name).filename


def download(name: str = DEFAULT, progress: Progress | None = None) -> Path:
    """The official file `name` (a key of FILES), downloaded into data/downloads/hh-rlhf/ first if
    it is not there: whole and sha256-checked, or not kept at all."""
    return fetch(_official(name), paths.DOWNLOADS / FOLDER, progress)


def _official(name: str) -> Remote:
    if name not in FILES:
        raise ValueError(f"no official hh-rlhf file {name!r}: one of {', '.join(FILES)}")
    return FILES[name]


def read(path: Path, limit: int | None = None) -> Pairs:
    """The first `limit` pairs of a file (all without a limit), in file order. A line that is not a
    JSON object with the two texts, or whose texts share no conversation ending in an Assistant turn,
    is an error naming the file and the line."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, not {limit}")
    pairs: list[Pair] = []
    identical = 0
    for number, text in _lines(path):
        if limit is not None and len(pairs) >= limit:
            break
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProbeSetError(f"not valid JSON ({e.msg} at column {e.colno})", path, number) from None
        if not isinstance(row, dict):
            raise ProbeSetError("expected a JSON object", path, number)
        chosen, rejected = (_text(row, key, path, number) for key in ("chosen", "rejected"))
        if chosen == rejected:
            identical += 1
            continue
        pairs.append(parse(chosen, rejected, path, number))
    if not pairs:
        raise ProbeSetError("no comparisons: the file is empty", path)
    return Pairs(source_name(path), pairs, identical)


def parse(chosen: str, rejected: str, path: Path | str = "", line: int = 0) -> Pair:
    """The shared conversation and the two final responses of one comparison."""
    common = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        common += 1
    cut = chosen.rfind(_LAST_ASSISTANT, 0, common)  # the marker wholly in the shared part
    if cut < 0:
        raise ProbeSetError(
            "chosen and rejected do not share a conversation ending with an Assistant turn", path, line
        )
    shared = chosen[:cut]
    turns = _TURN.split("\n\n" + shared.lstrip("\n"))
    if turns[0].strip() or len(turns) < 3 or turns[-2] != "Human":
        raise ProbeSetError(
            "expected the conversation to start with 'Human:' and end with the user's turn", path, line
        )
    conversation = tuple(
        user(text.strip()) if role == "Human" else assistant(text.strip())
        for role, text in zip(turns[1::2], turns[2::2], strict=True)
    )
    start = cut + len(_LAST_ASSISTANT)
    chosen_reply, rejected_reply = chosen[start:].strip(), rejected[start:].strip()
    key = hashlib.sha256(json.dumps([shared, chosen_reply, rejected_reply]).encode()).hexdigest()[:16]
    return Pair(key, line, conversation, chosen_reply, rejected_reply)


def _text(row: dict, key: str, path: Path, line: int) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        found = "missing" if key not in row else f"a {type(value).__name__}, not text"
        raise ProbeSetError(f"{found}: expected the conversation as text", path, line, key)
    return value


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of every non-blank line, a .gz file uncompressed as it is read."""
    try:
        if path.suffix != ".gz":
            yield from numbered_lines(path)
            return
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line.removesuffix("\n").removesuffix("\r")
    except OSError as e:  # gzip's BadGzipFile and EOFError for a cut file are OSError or EOFError
        raise ProbeSetError(f"cannot read: {e.strerror or e}", path) from None
    except EOFError:
        raise ProbeSetError("cannot read: the compressed file ends early", path) from None
    except UnicodeDecodeError as e:
        raise ProbeSetError(f"not UTF-8 text ({e.reason})", path) from None
