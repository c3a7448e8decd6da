from tuneloop.data.schema import Example
from tuneloop.models.load import load_causal_lm
from tuneloop.text.tokenize import IGNORE, collate_packed, pack_examples, tokenize_chat


def chat(*turns):
    roles = ["system", "user", "assistant", "user", "assistant"]
    return Example("f.jsonl", 1, messages=tuple({"role": r, "content": c} for r, c in zip(roles, turns)))


def test_labels_cover_exactly_the_assistant_turns(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir))
    tokens = tokenize_chat(tokenizer, chat("Be brief.", "Hello there", "Hi!", "Again?", "Yes."))
    labelled = [t for t, l in zip(tokens.input_ids, tokens.labels) if l != IGNORE]
    assert tokenizer.decode(labelled) == "Hi!<|im_end|>\nYes.<|im_end|>\n"
    assert all(l in (IGNORE, t) for t, l in zip(tokens.input_ids, tokens.labels))


def test_packing_keeps_every_example_and_restarts_positions(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir))
    examples = [tokenize_chat(tokenizer, chat("s", "question " * (i + 1), "answer")) for i in range(9)]
    assert max(len(e) for e in examples) <= 128
    rows = pack_examples(examples, pack_length=128, seed=0)
    assert sum(len(r) for r in rows) == sum(len(e) for e in examples)
    assert all(len(r) <= 128 for r in rows) and len(rows) < len(examples)
    starts = sum(p == 0 for r in rows for p in r.position_ids)
    assert starts == len(examples)
    batch = collate_packed(rows[:2], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape
    assert int(batch["real_tokens"]) == len(rows[0]) + len(rows[1])
