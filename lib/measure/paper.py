"""The numbers the SycophancyEval paper reports (Sharma et al. 2023), to show beside what this store
measured. Only the headline numbers quoted in PROTOCOL.md, section 1, are here: per-model values of
the paper's figures beyond them are not available, and none is made up. Every display of these rows
carries CAVEAT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

PAPER = "Sharma et al. 2023, Towards Understanding Sycophancy in Language Models (arXiv 2310.13548)"
CAVEAT = f"as reported in the paper ({PAPER}), not measured here"


@dataclass(frozen=True)
class Reported:
    task: str  # a task of lib.probes.framings.TASKS, or "preference" for the preference-model finding
    finding: str
    model: str | None  # the model the number is about, when it is about one
    value: float | None  # the number as a fraction, when the paper gives one for this model
    statement: str  # the finding in the paper's terms
    where: str  # figure or section of the paper
    framing_id: str | None = None  # the framing the number is about, when there is one


REPORTED: tuple[Reported, ...] = (
    Reported(
        "answer",
        "accuracy drop when the user suggests a wrong answer",
        "llama-2-70b-chat",
        0.27,
        "up to 27% (llama-2-70b-chat); gpt-4 the most robust",
        "Fig. 3",
        "suggests_wrong",
    ),
    Reported(
        "are_you_sure",
        "wrongly admits a mistake when asked 'are you sure?'",
        "claude-1.3",
        0.98,
        "Claude 1.3 wrongly admits mistakes on 98% of questions",
        "Sec. 3.2",
        "are_you_sure",
    ),
    Reported(
        "are_you_sure",
        "changes its first answer when asked 'are you sure?'",
        "gpt-4",
        0.32,
        "models change their first answer: 32% (gpt-4) to 86% (claude-1.3)",
        "App. A.2, Fig. 16",
        "are_you_sure",
    ),
    Reported(
        "are_you_sure",
        "changes its first answer when asked 'are you sure?'",
        "claude-1.3",
        0.86,
        "models change their first answer: 32% (gpt-4) to 86% (claude-1.3)",
        "App. A.2, Fig. 16",
        "are_you_sure",
    ),
    Reported(
        "are_you_sure",
        "admits a mistake when asked 'are you sure?'",
        "gpt-4",
        0.42,
        "models admit a mistake: 42% (gpt-4) to 98% (claude-1.3)",
        "App. A.2, Fig. 16",
        "are_you_sure",
    ),
    Reported(
        "are_you_sure",
        "admits a mistake when asked 'are you sure?'",
        "claude-1.3",
        0.98,
        "models admit a mistake: 42% (gpt-4) to 98% (claude-1.3)",
        "App. A.2, Fig. 16",
        "are_you_sure",
    ),
    Reported(
        "feedback",
        "feedback positivity follows the user's stance",
        None,
        None,
        "more positive when the user likes or wrote the text, more negative when they dislike it "
        "(per-model values only in Fig. 1)",
        "Sec. 3.1",
    ),
    Reported(
        "preference",
        "a preference model prefers sycophantic over truthful responses",
        "Claude 2 PM",
        0.95,
        "95% of the time; about 45% on the hardest misconceptions",
        "Fig. 7a",
    ),
)


def table(task: str | None = None) -> pd.DataFrame:
    """The reported numbers (all, or one task's) as a table, one row per model and finding."""
    rows = [asdict(r) for r in REPORTED if task is None or r.task == task]
    return pd.DataFrame(rows, columns=list(Reported.__dataclass_fields__))


def accuracy_drops() -> pd.DataFrame:
    """The reported accuracy drops (model, framing_id, drop), for the overlay on the headline chart."""
    rows = table("answer")
    return rows[rows["value"].notna()][["model", "framing_id", "value", "statement", "where"]].rename(
        columns={"value": "drop"}
    )
