"""The registry of evaluation suites: which apply where, and the numbers the retrain gate takes from them."""

from __future__ import annotations

from tuneloop.config import load_config
from tuneloop.evaluate.suite import Measure
from tuneloop.evaluate.suites import SUITES
from tuneloop.objectives import get_task


def test_few_shot_forgetting_alignment_privacy_hallucination_and_bias_are_registered_in_report_order():
    assert list(SUITES) == ["few_shot", "forgetting", "alignment", "privacy", "hallucination", "bias"]
    assert all(name == suite.name for name, suite in SUITES.items())


def test_each_suite_says_why_it_does_not_apply():
    config = load_config(None, {})
    few_shot, forgetting, alignment = (SUITES[name].applies(get_task("sft"), config) for name in ("few_shot", "forgetting", "alignment"))
    assert few_shot is forgetting is None and "set eval.judge_reward_run to a reward run" in alignment
    assert SUITES["alignment"].applies(get_task("sft"), load_config(None, {"eval.judge_reward_run": "runs/judge"})) is None
    few_shot, forgetting, alignment = (SUITES[name].applies(get_task("classify"), config) for name in ("few_shot", "forgetting", "alignment"))
    assert "few-shot applies to sft, qa" in few_shot and "does not generate text" in forgetting and "does not generate text" in alignment
    assert SUITES["bias"].applies(get_task("sft"), config) is None and SUITES["bias"].applies(get_task("classify"), config) is None
    off = load_config(None, {"eval.few_shot": [], "eval.forgetting": False})
    assert [suite.applies(get_task("sft"), off) for suite in list(SUITES.values())[:2]] == [
        "off (eval.few_shot is empty)",
        "off (eval.forgetting: false)",
    ]
    text = load_config(None, {"data.format": "text", "task": "cpt", "eval.judge_reward_run": "runs/judge"})
    assert "holds no chat prompts" in SUITES["alignment"].applies(get_task("cpt"), text)


def test_alignment_offers_the_mean_reward_to_the_gate():
    section = {"base": {"mean_reward": 0.1}, "tuned": {"mean_reward": 0.4}}
    assert SUITES["alignment"].gate_measures(section) == {"mean_reward": Measure(0.1, 0.4, lower_is_better=False)}


def test_forgetting_offers_qa_accuracy_to_the_gate_and_few_shot_nothing():
    section = {"base": {"qa_accuracy": 0.75, "qa_forgotten": 0}, "tuned": {"qa_accuracy": 0.7, "qa_forgotten": 3}}
    assert SUITES["forgetting"].gate_measures(section) == {"qa_accuracy": Measure(0.75, 0.7, lower_is_better=False)}
    assert SUITES["few_shot"].gate_measures({"scores": {}}) == {}


def test_hallucination_runs_for_qa_and_where_asked_and_offers_its_rates_to_the_gate():
    applies = SUITES["hallucination"].applies
    assert applies(get_task("qa"), load_config(None, {"task": "qa"})) is None
    assert "set eval.hallucination: true" in applies(get_task("sft"), load_config(None, {}))
    assert applies(get_task("sft"), load_config(None, {"eval.hallucination": True})) is None
    assert applies(get_task("qa"), load_config(None, {"task": "qa", "eval.hallucination": False})) == "off (eval.hallucination: false)"
    assert "does not generate text" in applies(get_task("classify"), load_config(None, {"task": "classify", "data.format": "label", "eval.hallucination": True}))
    section = {"base": {"hallucination_rate": 0.5, "abstention_rate": 0.0}, "tuned": {"hallucination_rate": 0.25, "abstention_rate": 0.5}}
    assert SUITES["hallucination"].gate_measures(section) == {
        "hallucination_rate": Measure(0.5, 0.25, lower_is_better=True),
        "abstention_rate": Measure(0.0, 0.5, lower_is_better=False),
    }
    no_unanswerable = {"base": {"hallucination_rate": 0.5, "abstention_rate": None}, "tuned": {"hallucination_rate": 0.5, "abstention_rate": None}}
    assert list(SUITES["hallucination"].gate_measures(no_unanswerable)) == ["hallucination_rate"]
