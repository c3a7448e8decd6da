"""Serving throughput: ``tuneloop serve`` under 1, 4, 8 and 16 concurrent clients versus the same
requests through sequential ``model.generate`` (issue #5), measured in one run on this machine.

    python bench/serve_throughput.py            # SmolLM2-135M-Instruct, ~15 minutes on 2 CPU cores
    python bench/serve_throughput.py --quick    # tiny random Llama: checks the plumbing in a minute

The server is the real command (``python -m tuneloop serve``) in a child process on loopback; the
clients are threads of this process using the official ``openai`` client with ``stream=True``.
The baseline loads the same model in this process and generates each request alone (batch 1,
greedy), while the server is idle. How each figure is made:

* requests: generated support tickets (fixed seed) as chat messages with the demo's triage system
  prompt; greedy; the same ``max_tokens`` for all. With ``c`` clients and ``r`` requests each,
  request ``j`` of client ``k`` asks prompt ``(j*c + k) mod P`` of a pool of ``P`` prompts, so the
  requests in flight together are different prompts. Each client sends its next request when the
  previous answer has ended (as chat users and most scripts do).
* completion tokens: tokens generated before the end-of-turn token, at most ``max_tokens``; for the
  server the stream's final usage chunk (``stream_options.include_usage``), for the baseline the
  ids ``generate`` returned. Answers are compared text for text ("identical answers").
* server tokens/s: all completion tokens of a client count / wall time from releasing the clients
  together until the last stream ended (HTTP, JSON, streaming and the request log included).
* sequential tokens/s: every pool prompt is generated alone once before and once after the server
  runs; a client count's figure is its requests' tokens / the sum of their mean times.
* latency: from the ``create`` call to the end of the stream; TTFT: to the first chunk with text.
  Baseline: the ``generate`` call, and to its first new token.
* rows per step: the engine's mean running requests per decode step in that run (its /metrics);
  engine busy: share of the wall time the engine spent in forward passes.
* with ``--lora`` (default) a random LoRA (r=16, all linear layers) is registered as a version and a
  mixed run follows: odd clients ask the version, even clients the base, in the same batches.

Results: bench/results/serve_throughput.json and .md (the README links the table).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "base"
TARGET_SPEEDUP, TARGET_CLIENTS = 4.0, 8


@dataclass
class Prompt:
    index: int
    messages: list[dict]
    text: str  # rendered by the chat template, as the server renders it
    tokens: int


@dataclass
class Answer:
    prompt: int
    model: str
    text: str
    tokens: int
    seconds: float
    ttft: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="base model (tuneloop naming)")
    parser.add_argument("--clients", default="1,4,8,16", help="comma-separated concurrent client counts")
    parser.add_argument("--requests-per-client", type=int, default=4, help="requests each client sends, one after another")
    parser.add_argument("--max-tokens", type=int, default=48, help="max_tokens of every request (greedy)")
    parser.add_argument("--max-batch", type=int, default=16, help="the server's --max-batch")
    parser.add_argument("--prompts", type=int, default=16, help="size P of the prompt pool")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tickets and of the random LoRA")
    parser.add_argument("--lora", action=argparse.BooleanOptionalAction, default=True, help="also run mixed base + LoRA traffic")
    parser.add_argument("--mixed-clients", type=int, default=8, help="client count of the mixed run")
    parser.add_argument("--quick", action="store_true", help="tiny random Llama, small counts: checks the plumbing only")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests_per_client, args.prompts, args.max_tokens, args.mixed_clients = "1,4", 2, 4, 8, 4
    suffix = "_quick" if args.quick else ""
    args.out = args.out or ROOT / "bench" / "results" / f"serve_throughput{suffix}.json"
    return args


# --- set-up ------------------------------------------------------------------------------------


def prompt_pool(tokenizer, size: int, seed: int) -> list[Prompt]:
    from tuneloop.demo.tickets import PROMPT_TEMPLATE, SYSTEM_PROMPT, generate_tickets

    pool = []
    for index, ticket in enumerate(generate_tickets(size, seed)):
        user = PROMPT_TEMPLATE.format(subject=ticket["subject"], body=ticket["body"])
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pool.append(Prompt(index, messages, text, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    return pool


def random_lora_run(base: str, folder: Path, seed: int) -> Path:
    """A finished run folder whose LoRA adapter has random, non-zero weights (answers differ from the base)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneloop.config import dump_config, load_config
    from tuneloop.models.load import load_causal_lm

    torch.manual_seed(seed)
    model, tokenizer = load_causal_lm(base)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(folder / "adapter")
    tokenizer.save_pretrained(folder / "adapter")
    (folder / "config.yaml").write_text(dump_config(load_config(None, {"project": "bench", "out": str(folder), "model.name": base})))
    (folder / "data.json").write_text(json.dumps({"dataset_hash": f"{seed:064d}"}))
    return folder


