import pytest

from tuneloop.config import RunConfig, load_config
from tuneloop.config_flags import config_flags, overrides_from_params, parse_mapping
from tuneloop.errors import ConfigError


def test_unknown_key_reports_its_path(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 1\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.learnin_rate: unknown key"):
        load_config(path)


def test_bad_value_reports_its_path(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  val_fraction: 2\n")
    with pytest.raises(ConfigError, match=r"data\.val_fraction"):
        load_config(path)


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 3\nmethod:\n  r: 4\n")
    config = load_config(path, {"train.epochs": 1.5, "data.path": ["a.csv"]})
    assert config.train.epochs == 1.5 and config.method.r == 4 and config.data.path == ["a.csv"]


def test_every_config_field_has_a_distinct_flag():
    flags = config_flags(RunConfig)
    names = [f.flag for f in flags]
    assert len(names) == len(set(names))
    assert {"model", "data", "format", "method", "epochs", "max-steps", "save-steps", "lr", "out"} <= set(names)
    assert {"data-seed", "train-seed"} <= set(names)


def test_flag_values_are_parsed_to_config_types():
    flags = config_flags(RunConfig)
    params = {"data__columns": "prompt=q,completion=a", "data__target_columns": "x, y", "method__target_modules": "q_proj,v_proj", "data__path": ("a.csv",)}
    overrides = overrides_from_params(flags, params)
    assert overrides == {
        "data.path": ["a.csv"],
        "data.columns": {"prompt": "q", "completion": "a"},
        "data.target_columns": ["x", "y"],
        "method.target_modules": ["q_proj", "v_proj"],
    }
    assert overrides_from_params(flags, {"method__target_modules": "all-linear"}) == {"method.target_modules": "all-linear"}


def test_malformed_mapping_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_mapping("prompt")


def test_each_command_lists_only_the_flags_that_apply_to_it():
    from click.testing import CliRunner

    from tuneloop.cli import build_cli

    tune_only = ("--trials", "--space", "--workers", "--storage", "--study-name", "--pruner")
    helps = {name: CliRunner().invoke(build_cli(), [name, "--help"], terminal_width=200).output for name in ("train", "compare", "tune")}
    for name in ("train", "compare"):
        assert "--lr" in helps[name] and "--val-fraction" in helps[name]
        assert not [flag for flag in tune_only if flag in helps[name]], name
    assert all(flag in helps["tune"] for flag in (*tune_only, "--lr"))


def test_a_field_has_the_same_flag_whichever_sections_a_command_leaves_out():
    everything = {f.dotted: f.flag for f in config_flags(RunConfig)}
    without_tune = {f.dotted: f.flag for f in config_flags(RunConfig, without=("tune",))}
    assert without_tune == {dotted: flag for dotted, flag in everything.items() if not dotted.startswith("tune.")}
    assert without_tune["train.seed"] == "train-seed"  # still told apart from tune.seed


def test_space_flags_take_the_yaml_mapping_their_help_shows():
    from tuneloop.tune.space import check_space

    entries = ("train.learning_rate={low: 1e-4, high: 1.0e-2, log: true}", "method.r: {choices: [4, 8]}", "method.alpha={low: 8, high: 64, step: 8}")
    config = load_config(None, overrides_from_params(config_flags(RunConfig), {"tune__space": entries}))
    params = {p.path: p for p in check_space(config)}
    assert (params["train.learning_rate"].low, params["train.learning_rate"].high, params["train.learning_rate"].log) == (1e-4, 1e-2, True)
    assert params["method.r"].choices == (4, 8)
    assert params["method.alpha"].step == 8


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("train.learning_rate=1e-4,1e-2", r"--space 'train.learning_rate=1e-4,1e-2': expected KEY=\{...\}"),
        ("train.learning_rate={low: 1e-4, high: [", r"--space .*: not a YAML mapping"),
        ("{low: 1e-4, high: 1e-2}", r"expected KEY=\{...\}, e.g. --space 'train.learning_rate=\{low"),
    ],
)
def test_malformed_space_flag_is_refused_with_the_expected_form(entry, message):
    with pytest.raises(ConfigError, match=message):
        overrides_from_params(config_flags(RunConfig), {"tune__space": (entry,)})


def test_tune_command_refuses_a_comma_split_space_flag_in_one_line():
    from click.testing import CliRunner

    from tuneloop.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["tune", "--space", "train.learning_rate=low=1e-4,high=1e-2"])
    assert result.exit_code == 2
    assert "error: --space 'train.learning_rate=low=1e-4,high=1e-2': expected KEY={...}" in result.output
