"""The run report: loss curve, base-vs-tuned chart, ``report.md`` and a self-contained ``report.html``.

Both documents are rendered from the same table rows, so they always show the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from tuneloop.atomic import write_bytes_atomic, write_text_atomic
from tuneloop.evaluate.suite import ReportTable
from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.trust import TRUST_KEY, trust_rows
from tuneloop.evaluate.table_cells import cell_text, change, fmt, fmt_delta, is_number
from tuneloop.text.metrics import LOWER_IS_BETTER

TRUST_HEADING = "Trust: personal data, privacy, bias, hallucination and forgetting"
PLOT_TITLES = {
    "loss": "Training and validation loss",
    "base_vs_tuned": "Base vs tuned on the held-out test split",
}
MAX_SAMPLES = 10
MAX_PROMPT_CHARS = 800
# Top-level keys rendered in their own place, not as "other results" (and every suite's); dp is a run fact.
_MAIN_KEYS = {"base", "tuned", "primary", TRUST_KEY, "dp"}

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 0; background: #f6f8fa; }
main { max-width: 920px; margin: 2rem auto; background: #fff; padding: 2rem 2.5rem; border: 1px solid #d0d7de; border-radius: 8px; }
h1 { margin-top: 0; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2rem; }
.facts { color: #59636e; } .headline { font-size: 1.3rem; padding: .8rem 1rem; background: #eef6ff; border-radius: 6px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } th, td { border: 1px solid #d0d7de; padding: .35rem .75rem; }
th { background: #f6f8fa; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.primary td { font-weight: 600; } .better { color: #1a7f37; } .worse { color: #cf222e; } .note { color: #59636e; font-size: .9rem; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #d0d7de; border-radius: 6px; } figcaption { color: #59636e; }
.sample { border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0; }
dt { font-weight: 600; margin-top: .5rem; } dd { margin: .2rem 0 0 0; }
pre { background: #f6f8fa; padding: .5rem .75rem; border-radius: 6px; white-space: pre-wrap; word-break: break-word; margin: 0; }
"""


def write_report(run_dir: Path, metrics: dict, log_records: list[dict], samples: list[dict]) -> dict[str, Path]:
    """Write the plots, ``report.md`` and ``report.html`` into ``run_dir``; returns what was written.

    Keys of the result: ``loss`` and ``base_vs_tuned`` (PNG plots, each only when there is
    something to plot), ``markdown`` and ``html``.
    """
    run_dir = Path(run_dir)
    plots = {name: png for name, png in render_plots(metrics, log_records).items() if png is not None}
    written = {name: write_bytes_atomic(run_dir / "plots" / f"{name}.png", png) for name, png in plots.items()}
    title = f"Fine-tuning report: {run_dir.name}"
    samples = samples[:MAX_SAMPLES]
    markdown = render_markdown(title, metrics, list(plots), samples)
    written["markdown"] = write_text_atomic(run_dir / "report.md", markdown)
    written["html"] = write_text_atomic(run_dir / "report.html", render_html(title, metrics, plots, samples))
    return written


# --- numbers and table rows -------------------------------------------------------------------


def metric_rows(metrics: dict) -> list[dict]:
    """One row per metric of base or tuned: values, delta and whether the change is an improvement."""
    base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
    rows = []
    for name in [*tuned, *(k for k in base if k not in tuned)]:
        b, t = base.get(name), tuned.get(name)
        delta, better = change(name, b, t)
        rows.append({"name": name, "base": b, "tuned": t, "delta": delta, "better": better,
                     "primary": name == metrics.get("primary")})  # fmt: skip
    return rows


def headline(metrics: dict) -> str:
    """``primary: base → tuned (delta)``, or the tuned value alone when there is no base."""
    primary = metrics.get("primary")
    base, tuned = (metrics.get("base") or {}).get(primary), (metrics.get("tuned") or {}).get(primary)
    if primary is None or tuned is None:
        return ""
    if not (is_number(base) and is_number(tuned)):
        return f"{primary}: {fmt(tuned)}"
    return f"{primary}: {fmt(base)} → {fmt(tuned)} ({fmt_delta(tuned - base)})"


def run_facts(metrics: dict) -> list[tuple[str, str]]:
    """Scalar top-level entries such as model, method and test_examples; the DP guarantee a run was trained to."""
    facts = [(k, fmt(v)) for k, v in metrics.items() if k not in _MAIN_KEYS | SUITES.keys() and not isinstance(v, (dict, list))]
    if "dp" in metrics:
        facts.append(("differential privacy", dp_fact(metrics["dp"])))
    return facts


def dp_fact(dp: dict) -> str:
    """One line: ``(ε = 7.99, δ = 1e-05) over 480 training rows, for the trainable parameters: 120 DP-SGD steps ...``."""
    return (
        f"(ε = {dp['epsilon']:.3g}, δ = {dp['delta']:.3g}) over {dp['training_rows']} training rows, for the trainable "
        f"parameters: {dp['steps']} DP-SGD steps at sampling rate {dp['sample_rate']:.3g}, noise multiplier "
        f"{dp['noise_multiplier']:.3g}, clipping norm {dp['max_grad_norm']:g}, {dp['accountant']} accountant"
    )


