"""Multi-process training through accelerate (torchrun underneath); never a home-made layer.

``tuneloop train --nproc N`` validates everything in the calling process, writes the resolved
config to a temporary file, and re-runs ``tuneloop train`` under ``accelerate launch`` with N
processes: DDP over gloo on CPU, NCCL on GPUs, or FSDP / DeepSpeed ZeRO when
``--accelerate-config`` names one of the files in ``configs/accelerate/``. Inside the launched
processes ``WORLD_SIZE`` is set; only rank 0 writes the run folder. With ``--resume`` the launching
process picks the checkpoint (setting damaged ones aside) and passes it on in ``TUNELOOP_RESUME_FROM``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tuneloop.config import dump_config
from tuneloop.errors import TuneloopError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def inside_launch() -> bool:
    """True in a process started by accelerate/torchrun (the config's nproc is then already in effect)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch_command(config_file: Path, nproc: int, accelerate_config: str | None, resume: bool) -> list[str]:
    """``accelerate launch`` re-running ``tuneloop train`` on the resolved config in ``nproc`` processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(nproc), "--num_machines", "1"]
    if accelerate_config:
        command += ["--config_file", accelerate_config]
    else:  # plain DDP; accelerate picks gloo on CPU and NCCL on GPUs
        command += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["-m", "tuneloop", "train", str(config_file)]
    return command + (["--resume"] if resume else [])


RESUME_FROM = "TUNELOOP_RESUME_FROM"  # the checkpoint the launched processes resume from ("" for step 0)


def checkpoint_chosen_by_launcher() -> Path | None:
    """In a launched process: the checkpoint the launching process chose for ``--resume``, else None."""
    chosen = os.environ.get(RESUME_FROM, "")
    return Path(chosen) if chosen else None


def run_launched(config, resume: bool, checkpoint: Path | None = None) -> None:
    """Run training in ``config.train.nproc`` processes and wait; a failed process fails the call.
    ``checkpoint``: where a resumed run continues from (None: step 0)."""
    t = config.train
    if t.accelerate_config and not Path(t.accelerate_config).is_file():
        raise TuneloopError(f"train.accelerate_config: file not found: {t.accelerate_config}")
    with tempfile.TemporaryDirectory(prefix="tuneloop-launch-") as folder:
        config_file = Path(folder) / "config.yaml"
        config_file.write_text(dump_config(config), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(t.nproc, t.threads)), RESUME_FROM: str(checkpoint or "")}
        result = subprocess.run(launch_command(config_file, t.nproc, t.accelerate_config, resume), env=env)
    if result.returncode != 0:
        raise TuneloopError(f"distributed training failed in one of its {t.nproc} processes (exit code {result.returncode})")


def threads_per_process(nproc: int, threads: int) -> int:
    """Split the machine's cores (or ``train.threads``) between the processes, at least one each."""
    return max(1, (threads or os.cpu_count() or 1) // nproc)
