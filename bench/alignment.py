"""DPO, KTO, PPO and GRPO from the same SFT model, side by side, on the support-reply rule.

    python bench/alignment.py [--work bench/work/alignment] [--objectives dpo,kto,ppo,grpo] [--ppo-steps 30] [--grpo-steps 30]

The chain, each step through the `tuneloop` CLI as a user runs it (a finished step is reused when
its folder is complete, so an interrupted bench continues):

1. data (tuneloop.demo.preferences, seeded): 300 preference pairs (seed 0) and the same as 600
   ratings; the replies agents sent to the same tickets (most too long); 300 pairs of another seed
   for the judge; 60 held-out tickets (seed 2) every model answers;
2. SFT on the sent replies (configs/support_replies_sft.yaml), exported as a full model: the
   starting point (the reference) of every objective;
3. a reward model on the seed-0 pairs (configs/support_reward.yaml): PPO's and GRPO's reward;
4. a judge, the same recipe on the seed-1 pairs: a held-out reward model none of the policies saw;
5. DPO and KTO (configs/support_dpo.yaml, support_kto.yaml) and PPO and GRPO (support_ppo.yaml,
   support_grpo.yaml), each from the SFT model, each `tuneloop eval`-ed with `--judge-reward-run`.

The table: the share of held-out answers that keep the rule (demo.preferences.rule_share), the judge's
mean reward, the win rate against the SFT model under the judge, the KL to the SFT model (nats per
answer), the forgetting suite's general-QA accuracy, and the wall time of training. Written to
bench/results/alignment.json and alignment.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from commands import ROOT, tuneloop  # bench/ is the script's folder, so it is importable

from tuneloop.demo.preferences import (
    generate_preference_pairs,
    ratings_of_pairs,
    rule_share,
    sent_replies,
)

RESULTS = ROOT / "bench" / "results"
OBJECTIVES = ("dpo", "kto", "ppo", "grpo")
HELDOUT = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "alignment", help="folder for data and runs (reused)")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="which objectives to train, comma-separated")
    parser.add_argument("--ppo-steps", type=int, default=30, help="PPO steps (16 sampled answers each)")
    parser.add_argument("--grpo-steps", type=int, default=30, help="GRPO steps (16 sampled answers each)")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = write_data(work)
    sft_full = starting_model(work, data)
    reward = trained(work / "reward", "configs/support_reward.yaml", "--data", data["pairs"])
    judge = trained(work / "judge", "configs/support_reward.yaml", "--data", data["judge"])
    rows = {}
    for objective in [o.strip() for o in args.objectives.split(",") if o.strip()]:
        run = train_policy(work, objective, sft_full, data, reward, args.grpo_steps if objective == "grpo" else args.ppo_steps)
        rows[objective] = policy_row(run, judge)
    results = {
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "command": "python bench/alignment.py " + " ".join(sys.argv[1:]),
        "heldout_prompts": HELDOUT,
        "sft": sft_row(next(iter(rows.values()))) if rows else None,
        "objectives": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alignment.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "alignment.md").write_text(markdown(results))
    print(markdown(results))


def write_data(work: Path) -> dict[str, str]:
    """The bench's data files (seeded: the same every run)."""
    pairs = generate_preference_pairs(300, seed=0)
    heldout = generate_preference_pairs(HELDOUT, seed=2)
    files = {
        "pairs": pairs,
        "ratings": ratings_of_pairs(pairs),
        "sent": sent_replies(300, seed=0),
        "judge": generate_preference_pairs(300, seed=1),
        "heldout_pairs": heldout,
        # The held-out tickets as KTO's test rows: each prompt once, with its good reply.
        "heldout_ratings": [{"prompt": p["prompt"], "completion": p["chosen"], "label": "good"} for p in heldout],
    }
    paths = {}
    for name, rows in files.items():
        path = work / f"{name}.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "broken"}) + "\n" for row in rows))
        paths[name] = str(path)
    return paths


def starting_model(work: Path, data: dict) -> str:
    """SFT on the sent replies, exported as a full model folder."""
    sft = trained(work / "sft", "configs/support_replies_sft.yaml", "--data", data["sent"])
    full = work / "sft-full"
    if not (full / "config.json").exists():
        tuneloop("merge", sft, "--export-full", "--out", str(full))
    return str(full)


def train_policy(work: Path, objective: str, sft_full: str, data: dict, reward: str, steps: int) -> str:
    test = data["heldout_ratings"] if objective == "kto" else data["heldout_pairs"]
    source = data["ratings"] if objective == "kto" else data["pairs"]
    extra = [f"--{objective}-reward-run", reward, "--max-steps", str(steps)] if objective in ("ppo", "grpo") else []
    return trained(work / objective, f"configs/support_{objective}.yaml", "--model", sft_full, "--data", source, "--test-data", test, *extra)


