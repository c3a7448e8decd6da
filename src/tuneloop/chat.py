"""Talk to a trained run: one-shot answers and an interactive terminal chat."""

from __future__ import annotations

from pathlib import Path

from tuneloop.errors import TuneloopError
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_base_model, load_tuned_model


def generative_task(run_dir: Path):
    """The run's task, which answers with text; a classifier's or a reward model's run has no text to give."""
    run = RunDir.existing(run_dir)
    run.artifact()  # a clear error for a folder that is not a finished run
    name = run.config().task
    task = get_task(name)
    if not task.generates:
        raise TuneloopError(f"{run_dir} was trained for task {name!r}, which predicts {task.predicts}, not text; use tuneloop eval")
    return task


def run_messages(run_dir: Path, history: list[dict]) -> list[dict]:
    """The run's system prompt (if any) followed by the conversation so far."""
    system = RunDir.existing(run_dir).config().data.system_prompt
    return ([{"role": "system", "content": system}] if system else []) + history


def answer_prompts(run_dir: Path, prompts: list[str], max_new_tokens: int = 128, use_base: bool = False) -> list[str]:
    task = generative_task(run_dir)
    model, tokenizer = (load_base_model if use_base else load_tuned_model)(run_dir)
    conversations = [run_messages(run_dir, [{"role": "user", "content": prompt}]) for prompt in prompts]
    return task.answer(model, tokenizer, conversations, max_new_tokens)


def chat_loop(run_dir: Path, max_new_tokens: int = 256) -> None:
    """Read a line, answer with the tuned model, keep the history; empty line or EOF ends."""
    task = generative_task(run_dir)
    model, tokenizer = load_tuned_model(run_dir)
    history: list[dict] = []
    print("Chatting with", run_dir, "(empty line or Ctrl-D to quit)")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        history.append({"role": "user", "content": line})
        answer = task.answer(model, tokenizer, [run_messages(run_dir, history)], max_new_tokens)[0]
        history.append({"role": "assistant", "content": answer})
        print(f"model> {answer}", flush=True)
