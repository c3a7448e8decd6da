"""Group relative policy optimisation (Shao et al., 2024) through TRL's ``GRPOTrainer``: the critic-free
alternative to :mod:`tuneloop.rl.ppo`.

For each prompt of a step the policy samples ``grpo.group_size`` answers; the reward run
(``grpo.reward_run``, a finished run of task reward, through :class:`~tuneloop.rl.reward_model.RewardScorer`)
scores each, and an answer's advantage is its reward minus its group's mean (divided by the group's
standard deviation by default), so no value head is trained. The policy loss is PPO's clipped one
(``grpo.clip_range``) on those advantages, plus ``grpo.beta`` times a per-token KL estimate to the
reference when beta > 0.

The policy is the adapter the recipe has already put on ``model.name`` (``Task.fit``: the recipe loads
the model, applies the method, writes the run header, and saves the adapter and ``train.json`` after).
The reference is that policy with its adapter switched off, as for dpo and kto: TRL makes a frozen copy
of a given PeftModel's adapter (named ``ref``) for it, which :func:`reference_is_the_base` removes, so
TRL takes its other path (peft's ``disable_adapter``) and no copy is held. Hence the task needs a
switchable method (LoRA, DoRA, rsLoRA, IA3).

Prompts come from any chat-like format (:data:`~tuneloop.rl.prompts.PROMPT_FORMATS`); their answers, if
any, are not used. Judged on held-out prompts by :func:`~tuneloop.rl.policy_score.score_policy`: the
mean reward of the model's greedy answers.
"""

from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback

from tuneloop.errors import DataError
from tuneloop.objectives.base import Task, check_reference_is_the_base
from tuneloop.objectives.dpo import render_ids
from tuneloop.rl.policy_score import score_policy
from tuneloop.rl.loop_checks import check_loop_settings
from tuneloop.rl.prompts import PROMPT_FORMATS, prompt_turns
from tuneloop.rl.reward_model import RewardScorer, check_reward_run
from tuneloop.runs.folder import RunDir
from tuneloop.train.callbacks import JsonlLogCallback, RichProgressCallback
from tuneloop.train.precision import choose_precision, model_width

SETTING = "grpo.reward_run"
REWARD_NAME = "reward_model"  # TRL logs the reward function's scores as rewards/<its name>/mean


class GrpoTask(Task):
    name = "grpo"
    formats = PROMPT_FORMATS
    default_primary = "mean_reward"
    generates = True  # the policy is a chat model
    perplexity = False  # the loss is GRPO's policy loss, not a per-token cross-entropy
    packs = False
    trains_itself = True

    def check_config(self, config) -> None:
        super().check_config(config)
        check_reference_is_the_base(self.name, config.method.name)
        check_loop_settings(self.name, config)
        check_reward_run(config.grpo.reward_run, SETTING)

    def tokenize(self, tokenizer, example, labels):
        """The prompt's ids as the policy reads them (rendered with a generation prompt); data.max_length bounds them."""
        return render_ids(tokenizer, prompt_turns(example), add_generation_prompt=True)

    def fit(self, model, tokenizer, data, config, out) -> dict:
        from datasets import Dataset
        from trl import GRPOTrainer

        from tuneloop.train.run import remove_default_printers

        prompts = [prompt_turns(example) for example in data.splits.train]
        if len(prompts) < config.grpo.prompts_per_step:
            raise DataError(
                f"task grpo: the training split holds {len(prompts)} prompt(s), fewer than grpo.prompts_per_step "
                f"({config.grpo.prompts_per_step}); lower grpo.prompts_per_step or add prompts"
            )
        scorer = RewardScorer.from_run(config.grpo.reward_run, setting=SETTING)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_function(scorer),
            args=grpo_arguments(config, out, model_width(model)),
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            processing_class=tokenizer,
            callbacks=[StepTokens(), JsonlLogCallback(RunDir(out).log_file), RichProgressCallback()],
        )
        reference_is_the_base(model)
        remove_default_printers(trainer)
        scorer.model.to(trainer.accelerator.device)
        trainer.train()
        drop_if_empty(Path(trainer.args.output_dir))
        return training_summary(trainer.state, config.grpo.reward_run)

    def score(self, model, tokenizer, test, config, labels, packs):
        return score_policy(model, tokenizer, test, config, config.grpo.reward_run, SETTING)


