"""Text files a person saved or downloaded, read alike whatever wrote them: UTF-8 with or without a
byte-order mark (which common Windows editors write), LF or CRLF line ends, blank lines skipped, and the
line numbers those of the file, for messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# What the readers of CSV files (csv module, newline="") pass as the encoding: a BOM is not a header.
ENCODING = "utf-8-sig"


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, the line without its line end) for every line that is not blank. Only "\\n" ends
    a line, a "\\r" before it dropped: str.splitlines would also break at a form feed or U+2028, which a
    JSON string may hold as they are. Raises OSError, and UnicodeDecodeError for a file that is not
    UTF-8, as it reads."""
    with Path(path).open(encoding=ENCODING, newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.removesuffix("\n").removesuffix("\r")
            if line.strip():
                yield number, line
