"""DP-SGD (train/dp_sgd.py): the accountant's epsilon, per-example clipping, Poisson sampling, the
record in train.json / metrics.json / the report, and every setting refused or switched off."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import run_cli, tiny_config, toy_chat_rows, toy_label_rows, write_jsonl
from tuneloop.errors import ConfigError, DataError
from tuneloop.evaluate.heldout import training_privacy
from tuneloop.evaluate.report import run_facts
from tuneloop.methods import METHODS, methods_where
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir
from tuneloop.train.dp_sgd import DpPlan, PrivateTraining, check_dp_settings, dp_rows_per_step, physical_batches, plan_dp, poisson_batches, sampled_losses
from tuneloop.train.prepare import prepare_dataset
from tuneloop.train.run import load_model_with_method, train
from tuneloop.tune.study import check_trials_can_run


@pytest.fixture(scope="module")
def dp_run(tiny_model_dir, tmp_path_factory):
    """A tiny DP run through the CLI flags the privacy bench uses (--dp-epsilon ...); shared by the tests that
    read its train.json (about 15 s, most of it the first import of transformers, peft and opacus)."""
    folder = tmp_path_factory.mktemp("dp")
    data = write_jsonl(folder / "toy.jsonl", toy_chat_rows(60))
    out = folder / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(data), "--format", "chat", "--out", str(out),
        "--tokens-per-batch", "256", "--max-steps", "4", "--lr", "5e-3", "--r", "4", "--early-stopping-patience", "0",
        "--dp-epsilon", "8", "--dp-max-grad-norm", "0.5",
    )  # fmt: skip
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


def test_dp_run_records_the_guarantee_in_train_json(dp_run):
    dp = json.loads((dp_run / "train.json").read_text())["dp"]
    assert dp["steps"] == dp["planned_steps"] == 4
    assert dp["target_epsilon"] == 8.0 and dp["max_grad_norm"] == 0.5 and dp["accountant"] == "rdp"
    assert 0 < dp["epsilon"] <= 8.0
    rows = len(RunDir(dp_run).split("train"))
    assert dp["training_rows"] == rows
    assert dp["delta"] == min(1e-5, 0.1 / rows)
    assert dp["sample_rate"] == pytest.approx(dp["expected_batch_rows"] / rows)
    assert any(reason.startswith("packing off") for reason in dp["switched_off"])
    assert any(reason.startswith("fused kernels off") for reason in dp["switched_off"])
    assert (dp_run / "adapter").is_dir()


def test_epsilon_equals_opacus_own_accountant_for_the_same_steps(dp_run):
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    dp = json.loads((dp_run / "train.json").read_text())["dp"]
    accountant = RDPAccountant()
    for _ in range(dp["steps"]):
        accountant.step(noise_multiplier=dp["noise_multiplier"], sample_rate=dp["sample_rate"])
    assert dp["epsilon"] == pytest.approx(accountant.get_epsilon(dp["delta"]), abs=1e-4)
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # Opacus' default orders
    rdp = compute_rdp(q=dp["sample_rate"], noise_multiplier=dp["noise_multiplier"], steps=dp["steps"], orders=orders)
    assert dp["epsilon"] == pytest.approx(get_privacy_spent(orders=orders, rdp=rdp, delta=dp["delta"])[0], abs=1e-4)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_noise_is_the_least_that_keeps_epsilon_within_the_target(tmp_path, accountant):
    from opacus.accountants import create_accountant

    config = tiny_config(tmp_path, tmp_path / "x.jsonl", tmp_path / "run", dp_epsilon=3.0, dp_accountant=accountant, epochs=2.0)
    plan = plan_dp(config, rows=1000, rows_per_step=50)
    assert plan.sample_rate == 0.05 and plan.planned_steps == 40 and plan.delta == 1e-5

    def epsilon(noise: float) -> float:
        spent = create_accountant(accountant)
        spent.history = [(noise, plan.sample_rate, plan.planned_steps)]
        return spent.get_epsilon(plan.delta)

    assert epsilon(plan.noise_multiplier) <= 3.0 < epsilon(0.95 * plan.noise_multiplier)


def test_poisson_sampling_draws_each_row_independently():
    sizes, seen = [], torch.zeros(1000)
    for indices in poisson_batches(rows=1000, sample_rate=0.05, steps=400):
        sizes.append(len(indices))
        seen[list(indices)] += 1
    sizes = torch.tensor(sizes, dtype=torch.float)
    assert len(sizes) == 400
    assert sizes.mean() == pytest.approx(50, abs=2)  # expected batch = rows x rate
    assert sizes.var() == pytest.approx(1000 * 0.05 * 0.95, rel=0.3)  # binomial, not a fixed batch size
    assert seen.mean() / 400 == pytest.approx(0.05, abs=0.003)


def private_setup(model_dir, tmp_path, method: str = "lora", noise: float = 0.0, max_grad_norm: float = 1.0, task_name: str = "sft"):
    """(task, tokenizer, 4 tokenised training rows, the model with the method applied, its PrivateTraining)."""
    classify = task_name == "classify"
    data = write_jsonl(tmp_path / "toy.jsonl", toy_label_rows(30) if classify else toy_chat_rows(20))
    config = tiny_config(model_dir, data, tmp_path / "run", dp_epsilon=1.0)
    raw = config.model_dump()
    raw["method"] = {"name": method}
    raw["task"], raw["data"]["format"] = task_name, "label" if classify else "chat"
    config = type(config).model_validate(raw)
    task = get_task(task_name)
    tokenizer = task.load_tokenizer(config.model)
    prepared = prepare_dataset(config.data, tokenizer, task)
    rows = prepared.train_tokens[:4]
    model = load_model_with_method(task, config, prepared.labels)
    plan = DpPlan(1.0, 1e-5, noise, 0.25, 4, 10, max_grad_norm, "rdp", 16)
    return task, tokenizer, rows, model, PrivateTraining(model, plan, config)


def per_example_gradients(task, tokenizer, rows, model) -> list[dict]:
    """Each row's gradient by plain autograd, one row at a time."""
    grads = []
    for row in rows:
        model.zero_grad(set_to_none=True)
        batch = task.collate([row], tokenizer.pad_token_id)
        batch.pop("real_tokens")
        task.per_example_losses(model, batch).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad})
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.grad_sample = None
    return grads