def extra_tables(metrics: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every other dict section as (title, header, rows): {name: {metric: value}} or {metric: value}."""
    tables = confusion_tables(metrics.get("confusion") or {})
    for key, section in metrics.items():
        if key in _MAIN_KEYS | SUITES.keys() or key == "confusion" or not isinstance(section, dict) or not section:
            continue
        if all(isinstance(v, dict) for v in section.values()):
            columns = list(dict.fromkeys(c for inner in section.values() for c in inner))
            rows = [[str(name), *(fmt(inner.get(c)) for c in columns)] for name, inner in section.items()]
            tables.append((key, ["", *columns], rows))
        else:
            tables.append((key, ["metric", "value"], [[str(k), fmt(v)] for k, v in section.items()]))
    return tables


def confusion_tables(confusion: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Classification: one table per model, rows the true label, columns the predicted one."""
    tables = []
    for model in ("base", "tuned"):
        entry = confusion.get(model)
        if entry:
            rows = [[label, *map(str, counts)] for label, counts in zip(entry["labels"], entry["matrix"])]
            tables.append((f"confusion matrix, {model} (rows: true label, columns: predicted)", ["", *entry["labels"]], rows))
    return tables


def suite_sections(metrics: dict) -> list[tuple[str, ReportTable]]:
    """(heading, note and table) of the Trust summary, then of every suite in ``metrics``, in the registry's order."""
    shown = [(TRUST_HEADING, trust_rows(metrics[TRUST_KEY]))] if TRUST_KEY in metrics else []
    for name, suite in SUITES.items():
        section = metrics.get(name)
        if not section:
            continue
        if "skipped" in section:
            shown.append((suite.heading, ReportTable(f"{suite.label}: {section['skipped']}.")))
        else:
            shown.append((suite.heading, suite.report_rows(section, metrics)))
    return shown


def lower_is_better_note(rows: list[dict]) -> str:
    names = [r["name"] for r in rows if r["name"] in LOWER_IS_BETTER]
    note = "Delta is tuned − base."
    return note + (f" Lower is better for {', '.join(names)}." if names else "")


# --- plots --------------------------------------------------------------------------------------


def render_plots(metrics: dict, log_records: list[dict]) -> dict[str, bytes | None]:
    return {"loss": loss_plot(log_records), "base_vs_tuned": comparison_plot(metrics)}


def _new_figure(width: float, height: float):
    # The Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _series(log_records: list[dict], key: str) -> list[tuple[float, float]]:
    return [(r["step"], r[key]) for r in log_records if is_number(r.get("step")) and is_number(r.get(key))]


def loss_plot(log_records: list[dict]) -> bytes | None:
    """Training loss and validation loss against the optimiser step; None without any loss."""
    train, val = _series(log_records, "loss"), _series(log_records, "eval_loss")
    if not train and not val:
        return None
    fig = _new_figure(7, 4)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), label="training loss", color="#0969da", linewidth=1.6)
    if val:
        ax.plot(*zip(*val), label="validation loss", color="#cf222e", marker="o", linewidth=1.6)
    ax.set(xlabel="step", ylabel="loss", title=PLOT_TITLES["loss"])
    ax.grid(alpha=0.3)
    ax.legend()
    return _png_bytes(fig)


def comparable_metrics(metrics: dict) -> list[str]:
    """Metrics both models have, scored in [0, 1] where higher is better (so they share an axis)."""
    base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
    return [
        name for name, t in tuned.items()
        if name not in LOWER_IS_BETTER and is_number(t) and is_number(base.get(name))
        and 0.0 <= t <= 1.0 and 0.0 <= base[name] <= 1.0
    ]  # fmt: skip