def trained(out: Path, config: str, *flags: str) -> str:
    """``tuneloop train CONFIG FLAGS --out OUT``, unless OUT already holds a finished run."""
    if not (out / "train.json").exists():
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run; remove it and run the bench again")
        tuneloop("train", config, *flags, "--out", str(out))
    return str(out)


def policy_row(run: str, judge: str) -> dict:
    """One objective's row: evaluated with the judge (once), then read back from metrics.json and alignment.jsonl."""
    folder = Path(run)
    metrics_file = folder / "metrics.json"
    if "sampled_mean_reward" not in (json.loads(metrics_file.read_text()).get("alignment", {}).get("base", {}) if metrics_file.exists() else {}):
        tuneloop("eval", run, "--judge-reward-run", judge)
    metrics = json.loads(metrics_file.read_text())
    answers = [json.loads(line) for line in (folder / "alignment.jsonl").read_text().splitlines()]
    prompts = [row["prompt"][-1]["content"] for row in answers]
    alignment, forgetting = metrics["alignment"], metrics.get("forgetting", {})
    summary = json.loads((folder / "train.json").read_text())
    return {
        "rule_share": rule_share([row["tuned"] for row in answers], prompts),
        "sft_rule_share": rule_share([row["base"] for row in answers], prompts),
        "sampled_rule_share": rule_share([row["tuned_sampled"] for row in answers], prompts),
        "sft_sampled_rule_share": rule_share([row["base_sampled"] for row in answers], prompts),
        "mean_reward": alignment["tuned"]["mean_reward"],
        "sft_mean_reward": alignment["base"]["mean_reward"],
        "sampled_mean_reward": alignment["tuned"]["sampled_mean_reward"],
        "sft_sampled_mean_reward": alignment["base"]["sampled_mean_reward"],
        "win_rate": alignment["tuned"]["win_rate"],
        "kl_to_sft": alignment["tuned"]["kl_to_base"],
        "qa_accuracy": forgetting.get("tuned", {}).get("qa_accuracy"),
        "sft_qa_accuracy": forgetting.get("base", {}).get("qa_accuracy"),
        "train_seconds": summary["seconds"],
        "steps": summary["steps"],
        "primary": {metrics["primary"]: metrics["tuned"][metrics["primary"]]},
    }


def sft_row(row: dict) -> dict:
    return {
        "rule_share": row["sft_rule_share"], "sampled_rule_share": row["sft_sampled_rule_share"], "mean_reward": row["sft_mean_reward"],
        "sampled_mean_reward": row["sft_sampled_mean_reward"], "win_rate": 0.5, "kl_to_sft": 0.0, "qa_accuracy": row["sft_qa_accuracy"],
    }  # fmt: skip


def markdown(results: dict) -> str:
    lines = [
        f"# Alignment objectives from one SFT model ({results['machine']['cpu']})",
        "",
        f"`{results['command']}`; {results['heldout_prompts']} held-out tickets, answers judged by a reward model trained on other "
        "pairs. Rule share: the share of answers that are polite, cite the ticket and stay under 60 words; greedy answers, "
        "and one answer per ticket sampled at temperature 1.",
        "",
        "| model | rule share, greedy | rule share, sampled | judge's reward, greedy | judge's reward, sampled | win rate vs SFT | KL to SFT (nats/answer) | general QA accuracy | training (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sft = results["sft"]
    if sft:
        lines.append(
            f"| SFT (start) | {sft['rule_share']:.3f} | {sft['sampled_rule_share']:.3f} | {sft['mean_reward']:+.3f} | "
            f"{sft['sampled_mean_reward']:+.3f} | - | 0 | {fmt(sft['qa_accuracy'])} | - |"
        )
    for name, row in results["objectives"].items():
        lines.append(
            f"| {name.upper()} | {row['rule_share']:.3f} ({points(row['rule_share'], row['sft_rule_share'])}) | "
            f"{row['sampled_rule_share']:.3f} ({points(row['sampled_rule_share'], row['sft_sampled_rule_share'])}) | "
            f"{row['mean_reward']:+.3f} | {row['sampled_mean_reward']:+.3f} | {row['win_rate']:.3f} | {row['kl_to_sft']:.2f} | "
            f"{fmt(row['qa_accuracy'])} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def points(share: float, start: float) -> str:
    return f"{100 * (share - start):+.0f} pts"


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
