"""What a search leaves behind: the trials table (markdown + JSON), tune.json, Optuna's plots, a terminal table."""

from __future__ import annotations

import io
from pathlib import Path

from tuneloop.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from tuneloop.tune.space import SearchParam, resolve_direction
from tuneloop.tune.optuna_setup import optuna_warnings_quiet, storage_url


def write_outputs(study, config, out: Path, params: list[SearchParam], best: dict) -> dict:
    """tune.json, trials.md, trials.json and the plots in ``out``; prints the table; returns tune.json's content."""
    rows = trial_rows(study)
    importance = param_importances(study)
    summary = summarise(study, config, out, rows, importance, best)
    write_json_atomic(out / "trials.json", rows)
    write_text_atomic(out / "trials.md", render_markdown(summary, rows, [p.path for p in params]))
    summary["plots"] = write_plots(study, out, summary["metric"], importance is not None)
    write_json_atomic(out / "tune.json", summary)
    print_summary(summary, rows, [p.path for p in params])
    return summary


def trial_rows(study) -> list[dict]:
    """One row per trial: state, settings, validation value, where it stopped."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        steps = sorted(trial.intermediate_values)
        rows.append(
            {
                "trial": trial.number,
                "state": "interrupted" if trial.user_attrs.get("interrupted") else trial.state.name.lower(),
                "default": bool(trial.user_attrs.get("default")),
                "value": trial.value,
                "params": trial.params,
                "evaluations": {str(step): trial.intermediate_values[step] for step in steps},
                "last_step": trial.user_attrs.get("steps"),
                "train_seconds": trial.user_attrs.get("train_seconds"),
                "run": trial.user_attrs.get("run"),
            }
        )
    return rows


def param_importances(study) -> dict[str, float] | None:
    """Optuna's (PED-ANOVA) importance of each setting, or None with too few completed trials to tell."""
    import warnings

    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = dict(optuna.importance.get_param_importances(study))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return None
    if any("importances will be equal" in str(w.message) for w in caught):
        return None  # optuna's way of saying it cannot tell the settings apart yet
    return importances


def summarise(study, config, out: Path, rows: list[dict], importance: dict | None, best: dict) -> dict:
    direction = resolve_direction(config.tune.metric, config.tune.direction)
    counts = {state: sum(1 for r in rows if r["state"] == state) for state in ("complete", "pruned", "fail", "interrupted")}
    best_row = next(r for r in rows if r["trial"] == best["trial"])
    default_row = next((r for r in rows if r["default"] and r["state"] == "complete"), None)
    metrics = best["metrics"]
    primary = metrics["primary"]
    return {
        "metric": f"validation {config.tune.metric}",
        "direction": direction,
        "study": config.tune.study_name or config.project,
        "storage": storage_url(config, out),
        "trials": {"requested": config.tune.trials, **counts},
        "best": {"trial": best_row["trial"], "value": best_row["value"], "params": best_row["params"]},
        "default": None if default_row is None else {"trial": default_row["trial"], "value": default_row["value"], "params": default_row["params"]},
        "best_beats_default": None if default_row is None else beats(best_row["value"], default_row["value"], direction),
        "test": {
            "run": best["run"],
            "rows": metrics["test_examples"],
            "primary": primary,
            "base": metrics["base"].get(primary),
            "tuned": metrics["tuned"].get(primary),
            "tuned_scores": metrics["tuned"],
        },
        "importance": importance,
    }


def beats(value: float, reference: float, direction: str) -> bool:
    return value < reference if direction == "minimize" else value > reference


def render_markdown(summary: dict, rows: list[dict], paths: list[str]) -> str:
    lines = [
        f"# Search: {summary['metric']} ({summary['direction']})",
        "",
        f"Study `{summary['study']}`: {summary['trials']['complete']} complete, {summary['trials']['pruned']} pruned, "
        f"{summary['trials']['fail'] + summary['trials']['interrupted']} failed or interrupted.",
        "",
        "| trial | state | " + " | ".join(paths) + f" | {summary['metric']} | steps | train s |",
        "|---:|---|" + "---:|" * len(paths) + "---:|---:|---:|",
    ]
    for row in rows:
        label = f"{row['trial']}{' (default)' if row['default'] else ''}{' **best**' if row['trial'] == summary['best']['trial'] else ''}"
        settings = " | ".join(fmt(row["params"].get(path)) for path in paths)
        lines.append(f"| {label} | {row['state']} | {settings} | {fmt(row['value'])} | {fmt(row['last_step'])} | {fmt(row['train_seconds'])} |")
    lines += ["", *outcome_lines(summary)]
    return "\n".join(lines) + "\n"


def outcome_lines(summary: dict) -> list[str]:
    best, default, test = summary["best"], summary["default"], summary["test"]
    lines = [f"Best: trial {best['trial']}, {summary['metric']} {fmt(best['value'])}."]
    if default is None:
        lines.append("The config's own settings lie outside the search space, so no default trial ran.")
    else:
        verdict = "beats" if summary["best_beats_default"] else "does not beat"
        lines.append(f"Default settings (trial {default['trial']}): {fmt(default['value'])}; the best {verdict} them on validation.")
    lines.append(
        f"Test split, evaluated once ({test['rows']} rows, {test['run']}): {test['primary']} {fmt(test['tuned'])} tuned vs {fmt(test['base'])} base."
    )
    if summary["importance"] is None:
        lines.append("Setting importance: too few completed trials to tell the settings apart.")
    else:
        lines.append("Setting importance: " + ", ".join(f"{path} {share:.2f}" for path, share in summary["importance"].items()) + ".")
    return lines


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_plots(study, out: Path, metric: str, with_importance: bool) -> list[str]:
    """Optuna's matplotlib figures: optimisation history, per-step validation values, and importances."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    figures = {}
    with optuna_warnings_quiet():  # optuna's matplotlib plots are marked experimental
        figures["history.png"] = plots.plot_optimization_history(study, target_name=metric)
        figures["intermediate.png"] = plots.plot_intermediate_values(study)
        figures["intermediate.png"].set_ylabel(f"{metric} at each evaluation")
        if with_importance:
            figures["importance.png"] = plots.plot_param_importances(study)
    for name, axes in figures.items():
        save_axes(axes, out / name)
    return sorted(figures)


def save_axes(axes, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = axes.figure
    figure.set_size_inches(8, 4.5)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def print_summary(summary: dict, rows: list[dict], paths: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tune: {summary['metric']} ({summary['direction']})")
    for column in ("trial", "state", *paths, "value", "steps"):
        table.add_column(column, justify="left" if column in ("state",) else "right")
    for row in rows:
        style = "bold green" if row["trial"] == summary["best"]["trial"] else None
        label = f"{row['trial']}{'*' if row['default'] else ''}"
        table.add_row(label, row["state"], *(fmt(row["params"].get(p)) for p in paths), fmt(row["value"]), fmt(row["last_step"]), style=style)
    console = Console()
    console.print(table)
    console.print("* the config's own settings")
    for line in outcome_lines(summary):
        console.print(line)
