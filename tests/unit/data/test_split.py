import hashlib
from collections import Counter

import pytest

from tuneloop.config import DataConfig
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits, check_no_leakage, dataset_hash, split_manifest, split_train_val_test
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError


def labelled(n, labels=("a", "b", "c"), source="f"):
    return [Example(source, i + 1, text=f"row number {i}", label=labels[i % len(labels)]) for i in range(n)]


def texts(n, source="f"):
    return [Example(source, i + 1, text=f"document {i}") for i in range(n)]


def lines(examples):
    return [e.line for e in examples]


def test_split_is_seeded_and_deterministic():
    examples = texts(100)
    first = split_train_val_test(examples, 0.1, 0.2, seed=3)
    again = split_train_val_test(list(examples), 0.1, 0.2, seed=3)
    other = split_train_val_test(examples, 0.1, 0.2, seed=4)
    assert first.sizes() == {"train": 70, "val": 10, "test": 20}
    assert (lines(first.train), lines(first.val), lines(first.test)) == (lines(again.train), lines(again.val), lines(again.test))
    assert lines(first.test) != lines(other.test)
    assert sorted(lines(first.train + first.val + first.test)) == list(range(1, 101))


def test_stratified_split_keeps_balanced_proportions():
    splits = split_train_val_test(labelled(300), 0.1, 0.2, seed=3)
    assert Counter(e.label for e in splits.test) == {"a": 20, "b": 20, "c": 20}
    assert Counter(e.label for e in splits.val) == {"a": 10, "b": 10, "c": 10}


@pytest.mark.parametrize("seed", range(5))
def test_stratified_split_keeps_imbalanced_proportions(seed):
    examples = labelled(200, labels=("common",) * 9 + ("rare",))  # 180 common, 20 rare
    splits = split_train_val_test(examples, 0.1, 0.2, seed=seed)
    test = Counter(e.label for e in splits.test)
    val = Counter(e.label for e in splits.val)
    assert abs(test["rare"] - 4) <= 1 and abs(val["rare"] - 2) <= 1
    assert splits.sizes() == {"train": 140, "val": 20, "test": 40}


def test_single_class_label_when_stratifying_is_an_error():
    with pytest.raises(DataError) as info:
        split_train_val_test(labelled(10, labels=("spam",)), 0.1, 0.2, seed=0)
    assert str(info.value) == (
        "cannot stratify by label: every row has the label 'spam'; "
        "a classifier needs at least two classes (or set data.stratify: false)"
    )
    assert split_train_val_test(labelled(10, labels=("spam",)), 0.1, 0.2, seed=0, stratify=False).sizes() == {"train": 7, "val": 1, "test": 2}


def test_unlabelled_examples_are_not_stratified():
    mixed = labelled(10) + [Example("f", 99, text="no label here")]
    assert sum(split_train_val_test(mixed, 0.2, 0.2, seed=0).sizes().values()) == 11


def test_duplicates_of_normalised_text_never_leak():
    examples = texts(60) + [Example("g", 100 + i, text=f"DOCUMENT   {i}!") for i in range(0, 60, 2)]
    examples += [Example("h", 200 + i, text=f"Documént {i}.") for i in range(0, 60, 5)]
    for seed in range(5):
        splits = split_train_val_test(examples, 0.2, 0.2, seed=seed)
        check_no_leakage(splits)
        key_sets = [{e.leakage_key() for e in part} for part in (splits.train, splits.val, splits.test)]
        assert sum(len(keys) for keys in key_sets) == len(set().union(*key_sets)) == 60
        assert sum(splits.sizes().values()) == len(examples)


def test_groups_are_split_not_rows():
    # 3 distinct inputs, one of them 10 times: each split gets a whole group
    examples = [Example("f", i, text="same question") for i in range(10)] + texts(2, source="g")
    splits = split_train_val_test(examples, 0.3, 0.3, seed=0)
    assert sorted(len({e.leakage_key() for e in part}) for part in (splits.train, splits.val, splits.test)) == [1, 1, 1]
    check_no_leakage(splits)


