"""Talk to a trained run: one-shot answers and an interactive terminal chat."""

from __future__ import annotations

from pathlib import Path


def check_generative(run_dir: Path) -> None:
    """chat/generate answer with text; a classifier's run has no text to give."""
    from tuneloop.config import load_config
    from tuneloop.errors import TuneloopError
    from tuneloop.models.adapters import run_artifact
    from tuneloop.objectives import get_task

    run_artifact(run_dir)  # a clear error for a folder that is not a finished run
    task = load_config(Path(run_dir) / "config.yaml").task
    if not get_task(task).generates:
        raise TuneloopError(f"{run_dir} was trained for task {task!r}, which predicts labels, not text; use tuneloop eval")


def run_messages(run_dir: Path, history: list[dict]) -> list[dict]:
    """The run's system prompt (if any) followed by the conversation so far."""
    from tuneloop.config import load_config

    system = load_config(Path(run_dir) / "config.yaml").data.system_prompt
    return ([{"role": "system", "content": system}] if system else []) + history


def answer_prompts(run_dir: Path, prompts: list[str], max_new_tokens: int = 128, use_base: bool = False) -> list[str]:
    from tuneloop.evaluate.generate import generate_texts
    from tuneloop.models.adapters import load_base_model, load_tuned_model
    from tuneloop.train.sft_data import render_prompt

    check_generative(run_dir)
    model, tokenizer = (load_base_model if use_base else load_tuned_model)(run_dir)
    rendered = [render_prompt(tokenizer, run_messages(run_dir, [{"role": "user", "content": p}])) for p in prompts]
    return generate_texts(model, tokenizer, rendered, max_new_tokens)


def chat_loop(run_dir: Path, max_new_tokens: int = 256) -> None:
    """Read a line, answer with the tuned model, keep the history; empty line or EOF ends."""
    from tuneloop.evaluate.generate import generate_texts
    from tuneloop.models.adapters import load_tuned_model
    from tuneloop.train.sft_data import render_prompt

    check_generative(run_dir)
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
        prompt = render_prompt(tokenizer, run_messages(run_dir, history))
        answer = generate_texts(model, tokenizer, [prompt], max_new_tokens)[0]
        history.append({"role": "assistant", "content": answer})
        print(f"model> {answer}", flush=True)
