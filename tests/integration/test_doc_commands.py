"""The fenced commands of README.md and docs/**/*.md run here, on tiny random models.

Convention for the Markdown files:

* a fence tagged ``bash`` holds commands, and this module runs it;
* ``text`` is illustrative output (a tree, a table printed by a command); it is not run;
* ``yaml`` is a configuration excerpt; it must be a valid run configuration (checked here).
* ``python`` is code shown to read (a method module, a suite); it must compile.

No other fence tag is allowed. Two kinds of ``bash`` block are not run, and
``test_only_the_setup_block_and_records_are_not_run`` holds that rule:

* the README's set-up block (``make demo``, ``make test``): ``make demo`` is a ten-minute job on
  the real model, and ``make test`` runs this suite;
* the commands recorded in ``docs/results/`` by the benchmark scripts that ran them (hours on
  the real model, and the figures beside them are those runs' own). Each of them must still parse
  against the current command line, and its config file load with its flags:
  ``test_recorded_commands_parse``.

How a page's blocks run (``test_page_commands_run``): one fresh sandbox per page, holding copies
of the repository's ``examples/`` and ``configs/`` and of the YAML files under ``docs/``, a fresh
``$TUNELOOP_HOME`` (so a fresh store) and a ``.venv/bin`` of this test (``activate``, ``python``
and a ``tuneloop`` shim) that comes first on ``PATH``; ``PYTHONPATH`` names this checkout's
``src``. ``$TUNELOOP_CACHE`` is the test session's, shared by all pages (``session_cache``): the
PII scrub of the demo's tickets is analysed by the first command that trains on them, and the
others read its findings, as a user's second run on the same file does. The page's ``bash``
blocks then run in the order they appear, each with ``bash -e -o pipefail`` in the sandbox,
standard input closed (``tuneloop chat`` quits at once), in a process group of its own that is
killed when the block ends (a server left running in the background). A block fails when it
exits non-zero or prints a traceback (``tuneloop compare`` reports a crashed method in its table
and exits 0). Blocks of one page share the sandbox, so a page may train a run in one block and
serve it in the next. Pages run ``WORKERS`` at a time, every command on one thread (on a busy
2-core machine, threads contending cost more than they give).

The rewrite table, what makes the commands fast without changing what they do:

* models (``ran_pages``): a built-in or hub model name becomes a tiny random model of the same
  kind (``smollm2-135m-instruct`` -> a 2-layer Llama, ``minilm-l6`` -> a 2-layer BERT,
  ``google-t5/t5-small`` -> a 2-layer T5), both in the config copies and wherever the shim finds
  one as an argument; a verb that would load the default model gets the tiny Llama
  (``DEFAULT_MODEL_FLAG``) unless the command names a model or a config file.
* budgets (``APPEND``): the shim appends small budgets to the verbs that train or evaluate (two
  optimiser steps, four test rows, four new tokens, one thread, ...). Flags given later win, so
  these override the page's own values of the same flags and leave the rest alone.
  ``tuneloop data synth`` gets the model-free rules generator: the tiny random model writes
  questions the round-trip filter rejects, and the rows are needed by the commands after it.
* port (``run_block``): ``8000`` in a block becomes a free port on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs" / "results"  # written by the scripts that measured them
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>```+)(?P<info>[^`]*)$")
TAGS = {"bash", "text", "yaml", "python"}
SETUP_COMMANDS = ["make demo", "make test"]

# Budgets appended to each verb's arguments by the tuneloop shim (later flags win).
EVAL_BUDGET = ["--max-examples", "4", "--max-new-tokens", "4", "--batch-size", "8", "--few-shot-max-examples", "2",
               "--forgetting-prompts", "2", "--forgetting-max-new-tokens", "4"]  # fmt: skip
TRAIN_BUDGET = ["--max-steps", "2", "--replay-max-new-tokens", "4", "--threads", "1", *EVAL_BUDGET]
APPEND = {
    "train": TRAIN_BUDGET,
    "compare": TRAIN_BUDGET,
    "tune": [*TRAIN_BUDGET, "--trials", "2"],
    "eval": ["--max-examples", "4"],
    "generate": ["--max-new-tokens", "4"],
    "chat": ["--max-new-tokens", "4"],
    "retrain": ["--max-steps", "2"],
    "data synth": ["--generator", "rules", "--limit", "12"],
}
# Verbs whose default model is the real one: the flag that names it, when the command does not.
DEFAULT_MODEL_FLAG = {"train": "--model", "compare": "--model", "tune": "--model", "data synth": "--model", "serve": "--base"}
MAX_SECONDS_PER_BLOCK = 300
WORKERS = 2  # pages run side by side, each command on one thread


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    tag: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page (fences may be indented, inside list items)."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        body, end = [], index + 1
        while end < len(lines) and lines[end].strip() != ticks:
            body.append(lines[end][len(indent):] if lines[end].startswith(indent) else lines[end])
            end += 1
        assert end < len(lines), f"{page.relative_to(ROOT)}:{index + 1}: fence never closed"
        blocks.append(Block(page, index + 1, opening["info"].strip(), "\n".join(body) + "\n"))
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]


def setup_block() -> Block:
    return next(block for block in ALL_BLOCKS if block.page.name == "README.md" and block.tag == "bash")


def commands(text: str) -> list[str]:
    """The commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_record(page: Path) -> bool:
    return page.is_relative_to(RECORDS)


