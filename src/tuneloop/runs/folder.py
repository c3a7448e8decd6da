"""A run folder: its layout, and the one place that reads or writes the files in it.

The run folder is the interface between the stages: ``train`` writes it, ``eval`` adds the
scores, ``models register`` records it, ``serve``, ``merge``, ``chat`` and ``retrain`` read it::

    <run>/config.yaml             the resolved run config (every default filled in)
          data.json               the data manifest: sources and hashes, counts, dropped rows, split sizes, labels
          splits/train.jsonl ...  the exact rows of each split
          adapter/ or model/      what the method trained (which one: the method's ``artifact``)
          train.json              the training summary (steps, best checkpoint, real tokens, seconds)
          log.jsonl               one record per logged training step
          metrics.json            base vs tuned on the test split (after ``tuneloop eval``)
          predictions.jsonl       both models' answers to the test rows
          report.md  report.html  the report

Every write is atomic (temp file + rename), so a reader never sees half a file.

>>> run = RunDir.existing("runs/demo")  # doctest: +SKIP
>>> run.config().method.name, len(run.split("test"))  # doctest: +SKIP
('lora', 120)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import RunConfig, dump_config, load_config
from tuneloop.data.pipeline import load_split, save_splits
from tuneloop.data.schema import Example
from tuneloop.errors import TuneloopError
from tuneloop.methods import Method, get_method

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        """The run folder at ``path``; TuneloopError when it is not one (no config.yaml)."""
        run = cls(Path(path))
        if not run.config_file.is_file():
            raise TuneloopError(f"{run.path} is not a tuneloop run folder (no config.yaml)")
        return run

    # --- the layout -----------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.path / "data.json"

    @property
    def splits_dir(self) -> Path:
        return self.path / "splits"

    def split_file(self, name: str) -> Path:
        return self.splits_dir / f"{name}.jsonl"

    @property
    def train_summary_file(self) -> Path:
        return self.path / "train.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.jsonl"

    # --- reading ---------------------------------------------------------------------------------
    def config(self) -> RunConfig:
        return load_config(self.config_file)

    def method(self) -> Method:
        return get_method(self.config().method.name)

    def artifact(self) -> Path:
        """The folder holding what the run trained; TuneloopError while training has not finished."""
        artifact = self.method().artifact
        folder = self.path / artifact
        if not folder.is_dir():
            raise TuneloopError(f"{self.path} has no {artifact}/: training did not finish; re-run it with --resume")
        return folder

    def manifest(self) -> dict:
        """``data.json``, or {} for a folder that has none (e.g. one written by ``tuneloop merge``)."""
        return read_json(self.manifest_file) if self.manifest_file.is_file() else {}

    def labels(self) -> list[str] | None:
        """Class names a classification run was trained on (None for other tasks)."""
        return self.manifest().get("labels")

    def has_split(self, name: str) -> bool:
        return self.split_file(name).is_file()

    def split(self, name: str) -> list[Example]:
        return load_split(self.split_file(name))

    def train_summary(self) -> dict:
        return read_json(self.train_summary_file)

    def has_metrics(self) -> bool:
        return self.metrics_file.is_file()

    def metrics(self) -> dict:
        return read_json(self.metrics_file)

    def log_records(self) -> list[dict]:
        if not self.log_file.is_file():
            return []
        return [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines() if line.strip()]

    # --- writing ---------------------------------------------------------------------------------
    def write_config(self, config: RunConfig) -> None:
        write_text_atomic(self.config_file, dump_config(config))

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.manifest_file, manifest)

    def write_splits(self, splits) -> None:
        save_splits(self.splits_dir, splits)

    def write_train_summary(self, summary: dict) -> None:
        write_json_atomic(self.train_summary_file, summary)

    def truncate_log(self, records: int) -> None:
        """Keep the log's first ``records`` complete records (a resume logs the later ones again)."""
        if not self.log_file.is_file():
            return
        kept = []
        for line in self.log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                json.loads(line)
            except ValueError:  # a line cut off by the crash
                continue
            kept.append(line + "\n")
        write_text_atomic(self.log_file, "".join(kept[:records]))

    def write_metrics(self, metrics: dict) -> None:
        write_json_atomic(self.metrics_file, metrics)

    def append_log(self, record: dict) -> None:
        """One record (a training step's figures) at the end of ``log.jsonl``, as one line."""
        with self.log_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_rows(self, filename: str, rows: list[dict]) -> Path:
        """JSON lines beside the run's files (``predictions.jsonl``, a suite's answers)."""
        return write_text_atomic(self.path / filename, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
