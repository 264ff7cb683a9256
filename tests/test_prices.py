"""The price table: costs and estimates from data/prices.csv, snapshots, local servers, bad files."""

from __future__ import annotations

import os

import pytest

from lib.run import prices

HEADER = "model,input_usd_per_mtok,output_usd_per_mtok,note\n"


def test_the_committed_table_reads_and_prices_common_models():
    table = prices.load()
    assert "openai:gpt-4o-mini" in table and "anthropic:claude-haiku-4-5" in table
    assert all(":" in model for model in table)
    mini = table["openai:gpt-4o-mini"]
    expected = (1000 * mini.input_usd_per_mtok + 500 * mini.output_usd_per_mtok) / 1e6
    assert prices.cost("openai:gpt-4o-mini", 1000, 500) == pytest.approx(expected)


def test_cost_and_estimate(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "openai:model-a,2.00,8.00,test\n")
    assert prices.cost("openai:model-a", 1_000_000, 500_000, path=path) == pytest.approx(6.0)
    assert prices.cost("openai:model-a", None, 10, path=path) is None
    # 10 requests of 1,000 prompt tokens, each taken to use all 200 output tokens.
    assert prices.estimate("openai:model-a", 10, 1000, 200, path=path) == pytest.approx(
        10 * (2000 + 1600) / 1e6
    )
    assert prices.cost("openai:unknown", 10, 10, path=path) is None
    assert prices.estimate("openai:unknown", 10, 10, 10, path=path) is None


def test_snapshots_fall_back_to_their_undated_row(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER + "anthropic:claude-x,1,5,test\nopenai:gpt-y,1,1,test\nopenai:gpt-y-mini,0.5,0.5,test\n"
    )
    assert prices.price("anthropic:claude-x-20250101", path=path).output_usd_per_mtok == 5
    assert prices.price("openai:gpt-y-2024-08-06", path=path).input_usd_per_mtok == 1
    assert prices.price("anthropic:claude-x-latest", path=path) is not None
    assert prices.price("openai:gpt-y-mini", path=path).input_usd_per_mtok == 0.5  # not gpt-y's


def test_bundled_and_local_servers_cost_nothing_but_remote_ones_are_looked_up(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER)
    assert prices.cost("bundled:smollm2", 100, 100, path=path) == 0.0
    assert prices.cost("bundled:smollm2", None, None, path=path) == 0.0
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://192.168.1.20:8000/v1"):
        assert prices.cost("openai:llama3:8b", 100, 100, base_url=url, path=path) == 0.0
    assert (
        prices.cost("openai:llama3:8b", 100, 100, base_url="https://api.together.xyz/v1", path=path) is None
    )


def test_edits_apply_without_a_restart(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "openai:m,1,1,test\n")
    assert prices.cost("openai:m", 1_000_000, 0, path=path) == pytest.approx(1.0)
    path.write_text(HEADER + "openai:m,3,1,edited\n")
    os.utime(path, (1, 1))  # a new mtime even on a coarse clock
    assert prices.cost("openai:m", 1_000_000, 0, path=path) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [
        ("model,input,output,note\n", 2, "header"),
        (HEADER + "openai:a,1,1,ok\nopenai:b,one,1,bad\n", 4, "'one' is not a number"),
        (HEADER + "openai:a,1,1\n", 3, "expected 4 fields"),
        (HEADER + "gpt-4o,1,1,no provider\n", 3, "provider:model"),
        (HEADER + "openai:a,-1,1,negative\n", 3, "0 or more"),
        (HEADER + "openai:a,1,1,x\nopenai:a,2,2,y\n", 4, "has a price already"),
    ],
)
def test_a_malformed_file_names_the_file_and_line(tmp_path, body, line, says):
    path = tmp_path / "prices.csv"
    path.write_text("# a comment line\n" + body)
    with pytest.raises(prices.PriceFileError) as caught:
        prices.cost("openai:a", 1, 1, path=path)
    assert f"{path}, line {line}" in str(caught.value)
    assert says in str(caught.value)


def test_batch_prices_are_the_discounted_standard_ones(tmp_path):
    """OpenAI's and Anthropic's batch APIs take 50% off; an empty discount, or a file of the older
    four columns, leaves a batch's cost unknown, never the standard price."""
    table = prices.load()
    assert all(p.batch_discount == 0.5 for m, p in table.items() if m.startswith(("openai:", "anthropic:")))
    assert prices.cost("openai:gpt-4o-mini", 1000, 500, batch=True) == pytest.approx(
        prices.cost("openai:gpt-4o-mini", 1000, 500) / 2
    )
    path = tmp_path / "prices.csv"
    path.write_text(
        "model,input_usd_per_mtok,output_usd_per_mtok,batch_discount,note\n"
        "openai:a,2,8,0.5,test\nopenai:b,2,8,,no batch price\n"
    )
    assert prices.cost("openai:a", 1_000_000, 0, path=path, batch=True) == pytest.approx(1.0)
    assert prices.estimate("openai:a", 10, 1000, 200, path=path, batch=True) == pytest.approx(
        10 * (2000 + 1600) / 2e6
    )
    assert prices.cost("openai:b", 1_000_000, 0, path=path) == pytest.approx(2.0)
    assert prices.cost("openai:b", 1_000_000, 0, path=path, batch=True) is None
    old = tmp_path / "old.csv"
    old.write_text(HEADER + "openai:a,2,8,test\n")
    assert prices.cost("openai:a", 1_000_000, 0, path=old, batch=True) is None
    assert prices.cost("bundled:smollm2", 10, 10, path=old, batch=True) == 0.0


@pytest.mark.parametrize("discount", ["half", "1.5", "-0.1"])
def test_a_bad_batch_discount_names_the_file_and_line(tmp_path, discount):
    path = tmp_path / "prices.csv"
    path.write_text(
        f"model,input_usd_per_mtok,output_usd_per_mtok,batch_discount,note\nopenai:a,1,1,{discount},x\n"
    )
    with pytest.raises(prices.PriceFileError, match=f"{path}, line 2: batch_discount"):
        prices.cost("openai:a", 1, 1, path=path)