def blocks_to_run(page: Path) -> list[Block]:
    if is_record(page):
        return []
    return [block for block in fenced_blocks(page) if block.tag == "bash" and block != setup_block()]


def is_group(command) -> bool:
    """A command with subcommands (typer's groups come from its own copy of click, so no isinstance)."""
    return hasattr(command, "commands")


# --- the rules of the convention ----------------------------------------------------------------


def test_every_fence_is_tagged_bash_text_yaml_or_python():
    untagged = [f"{block.where}: ```{block.tag}" for block in ALL_BLOCKS if block.tag not in TAGS]
    assert not untagged, "fences must be tagged bash (run by this test), text (output), yaml (config) or python (code):\n" + "\n".join(untagged)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.tag == "python"], ids=lambda b: b.where)
def test_python_blocks_compile(block):
    """Code shown in the docs (a method's module, a suite) is Python as written; a registration line alone
    (a dict entry) compiles inside a dict."""
    try:
        compile(block.text, block.where, "exec")
    except SyntaxError:
        compile("{\n" + block.text + "\n}", block.where, "exec")


def test_only_the_setup_block_and_records_are_not_run():
    bash = [block for block in ALL_BLOCKS if block.tag == "bash"]
    run = {block for page in PAGES for block in blocks_to_run(page)}
    assert [block for block in bash if block not in run and not is_record(block.page)] == [setup_block()]
    assert commands(setup_block().text) == SETUP_COMMANDS


RECORDED = [block for block in ALL_BLOCKS if block.tag == "bash" and is_record(block.page)]


@pytest.mark.parametrize("block", RECORDED, ids=lambda b: b.where)
def test_recorded_commands_parse(block):
    """A command recorded beside its figures still parses: its options exist and take those values."""
    import shlex

    from tuneloop.cli import build_cli
    from tuneloop.config import RunConfig, load_config
    from tuneloop.config_flags import config_flags, overrides_from_params

    for line in commands(block.text):
        program, *args = shlex.split(line)
        assert program == "tuneloop", f"{block.where}: not a tuneloop command: {line}"
        command, name = build_cli(), "tuneloop"
        while is_group(command):
            name, args = args[0], args[1:]
            command = command.commands[name]
        context = command.make_context(name, list(args))  # raises on an unknown option or a bad value
        if "config_file" in context.params:  # train, compare, tune: the file with the flags over it
            params = dict(context.params)
            config = params.pop("config_file")
            load_config(config and ROOT / config, overrides_from_params(config_flags(RunConfig), params))


def test_readme_opens_with_the_setup_block_and_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and len(lines) <= 200
    first_fence = next(number for number, line in enumerate(lines) if line.startswith("```"))
    between = [line for line in lines[1:first_fence] if line.strip()]
    assert len(between) <= 1, f"only a one-line tagline may come between the title and the set-up block: {between}"
    assert setup_block().line == first_fence + 1


def test_readme_names_every_command():
    """The README's map of the verbs names every ``tuneloop`` command there is."""
    from tuneloop.cli import build_cli

    def leaves(group, prefix: str) -> list[str]:
        found = []
        for name, command in group.commands.items():
            path = f"{prefix} {name}"
            found += leaves(command, path) if is_group(command) else [path]
        return found

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in leaves(build_cli(), "tuneloop") if f"`{name}`" not in readme]
    assert not missing, f"README.md does not name: {missing}"


def test_no_lab_notes_in_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"[Ii]ssue #\d|\b20\d\d-\d\d-\d\d\b|earlier the same day", readme)


LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")
WRITTEN_ELSEWHERE = {"docs/architecture.md", "docs/extending.md"}  # the lead's pages, on another branch


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            if not path.exists() and str(path.relative_to(ROOT)) not in WRITTEN_ELSEWHERE:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_scripts_named_in_the_docs_exist():
    """Measurement scripts are named inline (`python bench/x.py`) beside their figures; they must exist."""
    named = {path for page in PAGES for path in re.findall(r"python ((?:bench|examples)/[\w/]+\.py)", page.read_text(encoding="utf-8"))}
    assert named and not [path for path in named if not (ROOT / path).is_file()]


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.tag == "yaml"], ids=lambda b: b.where)
def test_yaml_blocks_are_valid_configs(block):
    import yaml

    from tuneloop.config import build_config

    build_config(yaml.safe_load(block.text), block.where)


# --- running the commands -----------------------------------------------------------------------


