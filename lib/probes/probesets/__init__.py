"""The registry of probe sets: each with a fixed id and task, loaded to items and probes.

Use: `ps = get("builtin/facts-answer")`, then `rows = ps.load()` (an official set reads
`load(from_dir=...)` or downloads), then `store.ingest(ps, rows)` (lib.store): one transaction,
returning how many items and probes were new.
"""

from __future__ import annotations

from lib.probes.probesets.arithmetic_mc import read_arithmetic_mc
from lib.probes.probesets.base import ProbeSet, ProbeSetError, Progress, Remote, Rows, UnknownSet
from lib.probes.probesets.builtin import read_facts, read_feedback_texts, read_ladder
from lib.probes.probesets.custom import PLAYGROUND, PLAYGROUND_TITLE, playground_item
from lib.probes.probesets.perez import read_perez
from lib.probes.probesets.sycophancy_eval import read_answer, read_are_you_sure, read_feedback, read_mimicry
from lib.probes.probesets.wei import read_wei

__all__ = [
    "PLAYGROUND_SET",
    "SETS",
    "ProbeSet",
    "ProbeSetError",
    "Progress",
    "Remote",
    "Rows",
    "UnknownSet",
    "get",
    "playground_item",
]

_SYCOPHANCY_EVAL = "https://raw.githubusercontent.com/meg-tong/sycophancy-eval/main/datasets/"
_SYCOPHANCY_EVAL_HF = "https://huggingface.co/datasets/meg-tong/sycophancy-eval/resolve/main/"
_PEREZ = "https://raw.githubusercontent.com/anthropics/evals/main/sycophancy/"
_SHARMA = "SycophancyEval (Sharma et al. 2023)"
_PEREZ_PAPER = "Perez et al. 2022, anthropics/evals"


def _perez(name: str, title: str, about: str) -> ProbeSet:
    filename = f"sycophancy_on_{name}.jsonl"
    return ProbeSet(
        f"perez/{name}",
        "opinion",
        title,
        "official",
        f"{about} A user biography reveals a view, then a multiple-choice question; how often does "
        f"the answer match the user's view? ({_PEREZ_PAPER})",
        read_perez,
        (Remote(_PEREZ + filename, filename),),
    )


_ALL = (
    ProbeSet(
        "sycophancy-eval/answer",
        "answer",
        "Answer (official)",
        "official",
        f"TriviaQA and TruthfulQA questions, each neutral and with the user doubting the right answer, "
        f"suggesting a wrong one or suggesting the right one. {_SHARMA}",
        read_answer,
        (
            Remote(
                _SYCOPHANCY_EVAL + "answer.jsonl",
                "answer.jsonl",
                "3da2c2bbf685cf2c6cbfc6bf67449caad6fe1d56b67924087b3792ffba47bcc1",
            ),
        ),
    ),
    ProbeSet(
        "sycophancy-eval/are_you_sure",
        "are_you_sure",
        "Are you sure? (official)",
        "official",
        f"Multiple-choice and free-form questions; after the first answer the user says "
        f"\"I don't think that's right. Are you sure?\". {_SHARMA}",
        read_are_you_sure,
        (
            Remote(
                _SYCOPHANCY_EVAL + "are_you_sure.jsonl",
                "are_you_sure.jsonl",
                "16e034c2ec6a6145c0058863a7c0f41fee5ffa7f9f0391547ae3685e713f115f",
            ),
        ),
    ),
    ProbeSet(
        "sycophancy-eval/feedback",
        "feedback",
        "Feedback (official)",
        "official",
        f"Arguments, math solutions and poems to comment on, with the user liking, disliking, having "
        f"written or not written them. {_SHARMA}",
        read_feedback,
        (
            Remote(
                _SYCOPHANCY_EVAL + "feedback.jsonl",
                "feedback.jsonl",
                "3687c5c335b41adf13bb6004fe9e3eff4067fb0457b4b225e88f55e76e18399f",
            ),
        ),
    ),
    ProbeSet(
        "sycophancy-eval/mimicry",
        "mimicry",
        "Mimicry (official)",
        "official",
        f"Poems the user attributes to the wrong poet: does the reply repeat the mistake? {_SHARMA}",
        read_mimicry,
        (Remote(_SYCOPHANCY_EVAL_HF + "mimicry.jsonl", "mimicry.jsonl"),),
    ),
    _perez("nlp_survey", "NLP survey opinions (Perez)", "Questions on natural language processing research."),
    _perez("philpapers2020", "PhilPapers 2020 opinions (Perez)", "Questions from the PhilPapers survey."),
    _perez(
        "political_typology_quiz",
        "Political typology opinions (Perez)",
        "Questions from a political typology quiz.",
    ),
    ProbeSet(
        "builtin/wei-arithmetic",
        "opinion",
        "False arithmetic claims",
        "builtin",
        'The 2,500 false claims "x + y = S" (x, y from 1 to 50), asked neutrally and with a professor '
        "of Mathematics agreeing; Disagree is always right (after Wei et al. 2023).",
        read_wei,
    ),
    ProbeSet(
        "builtin/arithmetic-are-you-sure",
        "are_you_sure",
        "Arithmetic: are you sure?",
        "builtin",
        "Multiple-choice arithmetic with plausible wrong choices, in the official letter-only format, "
        'then challenged with "Are you sure?".',
        read_arithmetic_mc,
    ),
    ProbeSet(
        "builtin/facts-answer",
        "answer",
        "Facts in four framings",
        "builtin",
        "Capitals, chemical elements, books, paintings, the Solar System and composers, each neutral, "
        "doubted, with a wrong suggestion and with a right one (tables in data/reference/facts/).",
        read_facts,
    ),
    ProbeSet(
        "builtin/pressure-ladder",
        "ladder",
        "Pressure ladder on facts",
        "builtin",
        "The fact tables' questions asked neutrally, then under six rungs of rising pressure toward the "
        'wrong answer: a doubt, "are you sure?", a confident wrong claim, a professor\'s authority, a '
        "cited source and a personal stake (data/reference/facts/; the rungs in lib/probes/framings.py).",
        read_ladder,
    ),
    ProbeSet(
        "builtin/feedback",
        "feedback",
        "Solutions and arguments to comment on",
        "builtin",
        "Short math solutions (half with a planted error) and arguments with a named fallacy, in the five "
        "feedback framings (data/reference/feedback_texts.jsonl).",
        read_feedback_texts,
    ),
)

SETS: dict[str, ProbeSet] = {ps.set_id: ps for ps in _ALL}

# Questions written on the Playground page: stored like a set, never loaded from anywhere.
PLAYGROUND_SET = ProbeSet(
    PLAYGROUND,
    "answer",
    PLAYGROUND_TITLE,
    "custom",
    "Questions written on the Playground page, in the four answer framings.",
    lambda set_id, files: [],
)


def get(set_id: str) -> ProbeSet:
    try:
        return SETS[set_id]
    except KeyError:
        raise UnknownSet(f"unknown probe set {set_id!r}; known: {', '.join(SETS)}") from None
