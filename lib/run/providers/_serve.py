"""The bundled model's server process: llama-cpp-python's OpenAI-compatible server
(`python -m llama_cpp.server`, same arguments), which also ends when the process that started it ends.

Its parent holds the write end of this process's stdin and never writes: end of file on stdin means
the parent has closed it or died, however it died (even SIGKILL), so the server exits. (PR_SET_PDEATHSIG
would fire when the parent *thread* that started us exits, and Streamlit starts work in short-lived
threads.) Run as a script by lib.run.providers.bundled; it imports nothing from Sycoscope.

Every call into the model runs on one thread of its own: llama.cpp's OpenMP worker threads belong to
the thread that calls it, and the server calls from whichever of its worker threads is free, so each
new caller started a new team of spinning threads beside the old ones. On two cores that made a
short answer a third slower than the same call made in process (bench/bench_runner.py).
"""

import functools
import os
import runpy
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

_MODEL_THREAD = "llama-model"


def _exit_when_parent_goes() -> None:
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read makes interpreter exit abort.
    while os.read(0, 4096):
        pass
    os._exit(0)


def _on_one_thread() -> None:
    from llama_cpp import Llama

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_MODEL_THREAD)

    def one_thread(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            if threading.current_thread().name.startswith(_MODEL_THREAD):
                return method(*args, **kwargs)  # a call from a call: already there
            return pool.submit(method, *args, **kwargs).result()

        return call

    for name in ("create_completion", "create_chat_completion"):
        setattr(Llama, name, one_thread(getattr(Llama, name)))


def main() -> None:
    from llama_cpp.server.settings import Settings

    # The server's settings also read environment variables named like its fields (PORT, MODEL,
    # API_KEY, N_CTX...); only the command line may configure it.
    for name in list(os.environ):
        if name.lower() in Settings.model_fields or name in ("HOST", "PORT", "CONFIG_FILE"):
            del os.environ[name]
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    _on_one_thread()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