def comparison_plot(metrics: dict) -> bytes | None:
    """Grouped bars, base vs tuned, one group per shared [0, 1] metric; None when there is none."""
    names = comparable_metrics(metrics)
    if not names:
        return None
    fig = _new_figure(max(5.0, 1.4 * len(names) + 2), 4)
    ax = fig.add_subplot()
    width = 0.38
    positions = range(len(names))
    for offset, (label, colour) in zip((-width / 2, width / 2), (("base", "#8c959f"), ("tuned", "#1a7f37"))):
        values = [metrics[label][n] for n in names]
        bars = ax.bar([p + offset for p in positions], values, width, label=label, color=colour)
        ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    primary = metrics.get("primary")
    ax.set_xticks(list(positions), [f"{n}\n(primary)" if n == primary else n for n in names], fontsize=8)
    # Headroom above 1.0 keeps the one-row legend clear of the value labels of perfect scores.
    ax.set(ylim=(0, 1.25), yticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0], ylabel="score (higher is better)")
    ax.set_title(PLOT_TITLES["base_vs_tuned"])
    ax.legend(loc="upper left", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _png_bytes(fig)


# --- markdown -----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_code(text: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside (model output may have ```)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _metric_table_cells(rows: list[dict]) -> list[list[str]]:
    return [[f"**{r['name']}** (primary)" if r["primary"] else r["name"], fmt(r["base"]), fmt(r["tuned"]),
             fmt_delta(r["delta"])] for r in rows]  # fmt: skip


def render_markdown(title: str, metrics: dict, plot_names: list[str], samples: list[dict]) -> str:
    parts = [f"# {title}"]
    facts = run_facts(metrics)
    if facts:
        parts.append(" · ".join(f"{k}: {v}" for k, v in facts))
    if headline(metrics):
        parts.append(f"**{headline(metrics)}**")
    rows = metric_rows(metrics)
    parts += ["## Metrics", md_table(["metric", "base", "tuned", "delta"], _metric_table_cells(rows))]
    parts.append(lower_is_better_note(rows))
    if plot_names:
        parts.append("## Plots")
        parts += [f"![{PLOT_TITLES[name]}](plots/{name}.png)" for name in plot_names]
    for heading, (note, header, table_rows) in suite_sections(metrics):
        parts += [f"## {heading}", note]
        parts += [md_table(header, [[cell_text(c) for c in row] for row in table_rows])] if table_rows else []
    for table_title, header, table_rows in extra_tables(metrics):
        parts += [f"## {table_title}", md_table(header, table_rows)]
    if samples:
        parts.append("## Sample predictions")
        parts += [md_sample(i, s) for i, s in enumerate(samples, 1)]
    return "\n\n".join(parts) + "\n"


def _sample_fields(sample: dict) -> list[tuple[str, str]]:
    prompt = str(sample.get("prompt", ""))
    if len(prompt) > MAX_PROMPT_CHARS:
        prompt = prompt[:MAX_PROMPT_CHARS] + " …"
    fields = [("Prompt", prompt), ("Reference", sample.get("reference")), ("Base", sample.get("base")),
              ("Tuned", sample.get("tuned"))]  # fmt: skip
    return [(label, str(value)) for label, value in fields if value is not None]


def md_sample(index: int, sample: dict) -> str:
    blocks = [f"### Example {index}"]
    blocks += [f"**{label}**\n\n{md_code(value)}" for label, value in _sample_fields(sample)]
    return "\n\n".join(blocks)


# --- html ---------------------------------------------------------------------------------------


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(cell: str | tuple[str, str]) -> str:
    """A cell is its text, or (text, css class)."""
    text, cls = cell if isinstance(cell, tuple) else (cell, "")
    return f'<td class="{cls}">{_esc(text)}</td>' if cls else f"<td>{_esc(text)}</td>"


def html_table(header: list[str], rows: list[list], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>{''.join(_html_cell(c) for c in row)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_metric_rows(rows: list[dict]) -> list[list]:
    def delta_class(row: dict) -> str:
        return {True: "num better", False: "num worse"}.get(row["better"], "num")

    return [[r["name"] + (" (primary)" if r["primary"] else ""), (fmt(r["base"]), "num"), (fmt(r["tuned"]), "num"),
             (fmt_delta(r["delta"]), delta_class(r))] for r in rows]  # fmt: skip


def html_figure(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = _esc(PLOT_TITLES[name])
    image = f'<img src="data:image/png;base64,{data}" alt="{caption}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def html_sample(index: int, sample: dict) -> str:
    fields = _sample_fields(sample)
    items = "".join(f"<dt>{_esc(label)}</dt><dd><pre>{_esc(value)}</pre></dd>" for label, value in fields)
    return f'<section class="sample"><h3>Example {index}</h3><dl>{items}</dl></section>'


def render_html(title: str, metrics: dict, plots: dict[str, bytes], samples: list[dict]) -> str:
    parts = [f"<h1>{_esc(title)}</h1>"]
    facts = run_facts(metrics)
    if facts:
        parts.append('<p class="facts">' + " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in facts) + "</p>")
    if headline(metrics):
        parts.append(f'<p class="headline">{_esc(headline(metrics))}</p>')
    rows = metric_rows(metrics)
    classes = ["primary" if r["primary"] else "" for r in rows]
    parts += ["<h2>Metrics</h2>", html_table(["metric", "base", "tuned", "delta"], _html_metric_rows(rows), classes)]
    parts.append(f'<p class="note">{_esc(lower_is_better_note(rows))}</p>')
    if plots:
        parts += ["<h2>Plots</h2>", *(html_figure(name, png) for name, png in plots.items())]
    for heading, (note, header, table_rows) in suite_sections(metrics):
        parts += [f"<h2>{_esc(heading)}</h2>", f'<p class="note">{_esc(note)}</p>']
        parts += [html_table(header, table_rows)] if table_rows else []
    for table_title, header, table_rows in extra_tables(metrics):
        parts += [f"<h2>{_esc(table_title)}</h2>", html_table(header, table_rows)]
    if samples:
        parts += ["<h2>Sample predictions</h2>", *(html_sample(i, s) for i, s in enumerate(samples, 1))]
    body = "\n".join(parts)
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_esc(title)}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