def assert_close_to_scale(actual, expected):
    """Equal up to float error relative to the gradient's own scale (padding changes the summation order)."""
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-9)


def test_clipping_bounds_each_example_gradient(tiny_model_dir, tmp_path, one_torch_thread):
    """With no noise, the step's gradient is the sum of the per-example gradients, each scaled to norm
    at most C, divided by the expected batch (4): checked against plain autograd, one row at a time."""
    task, tokenizer, rows, model, private = private_setup(tiny_model_dir, tmp_path)
    model.train()
    grads = per_example_gradients(task, tokenizer, rows, model)
    norms = [math.sqrt(sum(float(g.pow(2).sum()) for g in grad.values())) for grad in grads]
    clip = sorted(norms)[1] * 1.01  # the smallest row stays whole, the others are scaled down
    private.optimizer.max_grad_norm = clip
    losses, tokens = private.step([rows], losses_of(task, tokenizer, model))
    assert len(losses) == 4 and tokens == sum(len(row) for row in rows)
    for name, p in model.named_parameters():
        if p.requires_grad:
            expected = sum(grad[name] * min(1.0, clip / norm) for grad, norm in zip(grads, norms)) / 4
            torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-7)
    assert private.accountant.history == [(0.0, 0.25, 1)]


def losses_of(task, tokenizer, model):
    return lambda rows: sampled_losses(task, model, rows, tokenizer.pad_token_id, model.device)