def reward_function(scorer: RewardScorer):
    """TRL's reward function, ``(prompts, completions, **kwargs) -> [float]``: the reward run's score of each
    completion (conversational: a list of messages, whose assistant text is the answer) to its prompt's turns."""

    def reward_model(prompts, completions, **kwargs) -> list[float]:
        answers = [completion if isinstance(completion, str) else answer_text(completion) for completion in completions]
        return scorer.scores([list(prompt) for prompt in prompts], answers).tolist()

    reward_model.__name__ = REWARD_NAME
    return reward_model


def answer_text(messages: list[dict]) -> str:
    return "".join(message["content"] for message in messages if message["role"] == "assistant" and message.get("content"))


def reference_is_the_base(model) -> None:
    """Drop the frozen ``ref`` copy of the adapter that TRL adds to a PeftModel when beta > 0: without it,
    TRL computes the reference log-probs with the adapter switched off, i.e. from the base."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
        model.set_adapter("default")


def drop_if_empty(folder: Path) -> None:
    """TRL's output folder holds nothing here (no checkpoints are saved); an empty ``checkpoints/`` would read
    as a run that can be resumed."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def grpo_arguments(config, out: Path, width: int | None = None):
    """TRL's GRPOConfig for the run: one optimiser step per batch of prompts_per_step x group_size answers
    (per ``grpo.iterations_per_step``), gradient accumulated over ``grpo.completions_per_pass``; ``width``: the
    model's hidden size, which ``train.precision auto`` probes (:mod:`tuneloop.train.precision`)."""
    from trl import GRPOConfig

    from tuneloop.train.run import _cuda_available

    g, t = config.grpo, config.train
    answers = g.prompts_per_step * g.group_size
    per_pass = g.completions_per_pass or answers
    return GRPOConfig(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=answers // per_pass,
        num_generations=g.group_size,
        max_completion_length=g.max_new_tokens,
        temperature=g.temperature,
        beta=g.beta,
        epsilon=g.clip_range,
        num_iterations=g.iterations_per_step,
        scale_rewards=g.scale_rewards,
        loss_type=g.loss_type,
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        lr_scheduler_type="cosine",
        seed=t.seed,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        gradient_checkpointing=False,
        use_cpu=not _cuda_available(),
        dataloader_num_workers=0,
        **choose_precision(t.precision, width=width).trainer_flags(),
    )


def training_summary(state, reward_run: str) -> dict:
    """What train.json records beside the recipe's own fields: steps, real (prompt + answer) tokens and the
    mean reward of the first and the last step's answers."""
    rewards = [record["reward"] for record in state.log_history if record.get("reward") is not None]
    return {
        "steps": state.global_step,
        "epochs": state.epoch,
        "real_tokens": int(state.num_input_tokens_seen),
        "first_mean_reward": rewards[0] if rewards else None,
        "final_mean_reward": rewards[-1] if rewards else None,
        "reward_run": str(reward_run),
    }


class StepTokens(TrainerCallback):
    """Adds ``real_tokens`` (prompt + answer tokens so far) and ``tokens_per_s`` to each step's record,
    before the log file and the progress bar read it (callbacks see the record in the order given)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.tokens_at_start = time.perf_counter(), state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        logs["real_tokens"] = int(state.num_input_tokens_seen)
        seconds = max(time.perf_counter() - self.started, 1e-9)
        logs["tokens_per_s"] = round((state.num_input_tokens_seen - self.tokens_at_start) / seconds, 2)


GRPO = GrpoTask()