def start_server(base: str, store: Path, max_batch: int, log: Path) -> "RunningServer":
    """``python -m tuneloop serve`` in a child process on a free loopback port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tuneloop", "serve", "--base", base, "--store", str(store),
               "--port", str(port), "--max-batch", str(max_batch), "--max-tokens", "4096"]  # fmt: skip
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
    return RunningServer(process, f"http://127.0.0.1:{port}", log)


@dataclass
class RunningServer:
    process: subprocess.Popen
    url: str
    log: Path

    def wait_ready(self, timeout: float = 300) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the server did not come up")

    def engine_counters(self, key: str) -> dict[str, float]:
        """The engine's counters from /metrics."""
        import requests

        text = requests.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10).text
        wanted = ("tuneloop_prefills_total", "tuneloop_decode_steps_total", "tuneloop_decode_rows_total", "tuneloop_engine_busy_seconds_total")
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.split(" ")[0] in wanted}

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- the baseline: plain generate, batch 1, one request after another ---------------------------


class FirstTokenClock:
    """A transformers streamer noting when the first new token arrives (the prompt is put first)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def generate_alone(model, tokenizer, prompt: Prompt, max_tokens: int) -> tuple[str, int, float, float]:
    """(text, completion tokens, seconds, seconds to first token) of one greedy ``generate`` call."""
    import torch

    clock, start = FirstTokenClock(), time.perf_counter()
    inputs = tokenizer([prompt.text], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, streamer=clock, pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - start
    stops = {tokenizer.eos_token_id, *listed(model.generation_config.eos_token_id)}
    new = output[0, inputs["input_ids"].shape[1] :].tolist()
    ids = new[: next((i for i, token in enumerate(new) if token in stops), len(new))]
    return tokenizer.decode(ids, skip_special_tokens=True), len(ids), seconds, (clock.first or time.perf_counter()) - start


def listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def baseline_pass(model, tokenizer, pool: list[Prompt], keys: list[tuple[int, str]], max_tokens: int) -> dict:
    """Each (prompt, model) once, alone; the LoRA version with its adapter active, the base with adapters off."""
    import contextlib

    answers = {}
    for index, name in keys:
        adapter_off = model.disable_adapter() if name == BASE and hasattr(model, "disable_adapter") else contextlib.nullcontext()
        with adapter_off:
            text, tokens, seconds, ttft = generate_alone(model, tokenizer, pool[index], max_tokens)
        answers[(index, name)] = Answer(index, name, text, tokens, seconds, ttft)
    return answers


# --- the clients -------------------------------------------------------------------------------


def client_plan(clients: int, per_client: int, pool_size: int, models: list[str]) -> list[list[tuple[int, str]]]:
    """Per client, its (prompt index, model) requests; client ``k`` asks ``models[k % len(models)]``."""
    return [[((j * clients + k) % pool_size, models[k % len(models)]) for j in range(per_client)] for k in range(clients)]


def ask_streamed(client, prompt: Prompt, model: str, max_tokens: int) -> Answer:
    start, first, pieces, tokens = time.perf_counter(), None, [], 0
    stream = client.chat.completions.create(
        model=model, messages=prompt.messages, max_tokens=max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                first = first or time.perf_counter()
                pieces.append(choice.delta.content)
    end = time.perf_counter()
    return Answer(prompt.index, model, "".join(pieces), tokens, end - start, (first or end) - start)


def client_run(server: RunningServer, key: str, pool: list[Prompt], plan: list[list[tuple[int, str]]], max_tokens: int) -> dict:
    """All clients released together; each sends its requests one after another."""
    from openai import OpenAI

    clients = [OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=600) for _ in plan]
    counters_before, cpu_before = server.engine_counters(key), server.cpu_seconds()
    gate = threading.Barrier(len(plan) + 1)

    def one_client(number: int) -> list[Answer]:
        gate.wait()
        return [ask_streamed(clients[number], pool[index], model, max_tokens) for index, model in plan[number]]

    with concurrent.futures.ThreadPoolExecutor(len(plan)) as executor:
        futures = [executor.submit(one_client, number) for number in range(len(plan))]
        gate.wait()
        start = time.perf_counter()
        answers = [answer for future in futures for answer in future.result()]
        wall = time.perf_counter() - start
    counters_after, cpu_after = server.engine_counters(key), server.cpu_seconds()
    delta = {name: counters_after[name] - counters_before.get(name, 0.0) for name in counters_after}
    steps = delta.get("tuneloop_decode_steps_total", 0.0)
    return {
        "answers": answers,
        "wall_s": wall,
        "rows_per_step": delta.get("tuneloop_decode_rows_total", 0.0) / steps if steps else None,
        "engine_busy": delta.get("tuneloop_engine_busy_seconds_total", 0.0) / wall,
        "prefills": delta.get("tuneloop_prefills_total", 0.0),
        "server_cores_used": (cpu_after - cpu_before) / wall,
    }


# --- the run -----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def latency_summary(answers: list[Answer]) -> dict:
    seconds, ttft = [a.seconds for a in answers], [a.ttft for a in answers]
    return {"latency_p50_s": statistics.median(seconds), "latency_p95_s": percentile(seconds, 0.95),
            "ttft_p50_s": statistics.median(ttft), "ttft_p95_s": percentile(ttft, 0.95)}  # fmt: skip


def compare_with_baseline(label: str, run: dict, baseline: dict) -> dict:
    """One table row: server vs the sequential time of the same requests."""
    answers = run["answers"]
    tokens = sum(a.tokens for a in answers)
    sequential_seconds = sum(statistics.mean(b.seconds for b in baseline[(a.prompt, a.model)]) for a in answers)
    sequential_tokens = sum(baseline[(a.prompt, a.model)][0].tokens for a in answers)
    sequential_rate = sequential_tokens / sequential_seconds
    identical = sum(a.text == baseline[(a.prompt, a.model)][0].text for a in answers)
    return {
        "label": label, "requests": len(answers), "completion_tokens": tokens, "wall_s": run["wall_s"],
        "server_tokens_per_s": tokens / run["wall_s"], "sequential_tokens_per_s": sequential_rate,
        "speedup": tokens / run["wall_s"] / sequential_rate, **latency_summary(answers),
        "rows_per_step": run["rows_per_step"], "engine_busy": run["engine_busy"], "prefills": run["prefills"],
        "server_cores_used": run["server_cores_used"], "identical_answers": identical,
    }  # fmt: skip


def baseline_rows(passes: list[dict], keys: list) -> dict:
    """(prompt, model) -> its answers in each pass, and a summary per pass."""
    merged = {key: [p[key] for p in passes] for key in keys}
    summaries = []
    for label, answers in zip(("before the server runs", "after the server runs"), passes):
        values = list(answers.values())
        tokens, seconds = sum(a.tokens for a in values), sum(a.seconds for a in values)
        summaries.append({"pass": label, "requests": len(values), "completion_tokens": tokens, "seconds": seconds,
                          "tokens_per_s": tokens / seconds, **latency_summary(values)})  # fmt: skip
    return {"answers": merged, "passes": summaries}


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    import torch

    from tuneloop.models.load import load_causal_lm
    from tuneloop.store.db import Store
    from tuneloop.store.keys import create_key
    from tuneloop.store.versions import register

    base = args.model
    if args.quick:
        from tuneloop.models.tiny import build_tiny_llama

        base = str(build_tiny_llama(workdir / "tiny-llama"))
    store = Store(workdir / "store.sqlite3")
    key = create_key(store.connection(), "bench")
    version = None
    if args.lora:
        version = register(store.connection(), random_lora_run(base, workdir / "lora-run", args.seed)).id
    server = start_server(base, store.path, args.max_batch, workdir / "server.log")
    try:
        model, tokenizer = load_causal_lm(base)
        model.eval()
        if version:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(workdir / "lora-run" / "adapter")).eval()
        pool = prompt_pool(tokenizer, args.prompts, args.seed)
        server.wait_ready()
        warm_up(server, key, pool, version, model, tokenizer)
        report = {"machine": machine_info(), "settings": settings(args, base, pool, model)}
        counts = [int(c) for c in args.clients.split(",")]
        report["base"] = traffic_phase(args, server, key, pool, model, tokenizer, counts, [BASE])
        if version:
            report["mixed"] = traffic_phase(args, server, key, pool, model, tokenizer, [args.mixed_clients], [version, BASE])
            report["mixed"]["version"] = version
        report["target"] = target_verdict(report["base"]["runs"])
        report["machine"]["load_average_after"] = os.getloadavg()
        report["machine"]["torch_threads"] = torch.get_num_threads()
    finally:
        server.stop()
    return report


def traffic_phase(args, server, key, pool, model, tokenizer, counts: list[int], models: list[str]) -> dict:
    """Baseline, the server at each client count, baseline again; the comparison rows."""
    plans = {c: client_plan(c, args.requests_per_client, len(pool), models if len(models) == 1 else [models[1], models[0]]) for c in counts}
    keys = sorted({request for plan in plans.values() for client in plan for request in client})
    print(f"baseline: {len(keys)} requests through generate, one at a time ...", flush=True)
    before = baseline_pass(model, tokenizer, pool, keys, args.max_tokens)
    runs = {}
    for clients, plan in plans.items():
        print(f"{clients} client(s) x {args.requests_per_client} requests ({', '.join(sorted(set(models)))}) ...", flush=True)
        runs[clients] = client_run(server, key, pool, plan, args.max_tokens)
    print("baseline again ...", flush=True)
    after = baseline_pass(model, tokenizer, pool, keys, args.max_tokens)
    baseline = baseline_rows([before, after], keys)
    rows = [compare_with_baseline(f"{c} client{'s' if c > 1 else ''}", runs[c], baseline["answers"]) for c in counts]
    for row in rows:
        print(f"  {row['label']}: {row['server_tokens_per_s']:.2f} tokens/s vs {row['sequential_tokens_per_s']:.2f} sequential = {row['speedup']:.2f}x", flush=True)
    return {"models": models, "baseline": baseline["passes"], "runs": rows}


def warm_up(server, key, pool, version, model, tokenizer) -> None:
    """First calls load adapters and allocate; neither side is timed on them."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=600)
    for name in [BASE] + ([version] if version else []):
        ask_streamed(client, pool[0], name, 4)
    generate_alone(model, tokenizer, pool[0], 4)


