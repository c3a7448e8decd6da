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


def owns_run_folder(config) -> bool:
    """Whether this node writes the run folder: node 0 (the others' processes only train)."""
    return config.train.node_rank == 0


def launched(config) -> bool:
    """Whether training runs in processes launched through accelerate (several processes or nodes)."""
    return config.train.nproc > 1 or config.train.nnodes > 1


def inside_launch() -> bool:
    """True in a process started by accelerate/torchrun (the config's nproc is then already in effect)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch_command(config_file: Path, train, resume: bool) -> list[str]:
    """``accelerate launch`` re-running ``tuneloop train`` on the resolved config in ``train.nproc`` processes
    on this node; with ``train.nnodes`` above 1, this node's part of a run over all of them."""
    nproc, accelerate_config = train.nproc, train.accelerate_config
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(nproc * train.nnodes)]
    command += ["--num_machines", str(train.nnodes)]
    if train.nnodes > 1:  # torchrun's static rendezvous at node 0's HOST:PORT
        host, _, port = train.rdzv_endpoint.rpartition(":")
        command += ["--machine_rank", str(train.node_rank), "--main_process_ip", host, "--main_process_port", port]
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
    with tempfile.TemporaryDirectory(prefix="tuneloop-launch-") as folder:
        config_file = Path(folder) / "config.yaml"
        config_file.write_text(dump_config(config), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(t.nproc, t.threads)), RESUME_FROM: str(checkpoint or "")}
        result = subprocess.run(launch_command(config_file, t, resume), env=env)
    if result.returncode != 0:
        where = f"on node {t.node_rank} of {t.nnodes}" if t.nnodes > 1 else f"in one of its {t.nproc} processes"
        raise TuneloopError(f"distributed training failed {where} (exit code {result.returncode})")


# accelerate runs these only on GPUs: on a CPU it silently falls back to DDP (accelerate 1.16's AcceleratorState).
GPU_ONLY_ENGINES = ("FSDP", "DEEPSPEED")


def check_launch(config, gpus: int) -> None:
    """Refuse, before any work, an accelerate config that is missing or cannot run on this machine (``gpus``)."""
    path = config.train.accelerate_config
    if path is None:
        return
    if not Path(path).is_file():
        raise TuneloopError(f"train.accelerate_config: file not found: {path}")
    import yaml

    try:
        engine = str((yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("distributed_type", "")).upper()
    except (yaml.YAMLError, AttributeError) as err:
        raise TuneloopError(f"train.accelerate_config: {path} is not an accelerate config file ({err})") from None
    if engine in GPU_ONLY_ENGINES and gpus == 0:
        raise TuneloopError(
            f"train.accelerate_config: {path} asks for {engine}, which accelerate runs only on GPUs, and this machine has "
            "none (on a CPU it would silently train with plain DDP); leave --accelerate-config out to train with DDP"
        )


def local_processes() -> int:
    """Processes of this run on this node (torchrun's LOCAL_WORLD_SIZE), 1 outside a launch."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def threads_per_process(nproc: int, threads: int) -> int:
    """Split the machine's cores (or ``train.threads``) between the processes, at least one each."""
    return max(1, (threads or os.cpu_count() or 1) // nproc)
