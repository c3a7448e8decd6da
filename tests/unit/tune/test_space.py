"""The search space: typed parameters from the config, and the errors that name a bad entry."""

from __future__ import annotations

import pytest

from tuneloop.config import RunConfig, load_config
from tuneloop.errors import ConfigError
from tuneloop.tune.space import SearchParam, check_space, config_with, default_params, resolve_direction


def config_with_space(space: dict, **sections) -> RunConfig:
    return RunConfig.model_validate({"tune": {"space": space}, **sections})


def test_space_becomes_typed_parameters():
    config = config_with_space(
        {
            "train.learning_rate": {"low": "1e-4", "high": 1e-2, "log": True},  # YAML 1.1 reads 1e-4 as text
            "method.r": {"low": 4, "high": 16, "step": 4},
            "method.dropout": {"low": 0.0, "high": 0.2},
            "method.name": {"choices": ["lora", "rslora", "lora"]},
            "train.epochs": {"choices": [1, "2"]},
        }
    )
    params = {p.path: p for p in check_space(config)}
    assert params["train.learning_rate"] == SearchParam("train.learning_rate", "float", 1e-4, 1e-2, True)
    assert params["method.r"].kind == "int" and params["method.r"].step == 4
    assert params["method.dropout"].kind == "float"
    assert params["method.name"].choices == ("lora", "rslora")
    assert params["train.epochs"].choices == (1.0, 2.0)  # stored as the config field's type


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.learnin_rate": {"low": 0.1, "high": 1}}, r"tune\.space\.train\.learnin_rate: unknown parameter .*train\.learning_rate"),
        ({"lr": {"low": 0.1, "high": 1}}, r"tune\.space\.lr: unknown parameter"),
        ({"model.name": {"choices": ["a", "b"]}}, r"tune\.space\.model\.name: model settings cannot be searched"),
        ({"train.nproc": {"choices": [1, 2]}}, r"tune\.space\.train\.nproc: .*tune\.workers"),
        ({"train.early_stopping_metric": {"choices": ["loss"]}}, r"tune\.space\.train\.early_stopping_metric: .*tune\.metric"),
        ({"method.r": {"low": 2.5, "high": 8}}, r"tune\.space\.method\.r: .*whole numbers"),
        ({"method.dropout": {"low": 0.1, "high": 1.5}}, r"tune\.space\.method\.dropout: value 1\.5 is not allowed"),
        ({"method.target_modules": {"low": 1, "high": 2}}, r"tune\.space\.method\.target_modules: .*choices"),
        ({"method.name": {"choices": ["lora", "nope"]}}, r"tune\.space\.method\.name: .*unknown method 'nope'"),
    ],
)
def test_bad_entries_name_their_config_path(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(config_with_space(space))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"low": 0.01, "high": 0.001}, "empty range"),
        ({"low": 0.01, "high": 0.01}, "empty range"),
        ({"choices": []}, "empty choices"),
        ({"low": 0.01}, "give a range"),
        ({"low": 0, "high": 1, "log": True}, "log-scale range needs low > 0"),
        ({"low": 1, "high": 2, "choices": [1]}, "not both"),
        ({"low": 1, "high": 2, "sigma": 1}, "unknown key"),
    ],
)
def test_malformed_ranges_are_refused_when_the_file_is_read(tmp_path, entry, message):
    import yaml

    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({"tune": {"space": {"train.learning_rate": entry}}}))
    with pytest.raises(ConfigError, match=rf"{path}(.|\n)*tune\.space\.train\.learning_rate(.|\n)*{message}"):
        load_config(path)


def test_suggestions_follow_the_declared_kinds():
    import optuna

    config = config_with_space(
        {"train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "method.r": {"low": 4, "high": 16, "step": 4}, "method.name": {"choices": ["lora", "ia3"]}}
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = {p.path: p.suggest(trial) for p in check_space(config)}
        assert 1e-4 <= values["train.learning_rate"] <= 1e-2
        assert values["method.r"] in (4, 8, 12, 16) and isinstance(values["method.r"], int)
        assert values["method.name"] in ("lora", "ia3")
        study.tell(trial, values["train.learning_rate"])


def test_default_settings_are_a_trial_only_when_inside_the_space():
    inside = config_with_space({"train.learning_rate": {"low": 1e-4, "high": 1e-2}, "method.r": {"choices": [8, 16]}})
    assert default_params(inside, check_space(inside)) == {"train.learning_rate": 1e-3, "method.r": 16}
    outside = config_with_space({"method.r": {"low": 2, "high": 8}})
    assert default_params(outside, check_space(outside)) is None
    off_grid = config_with_space({"method.r": {"low": 4, "high": 20, "step": 8}})
    assert default_params(off_grid, check_space(off_grid)) is None


def test_config_with_sets_dotted_settings_and_validates():
    config = RunConfig()
    changed = config_with(config, {"train.learning_rate": 0.01, "method.name": "ia3"}, out="x")
    assert (changed.train.learning_rate, changed.method.name, changed.out) == (0.01, "ia3", "x")
    assert config.train.learning_rate == 1e-3  # the original is untouched


def test_direction_auto_minimises_losses_only():
    assert resolve_direction("loss", "auto") == "minimize" == resolve_direction("perplexity", "auto")
    assert resolve_direction("json_field_accuracy", "auto") == "maximize"
    assert resolve_direction("loss", "maximize") == "maximize"


@pytest.mark.parametrize(("method", "capacity"), [("lora", "method.r"), ("adapter", "method.bottleneck"), ("prompt", "method.num_virtual_tokens"), ("full", None)])
def test_an_empty_space_searches_the_methods_default(method, capacity):
    from tuneloop.methods import get_method

    config = config_with_space({}, method={"name": method})
    params = {p.path: p for p in check_space(config)}
    rate = params["train.learning_rate"]
    usual = get_method(method).learning_rate
    assert rate.kind == "float" and rate.log and rate.low < usual < rate.high
    assert set(params) == {"train.learning_rate"} | ({capacity} if capacity else set())
