"""Every YAML under configs/ is valid and starts with the command that runs it."""

from pathlib import Path

import pytest

from tuneloop.compare import read_compare_config
from tuneloop.config import load_config, read_raw_config
from tuneloop.methods import METHODS

CONFIGS = sorted((Path(__file__).parents[3] / "configs").glob("*.yaml"))


def test_there_are_example_configs():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_is_valid_and_says_how_to_run_it(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# tuneloop "), first_line
    assert path.name in first_line
    if first_line.startswith("# tuneloop compare"):  # one method section for every compared method
        methods = first_line.split("--methods")[1].split()[0].split(",") if "--methods" in first_line else list(METHODS)
        read_compare_config(path, {}, methods)
    else:
        load_config(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_leaves_the_run_folder_to_each_run(path):
    # a fixed out: would make the second run of the same command refuse the folder the first one wrote
    assert read_raw_config(path)[0].get("out") is None


def test_two_runs_of_a_config_get_different_folders(monkeypatch):
    from tuneloop.train import run

    config = load_config(next(p for p in CONFIGS if "compare" not in p.name))
    stamps = iter(["20250101-120000", "20250101-120001"])
    monkeypatch.setattr(run.time, "strftime", lambda _: next(stamps))
    first, second = run.default_out_dir(config.project), run.default_out_dir(config.project, "compare")
    assert first == Path("runs") / config.project / "20250101-120000"
    assert second == Path("runs") / config.project / "compare-20250101-120001"


def test_demo_uses_the_same_settings_as_its_example_config(tmp_path):
    from tuneloop.demo.run import demo_config

    example = load_config(Path(__file__).parents[3] / "configs" / "support_triage.yaml")
    demo = demo_config(Path(example.data.path[0]), tmp_path / "demo", seed=0)
    assert demo.model_dump(exclude={"out"}) == example.model_dump(exclude={"out"})
