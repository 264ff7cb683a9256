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
        "a preference model prefers sycophantic over baseline truthful responses",
        "Claude 2 PM",
        0.95,
        "95% of the time over baseline truthful responses; about 45% over helpful truthful responses "
        "on the hardest misconceptions",
        "Fig. 7a",
    ),
    Reported(
        "preference",
        "a preference model prefers sycophantic over helpful truthful responses, hardest misconceptions",
        "Claude 2 PM",
        0.45,
        "95% of the time over baseline truthful responses; about 45% over helpful truthful responses "
        "on the hardest misconceptions",
        "Fig. 7a",
    ),
)

# Where in the preference test (lib.measure.preference) each Fig. 7a number is drawn: the kind of
# truthful reply it compares with and the band. The paper's "hardest misconceptions" is drawn by our
# hardest band, an analogy only (its bands were measured on its own misconception data; ours are
# the author's judgement).
# Keyed by (against, band), each naming the `finding` of its REPORTED row. The paper reports 95% over
# baseline truthful responses without a difficulty, drawn beside our share over every band.
PREFERENCE_POINTS = {
    ("baseline", "all"): "a preference model prefers sycophantic over baseline truthful responses",
    ("helpful", "hard"): (
        "a preference model prefers sycophantic over helpful truthful responses, hardest misconceptions"
    ),
}


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


def preference_shares() -> pd.DataFrame:
    """The reported Fig. 7a shares (against, band, value, finding, statement, where), each with the
    kind of truthful reply and the band of the preference test it is drawn beside."""
    rows = table("preference")
    where = {finding: point for point, finding in PREFERENCE_POINTS.items()}
    rows = rows[rows["value"].notna() & rows["finding"].isin(list(where))]
    points = rows["finding"].map(where)
    columns = ["against", "band", "value", "finding", "statement", "where"]
    return rows.assign(against=points.str[0], band=points.str[1])[columns].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# What predicts human preference (Sec. 4.1, Fig. 5), as reported: for lib.measure.features. The
# paper's full ordering of its 23 features in Fig. 5 is not here: no copy of the figure's values was
# available to this project, and none is made up. Its text could not be read here either: what is
# here is what its abstract and secondary summaries of it say (SECONDARY, shown with every use).
SECONDARY = "from the paper's abstract and secondary summaries; its text was not available here"
FEATURES_METHOD = (
    "15K comparisons of the helpfulness data of hh-rlhf; 23 features labelled by GPT-4 comparing the "
    "two responses (our list has 24: named after the paper's released label columns, with agreement "
    "with the user's explicit and implicit views merged into one, so it does not map one to one onto "
    "the paper's 23); a Bayesian logistic regression with a Laplace prior "
    "(6,000 posterior samples from four MCMC chains); the effect of a feature: the probability that a "
    "response is preferred when it is more X, all else equal, with 95% credible intervals"
)


@dataclass(frozen=True)
class FeatureFinding:
    rank: str  # where the paper places the feature(s)
    feature: str  # the paper's name
    statement: str
    where: str


FEATURE_FINDINGS: tuple[FeatureFinding, ...] = (
    FeatureFinding(
        "among the most predictive",
        "matches user's beliefs",
        "consistently one of the most predictive features of human preference in the paper's "
        "sensitivity analyses, though not always the most predictive: the exact ranking depends on the "
        "experimental condition",
        "Sec. 4.1, Fig. 5, App. B",
    ),
    FeatureFinding(
        "size of an effect",
        "any one feature",
        "the presence or absence of one feature changes the probability that a response is preferred "
        "by up to about 6%",
        "Sec. 4.1, Fig. 5",
    ),
    FeatureFinding(
        "all features together",
        "all 23",
        "the features predict the human choice on held-out comparisons with 71.3% accuracy, about as "
        "well as a 52B preference model trained on the same data (72%)",
        "Sec. 4.1",
    ),
)


def feature_findings() -> pd.DataFrame:
    """FEATURE_FINDINGS as a table (rank, feature, statement, where)."""
    rows = [asdict(f) for f in FEATURE_FINDINGS]
    return pd.DataFrame(rows, columns=list(FeatureFinding.__dataclass_fields__))