SHIM = '''#!{python}
"""tuneloop with the doc-test's rewrite table (tests/integration/test_doc_commands.py) applied to its arguments."""
import json
import sys

if __name__ == "__main__":  # not again in the processes that tuneloop compare spawns
    table = json.loads({table!r})
    args = [table["models"].get(arg, arg) for arg in sys.argv[1:]]
    verb = " ".join(args[:2]) if args[:1] in (["data"], ["models"], ["keys"]) else " ".join(args[:1])
    flag = table["default_model_flag"].get(verb)
    if flag and flag not in args and not any(arg.endswith((".yaml", ".yml")) for arg in args):
        args += [flag, table["tiny"]]
    sys.argv = ["tuneloop", *args, *table["append"].get(verb, [])]
    from tuneloop.cli import main

    main()
'''


def make_sandbox(folder: Path, models: dict[str, str], cache: Path) -> dict[str, str]:
    """The page's working folder; returns the environment its commands run in."""
    shutil.copytree(ROOT / "examples", folder / "examples")
    for yaml_file in [*(ROOT / "configs").rglob("*.yaml"), *(ROOT / "docs").rglob("*.yaml")]:
        copy = folder / yaml_file.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        text = yaml_file.read_text(encoding="utf-8")
        for name, tiny in models.items():
            text = re.sub(rf"(?<![\w/.-]){re.escape(name)}(?![\w/.-])", tiny, text)
        copy.write_text(text, encoding="utf-8")
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    table = {"models": models, "tiny": models["smollm2-135m-instruct"], "append": APPEND, "default_model_flag": DEFAULT_MODEL_FLAG}
    scripts = {
        "tuneloop": SHIM.format(python=sys.executable, table=json.dumps(table)),
        "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
        "activate": f'export PATH="{bin_dir}:$PATH"\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("TUNELOOP_STORE", "VIRTUAL_ENV")}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")])),
        TUNELOOP_HOME=str(folder / "home"), TUNELOOP_CACHE=str(cache), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="120",
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
    )  # fmt: skip
    return env


def run_block(block: Block, folder: Path, env: dict[str, str], log: Path) -> tuple[int | str, str, float]:
    """Run one block in its own process group; returns (exit status or why none, output, seconds)."""
    text = re.sub(r"\b8000\b", str(free_port()), block.text)
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", text], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            status = process.wait(timeout=MAX_SECONDS_PER_BLOCK)
        except subprocess.TimeoutExpired:
            status = f"timed out after {MAX_SECONDS_PER_BLOCK} s"
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever the block left running
            except ProcessLookupError:
                pass
            process.wait()
    return status, log.read_text(errors="replace"), time.monotonic() - started


PAGES_WITH_COMMANDS = [page for page in PAGES if blocks_to_run(page)]


@dataclass
class Ran:
    block: Block
    status: int | str
    output: str
    seconds: float


def run_page(page: Path, folder: Path, models: dict[str, str], cache: Path) -> list[Ran]:
    """The page's blocks in order, in one sandbox; stops at the first block that fails."""
    env = make_sandbox(folder, models, cache)
    ran = []
    for number, block in enumerate(blocks_to_run(page)):
        ran.append(Ran(block, *run_block(block, folder, env, folder / f"block{number}.log")))
        if ran[-1].status != 0:
            break
    return ran


@pytest.fixture(scope="module")
def ran_pages(request, tiny_model_dir, tiny_bert_dir, tiny_t5_dir, session_cache, tmp_path_factory) -> dict[Path, list[Ran]]:
    """Every selected page run, ``WORKERS`` pages at a time, the pages with the most commands first."""
    from concurrent.futures import ThreadPoolExecutor

    models = {"smollm2-135m-instruct": str(tiny_model_dir), "minilm-l6": str(tiny_bert_dir), "google-t5/t5-small": str(tiny_t5_dir)}
    selected = {item.callspec.params["page"] for item in request.session.items if item.originalname == "test_page_commands_run"}
    pages = sorted(selected, key=lambda page: -sum(block.text.count("tuneloop ") for block in blocks_to_run(page)))
    folders = [tmp_path_factory.mktemp(re.sub(r"\W+", "-", str(page.relative_to(ROOT)))) for page in pages]
    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(zip(pages, pool.map(run_page, pages, folders, [models] * len(pages), [session_cache] * len(pages))))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS, ids=lambda page: str(page.relative_to(ROOT)))
def test_page_commands_run(page, ran_pages):
    for ran in ran_pages[page]:
        print(f"{ran.block.where}: {ran.seconds:.1f} s")
        assert ran.status == 0, f"{ran.block.where} failed ({ran.status}):\n{ran.block.text}\n--- output ---\n{ran.output[-6000:]}"
        # A command may report a failure and still exit 0 (compare keeps a dead worker's row): no traceback either.
        assert "Traceback (most recent call last)" not in ran.output, f"{ran.block.where} printed a traceback:\n{ran.output[-6000:]}"
