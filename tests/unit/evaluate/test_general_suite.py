"""The general-ability suite shipped with tuneloop: its data, and the QA scoring the retrain gate uses."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tuneloop.data.schema import normalise_text
from tuneloop.data import general_prompts as general_suite
from tuneloop.evaluate.general import GENERAL_QUESTIONS, answer_is_right, qa_accuracy


def test_every_part_is_there_and_large_enough():
    assert len(general_suite.replay_prompts()) >= 100
    assert len(general_suite.eval_prompts()) >= 24  # the default eval.forgetting_prompts
    assert len(general_suite.general_paragraphs()) >= 10
    assert len(general_suite.general_questions()) >= 16


def test_replay_pool_and_held_out_prompts_never_overlap():
    replay = {normalise_text(p) for p in general_suite.replay_prompts()}
    held_out = {normalise_text(p) for p in general_suite.eval_prompts()}
    assert not replay & held_out
    assert len(replay) == len(general_suite.replay_prompts())  # no duplicates inside either
    assert len(held_out) == len(general_suite.eval_prompts())


def test_questions_have_answers_and_paragraphs_are_prose():
    for question, answers in general_suite.general_questions():
        assert question.endswith("?") and answers and all(a == a.lower() and a for a in answers)
    assert all(len(p.split()) >= 30 for p in general_suite.general_paragraphs())


def test_the_data_files_ship_with_the_package():
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["tuneloop"]
    folder = Path(general_suite.__file__).parent / general_suite.DATA_FOLDER
    for path in folder.iterdir():
        assert any(path.match(pattern.split("/")[-1]) and pattern.startswith("data/general_data/") for pattern in patterns), path


def test_qa_scoring_accepts_whole_words_only():
    assert answer_is_right("The capital is Paris.", ["paris"])
    assert answer_is_right("It has twenty-four hours", ["24", "twenty-four"])
    assert not answer_is_right("Parisian food", ["paris"])
    questions = general_suite.general_questions()
    perfect = [answers[0] for _, answers in questions]
    assert qa_accuracy(perfect) == 1.0
    assert qa_accuracy([""] * len(questions)) == 0.0


def test_the_gate_keeps_its_question_list():
    assert GENERAL_QUESTIONS[0] == ("What is the capital of France?", "paris")
    assert len(GENERAL_QUESTIONS) == len(general_suite.general_questions())


def test_content_hash_changes_with_content():
    assert general_suite.content_hash(["a", "b"]) != general_suite.content_hash(["a", "c"])
    assert len(general_suite.content_hash(general_suite.replay_prompts())) == 64
