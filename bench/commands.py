"""What the bench scripts share: they run tuneloop's own commands, as a user would type them, with this
checkout's ``src`` first on the path (whatever the virtual environment installed), and a run folder that
already holds a finished run of the same commands is kept instead of trained again.

A script in bench/ imports this module by name: Python puts the script's own folder on the path.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tuneloop(*args: str) -> float:
    """Run ``tuneloop ARGS`` in the repository root, printed first; the seconds it took (it must succeed)."""
    print("$ " + shlex.join(["tuneloop", *args]), flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-m", "tuneloop", *args], cwd=ROOT, check=True, env=env)
    seconds = time.perf_counter() - started
    print(f"  ({seconds:.0f} s)", flush=True)
    return seconds


def run_recorded(name: str, cmds: list[list[str]], run: Path) -> dict[str, float]:
    """Run ``cmds`` (each ``["tuneloop", verb, ...]``) for the run folder ``run`` and record them beside it,
    unless ``run`` holds a finished run (``metrics.json``) of exactly these commands. The seconds of each
    verb, as measured when the commands ran."""
    record = run / "bench_commands.json"
    if (run / "metrics.json").is_file():
        if record.is_file() and json.loads(record.read_text())["commands"] == cmds:
            print(f"{name}: {run} holds a finished run of the same commands, not re-run", flush=True)
            return json.loads(record.read_text())["seconds"]
        raise SystemExit(f"{run} holds a run of other settings; remove it or pass another --out")
    if run.exists():
        raise SystemExit(f"{run} holds an unfinished run; remove it first")
    seconds = {cmd[1]: tuneloop(*cmd[1:]) for cmd in cmds}
    record.write_text(json.dumps({"commands": cmds, "seconds": seconds}))
    return seconds
