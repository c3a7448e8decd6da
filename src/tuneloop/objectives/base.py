"""What every task provides; the defaults are those of causal-LM tasks (sft, qa, cpt)."""

from __future__ import annotations

from tuneloop.errors import ConfigError, DataError
from tuneloop.losses.label_loss import summed_label_loss
from tuneloop.methods import get_method, methods_where
from tuneloop.models.load import load_causal_lm, load_tokenizer
from tuneloop.objectives import TASKS, get_task
from tuneloop.text.generate import generate_texts
from tuneloop.text.tokenize import batch_rows, collate_rows, ensure_chat_template, render_prompt


class Task:
    """One training objective. Subclasses override what differs; see :mod:`tuneloop.objectives`."""

    name: str = ""
    formats: tuple[str, ...] = ()  # data formats this task reads
    peft_task_type: str = "CAUSAL_LM"
    default_primary: str = "auto"  # headline metric when eval.primary is "auto"
    generates: bool = True  # answers prompts with text (chat, generate, serving)
    predicts: str = "text"  # what the model gives back, in messages refusing a use that needs text
    drops_too_long: bool = True  # False: long examples are cut into pieces instead (cpt)
    packs: bool = True  # several examples may share a row (causal LMs with position_ids)
    perplexity: bool = True  # the loss is a per-token cross-entropy of text, so exp(loss) is a perplexity
    trains_itself: bool = False  # True: the task runs its own training loop (:meth:`fit`), not the Trainer's (ppo, grpo)
    follows_precision: bool = True  # False: its own loop trains in fp32 whatever train.precision says (ppo)
    dp_trainable: bool = False  # True: :meth:`per_example_losses` gives each row's own loss, so DP-SGD can clip it per example

    # --- checks before anything is written --------------------------------------------------
    def check_config(self, config) -> None:
        if config.data.format not in self.formats:
            raise ConfigError(
                f"data.format {config.data.format!r} does not fit task {self.name!r}; "
                f"it reads: {', '.join(self.formats)}"
            )
        if config.data.canaries and not self.learns_text:
            raise ConfigError(
                f"data.canaries: task {self.name!r} cannot carry canaries: a canary is a secret the model may memorise "
                "as text, and its exposure is measured by a causal language model's per-token loss; this task "
                + ("trains a model that outputs no text" if self.peft_task_type != "CAUSAL_LM" else "is not trained by a per-token loss on its rows")
                + f" (canaries apply to {', '.join(canary_tasks())})"
            )

    @property
    def learns_text(self) -> bool:
        """Whether the task trains a causal LM by the per-token loss of its rows' text (so canaries can be
        planted in them, and the privacy suite can score rows by that loss)."""
        return self.perplexity and self.peft_task_type == "CAUSAL_LM" and not self.trains_itself

    def check_model(self, model_config) -> None:
        """Refuse an architecture the task cannot train, before any weights are loaded."""

    def labels_of(self, examples: list) -> list[str] | None:
        """Class names when the task predicts from a fixed set (classification)."""
        return None

    def check_splits(self, splits) -> None:
        """Refuse splits the task cannot learn from or score (e.g. a test label never trained on)."""

    # --- model and data -------------------------------------------------------------------
    def load_tokenizer(self, model_config):
        tokenizer = load_tokenizer(model_config.name, model_config.allow_pickle, model_config.trust_remote_code)
        ensure_chat_template(tokenizer)
        return tokenizer

    def load_model(self, model_config, labels: list[str] | None):
        model, _ = load_causal_lm(
            model_config.name, model_config.allow_pickle, model_config.trust_remote_code, attention=model_config.attention
        )
        return model

    def tokenize(self, tokenizer, example, labels: list[str] | None):
        """One example -> :class:`~tuneloop.text.tokenize.TokenizedExample` (ids and labels)."""
        raise NotImplementedError

    def pieces(self, tokenized, max_length: int) -> list:
        """What one tokenised example trains as (cpt cuts long documents into max_length pieces)."""
        return [tokenized]

    def batch_rows(self, tokenized: list, packs: bool, pack_length: int, seed: int) -> list:
        return batch_rows(tokenized, packs, pack_length, seed)

    def collate(self, rows: list, pad_token_id: int) -> dict:
        return collate_rows(rows, pad_token_id)

    def loss_function(self, config):
        """``(model, batch) -> (summed loss, count)`` the trainer trains on: :meth:`summed_loss`, with any
        of the run's settings it needs bound (dpo's beta)."""
        return self.summed_loss

    def fit(self, model, tokenizer, data, config, out) -> dict:
        """Train ``model`` (the method already applied) in the task's own loop, for a task with
        ``trains_itself``; write the run's ``log.jsonl`` as it goes and return the training summary
        (``steps``, ``real_tokens`` and what else the loop measured) for ``train.json``. The recipe saves
        the model afterwards, as for Trainer-trained tasks."""
        raise NotImplementedError(f"task {self.name} trains through the shared Trainer, not a loop of its own")

    def summed_loss(self, model, batch: dict):
        """(sum of per-label losses, number of labels) of one batch."""
        return summed_label_loss(model, batch)

    def per_example_losses(self, model, batch: dict):
        """``[rows]`` float: each row's own loss (one example per row, unpacked), for a task with
        ``dp_trainable``: DP-SGD clips the gradient of each of them on its own."""
        raise NotImplementedError(f"task {self.name} has no per-example loss")

    # --- held-out evaluation ----------------------------------------------------------------
    def primary_metric(self, requested: str, references: list[str]) -> str:
        """The headline metric's name for ``eval.primary`` = ``requested`` ("auto": the task's own),
        known before any model is scored; ``references`` are target texts the scores will be on."""
        return self.default_primary if requested == "auto" else requested

    def score(self, model, tokenizer, test: list, config, labels: list[str] | None, packs: bool) -> dict:
        """``{"scores": {metric: float}, "predictions": [str], ...}`` of one model on the test rows."""
        raise NotImplementedError

    # --- use -----------------------------------------------------------------------------------
    def answer(self, model, tokenizer, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
        """The model's reply to each conversation (chat messages, system prompt first): the chat
        template renders it and the model continues it."""
        rendered = [render_prompt(tokenizer, conversation) for conversation in conversations]
        return generate_texts(model, tokenizer, rendered, max_new_tokens)


def canary_tasks() -> list[str]:
    """The registered tasks that can carry canaries (:attr:`Task.learns_text`)."""
    return [name for name in TASKS if get_task(name).learns_text]


def check_labels_shared(splits, labels: list[str]) -> None:
    """Every validation/test label must be one the model can learn from the training split."""
    seen = {example.label for example in splits.train}
    for name in ("val", "test"):
        missing = sorted({example.label for example in getattr(splits, name)} - seen)
        if missing:
            examples = [e for e in getattr(splits, name) if e.label in missing][:3]
            where = ", ".join(f"{e.source}:{e.line}" for e in examples)
            raise DataError(
                f"label {missing[0]!r} appears in the {name} split ({where}) but never in the training split; "
                "add training rows for it or remove those rows (classes the model never saw cannot be scored)"
            )


def check_reference_is_the_base(task_name: str, method_name: str) -> None:
    """Preference tasks score the policy against its base, the model with its adapter switched off:
    refuse a method that has no adapter to switch off, naming those that have."""
    if not get_method(method_name).switchable:
        raise ConfigError(
            f"task {task_name} takes its reference model from the policy with its adapter switched off; method "
            f"{method_name!r} has none to switch off (use one of {', '.join(methods_where('switchable'))})"
        )
