"""Server reliability under load (the long variant of tests/reliability/test_server_load.py): a real ``tuneloop serve`` on the tiny
random Llama with a LoRA version in production, 16 clients for 60 s mixing valid and hostile requests, then a
SIGKILL during 200 feedback posts and a restart on the same store.

    python bench/serve_reliability.py                   # ~2 minutes; bench/results/serve_reliability.{json,md}
    python bench/serve_reliability.py --seconds 10 --out /tmp/sr.json   # a quick look

The load driver is the short test's (``tests/reliability/serve_load.py``): one asyncio loop in this process,
each client sending one request after another, drawn from a fixed mix (valid: chat greedy and sampled, chat
and completion streams, completions, feedback on earlier answers, the model list, /healthz, a temperature of
1e-300, a forged ``<|im_start|>`` turn, NUL/emoji/right-to-left text, a body sent slowly, a stream the client
hangs up on; hostile, and a client that hangs up mid-body: the kinds listed in the table). The valid kinds weigh 79
in all, each of the 27 others 1, so about a quarter of the requests are hostile. Before the timed run every kind
is sent once. How each figure is made:

* statuses, problems: a valid request must get 200 and a body the ``openai`` package's types parse (every
  stream event included, and a stream must end with ``[DONE]``); a hostile one its listed 4xx with OpenAI's
  error object. ``problems`` counts the answers that broke that; ``5xx (valid)`` the valid requests answered
  >= 500 (a failed stream's error event counts as a problem, not a status).
* latency p50/p95: from sending the request to the end of its answer (a stream's last event), per kind.
* the server runs with OMP_NUM_THREADS=1 (one torch thread: on 2 shared cores more only contend).
* server RSS: VmRSS of the server process from /proc, sampled every second; start = just before the load.
* CPU seconds: the server's (utime + stime from /proc) and this process's (``time.process_time``) over the run,
  so the load is seen to be the server's work, not the clients'.
* feedback kill: 200 corrections, each with its own text, started over 1 s; SIGKILL as soon as 40 are answered
  200; the server restarts on the same store; each acknowledged text must be stored exactly once, under the id
  the server answered with (read with tuneloop's own store reader).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from commands import ROOT  # bench/ is the script's folder, so it is importable

sys.path.insert(0, str(ROOT / "tests"))  # the load driver and its helpers live with the short test
from reliability.serve_load import (  # noqa: E402
    ServerProcess, drive, each_kind_once, kill_verdict, post_feedback_until_killed, seed_store, stored_corrections, summary,
)  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed run")
    parser.add_argument("--max-batch", type=int, default=8, help="the server's --max-batch")
    parser.add_argument("--kill-posts", type=int, default=200, help="feedback posts during which the server is killed")
    parser.add_argument("--kill-after", type=int, default=40, help="SIGKILL once this many posts were acknowledged")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clients' draws")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_reliability.json", help="result JSON (a .md beside it)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, work: Path) -> dict:
    from tuneloop.models.tiny import build_tiny_llama

    model = build_tiny_llama(work / "tiny-llama")
    store = work / "store.sqlite3"
    key, models = seed_store(store, model, work / "lora-run")
    server = ServerProcess.start(model, store, work / "server.log", max_batch=args.max_batch)
    try:
        server.wait_ready()
        report = {"server_command": shlex.join(["tuneloop", *server.process.args[3:]]), "models": models, "rss_idle": server.rss_bytes()}
        first = asyncio.run(each_kind_once(server.url, key, models))
        cpu_server, cpu_client, started = server.cpu_seconds(), time.process_time(), time.perf_counter()
        outcomes, memory = asyncio.run(drive(server.url, key, models, args.clients, args.seconds, args.seed, rss=server.rss_bytes, rss_every_s=1.0))
        wall = time.perf_counter() - started
        report["load"] = {**summary(first + outcomes), "wall_s": wall, "server_cpu_s": server.cpu_seconds() - cpu_server,
                          "client_cpu_s": time.process_time() - cpu_client, "rss_samples": memory}  # fmt: skip
        report["kill"] = kill_test(server, model, key, args, work)
        report["logged_errors"] = server.logged_errors()
    finally:
        server.stop()
    return report


def kill_test(server: ServerProcess, model: Path, key: str, args, work: Path) -> dict:
    import httpx

    chat = {"model": "base", "messages": [{"role": "user", "content": "the invoice"}], "max_tokens": 2}
    ids = [httpx.post(f"{server.url}/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}, timeout=60).json()["id"] for _ in range(4)]
    kill = asyncio.run(post_feedback_until_killed(server, key, ids, args.kill_posts, args.kill_after))
    restarted = ServerProcess.start(model, work / "store.sqlite3", server.log, max_batch=args.max_batch)
    started = time.perf_counter()
    try:
        restarted.wait_ready()
        verdict = kill_verdict(kill, stored_corrections(work / "store.sqlite3"))
        verdict["restart_s"] = time.perf_counter() - started
    finally:
        restarted.stop()
    return verdict


def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.date.today().isoformat(), "load_average": os.getloadavg()}  # fmt: skip


def mib(value: float) -> str:
    return f"{value / 2**20:.0f}"


def markdown(report: dict) -> str:
    load, kill, m = report["load"], report["kill"], report["machine"]
    memory = load["rss_samples"]
    middle = min(memory, key=lambda sample: abs(sample[0] - memory[-1][0] / 2))
    lines = [
        f"# Server reliability under load, {m['date']}",
        "",
        f"`{report['command']}` on {m['cpu']}, {m['cores']} cores shared with other work (load average {m['load_average'][0]:.1f} at the end), "
        f"torch {m['torch']}. Server (a child process): `{report['server_command']}` on a tiny random Llama with a random LoRA "
        f"version in production; models asked: {', '.join(report['models'])}. How each figure is made: the script's docstring.",
        "",
        f"**{load['requests']:,} requests in {load['wall_s']:.0f} s from {report['settings']['clients']} clients** "
        f"({load['valid']:,} valid, {load['hostile']:,} hostile or hung up): **{load['valid_5xx']} valid requests answered 5xx**, "
        f"{load['any_5xx']} responses >= 500 in all, {load['problems']} answers that broke the contract, "
        f"{len(report['logged_errors'])} exceptions in the server's log.",
        "",
        f"Server RSS (MiB): {mib(report['rss_idle'])} idle after start; {mib(memory[0][1])} at the start of the run, "
        f"{mib(middle[1])} at {middle[0]:.0f} s, {mib(memory[-1][1])} at the end ({memory[-1][0]:.0f} s), highest {mib(max(r for _, r in memory))}. "
        f"CPU seconds over the run: server {load['server_cpu_s']:.1f}, clients {load['client_cpu_s']:.1f}.",
        "",
        f"SIGKILL during {kill['posted']} feedback posts (killed once {kill['killed_after_acks']} were answered): "
        f"**{kill['acknowledged']} acknowledged, {kill['acknowledged_present_once']} present exactly once after the restart, "
        f"{kill['lost']} lost, {kill['duplicates']} duplicates**; {kill['stored_without_answer']} stored whose answer the kill cut off, "
        f"{kill['cut_by_the_kill']} connections cut, {kill['refused_after_the_kill']} refused while the server was down; "
        f"restarted in {kill['restart_s']:.0f} s.",
        "",
        "| kind | valid | requests | statuses | p50 s | p95 s | problems |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for kind, row in sorted(load["kinds"].items(), key=lambda item: (not item[1]["valid"], -item[1]["requests"])):
        statuses = ", ".join(f"{status or 'none'}: {count}" for status, count in row["statuses"].items())
        lines.append(f"| {kind} | {'yes' if row['valid'] else 'no'} | {row['requests']} | {statuses} | {row['p50_s']:.3f} | {row['p95_s']:.3f} | {row['problems']} |")
    broken = [(kind, row["first_problems"]) for kind, row in sorted(load["kinds"].items()) if row["problems"]]
    if broken or report["logged_errors"]:
        lines += ["", "Problems (the first of each kind), and the server log's exceptions:", ""]
        lines += [f"- {kind}: {problem}" for kind, problems in broken for problem in problems]
        lines += [f"- server log: {line}" for line in report["logged_errors"][:10]]
    lines += ["", "Server RSS over the run (s: MiB): " + ", ".join(f"{t:.0f}: {mib(r)}" for t, r in memory[:: max(1, len(memory) // 12)])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="serve_reliability_") as folder:
        report = run(args, Path(folder))
    report = {"command": shlex.join(["python", "bench/serve_reliability.py", *(argv if argv is not None else sys.argv[1:])]),
              "settings": vars(args) | {"out": str(args.out)}, "machine": machine(), **report}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"written: {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
