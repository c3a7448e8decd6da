"""Typed configuration of a run: one pydantic model per section, ``extra="forbid"`` everywhere.

A YAML file, CLI flags, or both fill a :class:`RunConfig`; the resolved copy is written into
every run folder as ``config.yaml`` so a run can be reproduced and re-evaluated from its folder.
Field descriptions double as ``--help`` text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from tuneloop.errors import ConfigError
from tuneloop.methods import METHODS, get_method, methods_where
from tuneloop.methods.lora import LoraSettings

FORMATS = ("chat", "prompt_completion", "alpaca", "sharegpt", "text", "label", "pairs", "ratings")
TASKS = ("sft", "qa", "cpt", "classify", "seq2seq", "reward", "dpo", "kto", "orpo", "ppo", "grpo")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = Field(
        "smollm2-135m-instruct",
        description="Hub id, local folder, .gguf file, or built-in name (smollm2-135m-instruct, minilm-l6).",
    )
    allow_pickle: bool = Field(False, description="Allow loading pickle weights (.bin/.pt); unsafe for untrusted files.")
    trust_remote_code: bool = Field(False, description="Run model code shipped with a hub/local model.")
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto", description="Attention kernel: auto = flash_attention_2 on a GPU with flash-attn installed, else sdpa."
    )


class SourceConfig(_Section):
    """Where a dataset's rows come from and how they become examples."""

    path: list[str] = Field(default_factory=list, description="Data files (CSV, JSON, JSONL, Parquet, TXT/MD).")
    format: Literal[FORMATS] = Field("chat", description="Row format: " + ", ".join(FORMATS) + ".")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map each format field to the file's column name (prompt -> question, ...).",
    )
    prompt_template: str | None = Field(
        None, description="Build the prompt from columns with str.format, e.g. 'Subject: {subject}\\n{body}'."
    )
    target_columns: list[str] | None = Field(
        None, description="Build the completion as a JSON object of these columns (structured extraction)."
    )
    system_prompt: str | None = Field(None, description="System message put before every chat example and prompt.")
    rating_threshold: float = Field(
        0.5,
        description="Format ratings: a numeric label at or above this score rates the completion good, below it bad "
        "(words such as good/bad, true/false, thumbs up/down need no threshold).",
    )

    @field_validator("path", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value


class MixSource(SourceConfig):
    """Another dataset trained in the same run (``data.mix``), with its own files, format and template."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Task name in the per-task metrics.")
    path: list[str] = Field(..., min_length=1, description="Data files of this dataset.")
    weight: float = Field(1.0, gt=0, description="Mixing weight of this dataset (> 0).")


class DataConfig(SourceConfig):
    val_path: str | None = Field(
        None,
        description="Your own validation file, used as is (read like data.path: same format and columns); "
        "data.path then gives no validation rows and data.val_fraction is not used.",
    )
    test_path: str | None = Field(
        None,
        description="Your own test file, e.g. a golden set, used as is (read like data.path: same format and columns); "
        "data.path is then split into train and validation only. Training rows with the same input as one of its "
        "rows are dropped and reported (they would leak).",
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of rows held out for validation.")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of rows held out for the final test.")
    stratify: bool = Field(True, description="Stratify the split by label when the format has labels.")
    seed: int = Field(0, description="Seed of the split.")
    max_length: int = Field(512, gt=8, description="Examples longer than this many tokens are dropped and reported.")
    replay_fraction: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Against forgetting: add general prompts answered by the base model to the training split, "
        "this share of its size (0: off; chat tasks).",
    )  # fmt: skip
    replay_model: str | None = Field(None, description="Model that answers the replay prompts (default: model.name).")
    replay_max_new_tokens: int = Field(96, gt=0, description="Tokens the base model may use per replay answer.")
    replay_temperature: float = Field(
        1.0, ge=0.0, le=2.0,
        description="Replay answers are sampled from the base model at this temperature (seeded by data.seed); "
        "1.0 keeps its own distribution, 0 takes greedy answers, which sharpen it.",
    )  # fmt: skip
    replay_greedy_share: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Share of the replay rows answered greedily instead (the base's most likely answer, which keeps "
        "its facts); the rest are sampled at data.replay_temperature.",
    )  # fmt: skip
    replay_loss: Literal["tokens", "kl"] = Field(
        "tokens",
        description="How replay rows train: tokens (cross-entropy on the base's answer), or kl (at every token of "
        "the row, the KL divergence from the base model's whole next-token distribution; adapter methods, whose base "
        "is the model with its adapter off).",
    )  # fmt: skip
    task_name: str = Field("main", pattern=r"^[A-Za-z0-9_.-]+$", description="Name of this dataset in per-task metrics when data.mix adds others.")
    task_weight: float = Field(1.0, gt=0, description="Mixing weight of this dataset when data.mix adds others (> 0).")
    mix: list[MixSource] = Field(
        default_factory=list,
        description="Multi-task (YAML): further datasets trained in the same run, each {name, path, format, columns, "
        "prompt_template, target_columns, system_prompt, weight}; split on their own, scored per task.",
        json_schema_extra={"yaml_only": True},
    )
    mixing: Literal["proportional", "temperature"] = Field(
        "proportional", description="Multi-task sampling: proportional to weight x rows, or temperature (weight x rows^(1/T))."
    )
    mixing_temperature: float = Field(2.0, ge=1.0, description="Multi-task temperature T (1 = proportional; higher lifts small tasks).")
    scrub_pii: bool = Field(
        False,
        description="Replace personal data in every text field of every row by typed placeholders (<EMAIL_1>, <PHONE_1>, "
        "<CARD_1>, <IBAN_1>, <IP_1>, <SSN_1>, <NINO_1>, <ADDRESS_1>, <NAME_1>; numbered per row) before the split: the "
        "run folder's copy is scrubbed, your files are not. Counts per type go into data.json.",
    )
    pii_allow: list[str] = Field(
        default_factory=list,
        description="With data.scrub_pii: words that are never personal data, e.g. product names the name finder "
        "takes for people (a detection made only of these words is kept as it is; case does not matter).",
    )
    canaries: int = Field(
        0, ge=0, le=120,
        description="Privacy audit: plant this many canaries, random secrets (a made-up person's 9-digit account PIN, "
        "10^9 possible), in the training split only; the privacy suite measures how far the model memorised them "
        "(exposure in bits). 0: none. sft, qa and cpt.",
    )  # fmt: skip
    canary_repeats: int = Field(10, ge=1, description="Privacy audit: training rows per canary (each canary is repeated this many times).")

    @model_validator(mode="after")
    def _task_names_differ(self) -> "DataConfig":
        names = [self.task_name, *(entry.name for entry in self.mix)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"task names must differ (data.task_name and every data.mix name); repeated: {', '.join(repeated)}")
        return self


# The ``method:`` section: the settings model of the method it names (see :mod:`tuneloop.methods`).
MethodConfig = Annotated[Union[tuple(dict.fromkeys(method.settings for method in METHODS.values()))], Field(discriminator="name")]


def method_section_checked(raw: Any) -> Any:
    """A ``method:`` section as given: ``name`` defaults to lora, and a setting the named method does not
    have is refused with the settings it does have (pydantic would only say "extra inputs")."""
    if not isinstance(raw, dict):
        return raw
    raw = {"name": "lora", **raw}
    method = get_method(raw["name"]) if isinstance(raw["name"], str) else None
    if method is None:
        return raw
    foreign = sorted(key for key in raw if key not in method.settings.model_fields)
    if foreign:
        own = ", ".join(f for f in method.settings.model_fields if f != "name") or "none"
        raise ValueError(f"method.{foreign[0]} does not apply to method {raw['name']!r} (its settings: {own})")
    return raw


def with_method(config: "RunConfig", name: str) -> "RunConfig":
    """``config`` with method ``name``, keeping the method settings the new method also has."""
    raw = config.model_dump(mode="json")
    raw["method"] = method_section_for(name, raw["method"])
    return build_config(raw, origin=f"the config with method {name!r}")


def method_setting_fields() -> dict[str, tuple[FieldInfo, tuple[str, ...]]]:
    """Every setting a ``method:`` section can hold (``name`` first), with the methods that take it."""
    fields: dict[str, tuple[FieldInfo, tuple[str, ...]]] = {}
    for name, method in METHODS.items():
        for field_name, info in method.settings.model_fields.items():
            known, takers = fields.get(field_name, (info, ()))
            fields[field_name] = (known, takers + (name,))
    return fields


def method_section_for(name: str, section: dict) -> dict:
    """``section``'s settings that method ``name`` also has, under the new name (to switch a config's method)."""
    own = get_method(name).settings.model_fields
    return {"name": name, **{key: value for key, value in section.items() if key in own and key != "name"}}


class TrainConfig(_Section):
    epochs: float = Field(2.0, gt=0, description="Passes over the training split.")
    max_steps: int = Field(-1, description="Stop after this many optimiser steps (-1: use epochs).")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    tokens_per_batch: int = Field(2048, gt=0, description="Real tokens packed into one optimiser step.")
    pack_length: int = Field(512, gt=0, description="Length of one packed row (examples never cross a row).")
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps (0: only the final model).")
    eval_steps: int = Field(0, ge=0, description="Validation loss every N steps (0: once per epoch).")
    early_stopping_patience: int = Field(3, ge=0, description="Stop after N evaluations without improvement (0: off).")
    early_stopping_min_delta: float = Field(0.0, ge=0, description="Smallest change of the early-stopping metric that counts as an improvement.")
    early_stopping_metric: str = Field(
        "loss",
        description="Validation metric for early stopping and for the checkpoint kept: loss, perplexity, or a task metric "
        "scored on the validation split (exact_match, token_f1, json_field_accuracy, accuracy, macro_f1, ...).",
    )
    early_stopping_direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="Whether the early-stopping metric should fall or rise: auto = minimize loss/perplexity, maximize the rest."
    )
    seed: int = Field(0, description="Seed of model init, data order and dropout.")
    curriculum: Literal["none", "length", "loss"] = Field(
        "none",
        description="Curriculum learning: order the training stream easy to hard by token length or by the model's "
        "loss before training (none: shuffled).",
    )
    curriculum_pacing: Literal["linear", "root"] = Field(
        "root", description="Curriculum: how fast harder examples are let in (competence grows linearly or as a square root)."
    )
    curriculum_start: float = Field(
        0.25, gt=0.0, le=1.0, description="Curriculum: share of the easiest training examples available at the first step."
    )
    threads: int = Field(0, ge=0, description="CPU threads (0: all cores; split between processes with --nproc).")
    fused_kernels: bool = Field(
        True,
        description="LoRA layers in one fused matmul pair and, on packed rows under SDPA, attention computed per "
        "example (false: peft's and transformers' own paths, e.g. to measure the difference).",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Mixed precision (autocast; weights stay fp32): auto = bf16 where the hardware computes it natively "
        "(a GPU that supports it, a CPU with AMX-BF16 or AVX512-BF16), else fp32 (bf16 is emulated and slow on other CPUs).",
    )
    nproc: int = Field(
        1, ge=1, description="Training processes (on each node), launched through accelerate (DDP: gloo on CPU, NCCL on GPUs)."
    )
    accelerate_config: str | None = Field(
        None, description="accelerate config file for --nproc (FSDP, DeepSpeed ZeRO, GPUs only: see configs/accelerate/)."
    )
    nnodes: int = Field(
        1,
        ge=1,
        description="Machines (nodes) training together: run the same command on each, with its --node-rank and one "
        "--rdzv-endpoint (torchrun's rendezvous, through accelerate).",
    )
    node_rank: int = Field(0, ge=0, description="This machine's rank among the --nnodes, 0 to nnodes-1; node 0 writes the run folder.")
    rdzv_endpoint: str | None = Field(
        None, description="HOST:PORT of node 0, where the nodes meet (every node gives the same one); needed with --nnodes above 1."
    )
    dp_epsilon: float | None = Field(
        None,
        gt=0,
        description="Differential privacy: train with DP-SGD (Opacus) to this (epsilon, delta) over the training rows; "
        "the noise is calibrated so the accountant's epsilon after all planned steps is at most this (none: no DP).",
    )
    dp_delta: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Differential privacy: delta of the guarantee; must be below 1/(training rows) "
        "(none: min(1e-5, 0.1/training rows)).",
    )
    dp_max_grad_norm: float = Field(
        1.0, gt=0, description="Differential privacy: each example's gradient (of its mean token loss) is clipped to this L2 norm."
    )
    dp_accountant: Literal["rdp", "prv"] = Field(
        "rdp", description="Differential privacy: the accountant that calibrates the noise and reports epsilon: rdp (Renyi DP) or prv (tighter)."
    )
    dp_grad_sample_memory_gb: float = Field(
        8.0,
        gt=0,
        description="Differential privacy: most memory the per-example gradients may take (trainable parameters x "
        "expected batch x 4 bytes); a run needing more is refused before anything is written.",
    )


    @model_validator(mode="after")
    def _nodes_meet(self) -> "TrainConfig":
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(f"nnodes is {self.nnodes}: the nodes need an rdzv_endpoint HOST:PORT of node 0 (--rdzv-endpoint)")
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} is out of range for nnodes {self.nnodes} (0 to {self.nnodes - 1})")
        if self.rdzv_endpoint is not None:
            if self.nnodes == 1:
                raise ValueError("rdzv_endpoint is only for training on several nodes: set nnodes (--nnodes) above 1")
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"rdzv_endpoint {self.rdzv_endpoint!r} is not HOST:PORT (a port from 1 to 65535)")
        return self


class DpoConfig(_Section):
    """Settings of the dpo task; refused when the run trains another task."""

    beta: float = Field(
        0.1, gt=0,
        description="DPO: strength of the pull toward the reference (the model with its adapter off); the implicit "
        "reward is beta x (log pi - log pi_ref). Smaller lets the policy move further.",
    )  # fmt: skip
    precompute_reference: bool = Field(
        True,
        description="DPO: compute each pair's reference log-probs (the model with its adapter off) the first time "
        "the pair is met and keep them for the rest of the run, so later passes over it take one forward pass, not "
        "two (the reference never changes). false: a reference pass on every batch.",
    )


class KtoConfig(_Section):
    """Settings of the kto task; refused when the run trains another task."""

    beta: float = Field(
        0.1, gt=0,
        description="KTO: strength of the pull toward the reference (the model with its adapter off); the implicit "
        "reward is beta x (log pi - log pi_ref).",
    )  # fmt: skip
    desirable_weight: float = Field(1.0, gt=0, description="KTO: weight of the loss on answers rated good.")
    undesirable_weight: float = Field(
        1.0, gt=0,
        description="KTO: weight of the loss on answers rated bad (raise it when bad answers are rarer, so that "
        "weight x count is about equal on both sides).",
    )  # fmt: skip


class OrpoConfig(_Section):
    """Settings of the orpo task; refused when the run trains another task."""

    beta: float = Field(
        0.1, gt=0,
        description="ORPO: lambda, the weight of the odds-ratio term beside the chosen reply's NLL (loss = NLL + "
        "beta x -log sigmoid(log-odds(chosen) - log-odds(rejected))). Larger pushes the rejected reply down harder; "
        "no reference model is involved.",
    )  # fmt: skip


class PpoConfig(_Section):
    """Settings of the ppo task; refused when the run trains another task."""

    reward_run: str | None = Field(
        None, description="PPO: the reward model that scores each sampled answer, a finished run of task reward (required)."
    )
    kl_coef: float = Field(
        0.05, ge=0,
        description="PPO: weight of the per-token KL penalty to the reference (the model with its adapter off) in the reward.",
    )  # fmt: skip
    target_kl: float | None = Field(
        None, gt=0,
        description="PPO: adaptive KL control (Ziegler et al., 2019): kl_coef rises while the answers' KL to the reference "
        "is above this target and falls while below (unset: kl_coef stays fixed).",
    )  # fmt: skip
    clip_range: float = Field(0.2, gt=0, lt=1, description="PPO: the policy ratio is clipped to [1 - clip_range, 1 + clip_range].")
    clip_range_value: float = Field(0.2, gt=0, description="PPO: the value head may move at most this far from its rollout-time estimate per update.")
    value_coef: float = Field(0.1, ge=0, description="PPO: weight of the value head's loss beside the policy's.")
    gamma: float = Field(1.0, gt=0, le=1, description="PPO: discount of later rewards (1: none, the usual choice for answers).")
    lam: float = Field(0.95, ge=0, le=1, description="PPO: GAE's lambda, trading the advantage's bias (0) against its variance (1).")
    rollouts_per_step: int = Field(16, ge=2, description="PPO: prompts answered (sampled) and scored per PPO step.")
    epochs_per_rollout: int = Field(4, ge=1, description="PPO: optimisation passes over each step's answers.")
    minibatch_size: int = Field(4, ge=1, description="PPO: answers per gradient update within a pass.")
    max_new_tokens: int = Field(64, gt=0, description="PPO: longest answer sampled, in tokens.")
    temperature: float = Field(1.0, gt=0, description="PPO: sampling temperature of the answers (1: the policy's own distribution).")
    update_kl_limit: float = Field(
        0.05, gt=0,
        description="PPO: stop a step's remaining passes once the approximate KL between the policy before and after "
        "the step's updates passes this (keeps each step a small, trusted move).",
    )  # fmt: skip


class GrpoConfig(_Section):
    """Settings of the grpo task (TRL's GRPOTrainer); refused when the run trains another task."""

    reward_run: str | None = Field(
        None, description="GRPO: the reward model that scores each sampled answer, a finished run of task reward (required)."
    )
    group_size: int = Field(
        8, ge=2,
        description="GRPO: answers sampled per prompt (TRL's num_generations); each answer's advantage is its reward "
        "against the mean of its own group, so no value head is needed.",
    )  # fmt: skip
    prompts_per_step: int = Field(
        2, ge=1, description="GRPO: prompts per optimiser step; a step trains on prompts_per_step x group_size sampled answers."
    )
    completions_per_pass: int | None = Field(
        None, ge=1,
        description="GRPO: answers per forward/backward pass, the step's gradient accumulated over passes (lowers memory; "
        "must divide prompts_per_step x group_size; unset: all of the step's answers at once).",
    )  # fmt: skip
    beta: float = Field(
        0.0, ge=0,
        description="GRPO: weight of the KL penalty to the reference (the model with its adapter off) in the loss; 0, "
        "TRL's default, skips the reference pass and leaves the clipping alone to keep steps small (0.04 is the GRPO paper's).",
    )  # fmt: skip
    clip_range: float = Field(
        0.2, gt=0, lt=1, description="GRPO: the policy ratio is clipped to [1 - clip_range, 1 + clip_range] (TRL's epsilon)."
    )
    iterations_per_step: int = Field(
        1, ge=1,
        description="GRPO: optimiser steps taken on each batch of sampled answers (TRL's num_iterations; above 1 the "
        "clipping starts to matter). Each counts as a step of train.max_steps.",
    )  # fmt: skip
    max_new_tokens: int = Field(64, gt=0, description="GRPO: longest answer sampled, in tokens (TRL's max_completion_length).")
    temperature: float = Field(1.0, gt=0, description="GRPO: sampling temperature of the answers (1: the policy's own distribution).")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="GRPO: advantages are rewards minus their group's mean, divided by the group's standard deviation "
        "(group), the step's (batch), or not divided (none, as Dr. GRPO recommends).",
    )
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field(
        "dapo",
        description="GRPO: how token losses are averaged: dapo (TRL's default: over all of the step's answer tokens), "
        "grpo (per answer, then over answers; favours short answers), dr_grpo (by a constant), bnpo (per pass).",
    )

    @model_validator(mode="after")
    def _passes_divide_the_step(self) -> "GrpoConfig":
        answers = self.prompts_per_step * self.group_size
        if self.completions_per_pass is not None and answers % self.completions_per_pass:
            raise ValueError(
                f"completions_per_pass ({self.completions_per_pass}) must divide the step's {answers} answers "
                f"(prompts_per_step {self.prompts_per_step} x group_size {self.group_size})"
            )
        return self


