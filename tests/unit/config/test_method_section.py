"""The method: section is the named method's own settings: another method's setting is refused, not ignored."""

from __future__ import annotations

import pytest

from tuneloop.config import load_config
from tuneloop.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_a_setting_of_another_method_is_refused_with_the_methods_own(tmp_path):
    with pytest.raises(ConfigError, match=r"method\.r does not apply to method 'ia3' \(its settings: target_modules, init_from\)"):
        load_config(write(tmp_path, "method: {name: ia3, r: 8}\n"))


def test_a_flag_for_another_method_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"method\.bottleneck does not apply to method 'lora'"):
        load_config(None, {"method.bottleneck": 32})


def test_switching_the_files_method_by_flag_drops_the_settings_it_lacks(tmp_path):
    path = write(tmp_path, "method: {name: lora, r: 8, alpha: 16, target_modules: [q_proj]}\n")
    assert load_config(path, {"method.name": "full"}).method.model_dump() == {"name": "full"}
    kept = load_config(path, {"method.name": "ia3"}).method
    assert kept.name == "ia3" and kept.target_modules == ["q_proj"]  # a setting both have carries over
    assert load_config(path, {"method.name": "dora", "method.r": 4}).method.r == 4  # flags still win


def test_an_unknown_method_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown method 'magic'; choose one of .*lora"):
        load_config(None, {"method.name": "magic"})