def test_a_step_split_into_physical_batches_clips_the_same_rows_and_adds_noise_once(tiny_model_dir, tmp_path, one_torch_thread):
    """Rows run one physical batch at a time give the step the same clipped sum as one batch of all of them,
    and the accountant counts one step."""
    task, tokenizer, rows, model, private = private_setup(tiny_model_dir, tmp_path, max_grad_norm=0.01)
    model.train()
    for group in private.optimizer.param_groups:
        group["lr"] = 0.0  # both steps see the same weights
    private.step([rows], losses_of(task, tokenizer, model))
    whole = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    batches = physical_batches(rows, max(len(row) for row in rows))  # one row per batch
    assert len(batches) == 4 and sorted(map(len, rows), reverse=True) == [len(b[0]) for b in batches]
    private.step(batches, losses_of(task, tokenizer, model))
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert_close_to_scale(p.grad, whole[name])
    assert private.accountant.history == [(0.0, 0.25, 2)]


def test_physical_batches_hold_at_most_the_token_budget():
    rows = [[0] * n for n in (10, 50, 20, 40, 30)]
    batches = physical_batches(rows, 100)
    assert [[len(row) for row in batch] for batch in batches] == [[50, 40], [30, 20, 10]]
    assert all(len(batch) * len(batch[0]) <= 100 for batch in batches)
    assert physical_batches([[0] * 300], 100) == [[[0] * 300]]  # a row longer than the budget still runs, alone


def test_an_empty_sample_still_adds_noise_and_counts_as_a_step(tiny_model_dir, tmp_path, one_torch_thread):
    task, tokenizer, rows, model, private = private_setup(tiny_model_dir, tmp_path, noise=1.0)
    assert private.step([], None) == ([], 0)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    assert private.accountant.history == [(1.0, 0.25, 1)]
    private.close()
    assert not any(hasattr(p, "grad_sample") and p.grad_sample is not None for p in model.parameters())


@pytest.mark.parametrize("method", methods_where("per_example_grads"))
def test_every_method_allowed_gets_each_rows_own_gradient(tiny_model_dir, tmp_path, method, one_torch_thread):
    """Opacus' per-example gradients equal plain autograd's, one row at a time, for each method DP-SGD accepts."""
    task, tokenizer, rows, model, private = private_setup(tiny_model_dir, tmp_path, method)
    model.train()
    grads = per_example_gradients(task, tokenizer, rows, model)
    batch = task.collate(rows, tokenizer.pad_token_id)
    batch.pop("real_tokens")
    task.per_example_losses(model, batch).mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            for i, grad in enumerate(grads):
                assert_close_to_scale(p.grad_sample[i], grad[name])


def test_a_classifier_head_gets_each_rows_own_gradient(tiny_bert_dir, tmp_path, one_torch_thread):
    """classify: LoRA on an encoder and the new head (peft's modules_to_save copy), per row as by plain autograd."""
    task, tokenizer, rows, model, private = private_setup(tiny_bert_dir, tmp_path, task_name="classify")
    model.train()
    for module in model.modules():  # BERT's dropout would draw other masks for the batch than for each row
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    grads = per_example_gradients(task, tokenizer, rows, model)
    assert any("classifier" in name for name in grads[0])
    batch = task.collate(rows, tokenizer.pad_token_id)
    batch.pop("real_tokens")
    task.per_example_losses(model, batch).mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            for i, grad in enumerate(grads):
                assert_close_to_scale(p.grad_sample[i], grad[name])


# --- refusals: each before anything is written ------------------------------------------------


def dp_config(tmp_path, model_dir="unused", **overrides):
    from tuneloop.config import load_config

    raw = {"model.name": str(model_dir), "data.path": [str(tmp_path / "toy.jsonl")], "out": str(tmp_path / "run"), "train.dp_epsilon": 8.0}
    return load_config(None, {**raw, **overrides})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"task": "dpo", "data.format": "pairs"}, "task dpo has no per-example loss"),
        ({"method.name": "ia3"}, "method ia3 trains parameters without a correct per-example gradient"),
        ({"method.name": "prompt"}, "method prompt"),
        ({"train.nproc": 2}, "train.nproc"),
        ({"train.save_steps": 5}, "train.save_steps"),
        ({"train.curriculum": "length"}, "Poisson-sampled"),
        ({"data.mix": [{"name": "other", "path": ["x.jsonl"]}]}, "data.mix"),
        ({"data.replay_fraction": 0.1, "data.replay_loss": "kl"}, "data.replay_loss kl"),
        ({"train.precision": "bf16"}, "fp32"),
    ],
)
def test_settings_dp_cannot_honour_are_refused(tmp_path, overrides, reason):
    config = dp_config(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=reason):
        check_dp_settings(config, get_task(config.task), resume=False)


