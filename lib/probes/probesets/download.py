"""Fetching an official file into the download cache, whole or not at all."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from lib.probes.probesets.base import ProbeSetError, Progress, Remote

CHUNK = 1 << 16


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(remote: Remote, folder: Path, progress: Progress | None = None, timeout: float = 60.0) -> Path:
    """The cached copy of `remote` in `folder`, downloaded first if absent. The download goes to a
    .part file renamed only when complete (and matching its sha256 when one is known), so an
    interrupted or corrupt download never passes for the file."""
    target = folder / remote.filename
    if target.is_file():
        _check_hash(remote, target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        _download(remote, part, progress, timeout)
        _check_hash(remote, part)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(target)
    return target


def _download(remote: Remote, part: Path, progress: Progress | None, timeout: float) -> None:
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while block := response.read(CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(f"download {remote.filename}", done, total)
    except urllib.error.HTTPError as e:
        raise ProbeSetError(f"download failed: HTTP {e.code} {e.reason}", remote.url) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise ProbeSetError(f"download failed: {reason}", remote.url) from None
    # urllib does not notice a connection closed before Content-Length bytes arrived
    if total is not None and done != total:
        raise ProbeSetError(
            f"download truncated: got {done:,} of {total:,} bytes; try again", remote.url, key=remote.filename
        )


def _check_hash(remote: Remote, path: Path) -> None:
    if remote.sha256 and (actual := sha256_of(path)) != remote.sha256:
        raise ProbeSetError(
            f"checksum mismatch: sha256 {actual}, expected {remote.sha256} "
            f"(from {remote.url}); delete the file and download again",
            path,
            key=remote.filename,
        )