def test_leakage_is_detected_and_names_both_rows():
    a, b = Example("f.jsonl", 1, text="Same text"), Example("g.csv", 7, text="same  TEXT.")
    with pytest.raises(DataError, match=r"^leakage: g\.csv:7 \(test\) has the same normalised text as f\.jsonl:1 \(train\)$"):
        check_no_leakage(Splits(train=[a], val=[], test=[b]))


def test_every_non_zero_fraction_gets_a_group_when_there_are_three():
    assert split_train_val_test(labelled(3), 0.01, 0.01, seed=0).sizes() == {"train": 1, "val": 1, "test": 1}
    assert split_train_val_test(texts(3), 0.01, 0.01, seed=0).sizes() == {"train": 1, "val": 1, "test": 1}
    assert split_train_val_test(texts(3), 0.0, 0.01, seed=0).sizes() == {"train": 2, "val": 0, "test": 1}
    assert split_train_val_test(texts(2), 0.3, 0.3, seed=0).sizes()["train"] >= 1
    assert split_train_val_test(texts(1), 0.0, 0.9, seed=0).sizes() == {"train": 1, "val": 0, "test": 0}


def test_fractions_must_leave_room_for_training():
    with pytest.raises(DataError, match=r"val_fraction \+ test_fraction must be below 1 \(got 1\)"):
        split_train_val_test(texts(10), 0.5, 0.5, seed=0)


# --- hashes and manifest -----------------------------------------------------------------


def test_dataset_hash_depends_on_content_and_order_not_location():
    a = [Example("f", 1, text="x"), Example("f", 2, text="y")]
    moved = [Example("g", 9, text="x", meta={"note": 1}), Example("g", 3, text="y")]
    assert dataset_hash(a) == dataset_hash(moved) != dataset_hash(list(reversed(a)))
    assert dataset_hash(a) != dataset_hash([Example("f", 1, text="x"), Example("f", 2, text="y", label="l")])


def test_dataset_hash_is_stable_across_runs_and_versions():
    examples = [
        Example("f", 1, messages=({"role": "user", "content": "Grüße"}, {"role": "assistant", "content": "hi"})),
        Example("f", 2, text="t", label="l"),
    ]
    # pinned: a change here means every earlier run's dataset hash no longer compares
    assert dataset_hash(examples) == "da4b9514f6d30e00e20050b09876022931161b2cf62e35c7e01878ee281307cb"


def test_split_manifest_for_data_json(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [f'{{"text": "row {i}", "label": "{"ab"[i % 2]}"}}' for i in range(20)] + ["broken"] * 60
    path.write_text("\n".join(rows) + "\n")
    cfg = DataConfig(path=[str(path)], format="label", seed=1)
    report = load_examples(cfg)
    splits = split_train_val_test(report.examples, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    manifest = split_manifest(cfg, report, splits)
    assert manifest["sources"] == [{"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]
    assert (manifest["rows_read"], manifest["rows_kept"], manifest["rows_dropped"]) == (80, 20, 60)
    assert manifest["dropped_by_reason"] == {"malformed JSON": 60}
    assert len(manifest["dropped_rows"]) == 50
    first = manifest["dropped_rows"][0]
    assert (first["source"], first["line"], first["field"]) == (str(path), 21, None)
    assert first["reason"].startswith("malformed JSON: ")
    assert manifest["split_sizes"] == splits.sizes() and sum(splits.sizes().values()) == 20
    assert manifest["label_counts"] == {"a": 10, "b": 10}
    assert manifest["dataset_hash"] == dataset_hash(splits.train + splits.val + splits.test)


def test_dataset_hash_tells_ratings_apart():
    """The rating fields count once set (and, at their defaults, leave the pinned hash above alone)."""
    good = Example("f", 1, prompt="p", completion="c", good=True)
    assert len({dataset_hash([good]), dataset_hash([Example("f", 1, prompt="p", completion="c", good=False)]),
                dataset_hash([Example("f", 1, prompt="p", completion="c", good=True, score=0.9)])}) == 3  # fmt: skip
