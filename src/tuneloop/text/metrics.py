"""Text metrics comparing generated predictions with references: pure functions over strings.

Per-example scores lie in [0, 1]; :func:`compute_text_metrics` averages them over a test set.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import string
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Callable

from tuneloop.errors import TuneloopError

# Metrics where a smaller number is better; every other computed metric is higher-is-better.
LOWER_IS_BETTER = frozenset(
    {"loss", "perplexity", "general_perplexity", "qa_forgotten", "chosen_nll",
     "mia_auc", "mia_auc_calibrated", "canary_exposure", "canary_exposure_extrapolated",
     "hallucination_rate", "hallucination_rate_quoted_rows", "unsupported_share", "false_abstention_rate"}
)  # fmt: skip

MetricHook = Callable[[list[str], list[str]], dict[str, float]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def exact_match(pred: str, ref: str) -> float:
    """1.0 when both are equal once runs of whitespace are collapsed and the ends stripped."""
    return float(" ".join(pred.split()) == " ".join(ref.split()))


def squad_normalise(text: str) -> str:
    """SQuAD answer normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def token_f1(pred: str, ref: str) -> float:
    """SQuAD-style bag-of-tokens F1 between the normalised prediction and reference."""
    pred_tokens, ref_tokens = squad_normalise(pred).split(), squad_normalise(ref).split()
    if not pred_tokens or not ref_tokens:
        # Two empty answers agree; one empty answer shares nothing with the other.
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens)."""
    if not pred.strip() and not ref.strip():
        return 1.0
    return float(_rouge_scorer().score(ref, pred)["rougeL"].fmeasure)


def extract_json_object(text: str) -> dict | None:
    """The JSON object in ``text``: the whole text, or else the first ``{...}`` that parses.

    Tolerates what chat models wrap around their answer: prose, ```json fences, trailing text.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        value = None
    if isinstance(value, dict):
        return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text or ""):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def normalise_value(value) -> str:
    """A JSON value as a comparable string, so true == "true", 3 == "3.0" and "High" == "high"."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    else:
        text = str(value)
        text = _numeric_text(text)
    return " ".join(text.split()).casefold()


def _numeric_text(text: str) -> str:
    # "3.0" and "3" are the same answer; anything non-numeric passes through unchanged.
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else text


def json_field_accuracy(pred: str, ref: str) -> float:
    """Share of the reference object's keys whose value the predicted object matches.

    An unparseable prediction scores 0.0; so does a reference that is not a JSON object.
    """
    reference = extract_json_object(ref)
    prediction = extract_json_object(pred)
    if reference is None or prediction is None:
        return 0.0
    if not reference:
        return 1.0
    hits = sum(key in prediction and normalise_value(prediction[key]) == normalise_value(value)
               for key, value in reference.items())  # fmt: skip
    return hits / len(reference)


def json_valid(pred: str) -> bool:
    """Whether a JSON object can be read from the prediction (fences and prose tolerated)."""
    return extract_json_object(pred) is not None


def is_json_object(text: str) -> bool:
    """Strict check used on references: the whole text is one JSON object."""
    try:
        return isinstance(json.loads(text), dict)
    except (json.JSONDecodeError, TypeError):
        return False


def compute_text_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean exact_match, token_f1 and rouge_l; plus JSON metrics when every reference is an object."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return {}
    scorers: dict[str, Callable[[str, str], float]] = {
        "exact_match": exact_match,
        "token_f1": token_f1,
        "rouge_l": rouge_l,
    }
    if all(is_json_object(ref) for ref in references):
        scorers["json_field_accuracy"] = json_field_accuracy
        scorers["json_valid"] = lambda pred, _ref: float(json_valid(pred))
    pairs = list(zip(predictions, references))
    return {name: sum(score(p, r) for p, r in pairs) / len(pairs) for name, score in scorers.items()}



def squad_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Generative QA as SQuAD scores it: exact match and token F1 after answer normalisation."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return {}
    pairs = list(zip(predictions, references))
    return {
        "exact_match": sum(float(squad_normalise(p) == squad_normalise(r)) for p, r in pairs) / len(pairs),
        "f1": sum(token_f1(p, r) for p, r in pairs) / len(pairs),
    }


def classification_scores(predicted: list[int], actual: list[int], classes: int) -> dict:
    """Accuracy, macro-F1 (every class weighs the same) and the confusion matrix [actual][predicted]."""
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} references")
    confusion = [[0] * classes for _ in range(classes)]
    for p, a in zip(predicted, actual):
        confusion[a][p] += 1
    f1s = []
    for c in range(classes):
        true_positive = confusion[c][c]
        predicted_c = sum(confusion[a][c] for a in range(classes))
        actual_c = sum(confusion[c])
        if actual_c == 0 and predicted_c == 0:
            continue  # a class absent from both sides does not count towards the macro average
        f1s.append(2 * true_positive / (predicted_c + actual_c))
    accuracy = sum(confusion[c][c] for c in range(classes)) / max(len(actual), 1)
    return {"accuracy": accuracy, "macro_f1": sum(f1s) / max(len(f1s), 1), "confusion": confusion}


def choose_primary(metrics: dict, requested: str = "auto") -> str:
    """The headline metric: the requested one, or for "auto" json_field_accuracy, else rouge_l."""
    if requested != "auto":
        if requested not in metrics:
            available = ", ".join(sorted(metrics)) or "none"
            raise TuneloopError(f"eval.primary: metric '{requested}' was not computed (available: {available})")
        return requested
    for name in ("json_field_accuracy", "rouge_l"):
        if name in metrics:
            return name
    if not metrics:
        raise TuneloopError("eval.primary: no metrics were computed")
    return next(iter(metrics))


def load_metric_hook(spec: str) -> MetricHook:
    """Load ``'module:function'`` or ``'path/to/file.py:function'`` as a checked metric callable."""
    target, sep, function_name = spec.rpartition(":")
    if not sep or not target or not function_name:
        raise TuneloopError(f"eval.metric_hook '{spec}': expected 'module:function' or 'path/to/file.py:function'")
    module = _load_hook_module(target, spec)
    function = getattr(module, function_name, None)
    if function is None:
        raise TuneloopError(f"eval.metric_hook '{spec}': '{target}' has no function '{function_name}'")
    if not callable(function):
        raise TuneloopError(f"eval.metric_hook '{spec}': '{function_name}' is not callable")
    return _checked_hook(function, spec)


def _load_hook_module(target: str, spec: str):
    if target.endswith(".py") or "/" in target or "\\" in target:
        return _load_module_from_file(Path(target), spec)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        if err.name and target.startswith(err.name):
            message = f"eval.metric_hook '{spec}': no module named '{target}' (is it on PYTHONPATH?)"
            raise TuneloopError(message) from None
        raise TuneloopError(f"eval.metric_hook '{spec}': importing '{target}' failed: {err}") from None
    except Exception as err:  # the user's module: report its failure as a message, not our bug
        message = f"eval.metric_hook '{spec}': importing '{target}' failed: {type(err).__name__}: {err}"
        raise TuneloopError(message) from err


def _load_module_from_file(path: Path, spec: str):
    if not path.is_file():
        raise TuneloopError(f"eval.metric_hook '{spec}': file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(f"tuneloop_metric_hook_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise TuneloopError(f"eval.metric_hook '{spec}': cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report its failure as a message, not our bug
        raise TuneloopError(f"eval.metric_hook '{spec}': running {path} failed: {type(err).__name__}: {err}") from err
    return module


def _checked_hook(function: Callable, spec: str) -> MetricHook:
    """Wrap the user's function so a wrong return type is reported by name, not as a crash later."""

    def hook(predictions: list[str], references: list[str]) -> dict[str, float]:
        result = function(predictions, references)
        if not isinstance(result, dict):
            kind = type(result).__name__
            raise TuneloopError(f"eval.metric_hook '{spec}' returned {kind}, expected dict[str, float]")
        try:
            return {str(name): float(value) for name, value in result.items()}
        except (TypeError, ValueError):
            raise TuneloopError(f"eval.metric_hook '{spec}': every value of its result must be a number") from None

    return hook
