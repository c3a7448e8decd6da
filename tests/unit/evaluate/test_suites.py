"""The registry of evaluation suites: which apply where, and the numbers the retrain gate takes from them."""

from __future__ import annotations

from tuneloop.config import load_config
from tuneloop.evaluate.suite import Measure
from tuneloop.evaluate.suites import SUITES
from tuneloop.objectives import get_task


def test_few_shot_and_forgetting_are_registered_in_report_order():
    assert list(SUITES) == ["few_shot", "forgetting"]
    assert all(name == suite.name for name, suite in SUITES.items())


def test_each_suite_says_why_it_does_not_apply():
    config = load_config(None, {})
    assert [suite.applies(get_task("sft"), config) for suite in SUITES.values()] == [None, None]
    few_shot, forgetting = (suite.applies(get_task("classify"), config) for suite in SUITES.values())
    assert "few-shot applies to sft, qa" in few_shot and "does not generate text" in forgetting
    off = load_config(None, {"eval.few_shot": [], "eval.forgetting": False})
    assert [suite.applies(get_task("sft"), off) for suite in SUITES.values()] == [
        "off (eval.few_shot is empty)",
        "off (eval.forgetting: false)",
    ]


def test_forgetting_offers_qa_accuracy_to_the_gate_and_few_shot_nothing():
    section = {"base": {"qa_accuracy": 0.75, "qa_forgotten": 0}, "tuned": {"qa_accuracy": 0.7, "qa_forgotten": 3}}
    assert SUITES["forgetting"].gate_measures(section) == {"qa_accuracy": Measure(0.75, 0.7, lower_is_better=False)}
    assert SUITES["few_shot"].gate_measures({"scores": {}}) == {}
