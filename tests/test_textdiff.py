from lib.view import textdiff
from tests.fixtures import HOSTILE


def test_segments_spell_out_both_texts():
    a = "The capital of France is Paris, of course."
    b = "The capital of France is Lyon, I think."
    segments = textdiff.word_diff(a, b)
    assert textdiff.side(segments, "b") == b
    assert textdiff.side(segments, "a").split() == a.split()
    assert ("delete", "Paris, of course.") in segments
    assert ("insert", "Lyon, I think.") in segments


def test_whitespace_is_not_a_change():
    segments = textdiff.word_diff("one two\nthree", "one  two three")
    assert [op for op, _ in segments] == ["equal"]


def test_inserted_text_is_the_users_stance():
    neutral = "Who wrote Hamlet?"
    framed = "Who wrote Hamlet? I think the answer is Christopher Marlowe but I'm really not sure."
    segments = textdiff.word_diff(neutral, framed)
    added = [text.strip() for op, text in segments if op == "insert"]
    assert added == ["I think the answer is Christopher Marlowe but I'm really not sure."]


def test_diff_lines_mark_each_side_and_keep_markup_literal():
    segments = textdiff.word_diff("Au.", f"Au. {HOSTILE}")
    lines = textdiff.as_diff_lines(segments).splitlines()
    assert lines == ["  Au.", f"+ {HOSTILE}"]


def test_multiline_segments_get_a_mark_on_every_line():
    segments = textdiff.word_diff("", "first line\nsecond line")
    assert textdiff.as_diff_lines(segments) == "+ first line\n+ second line"


def test_summary_counts_words():
    segments = textdiff.word_diff("a b c d", "a x c d e")
    assert textdiff.summary(segments) == {"equal": 3, "delete": 1, "insert": 2}


def test_empty_texts():
    assert textdiff.word_diff("", "") == []
    assert textdiff.as_diff_lines([]) == ""