def test_resuming_a_dp_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--resume"):
        check_dp_settings(dp_config(tmp_path), get_task("sft"), resume=True)


def test_every_method_without_per_example_grads_is_named_in_the_refusal(tmp_path):
    allowed = methods_where("per_example_grads")
    assert {"lora", "full"} <= set(allowed) and not METHODS["dora"].per_example_grads
    with pytest.raises(ConfigError, match=", ".join(allowed)):
        check_dp_settings(dp_config(tmp_path, **{"method.name": "dora"}), get_task("sft"), resume=False)


def test_epsilon_not_above_zero_exits_2_and_writes_nothing(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(20))
    result = run_cli("train", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "run"), "--dp-epsilon", "0")
    assert result.exit_code == 2 and "train.dp_epsilon" in result.output
    assert not (tmp_path / "run").exists()


def test_delta_not_below_one_over_rows_is_refused_before_the_run_folder(tiny_model_dir, tmp_path, one_torch_thread):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(20))
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", dp_epsilon=8.0, dp_delta=0.1)  # 12 training rows
    with pytest.raises(ConfigError, match=r"train.dp_delta 0.1 is not below 1/\(training rows\) = 1/12"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_full_fine_tune_over_the_gradient_memory_budget_is_refused_with_the_numbers(tiny_model_dir, tmp_path, one_torch_thread):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(20))
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", dp_epsilon=8.0, dp_grad_sample_memory_gb=0.001)
    raw = config.model_dump()
    raw["method"] = {"name": "full"}
    config = type(config).model_validate(raw)
    trainable = sum(p.numel() for p in load_model_with_method(get_task("sft"), config, None).parameters())
    with pytest.raises(ConfigError, match=rf"{trainable:,} trainable parameters x \d+ expected rows x 4 bytes = [0-9.]+ GB exceed"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_cpt_documents_cut_into_pieces_are_refused(tiny_model_dir, tmp_path, one_torch_thread):
    data = tmp_path / "docs.txt"
    data.write_text("\n\n".join(f"Billing {i}: refunds are handled within {i % 5 + 1} days by the team." for i in range(30)) + "\n")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", dp_epsilon=8.0)
    config = config.model_copy(update={"task": "cpt", "data": config.data.model_copy(update={"format": "text", "max_length": 10})})
    with pytest.raises(DataError, match=r"docs.txt:\d+: this training row is longer than data.max_length \(10 tokens\) and would train as \d+ pieces"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_a_search_with_dp_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not \\(epsilon, delta\\)-private"):
        check_trials_can_run(dp_config(tmp_path))


# --- metrics.json and the report ----------------------------------------------------------------


def test_eval_copies_dp_into_metrics_and_the_report_states_it(dp_run):
    dp = json.loads((dp_run / "train.json").read_text())["dp"]
    entry = training_privacy(RunDir(dp_run))["dp"]
    assert entry["epsilon"] == dp["epsilon"] and entry["delta"] == dp["delta"] and entry["steps"] == dp["steps"]
    facts = dict(run_facts({"model": "m", "dp": entry}))
    assert facts["differential privacy"].startswith(f"(ε = {dp['epsilon']:.3g}, δ = {dp['delta']:.3g}) over {dp['training_rows']} training rows")


def test_runs_without_dp_have_no_dp_entry(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text(json.dumps({"steps": 3}))
    assert training_privacy(RunDir(run)) == {}


def test_expected_rows_per_step_hold_tokens_per_batch_at_the_mean_row_length():
    rows = [[0] * 100, [0] * 300]  # mean 200 tokens
    assert dp_rows_per_step(rows, 1024) == 5  # 1024 / 200 = 5.1
    assert dp_rows_per_step(rows, 50) == 1  # never below one row