def target_verdict(rows: list[dict]) -> dict:
    row = next((r for r in rows if r["label"] == f"{TARGET_CLIENTS} clients"), None)
    speedup = row["speedup"] if row else None
    return {"clients": TARGET_CLIENTS, "required_speedup": TARGET_SPEEDUP, "speedup": speedup,
            "met": speedup is not None and speedup >= TARGET_SPEEDUP}  # fmt: skip


def machine_info() -> dict:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "date": datetime.date.today().isoformat(), "load_average_before": os.getloadavg()}  # fmt: skip


def settings(args, base: str, pool: list[Prompt], model) -> dict:
    tokens = [p.tokens for p in pool]
    return {
        "model": base, "parameters": sum(p.numel() for p in model.get_base_model().parameters()) if hasattr(model, "get_base_model") else sum(p.numel() for p in model.parameters()),
        "max_tokens": args.max_tokens, "requests_per_client": args.requests_per_client, "prompts": len(pool),
        "prompt_tokens_min": min(tokens), "prompt_tokens_median": statistics.median(tokens), "prompt_tokens_max": max(tokens),
        "max_batch": args.max_batch,
    }  # fmt: skip


# --- the table ---------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    s, m = report["settings"], report["machine"]
    lines = [
        f"# Serving throughput, {m['date']}",
        "",
        f"{s['model']} ({s['parameters']:,} parameters), {s['prompts']} support-ticket prompts ({s['prompt_tokens_min']}-{s['prompt_tokens_max']} "
        f"prompt tokens, median {s['prompt_tokens_median']}), max_tokens {s['max_tokens']}, greedy, {s['requests_per_client']} requests per client "
        f"sent one after another, server --max-batch {s['max_batch']} (continuous batching). {m['cpu']}, {m['cores']} cores, torch {m['torch']}. "
        "Server: `python -m tuneloop serve` in a child process on loopback; clients: the official openai client, stream=True. "
        "Reproduce: `python bench/serve_throughput.py`; how each figure is made: the script's docstring.",
    ]
    for phase, title in (("base", "All requests to the base model"), ("mixed", "Mixed traffic: odd clients ask a LoRA version (r=16, all linear layers), even clients the base")):
        if phase not in report:
            continue
        lines += ["", f"## {title}", "", "Sequential `model.generate`, batch 1:", "",
                  "| pass | requests | completion tokens | s | tokens/s | latency p50 / p95 s | TTFT p50 / p95 s |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for b in report[phase]["baseline"]:
            lines.append(f"| {b['pass']} | {b['requests']} | {b['completion_tokens']:,} | {b['seconds']:.1f} | {b['tokens_per_s']:.2f} | "
                         f"{b['latency_p50_s']:.2f} / {b['latency_p95_s']:.2f} | {b['ttft_p50_s']:.2f} / {b['ttft_p95_s']:.2f} |")  # fmt: skip
        lines += ["", "| clients | requests | completion tokens | wall s | server tokens/s | sequential tokens/s | speedup | latency p50 / p95 s | "
                      "TTFT p50 / p95 s | rows per step | engine busy | identical answers |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in report[phase]["runs"]:
            per_step = f"{r['rows_per_step']:.1f}" if r["rows_per_step"] is not None else "-"
            lines.append(f"| {r['label']} | {r['requests']} | {r['completion_tokens']:,} | {r['wall_s']:.1f} | {r['server_tokens_per_s']:.2f} | "
                         f"{r['sequential_tokens_per_s']:.2f} | {r['speedup']:.2f}x | {r['latency_p50_s']:.2f} / {r['latency_p95_s']:.2f} | "
                         f"{r['ttft_p50_s']:.2f} / {r['ttft_p95_s']:.2f} | {per_step} | {r['engine_busy']:.0%} | {r['identical_answers']}/{r['requests']} |")  # fmt: skip
    t = report["target"]
    if t["speedup"] is not None:
        verdict = "met" if t["met"] else "MISSED"
        lines += ["", f"Issue #5 target: >= {t['required_speedup']:.0f}x the sequential tokens/s at {t['clients']} clients: {t['speedup']:.2f}x, {verdict}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="serve_throughput_") as folder:
        report = run_benchmark(args, Path(folder))
    for phase in ("base", "mixed"):
        for row in report.get(phase, {}).get("runs", []):
            row.pop("answers", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)) + "\n")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"written: {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
