"""A real PostgreSQL for the DuckLake tests and bench: Debian's binaries, a cluster in a temporary
folder, listening on a free loopback port with password authentication, stopped after.

PostgreSQL refuses to run as root, so as root the cluster belongs to `nobody` and every server
command runs through `runuser`; as any other user it runs as that user. `make install-test` installs
Debian's `postgresql` package where it is missing; `binaries()` finds it (PATH first, then Debian's
/usr/lib/postgresql/<version>/bin).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "sycoscope"  # the database role the store connects as
RUN_AS = "nobody"  # the system user the server runs as, when we are root


def binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and createdb, or None where PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        folder = Path(found).resolve().parent
        if (folder / "pg_ctl").exists() and (folder / "createdb").exists():
            return folder
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    bin: Path
    folder: Path

    def dsn(self, dbname: str) -> str:
        """A libpq connection string without the password (it goes in PGPASSWORD)."""
        return f"dbname={dbname} host={self.host} port={self.port} user={self.user}"

    def createdb(self, name: str) -> str:
        """A new empty database; returns its name."""
        subprocess.run(
            [str(self.bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return name


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def running(password: str = "s3cret-pg-pass") -> Iterator[Postgres]:
    """A PostgreSQL cluster started for the block and stopped (and deleted) after it."""
    folder_bin = binaries()
    if folder_bin is None:
        raise RuntimeError("PostgreSQL is not installed: run `make install-test`")
    folder = Path(tempfile.mkdtemp(prefix="sycoscope-pg-"))
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, RUN_AS)
        shutil.chown(pwfile, RUN_AS)
    port = _free_port()
    run = lambda argv: subprocess.run(_as_server_user(argv), check=True, capture_output=True, cwd=folder)  # noqa: E731
    try:
        run(
            [str(folder_bin / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync"]
        )  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run(
            [
                str(folder_bin / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(folder / "log"),
                "-w",
                "start",
            ]
        )
        try:
            yield Postgres("127.0.0.1", port, USER, password, folder_bin, folder)
        finally:
            run([str(folder_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
