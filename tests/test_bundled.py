"""The bundled SmolLM2 server, for real: it starts, answers chat completions through the OpenAI
client, counts the requests it received, and stops with its `with` block, its user, or its user's death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lib.paths import REPO
from lib.probes.items import assistant, user
from lib.run.providers import bundled, make_provider

QUESTION = [user("What is the capital of France?")]


@pytest.fixture(scope="module", autouse=True)
def stop_the_shared_server():
    yield
    bundled.server().stop()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, what: str, bound: float = 30.0) -> None:
    """Poll a condition that must come true (a bound against hanging, not a speed check)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {bound} s")
        time.sleep(0.1)


def test_a_real_completion_counted_at_the_server():
    provider = make_provider("bundled:smollm2")
    assert (provider.model, provider.base_url, provider.prefill_mode) == (
        "bundled:smollm2",
        None,
        "instruction",
    )
    before = bundled.request_count()

    reply = provider.complete(QUESTION, temperature=0.0, max_tokens=8, seed=1)
    assert reply.text.strip()
    assert reply.prompt_tokens and 0 < reply.completion_tokens <= 8
    assert reply.finish_reason in ("stop", "length")
    provider.complete([*QUESTION, assistant("The capital is")], temperature=0.0, max_tokens=4)

    assert bundled.request_count() == before + 2


def test_threads_share_one_server():
    provider = make_provider("bundled:smollm2")
    port = bundled.server().port
    before = bundled.request_count()
    replies: list[str] = []
    threads = [
        threading.Thread(target=lambda: replies.append(provider.complete(QUESTION, 0.0, 4).text))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 3
    assert bundled.server().port == port
    assert bundled.request_count() == before + 3


def test_the_server_stops_with_its_block_and_a_provider_brings_it_back():
    provider = make_provider("bundled:smollm2")
    before = bundled.request_count()
    with bundled.server() as server:
        port, pid = server.port, server.pid
        assert listening(port)
        provider.complete(QUESTION, 0.0, 4)
    assert not server.running
    assert not listening(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # The provider restarts the shared server (on a new port) and the count carries on.
    assert provider.complete(QUESTION, 0.0, 4).text is not None
    assert bundled.server().running
    assert bundled.request_count() == before + 2


def test_a_server_of_its_own_counts_its_own_requests(tmp_path):
    from lib.run.providers.openai_chat import OpenAIChat

    with bundled.BundledServer(tmp_path / "own.log", n_ctx=512) as server:
        assert server.start_seconds is not None
        client = OpenAIChat(bundled.MODEL_ALIAS, server.url, key="not-needed")
        client.complete(QUESTION, 0.0, 4)
        assert server.request_count() == 1
        assert '"GET /v1/models ' in (tmp_path / "own.log").read_text()  # the readiness check
    assert not listening(server.port)


def test_the_server_dies_with_the_process_that_started_it():
    code = (
        "from lib.run.providers import bundled\n"
        "s = bundled.server()\n"
        "print(s.port, s.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        port, pid = (int(x) for x in child.stdout.readline().split())
        assert listening(port)
    finally:
        child.send_signal(signal.SIGKILL)  # no atexit: only the server's watchdog can end it
        child.wait()
    wait_until(lambda: not listening(port), "the orphaned server closing its port")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), "the orphaned server exiting")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_another_process_can_use_a_running_server():
    server = bundled.server()
    before = server.request_count()
    code = (
        "from lib.run.providers import bundled, make_provider\n"
        "make_provider('bundled:smollm2').complete([{'role': 'user', 'content': 'Hi'}], 0.0, 4)\n"
        "print(bundled.request_count())\n"
    )
    env = {**os.environ, "SYCOSCOPE_BUNDLED_URL": server.url, "SYCOSCOPE_BUNDLED_LOG": str(server.log_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == before + 1
    assert server.request_count() == before + 1


def test_a_server_that_cannot_start_says_why(tmp_path):
    server = bundled.BundledServer(tmp_path / "bad.log", n_ctx=-1)  # the server refuses a negative context
    with pytest.raises(bundled.BundledServerError) as caught:
        server.start()
    message = str(caught.value)
    assert "exited" in message and str(tmp_path / "bad.log") in message
    assert "n_ctx" in message  # the end of its log says what was wrong
    assert not server.running
