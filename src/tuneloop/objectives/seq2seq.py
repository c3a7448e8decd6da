"""Sequence-to-sequence: an encoder-decoder model (T5, BART, ...) learns to rewrite a source text
into a target text (summarisation, translation, paraphrase).

The source is every turn before the answer (a configured ``data.system_prompt`` leads it, which is
how T5-style task prefixes such as ``"summarize:"`` are given); the target is the answer. The
encoder reads the source, the decoder is trained on the target; the loss is on every target token.
Rows hold one example each (an encoder-decoder has no per-example position ids to pack with).

The test split is judged on greedy generations by chrF (the headline), BLEU, ROUGE-L and exact
match, plus held-out loss and perplexity. BLEU and chrF are sacrebleu's corpus-level scores,
divided by 100 so they sit on the same 0..1 scale as the others. chrF leads because it is a
character n-gram F-score: it works for any script and for both summaries and translations,
credits partly right word forms, and agrees with human judgement of translations better than
BLEU; ROUGE-L (rouge-score) keeps only ASCII letters and digits, so it reads 0 on non-Latin text.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.errors import ConfigError, ModelError
from tuneloop.models.load import load_pretrained, load_tokenizer, resolve_model
from tuneloop.objectives.base import Task
from tuneloop.objectives.heldout_loss import heldout_loss
from tuneloop.text.metrics import exact_match, load_metric_hook, rouge_l
from tuneloop.text.tokenize import IGNORE, TokenizedExample


@dataclass(frozen=True)
class Seq2SeqExample(TokenizedExample):
    """Source ids in ``input_ids``, target ids in ``labels`` (every target token is learned).

    Its length is that of its longer side, so ``data.max_length`` bounds both the encoder and the
    decoder input, and batch sizing sees the widest tensor a row makes.
    """

    def __len__(self) -> int:
        return max(len(self.input_ids), len(self.labels))


class Seq2SeqTask(Task):
    name = "seq2seq"
    formats = ("prompt_completion", "alpaca", "chat")
    peft_task_type = "SEQ_2_SEQ_LM"
    default_primary = "chrf"
    packs = False
    dp_trainable = True

    # --- checks before anything is written --------------------------------------------------
    def check_model(self, model_config) -> None:
        """Only an encoder-decoder can train here; its config says so before any weights load."""
        config = read_model_config(model_config)
        if not getattr(config, "is_encoder_decoder", False):
            kind, task = other_architecture(config)
            raise ConfigError(
                f"task seq2seq needs an encoder-decoder model (T5, BART, ...); model.name {model_config.name!r} "
                f"is {kind} {config.model_type}; use task {task} for it, or choose an encoder-decoder model.name"
            )

    # --- model and data -------------------------------------------------------------------
    def load_tokenizer(self, model_config):
        """The model's own tokenizer: sources and targets are plain text, no chat template."""
        return load_tokenizer(model_config.name, model_config.allow_pickle, model_config.trust_remote_code)

    def load_model(self, model_config, labels):
        from transformers import AutoModelForSeq2SeqLM

        return load_pretrained(AutoModelForSeq2SeqLM, model_config)

    def tokenize(self, tokenizer, example, labels):
        return Seq2SeqExample(encode(tokenizer, source_text(example)), encode(tokenizer, example.target_text))

    def batch_rows(self, tokenized, packs, pack_length, seed):
        """One example per row, longest first (rows of a batch then need little padding)."""
        return sorted(tokenized, key=len, reverse=True)

    def collate(self, rows, pad_token_id):
        """Right-padded sources with their attention mask, and targets padded with IGNORE."""
        import torch

        return {
            "input_ids": padded([row.input_ids for row in rows], pad_token_id),
            "attention_mask": padded([[1] * len(row.input_ids) for row in rows], 0),
            "labels": padded([row.labels for row in rows], IGNORE),
            "real_tokens": torch.tensor(sum(len(row.input_ids) + len(row.labels) for row in rows)),
        }

    def summed_loss(self, model, batch):
        """(sum of cross-entropies over target tokens, their number).

        The model builds its decoder inputs from ``labels`` (shifted right behind the decoder start
        token), so logit ``i`` already predicts label ``i``: no shift here.
        """
        import torch.nn.functional as F

        labels = batch["labels"]
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, use_cache=False)
        logits = outputs.logits.float()
        loss_sum = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        return loss_sum, int((labels != IGNORE).sum())

    def per_example_losses(self, model, batch):
        """``[rows]``: each row's mean cross-entropy over its target tokens."""
        import torch.nn.functional as F

        labels = batch["labels"]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, use_cache=False).logits
        token_losses = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        return token_losses.sum(1) / (labels != IGNORE).sum(1).clamp(min=1)

    # --- use -----------------------------------------------------------------------------------
    def answer(self, model, tokenizer, conversations, max_new_tokens):
        """The encoder reads the conversation as training framed sources (every turn, system prompt
        first); the decoder writes the target."""
        sources = [encode(tokenizer, "\n".join(message["content"] for message in conversation)) for conversation in conversations]
        return generate_targets(model, tokenizer, sources, max_new_tokens, batch_size=len(sources))

    # --- held-out evaluation ----------------------------------------------------------------
    def score(self, model, tokenizer, test, config, labels, packs):
        sources = [encode(tokenizer, source_text(example)) for example in test]
        predictions = generate_targets(model, tokenizer, sources, config.eval.max_new_tokens, config.eval.batch_size)
        references = [example.target_text for example in test]
        scores = text_scores(predictions, references)
        if config.eval.metric_hook:
            scores.update(load_metric_hook(config.eval.metric_hook)(predictions, references))
        tokenized = [self.tokenize(tokenizer, example, None) for example in test]
        scores.update(heldout_loss(model, tokenizer, tokenized, self, pack=False))
        return {"scores": scores, "predictions": predictions}