# One section per objective that has settings of its own; each is refused when changed for another task.
OBJECTIVE_SECTIONS = {"dpo": DpoConfig, "kto": KtoConfig, "orpo": OrpoConfig, "ppo": PpoConfig, "grpo": GrpoConfig}


class EvalConfig(_Section):
    max_new_tokens: int = Field(64, gt=0, description="Tokens generated per test example.")
    batch_size: int = Field(16, gt=0, description="Evaluation: test examples generated at once.")
    max_examples: int = Field(0, ge=0, description="Evaluate on at most this many test rows (0: all).")
    primary: str = Field("auto", description="Headline metric: auto, exact_match, token_f1, rouge_l, json_field_accuracy.")
    metric_hook: str | None = Field(None, description="Custom metric 'module:function(predictions, references) -> dict'.")
    few_shot: list[int] | None = Field(
        None,
        description="Few-shot baselines: the base model given k training examples, for each k listed "
        "(default 0,1,3,5 as far as the training split allows; empty: off; chat tasks).",
    )
    few_shot_max_examples: int = Field(50, ge=0, description="Few-shot baselines on at most this many test rows (0: all).")
    forgetting: bool = Field(True, description="Measure forgetting: base vs tuned on the general-ability suite (generative tasks).")
    forgetting_prompts: int = Field(24, ge=1, description="Forgetting: held-out general prompts both models answer.")
    forgetting_max_new_tokens: int = Field(48, gt=0, description="Forgetting: tokens generated per general prompt.")
    judge_reward_run: str | None = Field(
        None,
        description="Alignment: a finished reward run that judges both models' answers to the test prompts (mean reward, "
        "win rate, KL to the base); best one trained on preferences the run never saw.",
    )
    judge_prompts: int = Field(64, ge=1, description="Alignment: test prompts answered and judged (at most).")
    bias: bool = Field(
        True, description="Measure bias: test prompts with demographic terms swapped (answer flips, score gap) and a "
        "stereotype likelihood probe (causal LMs), base vs tuned.",
    )  # fmt: skip
    bias_pairs: int = Field(
        16, ge=1, description="Bias: counterfactual pairs scored, at most (a test prompt with a demographic term, one pair per "
        "dimension: gender, name_origin, nationality, age; dimensions take turns).",
    )  # fmt: skip
    bias_probe_file: str | None = Field(
        None, description="Bias: a CrowS-Pairs-format file (columns sent_more, sent_less, bias_type, optional "
        "stereo_antistereo; CSV, JSONL, JSON or Parquet) probed instead of the built-in pairs.",
    )  # fmt: skip
    privacy: bool = Field(
        True, description="Privacy audit: membership inference on training vs test rows and the exposure of data.canaries (sft, qa, cpt)."
    )
    privacy_rows: int = Field(
        64, ge=1,
        description="Privacy audit: training rows and test rows (as many of each, drawn at random, seeded) whose losses "
        "the membership-inference attack separates.",
    )  # fmt: skip
    privacy_candidates: int = Field(
        1000, ge=1, le=1_000_000,
        description="Privacy audit: random secrets each canary is ranked among by log-perplexity; the exposure measured "
        "by rank is at most log2(candidates + 1) bits (1000: 9.97).",
    )  # fmt: skip
    hallucination: bool | None = Field(
        None,
        description="Hallucination audit: are answers supported by their prompt, and do models abstain when the prompt "
        "lacks the answer? Default: on for task qa; set true for any chat task whose answers must come from the prompt "
        "(extraction, questions over a context), false to switch it off.",
    )
    hallucination_rows: int = Field(
        64, ge=1, description="Hallucination audit: test rows whose answers are checked, and at most as many unanswerable rows made from them."
    )
    context_pattern: str = Field(
        r"Context:\s*(?P<context>.*?)\s*\n\s*Question:\s*(?P<question>.*)",
        description="Hallucination audit: a regular expression, searched in a row's last user turn, whose group 'context' "
        "is the passage and optional group 'question' the question (default: the layout of `tuneloop data synth`); "
        "unanswerable rows pair a question with another row's context. Where it does not match, the whole turn is "
        "the context (extraction) and unanswerable rows have the answer's words removed from it.",
    )
    grounded_fields: list[str] | None = Field(
        None,
        description="Hallucination audit, JSON answers: the fields whose values must come from the prompt (default: "
        "every field); labels a model chooses from a fixed set (a category, a priority) are not quotes of the prompt.",
    )
    truthfulqa_file: str | None = Field(
        None,
        description="Hallucination audit: a TruthfulQA-style multiple-choice file (JSON, JSONL or CSV: question and "
        "mc1_targets {choices, labels}, or question, best_answer, incorrect_answers); MC1 accuracy of base and tuned.",
    )

    @field_validator("context_pattern")
    @classmethod
    def _pattern_names_the_context(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
        if "context" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<context>...) for the passage")
        return value

    @field_validator("few_shot")
    @classmethod
    def _shots_not_negative(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(k < 0 for k in value):
            raise ValueError("every k must be 0 or more")
        return sorted(set(value)) if value is not None else None


class ParamRange(BaseModel):
    """One searched setting: ``low``/``high`` (optionally ``log`` or ``step``), or ``choices``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[bool | int | float | str] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> "ParamRange":
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("empty choices: list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give a range (low and high) or a list of choices")
        if not self.low < self.high:
            raise ValueError(f"empty range: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    trials: int = Field(20, gt=0, description="Trials to finish (complete or pruned), counting those of earlier runs on the same folder.")
    metric: str = Field(
        "auto",
        description="Validation metric the search optimises; trials early-stop on it and keep their best checkpoint: "
        "auto (the task's headline metric, as eval.primary picks it: accuracy for classify, f1 for qa, "
        "json_field_accuracy or rouge_l for sft, chrf for seq2seq, perplexity for cpt, pairwise_accuracy for reward), "
        "loss, perplexity, or a task metric scored on the validation split (exact_match, json_field_accuracy, accuracy, ...).",
    )
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="Optimisation direction of tune.metric: auto = minimize loss/perplexity, maximize the rest."
    )
    space: dict[str, ParamRange] = Field(
        default_factory=dict,
        description="Search space (YAML): dotted setting -> {low, high, log, step} or {choices: [...]}, "
        "e.g. train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}.",
    )
    startup_trials: int = Field(4, ge=0, description="Trials sampled at random before TPE models the results.")
    pruner: Literal["median", "none"] = Field("median", description="Stop a trial whose validation metric is worse than the median of earlier trials at the same step.")
    pruner_startup_trials: int = Field(3, ge=0, description="Trials that must finish before any trial is pruned.")
    pruner_warmup_steps: int = Field(0, ge=0, description="Training steps of each trial before it may be pruned.")
    seed: int = Field(0, description="Seed of the sampler.")
    workers: int = Field(1, ge=1, description="Processes running trials at once, sharing the study storage.")
    storage: str | None = Field(None, description="Optuna RDB storage URL (default sqlite:///<out>/study.db); share it between machines to search together.")
    study_name: str | None = Field(None, description="Study name inside the storage (default: the project name).")


class RunConfig(_Section):
    project: str = Field("default", description="Project name (groups runs).")
    task: Literal[TASKS] = Field(
        "sft",
        description="Objective: sft (chat/instruction), qa (generative QA), cpt (continued pre-training on raw text), "
        "classify (sequence classification), seq2seq (encoder-decoder: summarisation, translation), "
        "reward (reward model: one score per reply, learnt from preference pairs), "
        "dpo (direct preference optimisation of a chat model on preference pairs), "
        "kto (a chat model trained on answers rated good or bad), "
        "orpo (odds-ratio preference optimisation of a chat model on preference pairs, no reference model), "
        "ppo (a chat model trained by reinforcement learning against a reward run: sampled answers, KL penalty, value head), "
        "grpo (the same without a value head, through TRL's GRPOTrainer: each answer's reward against its group's mean).",
    )
    out: str | None = Field(None, description="Run folder (default runs/<project>/<timestamp>).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=LoraSettings)
    train: TrainConfig = Field(default_factory=TrainConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    kto: KtoConfig = Field(default_factory=KtoConfig)
    orpo: OrpoConfig = Field(default_factory=OrpoConfig)
    ppo: PpoConfig = Field(default_factory=PpoConfig)
    grpo: GrpoConfig = Field(default_factory=GrpoConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @model_validator(mode="before")
    @classmethod
    def _method_section(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("method"), dict):
            raw = {**raw, "method": method_section_checked(raw["method"])}
        return raw

    @model_validator(mode="after")
    def _replay_model_defaults_to_base(self) -> "RunConfig":
        # Recorded in the resolved config, so a run names the model its replay answers came from.
        if self.data.replay_fraction > 0 and self.data.replay_model is None:
            self.data.replay_model = self.model.name
        return self

    @model_validator(mode="after")
    def _objective_sections_match_the_task(self) -> "RunConfig":
        # A setting of another objective would be silently ignored; the defaults are written into every run.
        for task, section in OBJECTIVE_SECTIONS.items():
            given, defaults = getattr(self, task), section()
            changed = [f"{task}.{name}" for name in section.model_fields if getattr(given, name) != getattr(defaults, name)]
            if changed and self.task != task:
                raise ValueError(f"{', '.join(changed)} set, but task is {self.task!r}: the {task} section applies to task {task} only")
        return self

    @model_validator(mode="after")
    def _ppo_needs_a_reward_model(self) -> "RunConfig":
        if self.task == "ppo" and not self.ppo.reward_run:
            raise ValueError(
                "task ppo needs a reward model to score the answers it samples: set ppo.reward_run "
                "to a finished run of task reward"
            )
        return self

    @model_validator(mode="after")
    def _grpo_needs_a_reward_model(self) -> "RunConfig":
        if self.task == "grpo" and not self.grpo.reward_run:
            raise ValueError(
                "task grpo needs a reward model to score the answers it samples: set grpo.reward_run "
                "to a finished run of task reward"
            )
        return self

    @model_validator(mode="after")
    def _replay_kl_needs_the_base_inside(self) -> "RunConfig":
        if self.data.replay_fraction == 0 or self.data.replay_loss != "kl":
            return self
        if not get_method(self.method.name).switchable:
            raise ValueError(
                f"data.replay_loss kl takes the base model's distribution from the model with its adapter switched off; "
                f"method {self.method.name!r} has none to switch off (use one of {', '.join(methods_where('switchable'))}, "
                "or data.replay_loss tokens)"
            )
        if self.data.replay_model != self.model.name:
            raise ValueError(
                f"data.replay_loss kl distils the run's own base model {self.model.name!r}, but data.replay_model is "
                f"{self.data.replay_model!r}; leave data.replay_model unset, or use data.replay_loss tokens"
            )
        return self


def format_validation_error(err: ValidationError, origin: str, prefix: str = "") -> str:
    lines = [f"invalid configuration in {origin}:"]
    for item in err.errors():
        path = prefix + ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key")
        else:
            given = item.get("input")
            shown = f" (got {given!r})" if isinstance(given, (str, int, float, bool)) else ""
            lines.append(f"  {path}: {item['msg']}{shown}")
    return "\n".join(lines)


def build_config(raw: dict, origin: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (optional) and apply dotted overrides such as ``{"train.epochs": 1}``."""
    raw, origin = read_raw_config(path, overrides)
    return build_config(raw, origin)


def read_raw_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> tuple[dict, str]:
    """(the YAML config with dotted overrides applied, not yet validated; where it came from)."""
    import yaml

    raw: dict = {}
    origin = "flags"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        origin = str(path)
    overrides = {dotted: value for dotted, value in (overrides or {}).items() if value is not None}
    if isinstance(raw.get("method"), dict) and overrides.get("method.name", raw["method"].get("name", "lora")) != raw["method"].get("name", "lora"):
        # --method switches the file's method: its settings that the new method lacks were written for the old one.
        raw["method"] = method_section_for(overrides["method.name"], raw["method"])
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw, origin


def dump_config(config: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
