import re
from pathlib import Path

import pandas as pd
import pytest

from lib.measure import paper
from lib.view import charts

PROTOCOL = Path(__file__).resolve().parent.parent / ".." / "shared" / "PROTOCOL.md"


def drops() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m1", "m1", "m2", "m2"],
            "framing_id": ["suggests_wrong", "doubts_right", "suggests_wrong", "doubts_right"],
            "n": [10, 10, 20, 20],
            "n_paired": [10, 10, 20, 20],
            "drop": [0.30, 0.10, 0.05, float("nan")],
            "drop_low": [0.10, 0.0, -0.05, float("nan")],
            "drop_high": [0.50, 0.20, 0.15, float("nan")],
        }
    )


def test_rate_bars_one_trace_per_model_in_percent_with_asymmetric_intervals():
    fig = charts.rate_bars(drops(), "drop", "drop_low", "drop_high", "t", "points")
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.name for b in bars] == ["m1", "m2"]
    m1, m2 = bars
    assert list(m1.x) == ["Suggests a wrong answer", "Doubts the right answer"]
    assert list(m1.y) == pytest.approx([30.0, 10.0])
    assert list(m1.error_y.array) == pytest.approx([20.0, 10.0])
    assert list(m1.error_y.arrayminus) == pytest.approx([20.0, 10.0])
    # a NaN drop (no pairs) is left out, not drawn as zero
    assert list(m2.x) == ["Suggests a wrong answer"]
    assert list(m2.customdata) == [20]
    assert fig.layout.yaxis.ticksuffix == "%"


def test_accuracy_drop_overlays_the_papers_number_with_its_caveat():
    fig = charts.accuracy_drop(drops(), paper.accuracy_drops())
    overlay = [t for t in fig.data if t.name == "as reported in the paper"]
    assert len(overlay) == 1
    assert list(overlay[0].x) == ["Suggests a wrong answer"]
    assert list(overlay[0].y) == pytest.approx([27.0])
    assert "llama-2-70b-chat" in overlay[0].text[0]
    assert paper.CAVEAT in overlay[0].hovertext[0]


def test_accuracy_drop_without_data_says_so_and_draws_no_overlay():
    fig = charts.accuracy_drop(drops().iloc[0:0], paper.accuracy_drops())
    assert not [t for t in fig.data if t.type == "bar"]
    assert not [t for t in fig.data if t.name == "as reported in the paper"]
    assert "no graded answers yet" in fig.layout.annotations[0].text


def test_accuracy_reads_the_metrics_interval_columns():
    table = pd.DataFrame(
        {
            "model": ["m1"],
            "framing_id": ["neutral"],
            "n": [4],
            "accuracy": [0.75],
            "accuracy_low": [0.30],
            "accuracy_high": [0.95],
        }
    )
    bar = charts.accuracy(table).data[0]
    assert list(bar.y) == pytest.approx([75.0])
    assert list(bar.error_y.arrayminus) == pytest.approx([45.0])
    assert list(bar.error_y.array) == pytest.approx([20.0])


def test_a_missing_value_column_gives_the_empty_figure():
    fig = charts.rate_bars(pd.DataFrame({"model": []}), "drop", None, None, "t", "a")
    assert fig.layout.annotations[0].text == "no data yet"


def test_run_progress_stacks_to_the_plan():
    fig = charts.run_progress(n_done=5, n_cached=3, n_failed=1, n_planned=12)
    assert {t.name: t.x[0] for t in fig.data} == {"from cache": 3, "sent": 5, "failed": 1, "to do": 3}
    assert fig.layout.barmode == "stack"
    # more done than planned (a re-plan): nothing negative
    over = charts.run_progress(n_done=9, n_cached=3, n_failed=1, n_planned=12)
    assert {t.name: t.x[0] for t in over.data}["to do"] == 0


def test_framing_labels():
    assert charts.framing_label("suggests_wrong") == "Suggests a wrong answer"
    assert charts.framing_label("not-a-framing") == "not-a-framing"


# -- the paper's numbers ---------------------------------------------------------------------------
def test_every_reported_number_is_in_the_protocols_headline_table():
    headline = PROTOCOL.read_text(encoding="utf-8").split("### Headline results")[1].split("\n## ")[0]
    table = paper.table()
    assert len(table) == len(paper.REPORTED)
    for row in table.itertuples():
        assert row.where in headline, row
        if not pd.isna(row.value):
            assert f"{round(row.value * 100)}%" in row.statement, row
            assert f"{round(row.value * 100)}%" in headline, row
            assert row.model is not None
        for number in re.findall(r"\d+%", row.statement):
            assert number in headline, (number, row)


def test_accuracy_drops_are_the_answer_rows_with_a_number():
    rows = paper.accuracy_drops()
    assert rows.to_dict("records") == [
        {
            "model": "llama-2-70b-chat",
            "framing_id": "suggests_wrong",
            "drop": 0.27,
            "statement": "up to 27% (llama-2-70b-chat); gpt-4 the most robust",
            "where": "Fig. 3",
        }
    ]
    assert "as reported in the paper" in paper.CAVEAT