def read_model_config(model_config):
    """The model's ``config.json`` only (no weights), from any name ``tuneloop`` accepts."""
    from transformers import AutoConfig

    source = resolve_model(model_config.name, model_config.allow_pickle)
    try:
        return AutoConfig.from_pretrained(source.location, trust_remote_code=model_config.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"model.name {model_config.name!r}: could not read its config: {str(err).splitlines()[0]}") from None


def other_architecture(config) -> tuple[str, str]:
    """("an encoder-only" or "a decoder-only", the task that trains it) for a non-seq2seq config."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:  # BERT-like: no text generation at all
        return "an encoder-only", "classify"
    return "a decoder-only", "sft"


def source_text(example) -> str:
    """Every turn before the answer, system prompt first: what the encoder reads."""
    return "\n".join(message["content"] for message in example.messages[:-1])


def encode(tokenizer, text: str) -> list[int]:
    """Token ids as the model's tokenizer frames them (T5 appends ``</s>``, BART wraps in ``<s> </s>``),
    ending with end-of-sequence even for a tokenizer that adds no special tokens: the decoder
    must learn where a target stops, and the encoder sees sources framed as in pre-training."""
    ids = list(tokenizer(text)["input_ids"])
    if tokenizer.eos_token_id is not None and ids[-1:] != [tokenizer.eos_token_id]:
        ids.append(tokenizer.eos_token_id)
    return ids


def padded(sequences: list[list[int]], fill: int):
    """``[len(sequences), longest]`` long tensor, each sequence right-padded with ``fill``."""
    import torch

    width = max(len(sequence) for sequence in sequences)
    return torch.tensor([list(sequence) + [fill] * (width - len(sequence)) for sequence in sequences], dtype=torch.long)


def generate_targets(model, tokenizer, sources: list[list[int]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy decoder outputs for tokenised sources, in input order (batched by source length)."""
    import torch

    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [""] * len(sources)
    model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        input_ids = padded([sources[i] for i in chunk], tokenizer.pad_token_id).to(model.device)
        attention_mask = padded([[1] * len(sources[i]) for i in chunk], 0).to(model.device)
        with torch.no_grad():
            generated = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
        for index, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            outputs[index] = text.strip()
    return outputs


def text_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """chrF and BLEU (corpus-level, sacrebleu, scaled to 0..1), mean ROUGE-L and exact match.

    BLEU uses effective order: n-gram orders no reference is long enough to have are left out, so
    targets of one to three words (word translations, titles) still score; on longer texts every
    order is present and the number is sacrebleu's standard corpus BLEU.
    """
    from sacrebleu.metrics import BLEU, CHRF

    pairs = list(zip(predictions, references))
    return {
        "chrf": CHRF().corpus_score(predictions, [references]).score / 100,
        "bleu": BLEU(effective_order=True).corpus_score(predictions, [references]).score / 100,
        "rouge_l": sum(rouge_l(p, r) for p, r in pairs) / len(pairs),
        "exact_match": sum(exact_match(p, r) for p, r in pairs) / len(pairs),
    }


SEQ2SEQ = Seq2SeqTask()
