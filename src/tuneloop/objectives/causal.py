"""Causal-LM tasks: chat/instruction SFT, generative QA, and continued pre-training on raw text.

All three train the same way (packed rows, loss only on labelled tokens); they differ in what
carries a label and in how the test split is judged:

* ``sft``: labels on assistant turns; generated answers scored with exact match, token F1,
  ROUGE-L (and JSON field accuracy when the references are JSON objects), plus held-out loss.
* ``qa``: as sft, scored SQuAD-style (normalised exact match and token F1) on generated answers.
* ``cpt``: every token of the text carries a label; long documents are cut into max_length
  pieces (nothing is dropped); judged by held-out loss and perplexity, lower is better.
"""

from __future__ import annotations

from tuneloop.losses.label_loss import per_row_label_losses
from tuneloop.objectives.base import Task
from tuneloop.objectives.heldout_loss import heldout_loss
from tuneloop.text.generate import generate_texts
from tuneloop.text.metrics import choose_primary, compute_text_metrics, load_metric_hook, squad_scores
from tuneloop.text.tokenize import TokenizedExample, render_prompt, tokenize_chat

CHAT_FORMATS = ("chat", "prompt_completion", "alpaca", "sharegpt")


class SFTTask(Task):
    name = "sft"
    formats = CHAT_FORMATS
    dp_trainable = True

    def per_example_losses(self, model, batch):
        return per_row_label_losses(model, batch)

    def tokenize(self, tokenizer, example, labels):
        return tokenize_chat(tokenizer, example)

    def score(self, model, tokenizer, test, config, labels, packs):
        predictions = self.generate_answers(model, tokenizer, test, config)
        references = [example.target_text for example in test]
        scores = self.text_scores(predictions, references)
        if config.eval.metric_hook:
            scores.update(load_metric_hook(config.eval.metric_hook)(predictions, references))
        scores.update(self.heldout_loss(model, tokenizer, test, config, packs))
        return {"scores": scores, "predictions": predictions}

    def text_scores(self, predictions: list[str], references: list[str]) -> dict:
        return compute_text_metrics(predictions, references)

    def primary_metric(self, requested: str, references: list[str]) -> str:
        """As the report chooses it: json_field_accuracy when every reference is a JSON object, else rouge_l."""
        name = super().primary_metric(requested, references)
        return choose_primary(self.text_scores(references, references), name) if name == "auto" else name

    def generate_answers(self, model, tokenizer, test, config) -> list[str]:
        prompts = [render_prompt(tokenizer, example.messages[:-1]) for example in test]
        return generate_texts(model, tokenizer, prompts, config.eval.max_new_tokens, config.eval.batch_size)

    def heldout_loss(self, model, tokenizer, test, config, packs) -> dict:
        tokenized = [piece for ex in test for piece in self.pieces(self.tokenize(tokenizer, ex, None), config.data.max_length)]
        return heldout_loss(model, tokenizer, tokenized, self, pack=packs)


class QATask(SFTTask):
    name = "qa"
    default_primary = "f1"

    def text_scores(self, predictions, references):
        return squad_scores(predictions, references)


class CPTTask(SFTTask):
    name = "cpt"
    formats = ("text",)
    default_primary = "perplexity"
    drops_too_long = False

    def tokenize(self, tokenizer, example, labels):
        ids = tokenizer(example.text, add_special_tokens=False)["input_ids"]
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id] + ids
        if tokenizer.eos_token_id is not None:
            ids = ids + [tokenizer.eos_token_id]
        return TokenizedExample(list(ids), list(ids))

    def pieces(self, tokenized, max_length):
        ids = tokenized.input_ids
        # a one-token tail carries no next-token target; it joins nothing and is skipped
        return [
            TokenizedExample(ids[start : start + max_length], tokenized.labels[start : start + max_length])
            for start in range(0, len(ids), max_length)
            if len(ids[start : start + max_length]) > 1
        ]

    def score(self, model, tokenizer, test, config, labels, packs):
        return {"scores": self.heldout_loss(model, tokenizer, test, config, packs), "predictions": [""] * len(test)}


SFT = SFTTask()
QA = QATask()
CPT = CPTTask()
