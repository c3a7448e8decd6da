"""Every YAML under configs/ is valid and starts with the command that runs it."""

from pathlib import Path

import pytest

from tuneloop.compare import read_compare_config
from tuneloop.config import load_config
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


def test_demo_uses_the_same_settings_as_its_example_config(tmp_path):
    from tuneloop.demo.run import demo_config

    example = load_config(Path(__file__).parents[3] / "configs" / "support_triage.yaml")
    demo = demo_config(Path(example.data.path[0]), Path(example.out), seed=0)
    assert demo.model_dump() == example.model_dump()
