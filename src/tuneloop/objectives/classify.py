"""Sequence classification: text -> one of a fixed set of labels, on encoders or decoders.

The model is the base with a fresh classification head (``AutoModelForSequenceClassification``),
seeded so evaluation can rebuild exactly the model training started from; that untrained head is
the "base" the tuned model is compared with (chance level, honestly labelled as such).
Judged by accuracy, macro-F1 (every class weighs the same, so a rare class counts) and the
confusion matrix.
"""

from __future__ import annotations

from tuneloop.errors import DataError
from tuneloop.models.load import load_pretrained, load_tokenizer
from tuneloop.objectives.base import Task, check_labels_shared
from tuneloop.text.metrics import classification_scores
from tuneloop.text.tokenize import TokenizedExample


class ClassifyTask(Task):
    name = "classify"
    formats = ("label",)
    peft_task_type = "SEQ_CLS"
    default_primary = "accuracy"
    generates = False
    predicts = "labels"
    packs = False  # one pooled prediction per row
    dp_trainable = True

    def labels_of(self, examples):
        labels = sorted({example.label for example in examples})
        if len(labels) < 2:
            found = repr(labels[0]) if labels else "none"
            raise DataError(f"label: classification needs at least two classes; the data has one ({found})")
        return labels

    def check_splits(self, splits):
        check_labels_shared(splits, self.labels_of(splits.train + splits.val + splits.test))

    def load_tokenizer(self, model_config):
        return load_tokenizer(model_config.name, model_config.allow_pickle, model_config.trust_remote_code)

    def load_model(self, model_config, labels):
        from transformers import AutoModelForSequenceClassification

        model = load_pretrained(
            AutoModelForSequenceClassification,
            model_config,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: index for index, label in enumerate(labels)},
        )
        if model.config.pad_token_id is None:  # decoders pool the last non-pad token: they must know pad
            tokenizer = self.load_tokenizer(model_config)
            model.config.pad_token_id = tokenizer.pad_token_id
        return model

    def tokenize(self, tokenizer, example, labels):
        ids = tokenizer(example.text)["input_ids"]
        return TokenizedExample(list(ids), [labels.index(example.label)])

    def batch_rows(self, tokenized, packs, pack_length, seed):
        return sorted(tokenized, key=len, reverse=True)

    def collate(self, rows, pad_token_id):
        import torch

        width = max(len(row) for row in rows)
        return {
            "input_ids": torch.tensor([list(r.input_ids) + [pad_token_id] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "labels": torch.tensor([r.labels[0] for r in rows]),
            "real_tokens": torch.tensor(sum(len(r) for r in rows)),
        }

    def summed_loss(self, model, batch):
        import torch.nn.functional as F

        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"], reduction="sum"), int(batch["labels"].numel())

    def per_example_losses(self, model, batch):
        import torch.nn.functional as F

        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"], reduction="none")

    def score(self, model, tokenizer, test, config, labels, packs):
        import torch
        import torch.nn.functional as F

        rows = [self.tokenize(tokenizer, example, labels) for example in test]
        predicted, total_loss = [], 0.0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), config.eval.batch_size):
                batch = self.collate(rows[start : start + config.eval.batch_size], tokenizer.pad_token_id)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
                total_loss += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
                predicted += logits.argmax(-1).tolist()
        scores = classification_scores(predicted, [row.labels[0] for row in rows], len(labels))
        confusion = scores.pop("confusion")
        scores["loss"] = total_loss / len(rows)
        return {
            "scores": scores,
            "predictions": [labels[index] for index in predicted],
            "confusion": {"labels": labels, "matrix": confusion},
        }


CLASSIFY = ClassifyTask()
