"""The grpo task's pieces: its config section and flags, what it refuses before anything is written, the
reward run's scores reaching TRL's GRPOTrainer (and its logged reward), the reference being the adapter
switched off, and the held-out scoring."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from tuneloop.config import RunConfig, load_config
from tuneloop.config_flags import config_flags
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.methods import apply_method, method_settings
from tuneloop.objectives import get_task
from tuneloop.rl import grpo as grpo_module
from tuneloop.rl import policy_score
from tuneloop.rl.grpo import GRPO, reward_function
from tuneloop.runs.folder import RunDir
from tuneloop.text.tokenize import render_prompt

PROMPTS = ["Ticket 12: the dashboard is down.", "Ticket 7: refund please.", "Ticket 3: login fails.", "Ticket 9: exports time out."]


def grpo_config(model_dir="tiny", **overrides):
    settings = {"model.name": str(model_dir), "task": "grpo", "data.format": "pairs", "grpo.reward_run": "runs/reward"}
    return load_config(None, {**settings, **overrides})


def pairs() -> list[Example]:
    return [Example("pairs.jsonl", line, prompt=p, chosen="Thanks, on it.", rejected="No.") for line, p in enumerate(PROMPTS, 1)]


class LengthScorer:
    """Stands in for a RewardScorer: the reward of an answer is its length in characters; records every call."""

    def __init__(self):
        self.calls = []
        self.model = torch.nn.Linear(1, 1)

    def scores(self, prompts, answers):
        self.calls.append((prompts, answers))
        return torch.tensor([float(len(answer)) for answer in answers])


@pytest.fixture
def tiny_policy(tiny_model_dir):
    config = grpo_config(tiny_model_dir)
    torch.manual_seed(0)
    model = apply_method(GRPO.load_model(config.model, None), method_settings("lora", r=4), "CAUSAL_LM")
    return model, GRPO.load_tokenizer(config.model)


def reward_run_folder(tmp_path, task="reward"):
    """A folder that reads as a finished run of ``task`` (its config and an empty adapter/)."""
    folder = tmp_path / f"{task}-run"
    folder.mkdir()
    RunDir(folder).write_config(load_config(None, {"task": task} if task != "grpo" else {"task": "grpo", "grpo.reward_run": "x"}))
    (folder / "adapter").mkdir()
    return folder


# --- config ---------------------------------------------------------------------------------------


def test_the_task_is_registered():
    assert get_task("grpo") is GRPO and GRPO.trains_itself and not GRPO.packs and not GRPO.perplexity


def test_the_grpo_section_is_refused_for_another_task():
    with pytest.raises(ConfigError, match="grpo.group_size set, but task is 'sft': the grpo section applies to task grpo only"):
        load_config(None, {"task": "sft", "grpo.group_size": 4})


def test_task_grpo_needs_a_reward_run():
    with pytest.raises(ConfigError, match="task grpo needs a reward model .* set grpo.reward_run"):
        load_config(None, {"task": "grpo"})


def test_completions_per_pass_must_divide_the_step():
    with pytest.raises(ConfigError, match=r"completions_per_pass \(3\) must divide the step's 16 answers"):
        grpo_config(**{"grpo.completions_per_pass": 3})
    assert grpo_config(**{"grpo.completions_per_pass": 4}).grpo.completions_per_pass == 4


def test_a_group_needs_two_answers():
    with pytest.raises(ConfigError, match="grpo.group_size"):
        grpo_config(**{"grpo.group_size": 1})


def test_every_setting_is_a_flag_whose_help_says_grpo():
    flags = {flag.dotted: flag for flag in config_flags(RunConfig)}
    grpo = {dotted: flag for dotted, flag in flags.items() if dotted.startswith("grpo.")}
    assert len(grpo) == len(RunConfig.model_fields["grpo"].annotation.model_fields)
    assert all(flag.help.startswith("GRPO: ") for flag in grpo.values())
    # An objective's settings always carry its name, so one objective's new setting never renames another's flag.
    assert all(flag.flag == dotted.replace(".", "-").replace("_", "-") for dotted, flag in grpo.items())
    assert grpo["grpo.reward_run"].flag == "grpo-reward-run" and flags["ppo.reward_run"].flag == "ppo-reward-run"
    assert flags["eval.max_new_tokens"].flag == "max-new-tokens"


# --- refused before anything is written ---------------------------------------------------------------


def test_a_reward_run_that_is_no_run_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"grpo.reward_run: .* is not a tuneloop run folder"):
        GRPO.check_config(grpo_config(**{"grpo.reward_run": str(tmp_path)}))


def test_a_reward_run_of_another_task_is_refused(tmp_path):
    sft = reward_run_folder(tmp_path, "sft")
    with pytest.raises(ConfigError, match=r"grpo.reward_run: .* is a run of task 'sft', not a reward model"):
        GRPO.check_config(grpo_config(**{"grpo.reward_run": str(sft)}))
    GRPO.check_config(grpo_config(**{"grpo.reward_run": str(reward_run_folder(tmp_path))}))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"method.name": "full"}, "method 'full' has none to switch off"),
        ({"train.nproc": 2}, "train.nproc: task grpo trains in one process"),
        ({"train.curriculum": "length"}, "train.curriculum: task grpo samples its own answers"),
        ({"data.replay_fraction": 0.1}, "data.replay_fraction: task grpo learns from its reward model"),
        ({"data.format": "text"}, "data.format 'text' does not fit task 'grpo'"),
    ],
)
def test_what_the_loop_cannot_honour_is_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        GRPO.check_config(grpo_config(**{"grpo.reward_run": str(reward_run_folder(tmp_path)), **overrides}))


def test_resume_is_refused_for_a_task_with_its_own_loop(tmp_path):
    from tuneloop.train.run import train

    out = tmp_path / "run"
    out.mkdir()
    config = grpo_config(**{"out": str(out)})
    RunDir(out).write_config(config)
    with pytest.raises(ConfigError, match="--resume: task grpo trains in a loop of its own"):
        train(config, resume=True)


# --- tokens, reward function, training ----------------------------------------------------------------


def test_a_conversation_is_read_without_its_final_answer(tiny_policy):
    _, tokenizer = tiny_policy
    turns = ({"role": "user", "content": "Ticket 12: the dashboard is down."}, {"role": "assistant", "content": "On it."})
    ids = GRPO.tokenize(tokenizer, Example("chat.jsonl", 1, messages=turns), None)
    assert tokenizer.decode(ids) == render_prompt(tokenizer, turns[:1])


def test_the_reward_function_scores_the_assistant_text_of_each_completion():
    scorer = LengthScorer()
    prompts = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    completions = [[{"role": "assistant", "content": "four"}], [{"role": "assistant", "content": "sixsix"}]]
    assert reward_function(scorer)(prompts=prompts, completions=completions, completion_ids=None) == [4.0, 6.0]
    assert scorer.calls == [(prompts, ["four", "sixsix"])]
    assert reward_function(scorer).__name__ == "reward_model"


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_fit_sends_the_sampled_answers_to_the_reward_run_and_logs_its_scores(tiny_policy, tiny_model_dir, tmp_path, monkeypatch, beta):
    model, tokenizer = tiny_policy
    scorer = LengthScorer()
    monkeypatch.setattr(grpo_module.RewardScorer, "from_run", classmethod(lambda cls, run, setting: scorer))
    config = grpo_config(
        tiny_model_dir,
        **{"grpo.group_size": 2, "grpo.prompts_per_step": 2, "grpo.max_new_tokens": 4, "grpo.beta": beta, "train.max_steps": 2},
    )
    data = SimpleNamespace(splits=SimpleNamespace(train=pairs()))
    summary = GRPO.fit(model, tokenizer, data, config, tmp_path)

    assert len(scorer.calls) == 2  # one batch of answers per step
    for prompts, answers in scorer.calls:
        assert len(answers) == 4 and all(isinstance(answer, str) for answer in answers)
        assert prompts[0] == prompts[1] and prompts[2] == prompts[3]  # each prompt's group of 2, together
        assert {turns[0]["content"] for turns in prompts} <= set(PROMPTS)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [record for record in records if "reward" in record]
    assert [record["step"] for record in steps] == [1, 2]
    for record, (_, answers) in zip(steps, scorer.calls):
        assert record["reward"] == pytest.approx(sum(map(len, answers)) / len(answers))
        assert record["rewards/reward_model/mean"] == record["reward"] and record["real_tokens"] > 0
        assert ("kl" in record) == (beta > 0)
    assert summary["steps"] == 2 and summary["final_mean_reward"] == steps[-1]["reward"]
    assert summary["real_tokens"] == steps[-1]["real_tokens"]
    # The reference is the adapter switched off: TRL's frozen copy of it is gone, nothing else is trainable.
    assert list(model.peft_config) == ["default"]
    assert all(".default." in name for name, parameter in model.named_parameters() if parameter.requires_grad)
    assert not (tmp_path / "checkpoints").exists()


def test_too_few_prompts_for_one_step_are_refused(tiny_policy, tiny_model_dir, tmp_path):
    model, tokenizer = tiny_policy
    config = grpo_config(tiny_model_dir, **{"grpo.prompts_per_step": 5})
    data = SimpleNamespace(splits=SimpleNamespace(train=pairs()))
    with pytest.raises(Exception, match=r"holds 4 prompt\(s\), fewer than grpo.prompts_per_step \(5\)"):
        GRPO.fit(model, tokenizer, data, config, tmp_path)


# --- held-out scoring ----------------------------------------------------------------------------------


def test_score_is_the_mean_reward_of_the_greedy_answers(tiny_policy, tiny_model_dir, monkeypatch):
    model, tokenizer = tiny_policy
    scorer = LengthScorer()
    monkeypatch.setattr(policy_score, "reward_scorer", lambda run, setting, written: scorer)
    config = grpo_config(tiny_model_dir, **{"eval.max_new_tokens": 5})
    result = GRPO.score(model, tokenizer, pairs(), config, None, False)
    answers = result["predictions"]
    assert len(answers) == len(PROMPTS) and scorer.calls == [([[{"role": "user", "content": p}] for p in PROMPTS], answers)]
    assert result["scores"] == {"mean_reward": pytest.approx(sum(map(len, answers)) / len(answers))}
    # Greedy: the same answers again.
    assert GRPO.score(model, tokenizer, pairs(), config, None, False)["predictions"] == answers
