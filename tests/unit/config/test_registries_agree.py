"""The config's lists of task and format names are the registries' own (the config layer sits below
data and objectives, so it names them; this keeps the names from drifting apart)."""

from tuneloop.config import FORMATS, TASKS
from tuneloop.data.formats import FORMATS as FORMAT_REGISTRY
from tuneloop.objectives import TASKS as TASK_REGISTRY


def test_config_tasks_are_the_registered_tasks():
    assert list(TASKS) == list(TASK_REGISTRY)


def test_config_formats_are_the_registered_formats():
    assert list(FORMATS) == list(FORMAT_REGISTRY)
