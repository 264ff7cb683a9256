"""Two writer processes and several reader threads on one store at once: nothing fails, nothing is
lost, and readers never see a count go back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from lib.paths import REPO
from lib.store import Store

SECONDS = 10.0
READERS = 4

# One item and one probe per transaction, through Store.ingest (Store.writing() inside), for
# SECONDS; prints how many it wrote.
WRITER = """
import json, sys, time
from lib.probes.items import Item, Probe, item_id, user
from lib.store import Store
from tests.fixtures import a_set

path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = Store(path)
set_id = f"test/{name}"
written = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    iid = item_id(set_id, written)
    item = Item(iid, set_id, "answer", f"question {written}", {"correct_answer": str(written)})
    probe = Probe(iid, "neutral", (user(f"question {written}"),))
    added = store.ingest(a_set(set_id, "answer", name), [(item, [probe])])
    assert added == (1, 1), added
    written += 1
print(json.dumps({"written": written}))
"""


def test_two_writer_processes_and_reader_threads(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path)  # the schema exists before anyone reads
    writers = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(SECONDS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("writer-1", "writer-2")
    }
    seen: list[list[dict[str, int]]] = [[] for _ in range(READERS)]
    failures: list[BaseException] = []

    def read(observations: list[dict[str, int]]) -> None:
        store = Store(path)
        try:
            while any(w.poll() is None for w in writers.values()):
                sets = store.stats()["sets"]
                observations.append({name: sets.get(f"test/{name}", {}).get("items", 0) for name in writers})
                time.sleep(0.005)
        except BaseException as e:  # reported below: the test fails on any reader error
            failures.append(e)

    threads = [threading.Thread(target=read, args=(observations,)) for observations in seen]
    for thread in threads:
        thread.start()
    outputs = {name: w.communicate(timeout=SECONDS + 120) for name, w in writers.items()}
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    for name, (_, err) in outputs.items():
        assert writers[name].returncode == 0, err
    written = {name: json.loads(out)["written"] for name, (out, _) in outputs.items()}
    final = Store(path).stats()["sets"]
    assert {name: final[f"test/{name}"]["items"] for name in writers} == written
    assert {name: final[f"test/{name}"]["probes"] for name in writers} == written
    assert all(n > 10 for n in written.values()), written

    for observations in seen:
        assert len(observations) > 10
        for name in writers:
            counts = [o[name] for o in observations]
            assert counts == sorted(counts), f"a reader saw {name}'s count go back"
    # The writers interleaved: readers saw both part-way at once, more than once.
    midway = [o for obs in seen for o in obs if all(0 < o[name] < written[name] for name in writers)]
    assert len({tuple(o.values()) for o in midway}) > 2
