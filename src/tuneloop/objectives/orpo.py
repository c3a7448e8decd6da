"""Odds-ratio preference optimisation: a chat model trained on preference pairs with no reference model.

Pairs are tokenised and collated exactly as for :mod:`tuneloop.objectives.dpo` (TRL's conversational
tokenising, TRL's preference collator: chosen sequences first, then rejected). The loss is the one of
Hong et al. (2024) as TRL's ``ORPOTrainer`` computes it::

    loss = NLL(chosen) + β · mean over pairs of -log σ(log-odds(chosen) - log-odds(rejected))
    log-odds(y) = log p(y) - log(1 - p(y)),   log p(y) = mean log-probability of the reply's tokens

so p is the length-normalised (per-token geometric mean) likelihood of the reply, and β is ``orpo.beta``
(the paper's λ). As in ``ORPOTrainer`` (and the authors' code), the NLL term is the cross-entropy
averaged over every real token of the batch's chosen sequences, **prompt tokens included** (only the
first token, which nothing predicts, and padding are left out); the odds are over the reply's tokens
only. ``tests/unit/objectives/test_orpo.py`` holds the loss and the log-odds equal to ``ORPOTrainer``'s
on the same batch. Since the NLL is a per-batch token mean, :meth:`OrpoTask.summed_loss` returns it
times the batch's pairs, so the trainer's sum / pairs gives ``ORPOTrainer``'s loss of that batch.

No reference model is read, so every method trains it (``full`` included) and each batch takes one
forward pass. Judged on held-out pairs by the model's own log-odds: preference accuracy (share of pairs
whose chosen reply has the higher log-odds; a tie counts as wrong), the mean log-odds ratio, the chosen
NLL (token-weighted over the whole test set) and the ORPO loss of these (``chosen_nll`` + β · mean
odds-ratio term). Unlike DPO's implicit reward, these mean something for the base model too.
"""

from __future__ import annotations

import functools

from tuneloop.objectives.base import Task
from tuneloop.objectives.dpo import DpoTask

# A reply whose every token has probability 1 in fp32 has p = 1 and an infinite log-odds (TRL would give
# inf or nan); the mean log-probability is held at most this far below 0 (log-odds about 15.9).
_LARGEST_MEAN_LOG_PROB = -1.1920928955078125e-07  # -float32 epsilon


def log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0``, stable on both sides of -ln 2 (TRL's ``log1mexp``)."""
    import torch

    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def log_odds(mean_log_probs):
    """``log p - log(1 - p)`` of each reply, given ``log p`` its mean per-token log-probability."""
    mean_log_probs = mean_log_probs.float().clamp(max=_LARGEST_MEAN_LOG_PROB)
    return mean_log_probs - log1mexp(mean_log_probs)


def odds_ratio_losses(chosen_mean_log_probs, rejected_mean_log_probs, beta: float):
    """Per-pair ``β · -log σ(log-odds(chosen) - log-odds(rejected))`` (``[pairs]``) and the log-odds ratios.

    >>> odds_ratio_losses(torch.tensor([-1.0]), torch.tensor([-1.0]), beta=0.1)[0]  # doctest: +SKIP
    tensor([0.0693])
    """
    import torch.nn.functional as F

    ratios = log_odds(chosen_mean_log_probs) - log_odds(rejected_mean_log_probs)
    return -beta * F.logsigmoid(ratios), ratios


def sequence_statistics(model, batch: dict):
    """One forward pass over a preference batch (chosen sequences first): each sequence's mean log-probability
    of its reply tokens (``[2 * pairs]``), and the summed NLL and count of the chosen sequences' real tokens
    after the first (prompt and reply, what ``ORPOTrainer``'s NLL averages over). In fp32."""
    device = model.device
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    token_log_probs = logits[:, :-1].float().log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    completion = batch["completion_mask"].to(device)[:, 1:].float()
    mean_log_probs = (token_log_probs * completion).sum(-1) / completion.sum(-1).clamp(min=1)
    pairs = input_ids.shape[0] // 2
    real = attention_mask[:pairs, 1:].float()
    return mean_log_probs, -(token_log_probs[:pairs] * real).sum(), real.sum()


class OrpoTask(Task):
    name = "orpo"
    formats = ("pairs",)
    default_primary = "preference_accuracy"
    generates = True  # the policy is a chat model
    perplexity = False  # the validation loss is NLL + the odds-ratio term, not a per-token cross-entropy
    packs = False  # a pair's two sequences are scored side by side

    # Pairs are read exactly as DPO reads them (TRL's tokenising and preference collator).
    tokenize = DpoTask.tokenize
    batch_rows = DpoTask.batch_rows
    collate = DpoTask.collate

    def loss_function(self, config):
        return functools.partial(self.summed_loss, beta=config.orpo.beta)

    def summed_loss(self, model, batch, beta: float = 0.1):
        """(ORPO loss of the batch times its pairs, pairs): the trainer divides by the pairs, which gives
        ``ORPOTrainer``'s loss of the batch: the chosen NLL (a token mean) + the mean odds-ratio term."""
        mean_log_probs, nll_sum, tokens = sequence_statistics(model, batch)
        chosen, rejected = mean_log_probs.chunk(2)
        losses, _ = odds_ratio_losses(chosen, rejected, beta)
        pairs = int(chosen.numel())
        return pairs * nll_sum / tokens.clamp(min=1) + losses.sum(), pairs

    def score(self, model, tokenizer, test, config, labels, packs):
        import torch

        pairs = [self.tokenize(tokenizer, example, labels) for example in test]
        was_training = model.training
        model.eval()
        chosen, rejected, nll_sum, tokens = [], [], 0.0, 0.0
        with torch.no_grad():
            for start in range(0, len(pairs), config.eval.batch_size):
                batch = self.collate(pairs[start : start + config.eval.batch_size], tokenizer.pad_token_id)
                mean_log_probs, batch_nll, batch_tokens = sequence_statistics(model, batch)
                chosen.append(mean_log_probs.chunk(2)[0].cpu())
                rejected.append(mean_log_probs.chunk(2)[1].cpu())
                nll_sum, tokens = nll_sum + float(batch_nll), tokens + float(batch_tokens)
        model.train(was_training)
        losses, ratios = odds_ratio_losses(torch.cat(chosen), torch.cat(rejected), config.orpo.beta)
        chosen_nll = nll_sum / max(tokens, 1.0)
        scores = {
            "preference_accuracy": float((ratios > 0).double().mean()),
            "log_odds_ratio": float(ratios.double().mean()),
            "chosen_nll": chosen_nll,
            "loss": chosen_nll + float(losses.double().mean()),
        }
        return {"scores": scores, "predictions": [odds_text(ratio) for ratio in ratios.tolist()]}


def odds_text(ratio: float) -> str:
    """What predictions.jsonl and the report show for one pair."""
    return f"{'chosen' if ratio > 0 else 'rejected'} preferred (log-odds ratio {ratio:+.3f})"


ORPO = OrpoTask()
